// Cross-process throughput: this process produces sequence-pattern records
// (or whole buffers) into a channel while a forked consumer checks every
// byte of every one. The time runs from the first write until the consumer
// has verified the last item, by the system-wide monotonic clock, so neither
// set-up nor process exit is counted.

#include <benchmark/benchmark.h>

#include "common/fd_io.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "sluice/transport/buffers.hpp"
#include "sluice/transport/channel.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/sequence_pattern.hpp"
#include "sluice/transport/status.hpp"

namespace {

namespace st = sluice::transport;
namespace pattern = sluice::transport::pattern;
using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC: comparable across processes

// Payload per run: large enough that start-up jitter is noise, small enough
// that all benchmarks together stay well under 30 s on a loaded 2-core host.
constexpr std::uint64_t kBytesPerRun = std::uint64_t{512} << 20;
// The consumer kills itself (SIGALRM) after this long, so a wedged run ends
// instead of hanging: the producer then sees its consumer die.
constexpr unsigned kConsumerTimeoutSeconds = 60;
constexpr auto kWaitForChannel = std::chrono::seconds(10);

std::string channel_name() {
  static unsigned counter = 0;
  return "bench-xfer-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

std::string describe(st::Status status) {
  return std::string(st::to_string(status));
}

// ---------------------------------------------------------------------------
// The forked consumer

using sluice::bench::write_all;

// Runs in the child: attach, say so, consume, report the time the last item
// was verified. Exits 0 only if everything arrived intact; never returns.
template <class Consume>
[[noreturn]] void consumer_main(int report_fd, const std::string& name, const Consume& consume) {
  ::alarm(kConsumerTimeoutSeconds);
  int code = 1;
  try {
    st::OpenOptions options;
    options.wait_for_channel = kWaitForChannel;
    st::Consumer consumer = st::Consumer::open(name, options);
    const std::int64_t ready = 0;
    if (write_all(report_fd, &ready, sizeof(ready))) {
      Clock::time_point done{};
      const std::string problem = consume(consumer, done);
      if (problem.empty()) {
        const std::int64_t done_ns = done.time_since_epoch().count();
        code = write_all(report_fd, &done_ns, sizeof(done_ns)) ? 0 : 1;
      } else {
        std::fprintf(stderr, "consumer: %s\n", problem.c_str());
      }
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "consumer: %s\n", error.what());
  }
  // _exit: the child must not run the parent's atexit handlers or flush its
  // copy of the benchmark's stdout buffer.
  ::_exit(code);
}

// A forked consumer and the pipe it reports on. The destructor makes sure no
// child outlives a failed run: kill it if it is still there, then reap it.
class ConsumerProcess {
 public:
  template <class Consume>
  ConsumerProcess(const std::string& name, const Consume& consume) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      throw std::system_error(errno, std::generic_category(), "pipe2");
    }
    pid_ = ::fork();
    if (pid_ < 0) {
      const int error = errno;
      ::close(fds[0]);
      ::close(fds[1]);
      throw std::system_error(error, std::generic_category(), "fork");
    }
    if (pid_ == 0) {
      ::close(fds[0]);
      consumer_main(fds[1], name, consume);
    }
    ::close(fds[1]);  // so that the child's death reads as end-of-file
    report_fd_ = fds[0];
  }
  ConsumerProcess(const ConsumerProcess&) = delete;
  ConsumerProcess& operator=(const ConsumerProcess&) = delete;
  ~ConsumerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      (void)wait();
    }
    ::close(report_fd_);
  }

  // The child's next report; false if it exited (or was killed) first.
  bool receive(std::int64_t& value) const {
    auto* at = reinterpret_cast<char*>(&value);
    std::size_t left = sizeof(value);
    while (left > 0) {
      const ssize_t n = ::read(report_fd_, at, left);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        return false;
      }
      at += n;
      left -= static_cast<std::size_t>(n);
    }
    return true;
  }

  // Reaps the child: empty if it exited 0, otherwise how it ended.
  std::string wait() {
    int status = 0;
    pid_t reaped = -1;
    while ((reaped = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    if (reaped < 0) {
      // Not ours to reap any more (SIGCHLD ignored?): its result is lost.
      return "cannot wait for the consumer: " +
             std::error_code(errno, std::generic_category()).message();
    }
    if (WIFEXITED(status)) {
      return WEXITSTATUS(status) == 0
                 ? std::string()
                 : "consumer exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
      return WTERMSIG(status) == SIGALRM
                 ? "consumer timed out after " + std::to_string(kConsumerTimeoutSeconds) + " s"
                 : "consumer killed by signal " + std::to_string(WTERMSIG(status));
    }
    return "consumer ended oddly (wait status " + std::to_string(status) + ")";
  }

 private:
  pid_t pid_ = -1;
  int report_fd_ = -1;
};

// ---------------------------------------------------------------------------
// One run

struct RunResult {
  std::string problem;  // empty when the run counts
  double seconds = 0;
  double producer_blocked = 0;  // fractions of the run, from the channel's counters
  double consumer_idle = 0;
};

// produce(Producer&) -> problem or empty; consume(Consumer&, Clock::time_point& done) -> same.
template <class Produce, class Consume>
RunResult transfer_once(const st::ChannelConfig& config, const Produce& produce,
                        const Consume& consume) {
  const std::string name = channel_name();
  // Fork before the channel exists: a child forked later would share the
  // producer's open file description, and with it the producer's liveness
  // lock, so it could never see the producer die.
  ConsumerProcess child(name, consume);
  st::Producer producer = st::Producer::create(name, config);
  std::int64_t ready = 0;
  const bool attached = child.receive(ready);
  // Both ends are attached (or the child is gone): nobody needs the name any
  // more, and removing it now means nothing can leak from here on.
  st::remove_channel(name);
  if (!attached) {
    const std::string ended = child.wait();
    return {"consumer did not attach: " + (ended.empty() ? "exited 0" : ended)};
  }

  const Clock::time_point start = Clock::now();
  std::string produced = produce(producer);
  // Closed even on failure, so the consumer stops waiting and reports.
  producer.close();
  std::int64_t done_ns = 0;
  const bool reported = child.receive(done_ns);
  const std::string consumed = child.wait();

  RunResult result;
  if (!produced.empty()) {
    result.problem = "producer: " + produced;
  }
  if (!consumed.empty()) {
    result.problem += (result.problem.empty() ? "" : "; ") + consumed;
  }
  if (result.problem.empty() && !reported) {
    result.problem = "consumer exited 0 without reporting its end time";
  }
  if (!result.problem.empty()) {
    return result;
  }
  const Clock::time_point done{Clock::duration(done_ns)};
  result.seconds = std::chrono::duration<double>(done - start).count();
  const st::ChannelControl& control = producer.mapping().control();
  const auto fraction = [&result](std::uint64_t ns) {
    return static_cast<double>(ns) * 1e-9 / result.seconds;
  };
  result.producer_blocked =
      fraction(control.producer_counters.blocked_ns.load(std::memory_order_relaxed));
  result.consumer_idle =
      fraction(control.consumer_counters.idle_ns.load(std::memory_order_relaxed));
  return result;
}

template <class Produce, class Consume>
void run_transfer(benchmark::State& state, const st::ChannelConfig& config, std::uint64_t items,
                  std::uint64_t item_bytes, const Produce& produce, const Consume& consume) {
  RunResult last;
  for (auto _ : state) {
    try {
      last = transfer_once(config, produce, consume);
    } catch (const std::exception& error) {
      last.problem = error.what();
    }
    if (!last.problem.empty()) {
      state.SkipWithError(last.problem.c_str());
      break;
    }
    state.SetIterationTime(last.seconds);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(items));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(items * item_bytes));
  state.counters["items"] = static_cast<double>(items);
  // Who waited for whom, as fractions of the run: a slow consumer makes the
  // producer block, a slow producer leaves the consumer idle.
  state.counters["producer_blocked"] = last.producer_blocked;
  state.counters["consumer_idle"] = last.consumer_idle;
}

