#pragma once

// Helpers shared by the tests: unique channel names, cleanup, and real child
// processes that are always reaped.

#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <new>
#include <string>
#include <thread>

#include "sluice/shm/segment.hpp"
#include "sluice/transport/channel.hpp"

namespace sluice::test {

inline std::string unique_channel(const std::string& label) {
  static std::atomic<int> counter{0};
  return "test-" + label + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

// The kernel's rule for tmpfs objects: shmem_enabled "deny" and "force"
// override every mount; otherwise the mount's huge= option decides.
inline bool mount_gives_huge_pages() {
  const std::string policy = sluice::shm::Segment::shmem_huge_page_policy();
  if (policy == "deny" || policy == "force") {
    return policy == "force";
  }
  const std::string option = sluice::shm::Segment::huge_page_mount_option();
  return option == "advise" || option == "within_size" || option == "always";
}

// `n` values of T in anonymous shared memory: mapped before a fork, shared
// with the child processes (counters, progress words). Value-initialised.
template <class T>
class SharedArray {
 public:
  explicit SharedArray(std::size_t n) : n_(n) {
    void* p =
        mmap(nullptr, n * sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      std::abort();
    }
    data_ = static_cast<T*>(p);
    for (std::size_t i = 0; i < n; ++i) {
      new (&data_[i]) T{};
    }
  }
  ~SharedArray() { munmap(data_, n_ * sizeof(T)); }
  SharedArray(const SharedArray&) = delete;
  SharedArray& operator=(const SharedArray&) = delete;
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  [[nodiscard]] std::size_t size() const { return n_; }

 private:
  std::size_t n_;
  T* data_ = nullptr;
};

// Removes the channel when the test ends, whatever happened.
class ChannelGuard {
 public:
  explicit ChannelGuard(std::string name) : name_(std::move(name)) {}
  ~ChannelGuard() { sluice::transport::remove_channel(name_); }
  ChannelGuard(const ChannelGuard&) = delete;
  ChannelGuard& operator=(const ChannelGuard&) = delete;
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// A forked child running `body`; its return value is the exit status. The
// child never returns into the test runner. Killed and reaped on destruction.
class ChildProcess {
 public:
  explicit ChildProcess(const std::function<int()>& body) {
    pid_ = fork();
    if (pid_ == 0) {
      int status = 97;
      try {
        status = body();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child failed: %s\n", e.what());
        status = 98;
      } catch (...) {
        status = 99;
      }
      std::fflush(stdout);
      std::fflush(stderr);
      _exit(status);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  [[nodiscard]] pid_t pid() const { return pid_; }

  // Exit status, or -1 if it did not exit within `timeout` (then it is
  // killed), or 128+signal if a signal ended it.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    for (;;) {
      const pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        reaped_ = true;
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        reaped_ = true;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (WIFEXITED(status)) {
      return WEXITSTATUS(status);
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -2;
  }

  void kill_now() { kill(pid_, SIGKILL); }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// A one-byte signal between processes: a pipe. Blocking read with timeout.
class Signal {
 public:
  Signal() {
    if (pipe(fds_) != 0) {
      std::abort();
    }
  }
  ~Signal() {
    close(fds_[0]);
    close(fds_[1]);
  }
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;
  void notify() const {
    const char byte = 1;
    (void)!write(fds_[1], &byte, 1);
  }
  // Waits until notified; false on timeout.
  [[nodiscard]] bool wait(std::chrono::milliseconds timeout = std::chrono::seconds(60)) const {
    pollfd pfd{fds_[0], POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) {
      return false;
    }
    char byte = 0;
    return read(fds_[0], &byte, 1) == 1;
  }

 private:
  int fds_[2]{};
};

// Polls `condition` until true or `timeout`; for waiting on state another
// thread or process changes, never to paper over a race.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace sluice::test
