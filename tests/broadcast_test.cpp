// Broadcast fan-out: one producer, K consumers, every consumer gets every
// buffer, one shared copy in the pool. Consumers in real child processes;
// a buffer goes back to the pool only after the last consumer let it go; a
// consumer killed again and again at random points is resumed without loss;
// hostile holders words are corrupt, never undefined behaviour.

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "partition_writing.hpp"
#include "sluice/transport/channel_metrics.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/ownership_check.hpp"
#include "sluice/transport/partition_writer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_reader.hpp"
#include "test_support.hpp"

namespace st = sluice::transport;
using namespace std::chrono_literals;
using sluice::test::ChannelGuard;
using sluice::test::ChildProcess;
using sluice::test::eventually;
using sluice::test::kEveryWriting;
using sluice::test::Signal;
using sluice::test::unique_channel;
using sluice::test::write_numbers;
using sluice::test::Writing;

namespace {

st::ChannelConfig broadcast(std::uint32_t k, std::uint32_t buffers = 16, std::uint32_t cap = 4) {
  st::ChannelConfig config;
  config.buffer_count = buffers;
  config.buffer_bytes = 256;
  config.subpartitions = k;
  config.partitioner = st::Partitioner::kBroadcast;
  config.max_queued_buffers = cap;
  config.flush_timeout = -1ns;
  return config;
}

st::OpenOptions subpartition(std::uint32_t s) {
  st::OpenOptions options;
  options.wait_for_channel = 10s;
  options.subpartition = s;
  return options;
}

// Shared with child processes (anonymous shared memory mapped before the
// fork): how often subpartition s saw sequence number n, at [s * n_ + n].
class SharedCounts {
 public:
  SharedCounts(std::uint32_t k, std::size_t n) : k_(k), n_(n), counts_(k * n) {}
  void see(std::uint32_t s, std::uint64_t seq) {
    if (s < k_ && seq < n_) {
      counts_[s * n_ + seq].fetch_add(1);
    }
  }
  [[nodiscard]] std::uint32_t count(std::uint32_t s, std::uint64_t seq) const {
    return counts_[s * n_ + seq].load();
  }
  // Numbers subpartition s did not see exactly once.
  [[nodiscard]] std::size_t not_once(std::uint32_t s) const {
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n_; ++i) {
      bad += count(s, i) != 1 ? 1 : 0;
    }
    return bad;
  }

 private:
  std::uint32_t k_;
  std::size_t n_;
  sluice::test::SharedArray<std::atomic<std::uint32_t>> counts_;
};

// One shared 64-bit word per use (progress counters, last numbers seen).
using SharedWords = sluice::test::SharedArray<std::atomic<std::uint64_t>>;

std::uint64_t read_u64(std::span<const std::byte> bytes) {
  std::uint64_t value = 0;
  std::memcpy(&value, bytes.data(), sizeof(value));
  return value;
}

st::Status commit_seq(st::Producer& producer, std::uint64_t seq,
                      std::chrono::nanoseconds timeout = 30s) {
  st::WritableBuffer buffer;
  const st::Deadline deadline =
      timeout.count() == 0 ? st::Deadline::immediate() : st::Deadline::after(timeout);
  const st::Status status = producer.acquire_until(buffer, deadline);
  if (status != st::Status::kOk) {
    return status;
  }
  std::memcpy(buffer.data().data(), &seq, sizeof(seq));
  return producer.commit(std::move(buffer), sizeof(seq), 1);
}