// ---------------------------------------------------------------------------
// Record API: RecordWriter -> RecordReader, default channel configuration.

void BM_TransferRecords(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const std::uint64_t count = kBytesPerRun / size;

  const auto produce = [count, size](st::Producer& producer) -> std::string {
    st::RecordWriter writer(producer);
    std::vector<std::byte> record(size);
    for (std::uint64_t sequence = 0; sequence < count; ++sequence) {
      pattern::fill(record, sequence);
      if (const st::Status status = writer.write(record); status != st::Status::kOk) {
        return "record " + std::to_string(sequence) + ": " + describe(status);
      }
    }
    const st::Status status = writer.close();
    return status == st::Status::kOk ? std::string() : "close: " + describe(status);
  };

  const auto consume = [count, size](st::Consumer& consumer,
                                     Clock::time_point& done) -> std::string {
    st::RecordReader reader(consumer);
    std::span<const std::byte> record;
    for (std::uint64_t sequence = 0; sequence < count; ++sequence) {
      if (const st::Status status = reader.next(record); status != st::Status::kOk) {
        const char* framing = reader.framing_error();
        return "record " + std::to_string(sequence) + ": " + describe(status) +
               (framing != nullptr ? std::string(" (") + framing + ")" : std::string());
      }
      if (record.size() != size) {
        return "record " + std::to_string(sequence) + " has " + std::to_string(record.size()) +
               " bytes";
      }
      if (pattern::sequence_of(record) != sequence) {
        return "expected record " + std::to_string(sequence) + ", got " +
               std::to_string(pattern::sequence_of(record));
      }
      if (!pattern::body_matches(record, sequence)) {
        return "record " + std::to_string(sequence) + " is damaged";
      }
    }
    done = Clock::now();
    const st::Status end = reader.next(record);
    return end == st::Status::kClosed
               ? std::string()
               : "after the last record: " + describe(end) + " instead of closed";
  };

  run_transfer(state, st::ChannelConfig{}, count, size, produce, consume);
}
BENCHMARK(BM_TransferRecords)
    ->ArgName("bytes")
    ->Arg(8)
    ->Arg(64)
    ->Arg(1024)
    ->Arg(65536)  // larger than a 32 KiB buffer: split by the writer, reassembled by the reader
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------
// Buffer API (zero-copy): the producer fills whole pool buffers in place with
// one pattern "record" each and commits them; the consumer checks them in
// place and releases them.

