// Kills the producer and the consumer with SIGKILL at random moments while
// records flow, restarting each, and proves from sequence numbers that every
// committed record was delivered at least once, in order, uncorrupted, and
// that the pool is whole at the end. SLUICE_FAULT_KILLS sets the number of
// kills (default 200), SLUICE_FAULT_SEED the random seed.

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "sluice/transport/channel_metrics.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/ownership_check.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/sequence_pattern.hpp"
#include "test_support.hpp"

namespace st = sluice::transport;
using namespace std::chrono_literals;
using sluice::test::ChannelGuard;
using sluice::test::unique_channel;

namespace {

constexpr int kMaxConsumers = 4096;

// What each consumer incarnation saw, written as it goes so that it survives
// the kill. Lives in memory shared by the test and all its children.
struct ConsumerLog {
  std::atomic<std::uint64_t> first;  // UINT64_MAX until the first record
  std::atomic<std::uint64_t> last;
  std::atomic<std::uint64_t> records;
  std::atomic<std::uint64_t> errors;  // wrong size, bad bytes, or not last+1
};

struct SharedLog {
  std::atomic<std::uint64_t> stop_before;  // producers write sequence numbers below this
  std::atomic<std::uint32_t> producer_failures;
  ConsumerLog consumers[kMaxConsumers];
};

// Runs of 16 records of one size (for write_batch), some spanning buffers.
constexpr std::uint64_t kSizeRun = 16;
std::size_t record_size(std::uint64_t seq) {
  return 8 + ((seq / kSizeRun) * 37) % 700;
}

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::strtoull(value, nullptr, 10) : fallback;
}

st::ChannelConfig fault_config() {
  st::ChannelConfig config;
  config.buffer_count = 8;
  config.buffer_bytes = 512;
  return config;
}

[[noreturn]] void run_producer(const std::string& channel, bool create, SharedLog* log) {
  int status = 1;
  try {
    auto producer = create ? st::Producer::create(channel, fault_config())
                           : st::Producer::attach(channel, {std::chrono::seconds(10)});
    producer.set_consumer_loss(st::ConsumerLoss::kWaitForNewConsumer);
    // A third of the incarnations publish every record in place (open
    // buffers; records too large for one go as sealed fragments), a third
    // fill whole buffers with write(), a third with write_batch() (whole
    // runs of one size): takeovers then meet every kind, and mixes of them.
    const std::uint64_t mode = static_cast<std::uint64_t>(getpid()) % 3;
    st::RecordWriter writer(
        producer, mode == 1 ? st::Publication::kEachRecordInPlace : st::Publication::kWholeBuffers);
    std::vector<std::byte> record(1024);
    std::uint64_t seq = producer.records_committed();
    // stop_before drops from "never" to the stream's end while producers run.
    std::uint64_t stop = 0;
    while (seq < (stop = log->stop_before.load(std::memory_order_relaxed))) {
      if (mode == 2) {
        const std::size_t size = record_size(seq);
        const std::uint64_t count = std::min(kSizeRun - seq % kSizeRun, stop - seq);
        const st::Status batch = writer.write_batch(
            size, count,
            [&seq](std::span<std::byte> bytes) noexcept { st::pattern::fill(bytes, seq++); });
        if (batch == st::Status::kOk) {
          continue;
        }
        // Larger than a buffer, refused with nothing written: write() splits it.
        if (batch != st::Status::kInvalidArgument) {
          _exit(2);
        }
      }
      const std::span<std::byte> bytes(record.data(), record_size(seq));
      st::pattern::fill(bytes, seq);
      if (writer.write(bytes) != st::Status::kOk) {
        _exit(2);
      }
      ++seq;
    }
    status = writer.close() == st::Status::kOk ? 0 : 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "producer: %s\n", e.what());
    log->producer_failures.fetch_add(1);
  }
  _exit(status);
}

[[noreturn]] void run_consumer(const std::string& channel, ConsumerLog* log) {
  try {
    auto consumer = st::Consumer::open(channel, {std::chrono::seconds(10)});
    consumer.set_producer_loss(st::ProducerLoss::kWaitForNewProducer);
    st::RecordReader reader(consumer);
    std::span<const std::byte> record;
    st::Status status;
    while ((status = reader.next_for(record, 60s)) == st::Status::kOk) {
      const std::uint64_t seq = record.size() >= 8 ? st::pattern::sequence_of(record) : 0;
      const std::uint64_t previous = log->last.load(std::memory_order_relaxed);
      const bool first = log->first.load(std::memory_order_relaxed) == UINT64_MAX;
      if (record.size() != record_size(seq) || !st::pattern::body_matches(record, seq) ||
          (!first && seq != previous + 1)) {
        log->errors.fetch_add(1, std::memory_order_relaxed);
      }
      if (first) {
        log->first.store(seq, std::memory_order_relaxed);
      }
      log->last.store(seq, std::memory_order_relaxed);
      log->records.fetch_add(1, std::memory_order_relaxed);
    }
    _exit(status == st::Status::kClosed ? 0 : 4);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    _exit(5);
  }
}

