#include "roudi_daemon.hpp"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

namespace sluice::bench {
namespace {

constexpr const char* kRoudi = "/usr/bin/iox-roudi";
constexpr std::size_t kChunkOverhead = 128;  // chunk header and alignment, generously
using Clock = std::chrono::steady_clock;

std::string last_line(const std::string& log) {
  std::string text = log;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.pop_back();
  }
  const std::size_t newline = text.rfind('\n');
  text = newline == std::string::npos ? text : text.substr(newline + 1);
  return text.empty() ? "(no output)" : text;
}

}  // namespace

std::string roudi_config() {
  struct Pool {
    std::size_t payload;
    unsigned count;
  };
  const Pool pools[] = {
      {64, 2048},                  // 8 and 64 byte records, ping-pong
      {1024, 1024},                // 1 KiB
      {64 * 1024, 128},            // 64 KiB (queue 32)
      {kLargestChunkPayload, 48},  // 1 MiB (queue 8)
  };
  std::ostringstream out;
  out << "[general]\nversion = 1\n\n[[segment]]\n";
  for (const Pool& pool : pools) {
    const std::size_t size = (pool.payload + kChunkOverhead + 7) / 8 * 8;
    out << "\n[[segment.mempool]]\nsize = " << size << "\ncount = " << pool.count << "\n";
  }
  return out.str();
}

std::string RoudiDaemon::start(const std::string& file_base) {
  if (::access(kRoudi, X_OK) != 0) {
    return "iox-roudi not installed (Debian package iceoryx)";
  }
  config_path_ = file_base + ".toml";
  log_path_ = file_base + ".log";
  std::ofstream(config_path_) << roudi_config();
  std::fflush(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) {
    return "cannot fork iox-roudi";
  }
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // an interrupted benchmark leaves no daemon behind
    const int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::execl(kRoudi, kRoudi, "-c", config_path_.c_str(), "-l", "info", "-k", "2",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Ready when it says so in its log; a failure is a reason to show.
  const auto deadline = Clock::now() + std::chrono::seconds(15);
  for (;;) {
    const std::string log = read_log();
    if (log.find("RouDi is ready for clients") != std::string::npos) {
      return {};
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return "iox-roudi did not start: " + last_line(log);
    }
    if (Clock::now() > deadline) {
      stop();
      return "iox-roudi not ready after 15 s: " + last_line(log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void RoudiDaemon::stop() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  ::unlink(config_path_.c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    ::unlink(log_path_.c_str());
  } else {
    // RouDi 2.0.3 asserts when asked to stop while a client it knows was
    // killed (a run that timed out), leaving its segments. The names are
    // fixed (only one RouDi can run), and this one was ours: remove them.
    ::shm_unlink("/iceoryx_mgmt");
    if (const group* g = ::getgrgid(::getegid()); g != nullptr) {
      ::shm_unlink(("/" + std::string(g->gr_name)).c_str());
    }
    std::fprintf(stderr, "iceoryx: iox-roudi did not end cleanly; its log: %s\n",
                 log_path_.c_str());
  }
}

double RoudiDaemon::cpu_seconds() const {
  if (pid_ <= 0) {
    return -1;
  }
  std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const std::size_t close = text.rfind(')');
  if (close == std::string::npos) {
    return -1;
  }
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) {  // utime, stime
      ticks += std::stod(field);
    }
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::string RoudiDaemon::read_log() const {
  std::ifstream in(log_path_);
  return {(std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()};
}

}  // namespace sluice::bench
