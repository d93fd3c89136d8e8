#pragma once

// A nats-server with JetStream for the bridge tests, and the bridge's peers
// as real processes. The server listens on a free loopback port with its
// store in a temporary directory; it can be stopped, killed and started
// again on the same store and port, and is always killed when the test ends
// (and, through PR_SET_PDEATHSIG, when the test runner dies).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "test_support.hpp"
#include "tool_run.hpp"

namespace sluice::test {

// The directory on PATH holding `program`, or empty.
inline std::string find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string candidate = dirs.substr(start, end - start) + "/" + program;
    if (end > start && access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return {};
}

// A loopback port nobody listens on now (the kernel's choice for port 0).
inline int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::abort();
  }
  close(fd);
  return ntohs(address.sin_port);
}

inline bool accepts_connection(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return ok;
}

// A program run as a child process, its stdout and stderr in files; killed
// with the test runner (PR_SET_PDEATHSIG) and on destruction.
class Process {
 public:
  Process() = default;
  Process(const std::string& command, const std::string& log_prefix) { start(command, log_prefix); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() { kill_now(); }

  void start(const std::string& command, const std::string& log_prefix) {
    out_path_ = log_prefix + ".out";
    err_path_ = log_prefix + ".err";
    reaped_ = false;
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const std::string full = "exec " + command + " >" + out_path_ + " 2>" + err_path_;
      execl("/bin/sh", "sh", "-c", full.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }

  // Exit status, 128+signal, or -1 if still running after `timeout` (then killed).
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    if (reaped_) {
      return status_;
    }
    const bool done = eventually(
        [this] {
          int raw = 0;
          if (waitpid(pid_, &raw, WNOHANG) != pid_) {
            return false;
          }
          status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
          reaped_ = true;
          return true;
        },
        timeout);
    if (!done) {
      kill_now();
      return -1;
    }
    return status_;
  }

  [[nodiscard]] bool running() {
    int raw = 0;
    if (reaped_ || pid_ <= 0) {
      return false;
    }
    if (waitpid(pid_, &raw, WNOHANG) == pid_) {
      status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
      reaped_ = true;
      return false;
    }
    return true;
  }

  void kill_now(int signal = SIGKILL) {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, signal);
      int raw = 0;
      waitpid(pid_, &raw, 0);
      status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
      reaped_ = true;
    }
  }

  [[nodiscard]] std::string out() const { return read_file(out_path_); }
  [[nodiscard]] std::string err() const { return read_file(err_path_); }

 private:
  pid_t pid_ = -1;
  bool reaped_ = true;
  int status_ = -1;
  std::string out_path_;
  std::string err_path_;
};

class NatsServer {
 public:
  NatsServer() : binary_(find_on_path("nats-server")) {
    char pattern[] = "/tmp/sluice-nats-XXXXXX";
    const char* made = mkdtemp(pattern);
    dir_ = made != nullptr ? made : "";
    port_ = free_port();
  }
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;
  ~NatsServer() {
    process_.kill_now();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  [[nodiscard]] bool available() const { return !binary_.empty() && !dir_.empty(); }
  [[nodiscard]] std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] const std::string& dir() const { return dir_; }

  // Starts the server on the store (again) and waits until it is ready.
  [[nodiscard]] bool start() {
    ++starts_;
    const std::string log = dir_ + "/server-" + std::to_string(starts_);
    process_.start(
        binary_ + " -js -a 127.0.0.1 -p " + std::to_string(port_) + " -sd " + dir_ + "/store", log);
    // Ready once it logs so: JetStream has recovered its store by then.
    return eventually(
               [&] { return read_file(log + ".err").find("Server is ready") != std::string::npos; },
               std::chrono::seconds(30)) &&
           accepts_connection(port_);
  }
  void kill_now() { process_.kill_now(SIGKILL); }
  void stop() { process_.kill_now(SIGTERM); }

 private:
  std::string binary_;
  std::string dir_;
  int port_ = 0;
  int starts_ = 0;
  Process process_;
};

}  // namespace sluice::test
