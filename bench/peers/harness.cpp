#include "harness.hpp"
#include "../common/fd_io.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <system_error>

namespace cmp {

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

std::int64_t process_cpu_ns() noexcept {
  const auto ns = [](const timeval& t) {
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 +
           static_cast<std::int64_t>(t.tv_usec) * 1000;
  };
  // Children reaped so far count too: the demo-program row runs the work in
  // a program it starts and waits for.
  rusage self{};
  rusage children{};
  ::getrusage(RUSAGE_SELF, &self);
  ::getrusage(RUSAGE_CHILDREN, &children);
  return ns(self.ru_utime) + ns(self.ru_stime) + ns(children.ru_utime) + ns(children.ru_stime);
}

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof(set), &set) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            "sched_setaffinity(cpu " + std::to_string(cpu) + ")");
  }
}

void fail(const std::string& what) {
  throw std::runtime_error(what);
}

void fail_record(std::span<const std::byte> record, std::size_t size, std::uint64_t sequence) {
  if (record.size() != size) {
    fail("record " + std::to_string(sequence) + " has " + std::to_string(record.size()) +
         " bytes, expected " + std::to_string(size));
  }
  if (pattern::sequence_of(record) != sequence) {
    fail("expected record " + std::to_string(sequence) + ", got " +
         std::to_string(pattern::sequence_of(record)));
  }
  fail("record " + std::to_string(sequence) + " is damaged");
}

void summarise_latency(std::vector<std::int64_t>& samples, Report& report) {
  report.samples = samples.size();
  if (samples.empty()) {
    return;
  }
  std::sort(samples.begin(), samples.end());
  const auto at = [&samples](double q) {
    // Nearest rank.
    auto rank = static_cast<std::size_t>(q * static_cast<double>(samples.size()) + 0.999999);
    rank = std::clamp<std::size_t>(rank, 1, samples.size());
    return static_cast<double>(samples[rank - 1]);
  };
  report.latency_ns[0] = at(0.50);
  report.latency_ns[1] = at(0.99);
  report.latency_ns[2] = at(0.999);
  report.latency_ns[3] =
      static_cast<double>(std::accumulate(samples.begin(), samples.end(), std::int64_t{0})) /
      static_cast<double>(samples.size());
  report.latency_ns[4] = static_cast<double>(samples.front());
  report.latency_ns[5] = static_cast<double>(samples.back());
}

// ---------------------------------------------------------------------------
// Child side

namespace {

using sluice::bench::write_all;

char read_byte(int fd) {
  char c = 0;
  for (;;) {
    const ssize_t n = ::read(fd, &c, 1);
    if (n == 1) {
      return c;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return 0;  // parent gone
  }
}

[[noreturn]] void child_main(int up, int down, const ChildSpec& spec) {
  // Die with the parent, so an interrupted harness leaves nothing running.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) {
    ::_exit(3);
  }
  Link link(up, down);
  try {
    if (spec.cpu >= 0) {
      pin_to_cpu(spec.cpu);
    }
    spec.body(link);
    link.report().ok = 1;
  } catch (const std::exception& error) {
    link.report().ok = 0;
    std::snprintf(link.report().message, sizeof(link.report().message), "%s", error.what());
  } catch (...) {
    link.report().ok = 0;
    std::snprintf(link.report().message, sizeof(link.report().message), "unknown exception");
  }
  const int code = link.report().ok != 0 ? 0 : 1;
  link.finish();
  std::fflush(nullptr);
  // exit, not _exit: some systems (iceoryx) deregister from static destructors.
  std::exit(code);
}

}  // namespace

void Link::ready() {
  if (!write_all(to_parent_, "R", 1)) {
    fail("cannot tell the harness we are ready");
  }
  if (read_byte(from_parent_) != 'G') {
    fail("the harness did not say go");
  }
  went_ = true;
  cpu_go_ = process_cpu_ns();
  report_.t_go_ns = now_ns();
}

void Link::wait_end() {
  (void)read_byte(from_parent_);
}

void Link::finish() {
  report_.cpu_ns = went_ ? process_cpu_ns() - cpu_go_ : 0;
  char message[1 + sizeof(Report)];
  message[0] = 'D';
  std::memcpy(message + 1, &report_, sizeof(Report));
  (void)write_all(to_parent_, message, sizeof(message));
}

// ---------------------------------------------------------------------------
// Parent side

namespace {

struct Kid {
  pid_t pid = -1;
  int report_fd = -1;   // read end: child -> parent
  int control_fd = -1;  // write end: parent -> child
  bool ready = false;
  bool finished = false;  // 'D' received, or the pipe closed
  bool reported = false;  // 'D' received
  bool told_end = false;
  bool killed = false;  // by the harness, after its peer failed or on timeout
  std::string inbox;
  Report report;
  double cpu_total = 0;
  std::string ended;  // how it ended, if not exit 0
};

void send(Kid& kid, char c) {
  if (kid.control_fd >= 0) {
    (void)write_all(kid.control_fd, &c, 1);
  }
}

// Reads what is there; parses 'R' and 'D'+Report. Returns false on EOF.
bool drain(Kid& kid) {
  char chunk[4096];
  const ssize_t n = ::read(kid.report_fd, chunk, sizeof(chunk));
  if (n < 0) {
    return errno == EINTR || errno == EAGAIN;
  }
  if (n == 0) {
    return false;
  }
  kid.inbox.append(chunk, static_cast<std::size_t>(n));
  while (!kid.inbox.empty()) {
    if (kid.inbox[0] == 'R') {
      kid.ready = true;
      kid.inbox.erase(0, 1);
    } else if (kid.inbox[0] == 'D') {
      if (kid.inbox.size() < 1 + sizeof(Report)) {
        break;
      }
      std::memcpy(&kid.report, kid.inbox.data() + 1, sizeof(Report));
      kid.inbox.erase(0, 1 + sizeof(Report));
      kid.reported = true;
      kid.finished = true;
    } else {
      kid.inbox.erase(0, 1);  // cannot happen; skip
    }
  }
  return true;
}

std::string describe_wait(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status) == 0 ? std::string()
                                    : "exited with status " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  }
  return "ended oddly";
}

}  // namespace