void BM_TransferBuffers(benchmark::State& state) {
  const auto buffer_bytes = static_cast<std::uint32_t>(state.range(0));
  const std::uint64_t count = kBytesPerRun / buffer_bytes;
  st::ChannelConfig config;
  config.buffer_bytes = buffer_bytes;
  // The default 2 MiB in flight, but at least 8 buffers so that both sides
  // always have several to work on.
  config.buffer_count = std::max<std::uint32_t>(8, (2U << 20) / buffer_bytes);

  const auto produce = [count](st::Producer& producer) -> std::string {
    for (std::uint64_t sequence = 0; sequence < count; ++sequence) {
      st::WritableBuffer buffer;
      if (const st::Status status = producer.acquire(buffer); status != st::Status::kOk) {
        return "acquire " + std::to_string(sequence) + ": " + describe(status);
      }
      pattern::fill(buffer.data(), sequence);
      const std::size_t bytes = buffer.capacity();
      if (const st::Status status = producer.commit(std::move(buffer), bytes, 1);
          status != st::Status::kOk) {
        return "commit " + std::to_string(sequence) + ": " + describe(status);
      }
    }
    return {};
  };

  const auto consume = [count, buffer_bytes](st::Consumer& consumer,
                                             Clock::time_point& done) -> std::string {
    for (std::uint64_t sequence = 0; sequence < count; ++sequence) {
      st::ReadableBuffer buffer;  // released at the end of each round
      if (const st::Status status = consumer.receive(buffer); status != st::Status::kOk) {
        return "buffer " + std::to_string(sequence) + ": " + describe(status);
      }
      if (buffer.size() != buffer_bytes || pattern::sequence_of(buffer.data()) != sequence ||
          !pattern::body_matches(buffer.data(), sequence)) {
        return "buffer " + std::to_string(sequence) + " arrived damaged or out of order";
      }
    }
    done = Clock::now();
    st::ReadableBuffer extra;
    const st::Status end = consumer.receive(extra);
    return end == st::Status::kClosed
               ? std::string()
               : "after the last buffer: " + describe(end) + " instead of closed";
  };

  run_transfer(state, config, count, buffer_bytes, produce, consume);
}
BENCHMARK(BM_TransferBuffers)
    ->ArgName("buffer_bytes")
    ->Arg(64 << 10)
    ->Arg(1 << 20)
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