pid_t spawn(const std::function<void()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(99);
  }
  return pid;
}

int reap(pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) != pid) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(1ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(FaultInjection, RandomKillsOfBothSidesLoseNothingAndLeakNothing) {
  const std::uint64_t kills = env_or("SLUICE_FAULT_KILLS", 200);
  const std::uint64_t seed = env_or("SLUICE_FAULT_SEED", static_cast<std::uint64_t>(getpid()));
  std::printf("fault injection: %llu kills, seed %llu (SLUICE_FAULT_SEED to repeat)\n",
              static_cast<unsigned long long>(kills), static_cast<unsigned long long>(seed));
  std::mt19937_64 random(seed);

  void* memory =
      mmap(nullptr, sizeof(SharedLog), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(memory, MAP_FAILED);
  auto* log = new (memory) SharedLog{};
  log->stop_before.store(UINT64_MAX);
  for (auto& consumer : log->consumers) {
    consumer.first.store(UINT64_MAX);
  }

  ChannelGuard guard(unique_channel("faults"));
  const std::string channel = guard.name();
  pid_t producer = spawn([&] { run_producer(channel, true, log); });
  int consumers = 0;
  pid_t consumer = spawn([&, index = consumers] { run_consumer(channel, &log->consumers[index]); });
  ++consumers;
  // Kills start once the channel exists.
  ASSERT_TRUE(sluice::test::eventually([&] {
    try {
      st::ChannelObserver observer(channel);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }));

  std::uint64_t producer_kills = 0;
  std::uint64_t consumer_kills = 0;
  for (std::uint64_t k = 0; k < kills && consumers < kMaxConsumers; ++k) {
    std::this_thread::sleep_for(std::chrono::microseconds(200 + random() % 8000));
    if (random() % 2 == 0) {
      kill(producer, SIGKILL);
      reap(producer, 30s);
      producer = spawn([&] { run_producer(channel, false, log); });
      ++producer_kills;
    } else {
      kill(consumer, SIGKILL);
      reap(consumer, 30s);
      consumer = spawn([&, index = consumers] { run_consumer(channel, &log->consumers[index]); });
      ++consumers;
      ++consumer_kills;
    }
  }

  // Let the last producer finish a little after where the stream stands.
  {
    const st::ChannelObserver observer(channel);
    log->stop_before.store(observer.snapshot().produced.records + 5000);
  }
  EXPECT_EQ(reap(producer, 120s), 0);
  EXPECT_EQ(reap(consumer, 120s), 0);
  EXPECT_EQ(log->producer_failures.load(), 0U);

  // Every incarnation saw a contiguous, intact run; each began no later than
  // where the one before it stopped (at-least-once, no gap); the last one
  // reached the end of the stream.
  const std::uint64_t end = log->stop_before.load();
  std::uint64_t reached = 0;
  bool any = false;
  std::uint64_t records = 0;
  for (int i = 0; i < consumers; ++i) {
    const ConsumerLog& c = log->consumers[i];
    EXPECT_EQ(c.errors.load(), 0U) << "consumer incarnation " << i;
    records += c.records.load();
    if (c.first.load() == UINT64_MAX) {
      continue;  // killed before its first record
    }
    if (!any) {
      EXPECT_EQ(c.first.load(), 0U) << "the stream must start at 0";
    } else {
      EXPECT_LE(c.first.load(), reached + 1) << "gap before consumer incarnation " << i;
    }
    any = true;
    reached = std::max(reached, c.last.load());
  }
  EXPECT_EQ(reached, end - 1);
  std::printf(
      "fault injection: %llu producer kills, %llu consumer kills, %llu records checked, "
      "stream of %llu records\n",
      static_cast<unsigned long long>(producer_kills),
      static_cast<unsigned long long>(consumer_kills), static_cast<unsigned long long>(records),
      static_cast<unsigned long long>(end));

  const st::ChannelObserver observer(channel);
  const auto report = st::check_ownership(observer.mapping(), {2, 1ms});
  EXPECT_TRUE(report.sound()) << (report.problems.empty() ? "" : report.problems.front());
  EXPECT_EQ(report.places.in_return_ring, fault_config().buffer_count);
  munmap(memory, sizeof(SharedLog));
}

}  // namespace
