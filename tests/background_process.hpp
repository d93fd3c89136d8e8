#pragma once

// A shell command running beside a test, its output in a file: started,
// signalled, waited for with a timeout, and always reaped.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "tool_run.hpp"

namespace sluice::test {

class BackgroundProcess {
 public:
  // Runs `command` with /bin/sh; stdout and stderr go to `output`.
  BackgroundProcess(const std::string& command, std::string output) : output_(std::move(output)) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);  // its own group: a signal reaches what the shell started too
      const std::string line = "exec >'" + output_ + "' 2>&1; " + command;
      ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);
  }
  ~BackgroundProcess() { stop(std::chrono::seconds(10)); }
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  // Exit status once ended (128+signal if a signal ended it), -1 while running.
  int poll() {
    if (pid_ > 0 && status_ < 0) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
    }
    return status_;
  }
  // Its exit status, or -1 if it still runs after `timeout`.
  int wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (poll() < 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return poll();
  }
  // SIGTERM to its group, SIGKILL after `grace`; its exit status. Whatever
  // it left running in its group goes too, also when it ended by itself.
  int stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0) {
      return status_;
    }
    ::kill(-pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while ((poll() < 0 || ::kill(-pid_, 0) == 0) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(-pid_, SIGKILL);
    if (poll() < 0) {
      int status = 0;
      ::waitpid(pid_, &status, 0);
      status_ = 128 + SIGKILL;
    }
    return status_;
  }
  [[nodiscard]] std::string output() const { return read_file(output_); }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string output_;
};

}  // namespace sluice::test