// Buffer API consumer of subpartition s: each buffer holds one 8-byte
// sequence number; exactly 0, 1, 2, ... to the end of the stream.
int read_every_buffer(const std::string& name, std::uint32_t s, SharedCounts& counts,
                      const Signal* start = nullptr) {
  auto consumer = st::Consumer::open(name, subpartition(s));
  if (start != nullptr && !start->wait()) {
    return 3;
  }
  st::ReadableBuffer buffer;
  for (std::uint64_t expected = 0;; ++expected) {
    const st::Status status = consumer.receive_for(buffer, 30s);
    if (status == st::Status::kClosed) {
      return 0;
    }
    if (status != st::Status::kOk || buffer.size() != 8) {
      std::fprintf(stderr, "subpartition %u: %s\n", s, std::string(st::to_string(status)).c_str());
      return 2;
    }
    const std::uint64_t seq = read_u64(buffer.data());
    counts.see(s, seq);
    if (seq != expected) {
      return 1;
    }
    buffer.reset();
  }
}

std::uint64_t queued_in(const st::ChannelMapping& mapping, std::uint32_t s) {
  return mapping.data_ring(s).tail.load() - mapping.data_ring(s).head.load();
}

void expect_sound(const st::ChannelMapping& mapping) {
  const auto report = st::check_ownership(mapping, {2, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
}

void every_consumer_receives_every_record_once_in_order(Writing how) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint64_t kN = 20000;
  ChannelGuard guard(unique_channel("bc-all"));
  SharedCounts counts(kK, kN);
  auto producer = st::Producer::create(guard.name(), broadcast(kK));
  std::vector<std::unique_ptr<ChildProcess>> consumers;
  for (std::uint32_t s = 0; s < kK; ++s) {
    consumers.push_back(std::make_unique<ChildProcess>([&, s]() -> int {
      auto consumer = st::Consumer::open(guard.name(), subpartition(s));
      st::RecordReader reader(consumer);
      std::span<const std::byte> record;
      for (std::uint64_t expected = 0;; ++expected) {
        const st::Status status = reader.next_for(record, 30s);
        if (status == st::Status::kClosed) {
          return expected == kN ? 0 : 4;
        }
        if (status != st::Status::kOk || record.size() != 8) {
          return 2;
        }
        const std::uint64_t seq = read_u64(record);
        counts.see(s, seq);
        if (seq != expected) {
          return 1;
        }
      }
    }));
  }
  st::PartitionWriter writer(producer);
  ASSERT_EQ(write_numbers(writer, kN, how), st::Status::kOk);
  for (std::uint32_t s = 0; s < kK; ++s) {
    EXPECT_EQ(consumers[s]->wait(), 0) << s;
    EXPECT_EQ(counts.not_once(s), 0U) << s;
    EXPECT_EQ(producer.mapping().control(s).producer_counters.records.load(), kN) << s;
  }
  // Every buffer went back exactly once, after the last consumer let it go.
  const auto report = st::check_ownership(producer.mapping(), {2, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
  EXPECT_EQ(report.places.in_return_ring, producer.config().buffer_count);
}

TEST(Broadcast, EveryConsumerReceivesEveryRecordOnceInOrder) {
  for (const Writing how : kEveryWriting) {
    SCOPED_TRACE(to_string(how));
    every_consumer_receives_every_record_once_in_order(how);
  }
}

TEST(Broadcast, BufferReturnsOnlyAfterTheLastConsumerReleasedIt) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint32_t kCap = 4;
  constexpr std::uint64_t kN = 500;
  ChannelGuard guard(unique_channel("bc-stall"));
  SharedCounts counts(kK, kN);
  auto producer = st::Producer::create(guard.name(), broadcast(kK, 16, kCap));
  const st::ChannelMapping& mapping = producer.mapping();
  Signal go;
  std::vector<std::unique_ptr<ChildProcess>> consumers;
  for (std::uint32_t s = 0; s < kK; ++s) {
    consumers.push_back(std::make_unique<ChildProcess>(
        [&, s] { return read_every_buffer(guard.name(), s, counts, s == 1 ? &go : nullptr); }));
  }
  for (std::uint32_t s = 0; s < kK; ++s) {
    ASSERT_TRUE(eventually([&] {
      return mapping.probe_role(st::Role::kConsumer, s) == sluice::shm::LockProbe::kHeld;
    }));
  }
  const std::uint64_t returned_before = mapping.return_ring(0).tail.load() +
                                        mapping.return_ring(1).tail.load() +
                                        mapping.return_ring(2).tail.load();
  std::uint64_t seq = 0;
  for (; seq < kCap; ++seq) {
    ASSERT_EQ(commit_seq(producer, seq), st::Status::kOk) << seq;
  }
  // Subpartition 1 reads nothing: its ring is at the cap, and so is the
  // producer, although the others have read everything.
  ASSERT_TRUE(eventually([&] { return queued_in(mapping, 0) == 0 && queued_in(mapping, 2) == 0; }));
  st::WritableBuffer buffer;
  EXPECT_EQ(producer.acquire_for(buffer, 50ms), st::Status::kTimeout);
  EXPECT_EQ(queued_in(mapping, 1), kCap);
  // The others released their share, and nothing came back to the pool:
  // each of the four buffers is held by subpartition 1 alone.
  for (std::uint32_t i = 0; i < mapping.config().buffer_count; ++i) {
    if (mapping.buffer_states()[i].load() == st::state_word(st::BufferState::kShared)) {
      EXPECT_TRUE(eventually([&] { return mapping.buffer_holders()[i].load() == 0b010U; })) << i;
    }
  }
  EXPECT_EQ(mapping.return_ring(0).tail.load() + mapping.return_ring(1).tail.load() +
                mapping.return_ring(2).tail.load(),
            returned_before);
  expect_sound(mapping);
  go.notify();
  for (; seq < kN; ++seq) {
    ASSERT_EQ(commit_seq(producer, seq), st::Status::kOk) << seq;
    EXPECT_LE(queued_in(mapping, 1), kCap);
  }
  producer.close();
  for (std::uint32_t s = 0; s < kK; ++s) {
    EXPECT_EQ(consumers[s]->wait(), 0) << s;
    EXPECT_EQ(counts.not_once(s), 0U) << s;
  }
  const auto report = st::check_ownership(mapping, {2, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
  EXPECT_EQ(report.places.in_return_ring, mapping.config().buffer_count);
}

// Subpartition 1's consumer is SIGKILLed again and again at random points
// (while receiving, reading or in the middle of a release); each successor
// (Consumer::open of subpartition 1) receives what its predecessor held
// again, then the rest. Nothing is lost, each run of a consumer is in
// order and starts no later than where the last one stopped, the others
// get everything exactly once, and the pool is sound at the end.
TEST(Broadcast, ConsumerKilledRepeatedlyIsResumedAndNothingIsLost) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint64_t kN = 6000;
  constexpr int kKills = 12;
  ChannelGuard guard(unique_channel("bc-kill"));
  SharedCounts counts(kK, kN);
  // [0]: buffers subpartition 1 has released, all runs together; [1]: one
  // past the highest number it received, all runs together; [2]: buffers
  // redelivered to its successors; [3]: how many releases a run may reach
  // before it waits (set before each run, so that a kill always finds the
  // run unfinished, however late the test thread gets to it).
  SharedWords progress(4);
  constexpr std::uint64_t kNoCap = std::numeric_limits<std::uint64_t>::max();
  progress[3].store(kNoCap);
  Signal created;
  ChildProcess producer_process([&]() -> int {
    auto producer = st::Producer::create(guard.name(), broadcast(kK, 16, 4));
    producer.set_consumer_loss(st::ConsumerLoss::kWaitForNewConsumer);
    created.notify();
    for (std::uint64_t seq = 0; seq < kN; ++seq) {
      if (commit_seq(producer, seq, 60s) != st::Status::kOk) {
        return 1;
      }
    }
    producer.close();
    for (;;) {  // attached until the test looked at the pool, then killed
      pause();
    }
  });
  ASSERT_TRUE(created.wait());
  std::vector<std::unique_ptr<ChildProcess>> others;
  for (std::uint32_t s : {0U, 2U}) {
    others.push_back(std::make_unique<ChildProcess>(
        [&, s] { return read_every_buffer(guard.name(), s, counts); }));
  }
  // One run of subpartition 1's consumer: in order, starting no later than
  // one past what earlier runs received (redelivery covers the rest).
  auto run = [&]() -> int {
    auto consumer = st::Consumer::open(guard.name(), subpartition(1));
    progress[2].fetch_add(consumer.redelivery_pending());
    std::minstd_rand work(static_cast<unsigned>(getpid()));
    st::ReadableBuffer buffer;
    bool first = true;
    std::uint64_t last = 0;
    for (;;) {
      while (progress[0].load() >= progress[3].load()) {
        std::this_thread::sleep_for(100us);  // to be killed
      }
      const st::Status status = consumer.receive_for(buffer, 30s);
      if (status == st::Status::kClosed) {
        return 0;
      }
      if (status != st::Status::kOk || buffer.size() != 8) {
        return 2;
      }
      const std::uint64_t seq = read_u64(buffer.data());
      if (first ? seq > progress[1].load() : seq != last + 1) {
        std::fprintf(stderr, "run of subpartition 1: %llu after %llu (first: %d)\n",
                     static_cast<unsigned long long>(seq), static_cast<unsigned long long>(last),
                     first ? 1 : 0);
        return 1;
      }
      first = false;
      last = seq;
      // Some work on each buffer (up to 200 us), so that this consumer is the
      // slowest and a kill often finds it holding one.
      const auto until =
          std::chrono::steady_clock::now() + std::chrono::nanoseconds(work() % 200000);
      while (std::chrono::steady_clock::now() < until) {
      }
      counts.see(1, seq);
      std::uint64_t high = progress[1].load();
      while (seq + 1 > high && !progress[1].compare_exchange_weak(high, seq + 1)) {
      }
      buffer.reset();
      progress[0].fetch_add(1);
    }
  };
  std::mt19937 random(20261206);
  for (int kill = 0; kill < kKills; ++kill) {
    const std::uint64_t target = progress[0].load() + 1 + random() % 200;
    progress[3].store(target + 100);
    ChildProcess victim(run);
    ASSERT_TRUE(eventually([&] { return progress[0].load() >= target; }, 60s)) << kill;
    victim.kill_now();
    EXPECT_EQ(victim.wait(), 128 + SIGKILL) << kill;
  }
  progress[3].store(kNoCap);  // redelivered buffers count twice in [0]: no cap of kN
  ChildProcess last_run(run);
  EXPECT_EQ(last_run.wait(), 0);
  // The work per buffer makes most kills land while a buffer is held (not
  // all: a kill may also find it waiting), so successors usually receive
  // some again; recorded, not asserted. The Broadcast.LastHolderDead*
  // tests prove redelivery and the return of a half-released buffer.
  ::testing::Test::RecordProperty("redelivered", static_cast<int>(progress[2].load()));
  for (auto& other : others) {
    EXPECT_EQ(other->wait(), 0);
  }
  EXPECT_EQ(counts.not_once(0), 0U);
  EXPECT_EQ(counts.not_once(2), 0U);
  std::size_t missing = 0;
  for (std::uint64_t seq = 0; seq < kN; ++seq) {
    missing += counts.count(1, seq) == 0 ? 1 : 0;
  }
  EXPECT_EQ(missing, 0U);
  const st::ChannelObserver observer(guard.name());
  const auto report = st::check_ownership(observer.mapping(), {2, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
  EXPECT_EQ(report.places.in_return_ring, observer.mapping().config().buffer_count);
  producer_process.kill_now();
}

// A consumer of subpartition 1 in a child process that receives one buffer,
// does `before_death` with it and SIGKILLs itself.
template <class BeforeDeath>
int receive_one_and_die(const std::string& name, BeforeDeath before_death) {
  auto consumer = st::Consumer::open(name, subpartition(1));
  st::ReadableBuffer buffer;
  if (consumer.receive_for(buffer, 30s) != st::Status::kOk) {
    return 1;
  }
  before_death(consumer, buffer.index());
  raise(SIGKILL);
  return 2;
}

// The last holder of a buffer dies while holding it (or after deciding it
// is the last, which writes nothing): its successor receives it again and
// returns it to the pool itself.
TEST(Broadcast, LastHolderDeadHoldingIsRedeliveredAndReturned) {
  ChannelGuard guard(unique_channel("bc-lastheld"));
  auto producer = st::Producer::create(guard.name(), broadcast(2));
  auto first = st::Consumer::open(guard.name(), subpartition(0));
  ASSERT_EQ(commit_seq(producer, 0), st::Status::kOk);
  st::ReadableBuffer buffer;
  ASSERT_EQ(first.receive_for(buffer, 10s), st::Status::kOk);
  const std::uint32_t index = buffer.index();
  buffer.reset();  // subpartition 1 is the last holder now
  EXPECT_EQ(producer.mapping().buffer_holders()[index].load(), 0b10U);
  ChildProcess victim([&] { return receive_one_and_die(guard.name(), [](auto&, auto) {}); });
  EXPECT_EQ(victim.wait(), 128 + SIGKILL);
  auto successor = st::Consumer::open(guard.name(), subpartition(1));
  EXPECT_EQ(successor.redelivery_pending(), 1U);
  ASSERT_EQ(successor.receive_for(buffer, 10s), st::Status::kOk);
  EXPECT_EQ(buffer.index(), index);
  EXPECT_EQ(read_u64(buffer.data()), 0U);
  buffer.reset();
  producer.close();
  EXPECT_EQ(successor.receive_for(buffer, 10s), st::Status::kClosed);
  EXPECT_EQ(first.receive_for(buffer, 10s), st::Status::kClosed);
  const auto report = st::check_ownership(producer.mapping(), {1, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
  EXPECT_EQ(report.places.in_return_ring, producer.config().buffer_count);
}

// The last holder dies after marking the buffer freed by its subpartition
// and before pushing it into its return ring: the buffer is in no ring and
// held by nobody until the successor returns it; it is not received again.
TEST(Broadcast, LastHolderDeadBeforeReturningIsReturnedByItsSuccessor) {
  ChannelGuard guard(unique_channel("bc-lastfree"));
  auto producer = st::Producer::create(guard.name(), broadcast(2));
  auto first = st::Consumer::open(guard.name(), subpartition(0));
  ASSERT_EQ(commit_seq(producer, 0), st::Status::kOk);
  st::ReadableBuffer buffer;
  ASSERT_EQ(first.receive_for(buffer, 10s), st::Status::kOk);
  const std::uint32_t index = buffer.index();
  buffer.reset();
  ChildProcess victim([&] {
    return receive_one_and_die(guard.name(), [](st::Consumer& consumer, std::uint32_t i) {
      // What release does first as the last holder; it dies before the push.
      consumer.mapping().buffer_states()[i].store(st::state_word(st::BufferState::kFree, 1));
    });
  });
  EXPECT_EQ(victim.wait(), 128 + SIGKILL);
  auto report = st::check_ownership(producer.mapping(), {1, 1ms});
  ASSERT_FALSE(report.sound());
  EXPECT_NE(report.problems.front().find("buffer " + std::to_string(index) + " is leaked"),
            std::string::npos)
      << report.problems.front();
  auto successor = st::Consumer::open(guard.name(), subpartition(1));
  EXPECT_EQ(successor.redelivery_pending(), 0U);
  EXPECT_EQ(producer.mapping().return_ring(1).tail.load(), 1U);
  report = st::check_ownership(producer.mapping(), {1, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
  // The stream goes on with the returned buffer in the pool.
  for (std::uint64_t seq = 1; seq <= 40; ++seq) {
    ASSERT_EQ(commit_seq(producer, seq), st::Status::kOk) << seq;
    for (st::Consumer* consumer : {&first, &successor}) {
      ASSERT_EQ(consumer->receive_for(buffer, 10s), st::Status::kOk) << seq;
      EXPECT_EQ(read_u64(buffer.data()), seq);
      buffer.reset();
    }
  }
  producer.close();
  report = st::check_ownership(producer.mapping(), {1, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
}

// All 64 bits of the holders word in use: every consumer gets every buffer.
TEST(Broadcast, SixtyFourConsumers) {
  constexpr std::uint32_t kK = 64;
  constexpr std::uint64_t kN = 50;
  ChannelGuard guard(unique_channel("bc-k64"));
  auto producer = st::Producer::create(guard.name(), broadcast(kK, 128, 2));
  std::vector<st::Consumer> consumers;
  for (std::uint32_t s = 0; s < kK; ++s) {
    consumers.push_back(st::Consumer::open(guard.name(), subpartition(s)));
  }
  std::vector<std::vector<std::uint64_t>> got(kK);
  auto drain = [&] {
    for (std::uint32_t s = 0; s < kK; ++s) {
      st::ReadableBuffer buffer;
      while (consumers[s].try_receive(buffer) == st::Status::kOk) {
        got[s].push_back(read_u64(buffer.data()));
        buffer.reset();
      }
    }
  };
  for (std::uint64_t seq = 0; seq < kN; ++seq) {
    st::Status status;
    while ((status = commit_seq(producer, seq, 0ns)) == st::Status::kWouldBlock) {
      drain();
    }
    ASSERT_EQ(status, st::Status::kOk) << seq;
  }
  producer.close();
  drain();
  for (std::uint32_t s = 0; s < kK; ++s) {
    ASSERT_EQ(got[s].size(), kN) << s;
    for (std::uint64_t i = 0; i < kN; ++i) {
      EXPECT_EQ(got[s][i], i) << s;
    }
    st::ReadableBuffer buffer;
    EXPECT_EQ(consumers[s].try_receive(buffer), st::Status::kClosed);
  }
  const auto report = st::check_ownership(producer.mapping(), {1, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
  EXPECT_EQ(report.places.in_return_ring, producer.config().buffer_count);
}

// --- hostile values ----------------------------------------------------------

// Commits one buffer (sequence number 7) and returns its index.
std::uint32_t commit_one(st::Producer& producer) {
  st::WritableBuffer buffer;
  EXPECT_EQ(producer.acquire_until(buffer, st::Deadline::immediate()), st::Status::kOk);
  const std::uint32_t index = buffer.index();
  const std::uint64_t seq = 7;
  std::memcpy(buffer.data().data(), &seq, sizeof(seq));
  EXPECT_EQ(producer.commit(std::move(buffer), sizeof(seq), 1), st::Status::kOk);
  return index;
}

TEST(BroadcastHostile, HoldersBeyondTheSubpartitionsAreCorrupt) {
  ChannelGuard guard(unique_channel("bc-beyond"));
  auto producer = st::Producer::create(guard.name(), broadcast(2));
  auto consumer = st::Consumer::open(guard.name(), subpartition(0));
  const std::uint32_t index = commit_one(producer);
  producer.mapping().buffer_holders()[index].fetch_or(std::uint64_t{1} << 5);
  st::ReadableBuffer received;
  EXPECT_EQ(consumer.try_receive(received), st::Status::kCorrupt);
  EXPECT_NE(consumer.corruption().find("subpartitions that do not exist"), std::string::npos)
      << consumer.corruption();
  const auto report = st::check_ownership(producer.mapping(), {1, 1ms});
  ASSERT_FALSE(report.sound());
  EXPECT_NE(report.problems.front().find("do not exist"), std::string::npos)
      << report.problems.front();
}

TEST(BroadcastHostile, SharedDescriptorWithoutTheConsumersBitIsCorrupt) {
  ChannelGuard guard(unique_channel("bc-nobit"));
  auto producer = st::Producer::create(guard.name(), broadcast(2));
  auto consumer = st::Consumer::open(guard.name(), subpartition(0));
  const std::uint32_t index = commit_one(producer);
  producer.mapping().buffer_holders()[index].store(0b10);  // subpartition 1 only
  st::ReadableBuffer received;
  EXPECT_EQ(consumer.try_receive(received), st::Status::kCorrupt);
  EXPECT_NE(consumer.corruption().find("does not hold"), std::string::npos)
      << consumer.corruption();
}

TEST(BroadcastHostile, UnsharedBufferInABroadcastRingIsCorrupt) {
  ChannelGuard guard(unique_channel("bc-unshared"));
  auto producer = st::Producer::create(guard.name(), broadcast(2));
  auto consumer = st::Consumer::open(guard.name(), subpartition(1));
  const std::uint32_t index = commit_one(producer);
  producer.mapping().buffer_states()[index].store(st::state_word(st::BufferState::kQueued, 1));
  st::ReadableBuffer received;
  EXPECT_EQ(consumer.try_receive(received), st::Status::kCorrupt);
  EXPECT_NE(consumer.corruption().find("not shared"), std::string::npos) << consumer.corruption();
}

TEST(BroadcastHostile, OrphanSharedBufferIsReportedByTheCheck) {
  ChannelGuard guard(unique_channel("bc-orphan"));
  auto producer = st::Producer::create(guard.name(), broadcast(2));
  const st::ChannelMapping& mapping = producer.mapping();
  // A buffer the producer holds (in no ring), forged into a shared one that
  // nobody holds: lost to the pool.
  st::WritableBuffer buffer;
  ASSERT_EQ(producer.acquire_until(buffer, st::Deadline::immediate()), st::Status::kOk);
  const std::uint32_t index = buffer.index();
  mapping.buffer_states()[index].store(st::state_word(st::BufferState::kShared));
  mapping.buffer_holders()[index].store(0);
  const auto report = st::check_ownership(mapping, {1, 1ms});
  ASSERT_FALSE(report.sound());
  EXPECT_NE(report.problems.front().find("leaked: shared but held by nobody"), std::string::npos)
      << report.problems.front();
}

TEST(BroadcastHostile, CheckCountsASharedBufferOnceAndNamesItsHolders) {
  ChannelGuard guard(unique_channel("bc-once"));
  auto producer = st::Producer::create(guard.name(), broadcast(3));
  auto consumer = st::Consumer::open(guard.name(), subpartition(1));
  (void)commit_one(producer);
  // Queued in all three rings: one buffer in the data rings, sound.
  auto report = st::check_ownership(producer.mapping(), {1, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
  EXPECT_EQ(report.places.in_data_ring, 1U);
  // Taken by subpartition 1, still queued for 0 and 2: still one queued buffer.
  st::ReadableBuffer received;
  ASSERT_EQ(consumer.try_receive(received), st::Status::kOk);
  report = st::check_ownership(producer.mapping(), {1, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
  EXPECT_EQ(report.places.in_data_ring, 1U);
  EXPECT_EQ(report.places.with_consumer, 0U);
  // Subpartitions 0 and 2 never came, so they cannot have taken it: a
  // holders word saying 0 has it while ring 0 no longer does is reported.
  const st::ChannelMapping& mapping = producer.mapping();
  mapping.data_ring(0).head.fetch_add(1);
  report = st::check_ownership(mapping, {1, 1ms});
  ASSERT_FALSE(report.sound());
  EXPECT_NE(report.problems.front().find("held by a consumer that is gone (subpartition 0)"),
            std::string::npos)
      << report.problems.front();
  mapping.data_ring(0).head.fetch_sub(1);
  received.reset();
}

TEST(BroadcastConfig, PinnedAcquireIsRefused) {
  ChannelGuard guard(unique_channel("bc-pinned"));
  auto producer = st::Producer::create(guard.name(), broadcast(2));
  st::WritableBuffer buffer;
  EXPECT_EQ(producer.acquire_until(buffer, st::Deadline::immediate(), 1),
            st::Status::kInvalidArgument);
}

}  // namespace
