#include "nats_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace bridge_bench {

namespace {

// The server's pid for the signal handler: an interrupted benchmark kills it.
volatile sig_atomic_t g_server_pid = 0;

extern "C" void kill_server_and_exit(int signal) {
  if (g_server_pid > 0) {
    ::kill(static_cast<pid_t>(g_server_pid), SIGKILL);
  }
  ::signal(signal, SIG_DFL);
  ::raise(signal);
}

// True once the server greets a client with an INFO line saying JetStream is on.
bool answers_with_jetstream(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  bool ready = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    std::string greeting;
    char chunk[4096];
    pollfd p{fd, POLLIN, 0};
    while (greeting.find("\r\n") == std::string::npos && ::poll(&p, 1, 2000) == 1) {
      const ssize_t n = ::read(fd, chunk, sizeof(chunk));
      if (n <= 0) {
        break;
      }
      greeting.append(chunk, static_cast<std::size_t>(n));
    }
    ready =
        greeting.rfind("INFO ", 0) == 0 && greeting.find("\"jetstream\":true") != std::string::npos;
  }
  ::close(fd);
  return ready;
}

constexpr const char* kStorePrefix = "sluice-bench-nats-";

// An interrupted benchmark cannot remove its store from a signal handler;
// the next one removes the stores of benchmarks that are no longer running.
void remove_stale_stores() {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/tmp", error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kStorePrefix, 0) != 0) {
      continue;
    }
    const long pid = std::strtol(name.c_str() + std::strlen(kStorePrefix), nullptr, 10);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      std::filesystem::remove_all(entry.path(), ignored);
    }
  }
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::runtime_error("cannot find a free loopback port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

NatsServer::NatsServer(const std::string& program) {
  remove_stale_stores();
  std::string dir = "/tmp/" + std::string(kStorePrefix) + std::to_string(::getpid()) + "-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    throw std::runtime_error("cannot create a temporary store directory");
  }
  store_ = dir;
  log_ = store_ + "/server.log";
  // The port is free when chosen but may be taken before the server binds
  // it: try a few.
  for (int attempt = 0; attempt < 5 && pid_ < 0; ++attempt) {
    port_ = free_loopback_port();
    const std::string port = std::to_string(port_);
    std::vector<std::string> args = {program, "-js", "-a",           "127.0.0.1", "-p",
                                     port,    "-sd", store_ + "/js", "-l",        log_};
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      throw std::runtime_error("fork failed");
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      std::vector<char*> argv;
      for (std::string& a : args) {
        argv.push_back(a.data());
      }
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    bool exited = false;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      if (answers_with_jetstream(port_)) {
        pid_ = pid;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (pid_ < 0 && !exited) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      stop();
      throw std::runtime_error("nats-server did not become ready within 30 s; its log:\n" +
                               read_text(log_));
    }
    if (exited && WIFEXITED(status) && WEXITSTATUS(status) == 127) {
      stop();
      throw std::runtime_error("cannot run " + program + " (install nats-server: tools/setup)");
    }
  }
  if (pid_ < 0) {
    const std::string log = read_text(log_);
    stop();
    throw std::runtime_error("nats-server did not start; its log:\n" + log);
  }
  g_server_pid = pid_;
  std::signal(SIGINT, kill_server_and_exit);
  std::signal(SIGTERM, kill_server_and_exit);
}

NatsServer::~NatsServer() {
  stop();
}

void NatsServer::stop() noexcept {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    bool gone = false;
    for (int i = 0; i < 500 && !gone; ++i) {  // up to 5 s for a clean shutdown
      gone = ::waitpid(pid_, &status, WNOHANG) == pid_;
      if (!gone) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    if (!gone) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
    pid_ = -1;
    g_server_pid = 0;
  }
  if (!store_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(store_, ignored);
    store_.clear();
  }
}

}  // namespace bridge_bench