PairOutcome run_pair(const ChildSpec& a, const ChildSpec& b, std::chrono::seconds timeout,
                     const std::function<void(int)>& close_in_child,
                     const std::function<void()>& close_in_parent,
                     std::array<const char*, 2> roles) {
  std::fflush(nullptr);
  Kid kids[2];
  const ChildSpec* specs[2] = {&a, &b};
  for (int i = 0; i < 2; ++i) {
    int up[2];
    int down[2];
    if (::pipe2(up, O_CLOEXEC) != 0 || ::pipe2(down, O_CLOEXEC) != 0) {
      throw std::system_error(errno, std::generic_category(), "pipe2");
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
      throw std::system_error(errno, std::generic_category(), "fork");
    }
    if (pid == 0) {
      for (int j = 0; j < i; ++j) {
        ::close(kids[j].report_fd);
        ::close(kids[j].control_fd);
      }
      ::close(up[0]);
      ::close(down[1]);
      close_in_child(i);
      child_main(up[1], down[0], *specs[i]);
    }
    ::close(up[1]);
    ::close(down[0]);
    kids[i].pid = pid;
    kids[i].report_fd = up[0];
    kids[i].control_fd = down[1];
  }
  close_in_parent();

  PairOutcome outcome;
  const auto deadline = Clock::now() + timeout;
  bool went = false;
  bool timed_out = false;
  bool killed = false;
  const auto kill_all = [&kids, &killed] {
    for (Kid& kid : kids) {
      if (!kid.finished && kid.pid > 0) {
        ::kill(kid.pid, SIGKILL);
        kid.killed = true;
      }
    }
    killed = true;
  };
  while (!(kids[0].finished && kids[1].finished)) {
    pollfd fds[2];
    nfds_t count = 0;
    int which[2];
    for (int i = 0; i < 2; ++i) {
      if (!kids[i].finished) {
        fds[count] = {kids[i].report_fd, POLLIN, 0};
        which[count++] = i;
      }
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      kill_all();
      break;
    }
    const int n = ::poll(fds, count, static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "poll");
    }
    for (nfds_t k = 0; n > 0 && k < count; ++k) {
      if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        Kid& kid = kids[which[k]];
        if (!drain(kid)) {
          kid.finished = true;  // died without a report
        }
      }
    }
    if (!went && kids[0].ready && kids[1].ready) {
      send(kids[1], 'G');
      send(kids[0], 'G');
      went = true;
    }
    for (int i = 0; i < 2; ++i) {
      Kid& kid = kids[i];
      Kid& other = kids[1 - i];
      if (kid.finished && !other.told_end) {
        send(other, 'E');
        other.told_end = true;
        if ((!kid.reported || kid.report.ok == 0) && !other.finished && !killed) {
          // The other side may wait forever for a peer that failed.
          ::kill(other.pid, SIGKILL);
          other.killed = true;
        }
      }
    }
  }

  for (int i = 0; i < 2; ++i) {
    Kid& kid = kids[i];
    int status = 0;
    rusage usage{};
    pid_t reaped = -1;
    while ((reaped = ::wait4(kid.pid, &status, 0, &usage)) < 0 && errno == EINTR) {
    }
    if (reaped == kid.pid) {
      kid.ended = describe_wait(status);
      kid.cpu_total = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                      static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
    } else {
      kid.ended = "could not be reaped";
    }
    ::close(kid.report_fd);
    ::close(kid.control_fd);
  }
  outcome.a = kids[0].report;
  outcome.b = kids[1].report;
  outcome.cpu_total_a = kids[0].cpu_total;
  outcome.cpu_total_b = kids[1].cpu_total;

  std::string problem;
  for (int i = 0; i < 2; ++i) {
    const Kid& kid = kids[i];
    std::string mine;
    if (kid.reported && kid.report.ok == 0) {
      mine = kid.report.message;
    } else if (!kid.reported && !kid.killed) {
      mine = "died without reporting (" + (kid.ended.empty() ? "exit 0" : kid.ended) + ")";
    }
    if (!mine.empty()) {
      problem += (problem.empty() ? "" : "; ") + std::string(roles[i]) + ": " + mine;
    }
  }
  if (timed_out) {
    problem = "timed out after " + std::to_string(timeout.count()) + " s" +
              (problem.empty() ? "" : " (" + problem + ")");
  }
  outcome.problem = problem;
  return outcome;
}

}  // namespace cmp
