// Fan-out: one producer, K consumers, one segment and one pool. Each
// partitioner end to end with consumers in real child processes, the cap on
// what one subpartition may hold, takeover of one subpartition's consumer,
// and hostile or impossible values.

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include "partition_writing.hpp"
#include "sluice/shm/segment_name.hpp"
#include "sluice/shm/setup_error.hpp"
#include "sluice/transport/channel_metrics.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/ownership_check.hpp"
#include "sluice/transport/partition_writer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/sequence_pattern.hpp"
#include "test_support.hpp"

namespace st = sluice::transport;
namespace bip = boost::interprocess;
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

st::ChannelConfig partitioned(std::uint32_t k, st::Partitioner partitioner,
                              std::uint32_t buffers = 32, std::uint32_t cap = 10,
                              std::uint32_t bytes = 256) {
  st::ChannelConfig config;
  config.buffer_count = buffers;
  config.buffer_bytes = bytes;
  config.subpartitions = k;
  config.partitioner = partitioner;
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

std::string setup_error(const std::function<void()>& body) {
  try {
    body();
  } catch (const sluice::shm::SetupError& e) {
    return e.what();
  }
  return "(no error)";
}

// Counters shared with child processes: how often each sequence number was
// seen. Anonymous shared memory, mapped before the fork.
class SharedCounts {
 public:
  explicit SharedCounts(std::size_t n) : counts_(n) {}
  void see(std::uint64_t seq) {
    if (seq < counts_.size()) {
      counts_[seq].fetch_add(1);
    }
  }
  // Sequence numbers not seen exactly `copies` times.
  [[nodiscard]] std::vector<std::uint64_t> wrong(std::uint32_t copies = 1) const {
    std::vector<std::uint64_t> bad;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i].load() != copies) {
        bad.push_back(i);
      }
    }
    return bad;
  }

 private:
  sluice::test::SharedArray<std::atomic<std::uint32_t>> counts_;
};

std::uint64_t read_u64(std::span<const std::byte> bytes) {
  std::uint64_t value = 0;
  std::memcpy(&value, bytes.data(), sizeof(value));
  return value;
}

// A consumer child body: reads records (8-byte sequence numbers) of its
// subpartition to the end of the stream; returns 0 if each record passes
// `expected` (the record's position in the subpartition, the number), else 1.
template <class Expected>
int read_records_to_end(const std::string& name, std::uint32_t s, SharedCounts& counts,
                        Expected expected) {
  auto consumer = st::Consumer::open(name, subpartition(s));
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  std::uint64_t position = 0;
  for (;;) {
    const st::Status status = reader.next_for(record, 30s);
    if (status == st::Status::kClosed) {
      return 0;
    }
    if (status != st::Status::kOk || record.size() != 8) {
      return 2;
    }
    const std::uint64_t seq = read_u64(record);
    counts.see(seq);
    if (!expected(position++, seq)) {
      std::fprintf(stderr, "subpartition %u: record %llu is %llu\n", s,
                   static_cast<unsigned long long>(position - 1),
                   static_cast<unsigned long long>(seq));
      return 1;
    }
  }
}

// How read_buffers_to_end reads, beyond its defaults.
struct BufferReading {
  const Signal* start = nullptr;               // waited for after opening, before the first receive
  bool wait_for_new_producer = false;          // a producer's death is waited out (takeover tests)
  std::function<bool(std::uint64_t)> mine;     // numbers this subpartition may get (empty: any)
  std::atomic<std::uint64_t>* seen = nullptr;  // counts every number received
  std::chrono::seconds timeout = 30s;
};

BufferReading starting_at(const Signal* start) {
  BufferReading how;
  how.start = start;
  return how;
}

// Buffer API consumer: each buffer holds one 8-byte sequence number, and the
// numbers increase within a subpartition. 0 at the end of the stream.
int read_buffers_to_end(const std::string& name, std::uint32_t s, SharedCounts& counts,
                        const BufferReading& how = {}) {
  auto consumer = st::Consumer::open(name, subpartition(s));
  if (how.wait_for_new_producer) {
    consumer.set_producer_loss(st::ProducerLoss::kWaitForNewProducer);
  }
  if (how.start != nullptr && !how.start->wait()) {
    return 3;
  }
  st::ReadableBuffer buffer;
  std::uint64_t last = 0;
  bool first = true;
  for (;;) {
    const st::Status status = consumer.receive_for(buffer, how.timeout);
    if (status == st::Status::kClosed) {
      return 0;
    }
    if (status != st::Status::kOk || buffer.size() != 8) {
      return 2;
    }
    const std::uint64_t seq = read_u64(buffer.data());
    counts.see(seq);
    if (how.seen != nullptr) {
      how.seen->fetch_add(1);
    }
    if ((!first && seq <= last) || (how.mine && !how.mine(seq))) {
      std::fprintf(stderr, "subpartition %u: %llu after %llu\n", s,
                   static_cast<unsigned long long>(seq), static_cast<unsigned long long>(last));
      return 1;
    }
    first = false;
    last = seq;
    buffer.reset();
  }
}

st::Status commit_seq(st::Producer& producer, std::uint64_t seq,
                      std::uint32_t target = st::kAnySubpartition,
                      std::chrono::nanoseconds timeout = 30s) {
  st::WritableBuffer buffer;
  const st::Deadline deadline =
      timeout.count() == 0 ? st::Deadline::immediate() : st::Deadline::after(timeout);
  const st::Status status = producer.acquire_until(buffer, deadline, target);
  if (status != st::Status::kOk) {
    return status;
  }
  std::memcpy(buffer.data().data(), &seq, sizeof(seq));
  return producer.commit(std::move(buffer), sizeof(seq), 1);
}

std::uint64_t queued_in(const st::ChannelMapping& mapping, std::uint32_t s) {
  return mapping.data_ring(s).tail.load() - mapping.data_ring(s).head.load();
}

// --- configuration -------------------------------------------------------

TEST(PartitionConfig, BadValuesAreRefusedWithAReason) {
  st::ChannelConfig config;
  config.subpartitions = 0;
  EXPECT_NE(st::config_problem(config).find("subpartition count 0"), std::string::npos);
  config.subpartitions = 65;
  EXPECT_NE(st::config_problem(config).find("subpartition count 65"), std::string::npos);
  config.subpartitions = 3;
  config.partitioner = static_cast<st::Partitioner>(7);
  EXPECT_NE(st::config_problem(config).find("partitioner 7"), std::string::npos);
  config.partitioner = st::Partitioner::kBroadcast;
  EXPECT_EQ(st::config_problem(config), "");
  config.partitioner = st::Partitioner::kKey;
  config.buffer_count = 2;
  EXPECT_NE(st::config_problem(config).find("below the 3 subpartitions"), std::string::npos);
  config.buffer_count = 8;
  EXPECT_EQ(st::config_problem(config), "");
  // Least-loaded writers hold a buffer per subpartition plus one that chooses.
  config.partitioner = st::Partitioner::kLeastLoaded;
  config.buffer_count = 3;
  EXPECT_NE(st::config_problem(config).find("must exceed the 3 subpartitions"), std::string::npos);
  config.buffer_count = 4;
  EXPECT_EQ(st::config_problem(config), "");
}

TEST(PartitionConfig, PartitionerNamesRoundTrip) {
  for (std::uint32_t i = 0; i < st::kPartitionerCount; ++i) {
    st::Partitioner parsed{};
    ASSERT_TRUE(
        st::parse_partitioner(st::partitioner_name(static_cast<st::Partitioner>(i)), parsed));
    EXPECT_EQ(static_cast<std::uint32_t>(parsed), i);
  }
  st::Partitioner parsed{};
  EXPECT_FALSE(st::parse_partitioner("random", parsed));
}

TEST(PartitionConfig, CapIsClampedAndRecorded) {
  ChannelGuard guard(unique_channel("clamp"));
  auto producer =
      st::Producer::create(guard.name(), partitioned(2, st::Partitioner::kRoundRobin, 8, 100));
  EXPECT_EQ(producer.config().max_queued_buffers, 8U);
  EXPECT_EQ(producer.config().subpartitions, 2U);
  auto consumer = st::Consumer::open(guard.name(), subpartition(1));
  EXPECT_EQ(consumer.config().partitioner,
            static_cast<std::uint32_t>(st::Partitioner::kRoundRobin));
  EXPECT_EQ(consumer.mapping().subpartition(), 1U);
}

TEST(PartitionConfig, SubpartitionThatDoesNotExistIsRefused) {
  ChannelGuard guard(unique_channel("nosub"));
  auto producer = st::Producer::create(guard.name(), partitioned(3, st::Partitioner::kKey));
  const std::string error =
      setup_error([&] { (void)st::Consumer::open(guard.name(), subpartition(3)); });
  EXPECT_NE(error.find("subpartition 3 does not exist"), std::string::npos) << error;
  auto first = st::Consumer::open(guard.name(), subpartition(2));
  const std::string twice =
      setup_error([&] { (void)st::Consumer::open(guard.name(), subpartition(2)); });
  EXPECT_NE(twice.find("consumer of subpartition 2"), std::string::npos) << twice;
  st::WritableBuffer buffer;
  EXPECT_EQ(producer.acquire_until(buffer, st::Deadline::immediate(), 3),
            st::Status::kInvalidArgument);
}

TEST(PartitionConfig, InPlaceOnAFanOutIsRefused) {
  ChannelGuard guard(unique_channel("noinplace"));
  auto producer = st::Producer::create(guard.name(), partitioned(2, st::Partitioner::kRoundRobin));
  st::WritableBuffer buffer;
  ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk);
  std::span<std::byte> writable;
  EXPECT_EQ(producer.publish_open(std::move(buffer), writable), st::Status::kInvalidArgument);
}

// --- partitioners end to end ----------------------------------------------

void round_robin_sends_record_n_to_subpartition_n_mod_k(Writing how) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint64_t kN = 20000;
  ChannelGuard guard(unique_channel("rr"));
  SharedCounts counts(kN);
  auto producer = st::Producer::create(guard.name(), partitioned(kK, st::Partitioner::kRoundRobin));
  std::vector<std::unique_ptr<ChildProcess>> consumers;
  for (std::uint32_t s = 0; s < kK; ++s) {
    consumers.push_back(std::make_unique<ChildProcess>([&, s] {
      return read_records_to_end(guard.name(), s, counts, [s](std::uint64_t i, std::uint64_t seq) {
        return seq == s + i * kK;
      });
    }));
  }
  st::PartitionWriter writer(producer);
  ASSERT_EQ(write_numbers(writer, kN, how), st::Status::kOk);
  for (auto& consumer : consumers) {
    EXPECT_EQ(consumer->wait(), 0);
  }
  EXPECT_TRUE(counts.wrong().empty())
      << counts.wrong().size() << " wrong, first " << counts.wrong().front();
  for (std::uint32_t s = 0; s < kK; ++s) {
    EXPECT_GT(producer.mapping().control(s).producer_counters.records.load(), 0U);
  }
}

TEST(Partition, RoundRobinSendsRecordNToSubpartitionNModK) {
  for (const Writing how : kEveryWriting) {
    SCOPED_TRACE(to_string(how));
    round_robin_sends_record_n_to_subpartition_n_mod_k(how);
  }
}

TEST(Partition, KeySendsEachKeyToOneSubpartitionInOrder) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint64_t kN = 20000;
  ChannelGuard guard(unique_channel("key"));
  SharedCounts counts(kN);
  auto producer = st::Producer::create(guard.name(), partitioned(kK, st::Partitioner::kKey));
  std::vector<std::unique_ptr<ChildProcess>> consumers;
  for (std::uint32_t s = 0; s < kK; ++s) {
    consumers.push_back(std::make_unique<ChildProcess>([&, s] {
      // Exactly the numbers whose key hashes to s, in increasing order.
      std::uint64_t next = 0;
      return read_records_to_end(guard.name(), s, counts,
                                 [&next, s](std::uint64_t, std::uint64_t seq) {
                                   while (next < kN && st::subpartition_for_key(next, kK) != s) {
                                     ++next;
                                   }
                                   return seq == next++;
                                 });
    }));
  }
  st::PartitionWriter writer(producer);
  ASSERT_EQ(write_numbers(writer, kN, Writing::kRecordByRecord, true), st::Status::kOk);
  for (auto& consumer : consumers) {
    EXPECT_EQ(consumer->wait(), 0);
  }
  EXPECT_TRUE(counts.wrong().empty());
}

TEST(Partition, KeyedRecordsOfOneKeyKeepTheirOrder) {
  static constexpr std::uint32_t kK = 3;
  static constexpr std::uint64_t kKeys = 10;
  static constexpr std::uint64_t kPerKey = 500;
  ChannelGuard guard(unique_channel("keyorder"));
  auto producer = st::Producer::create(guard.name(), partitioned(kK, st::Partitioner::kKey));
  SharedCounts counts(kKeys * kPerKey);
  std::vector<std::unique_ptr<ChildProcess>> consumers;
  for (std::uint32_t s = 0; s < kK; ++s) {
    consumers.push_back(std::make_unique<ChildProcess>([&, s] {
      // Record = key * kPerKey + index within the key; per key 0, 1, 2, ...
      std::vector<std::uint64_t> next(kKeys, 0);
      return read_records_to_end(guard.name(), s, counts,
                                 [&next, s](std::uint64_t, std::uint64_t value) {
                                   const std::uint64_t key = value / kPerKey;
                                   return key < kKeys && st::subpartition_for_key(key, kK) == s &&
                                          value % kPerKey == next[key]++;
                                 });
    }));
  }
  st::PartitionWriter writer(producer);
  for (std::uint64_t i = 0; i < kPerKey; ++i) {
    for (std::uint64_t key = 0; key < kKeys; ++key) {
      const std::uint64_t value = key * kPerKey + i;
      ASSERT_EQ(writer.write(key, std::as_bytes(std::span(&value, 1))), st::Status::kOk);
    }
  }
  ASSERT_EQ(writer.close(), st::Status::kOk);
  for (auto& consumer : consumers) {
    EXPECT_EQ(consumer->wait(), 0);
  }
  EXPECT_TRUE(counts.wrong().empty());
}

void least_loaded_delivers_everything_once_in_increasing_order(Writing how) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint64_t kN = 20000;
  ChannelGuard guard(unique_channel("ll"));
  SharedCounts counts(kN);
  auto producer =
      st::Producer::create(guard.name(), partitioned(kK, st::Partitioner::kLeastLoaded));
  std::vector<std::unique_ptr<ChildProcess>> consumers;
  for (std::uint32_t s = 0; s < kK; ++s) {
    consumers.push_back(std::make_unique<ChildProcess>([&, s] {
      std::uint64_t last = 0;
      return read_records_to_end(guard.name(), s, counts,
                                 [&last](std::uint64_t i, std::uint64_t seq) {
                                   const bool ok = i == 0 || seq > last;
                                   last = seq;
                                   return ok;
                                 });
    }));
  }
  st::PartitionWriter writer(producer);
  ASSERT_EQ(write_numbers(writer, kN, how), st::Status::kOk);
  for (auto& consumer : consumers) {
    EXPECT_EQ(consumer->wait(), 0);
  }
  EXPECT_TRUE(counts.wrong().empty());
}

TEST(Partition, LeastLoadedDeliversEverythingOnceInIncreasingOrder) {
  for (const Writing how : kEveryWriting) {
    SCOPED_TRACE(to_string(how));
    least_loaded_delivers_everything_once_in_increasing_order(how);
  }
}

TEST(Partition, RoundRobinWriteBatchRefusesRecordsLargerThanABufferAndWritesNothing) {
  ChannelGuard guard(unique_channel("rr-big"));
  auto producer = st::Producer::create(guard.name(), partitioned(2, st::Partitioner::kRoundRobin));
  st::PartitionWriter writer(producer);
  std::uint64_t calls = 0;
  EXPECT_EQ(writer.write_batch(257, 3, [&calls](std::span<std::byte>) noexcept { ++calls; }),
            st::Status::kInvalidArgument);
  EXPECT_EQ(calls, 0U);
  EXPECT_EQ(writer.records_written(), 0U);
}

TEST(Partition, AKeyStreamRefusesWritesWithoutKeys) {
  ChannelGuard guard(unique_channel("key-nokey"));
  auto producer = st::Producer::create(guard.name(), partitioned(2, st::Partitioner::kKey));
  st::PartitionWriter writer(producer);
  const std::uint64_t number = 7;
  const auto bytes = std::as_bytes(std::span(&number, 1));
  EXPECT_EQ(writer.write(bytes), st::Status::kInvalidArgument);
  EXPECT_EQ(writer.write_records(bytes, 1), st::Status::kInvalidArgument);
  EXPECT_EQ(writer.write_batch(8, 1, [](std::span<std::byte>) noexcept {}),
            st::Status::kInvalidArgument);
  EXPECT_EQ(writer.records_written(), 0U);
}

// Records larger than one buffer (sequence number, then a pattern), each
// checked whole by a consumer child; every fragment of a record must reach
// the subpartition its first fragment went to.
int read_large_records_to_end(const std::string& name, std::uint32_t s, SharedCounts& counts,
                              std::size_t bytes) {
  auto consumer = st::Consumer::open(name, subpartition(s));
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  std::uint64_t last = 0;
  bool first = true;
  for (;;) {
    const st::Status status = reader.next_for(record, 30s);
    if (status == st::Status::kClosed) {
      return 0;
    }
    if (status != st::Status::kOk) {
      std::fprintf(stderr, "subpartition %u: %s (%s)\n", s,
                   std::string(st::to_string(status)).c_str(),
                   reader.framing_error() != nullptr ? reader.framing_error() : "");
      return 2;
    }
    const std::uint64_t seq = st::pattern::sequence_of(record);
    if (record.size() != bytes || !st::pattern::body_matches(record, seq) ||
        (!first && seq <= last)) {
      return 1;
    }
    counts.see(seq);
    first = false;
    last = seq;
  }
}

void large_records_through(st::Partitioner partitioner, std::uint32_t k, std::uint32_t buffers,
                           std::size_t record_bytes, std::uint64_t n) {
  ChannelGuard guard(unique_channel("large"));
  SharedCounts counts(n);
  auto producer =
      st::Producer::create(guard.name(), partitioned(k, partitioner, buffers, buffers / k));
  std::vector<std::unique_ptr<ChildProcess>> consumers;
  for (std::uint32_t s = 0; s < k; ++s) {
    consumers.push_back(std::make_unique<ChildProcess>(
        [&, s] { return read_large_records_to_end(guard.name(), s, counts, record_bytes); }));
  }
  {
    st::PartitionWriter writer(producer);
    std::vector<std::byte> record(record_bytes);
    for (std::uint64_t seq = 0; seq < n; ++seq) {
      st::pattern::fill(record, seq);
      ASSERT_EQ(writer.write(record), st::Status::kOk) << seq;
    }
    ASSERT_EQ(writer.close(), st::Status::kOk);
  }
  for (auto& consumer : consumers) {
    EXPECT_EQ(consumer->wait(std::chrono::seconds(60)), 0);
  }
  EXPECT_TRUE(counts.wrong().empty());
}

TEST(Partition, LeastLoadedKeepsEveryFragmentOfALargeRecordOnOneSubpartition) {
  // 700-byte records in 256-byte buffers: three fragments each.
  large_records_through(st::Partitioner::kLeastLoaded, 3, 32, 700, 3000);
}

TEST(Partition, RoundRobinWithRecordsOfSeveralBuffersDoesNotWaitForever) {
  // Records of about 4.5 buffers, four pinned writers, sixteen buffers: tails
  // left in writers while readers hold the fragments before them would take
  // the whole pool.
  large_records_through(st::Partitioner::kRoundRobin, 4, 16, 1100, 2000);
}

// --- the cap ------------------------------------------------------------------

TEST(Partition, LeastLoadedRoutesAroundAStalledConsumer) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint32_t kCap = 4;
  constexpr std::uint64_t kN = 2000;
  ChannelGuard guard(unique_channel("llstall"));
  SharedCounts counts(kN);
  auto producer =
      st::Producer::create(guard.name(), partitioned(kK, st::Partitioner::kLeastLoaded, 16, kCap));
  Signal go;
  std::vector<std::unique_ptr<ChildProcess>> consumers;
  for (std::uint32_t s = 0; s < kK; ++s) {
    consumers.push_back(std::make_unique<ChildProcess>([&, s] {
      return read_buffers_to_end(guard.name(), s, counts, starting_at(s == 1 ? &go : nullptr));
    }));
  }
  const st::ChannelMapping& mapping = producer.mapping();
  ASSERT_TRUE(eventually(
      [&] { return mapping.probe_role(st::Role::kConsumer, 1) == sluice::shm::LockProbe::kHeld; }));
  std::uint64_t most_queued = 0;
  for (std::uint64_t seq = 0; seq < kN; ++seq) {
    ASSERT_EQ(commit_seq(producer, seq), st::Status::kOk) << seq;
    most_queued = std::max(most_queued, queued_in(mapping, 1));
  }
  // The stalled consumer holds its cap and no more; the others got the rest.
  EXPECT_LE(most_queued, kCap);
  EXPECT_EQ(queued_in(mapping, 1), kCap);
  EXPECT_EQ(mapping.control(0).producer_counters.buffers.load() +
                mapping.control(2).producer_counters.buffers.load(),
            kN - kCap);
  go.notify();
  producer.close();
  for (auto& consumer : consumers) {
    EXPECT_EQ(consumer->wait(), 0);
  }
  EXPECT_TRUE(counts.wrong().empty());
}

TEST(Partition, RoundRobinBlocksAtTheCapOfAStalledConsumerAndTakesNoMore) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint32_t kCap = 3;
  constexpr std::uint64_t kN = 600;
  ChannelGuard guard(unique_channel("rrstall"));
  SharedCounts counts(kN);
  auto producer =
      st::Producer::create(guard.name(), partitioned(kK, st::Partitioner::kRoundRobin, 16, kCap));
  Signal go;
  std::vector<std::unique_ptr<ChildProcess>> consumers;
  for (std::uint32_t s = 0; s < kK; ++s) {
    consumers.push_back(std::make_unique<ChildProcess>([&, s] {
      return read_buffers_to_end(guard.name(), s, counts, starting_at(s == 1 ? &go : nullptr));
    }));
  }
  const st::ChannelMapping& mapping = producer.mapping();
  ASSERT_TRUE(eventually(
      [&] { return mapping.probe_role(st::Role::kConsumer, 1) == sluice::shm::LockProbe::kHeld; }));
  // Turns 0, 1, 2 three times fill subpartition 1 to its cap; turn 0 once
  // more; then it is 1's turn, and 1 is full: the producer blocks.
  std::uint64_t seq = 0;
  for (; seq < 3 * kK + 1; ++seq) {
    ASSERT_EQ(commit_seq(producer, seq), st::Status::kOk) << seq;
  }
  st::WritableBuffer buffer;
  EXPECT_EQ(producer.acquire_for(buffer, 50ms), st::Status::kTimeout);
  EXPECT_EQ(queued_in(mapping, 1), kCap);
  EXPECT_GT(mapping.control(1).producer_counters.blocked_ns.load(), 0U);
  // The others' buffers are not taken: subpartition 0 can still get one.
  ASSERT_TRUE(eventually([&] { return queued_in(mapping, 0) == 0; }));
  EXPECT_EQ(commit_seq(producer, seq, 0, 0ns), st::Status::kOk);
  EXPECT_EQ(queued_in(mapping, 1), kCap);
  go.notify();
  // Round-robin goes on where it stopped; the number committed to 0 out of
  // turn is skipped by the others, so send the rest as 1, 2, 0, ...
  for (++seq; seq < kN; ++seq) {
    ASSERT_EQ(commit_seq(producer, seq), st::Status::kOk) << seq;
    EXPECT_LE(queued_in(mapping, 1), kCap);
  }
  producer.close();
  for (auto& consumer : consumers) {
    EXPECT_EQ(consumer->wait(), 0);
  }
  EXPECT_TRUE(counts.wrong().empty());
}

TEST(Partition, SixtyFourSubpartitions) {
  constexpr std::uint32_t kK = 64;
  constexpr std::uint64_t kRounds = 20;
  ChannelGuard guard(unique_channel("k64"));
  auto producer =
      st::Producer::create(guard.name(), partitioned(kK, st::Partitioner::kRoundRobin, 128, 2));
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
  for (std::uint64_t seq = 0; seq < kK * kRounds; ++seq) {
    st::Status status;
    while ((status = commit_seq(producer, seq, st::kAnySubpartition, 0ns)) ==
           st::Status::kWouldBlock) {
      drain();
    }
    ASSERT_EQ(status, st::Status::kOk);
  }
  producer.close();
  drain();
  for (std::uint32_t s = 0; s < kK; ++s) {
    ASSERT_EQ(got[s].size(), kRounds) << s;
    for (std::uint64_t i = 0; i < kRounds; ++i) {
      EXPECT_EQ(got[s][i], s + i * kK);
    }
    st::ReadableBuffer buffer;
    EXPECT_EQ(consumers[s].try_receive(buffer), st::Status::kClosed);
  }
  const auto report = st::check_ownership(producer.mapping(), {2, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
}

// --- a consumer dies -----------------------------------------------------------

TEST(Partition, KilledConsumerOfOneSubpartitionIsResumedAndNothingIsLost) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint64_t kN = 900;
  ChannelGuard guard(unique_channel("rrkill"));
  SharedCounts counts(kN);
  Signal created;
  ChildProcess producer_process([&]() -> int {
    auto producer =
        st::Producer::create(guard.name(), partitioned(kK, st::Partitioner::kRoundRobin, 16, 4));
    producer.set_consumer_loss(st::ConsumerLoss::kWaitForNewConsumer);
    created.notify();
    for (std::uint64_t seq = 0; seq < kN; ++seq) {
      if (commit_seq(producer, seq, st::kAnySubpartition, 60s) != st::Status::kOk) {
        return 1;
      }
    }
    producer.close();
    // Stay attached until the test looked at the pool (then it is killed).
    for (;;) {
      pause();
    }
  });
  ASSERT_TRUE(created.wait());
  std::vector<std::unique_ptr<ChildProcess>> others;
  for (std::uint32_t s : {0U, 2U}) {
    others.push_back(std::make_unique<ChildProcess>(
        [&, s] { return read_buffers_to_end(guard.name(), s, counts); }));
  }
  Signal holding;
  ChildProcess victim([&]() -> int {
    auto consumer = st::Consumer::open(guard.name(), subpartition(1));
    // Receives 10, counts and releases 8, holds 2, and dies.
    std::vector<st::ReadableBuffer> held;
    for (int i = 0; i < 10; ++i) {
      st::ReadableBuffer buffer;
      if (consumer.receive_for(buffer, 30s) != st::Status::kOk) {
        return 1;
      }
      if (i < 8) {
        counts.see(read_u64(buffer.data()));
      } else {
        held.push_back(std::move(buffer));
      }
    }
    holding.notify();
    for (;;) {
      pause();
    }
  });
  ASSERT_TRUE(holding.wait());
  victim.kill_now();
  EXPECT_EQ(victim.wait(), 128 + SIGKILL);

  auto successor = st::Consumer::open(guard.name(), subpartition(1));
  EXPECT_EQ(successor.redelivery_pending(), 2U);
  st::ReadableBuffer buffer;
  std::uint64_t last = 0;
  std::uint64_t received = 0;
  st::Status status;
  while ((status = successor.receive_for(buffer, 30s)) == st::Status::kOk) {
    const std::uint64_t seq = read_u64(buffer.data());
    EXPECT_EQ(seq % kK, 1U);
    EXPECT_TRUE(received == 0 || seq > last) << seq << " after " << last;
    last = seq;
    ++received;
    counts.see(seq);
    buffer.reset();
  }
  EXPECT_EQ(status, st::Status::kClosed);
  for (auto& other : others) {
    EXPECT_EQ(other->wait(), 0);
  }
  EXPECT_TRUE(counts.wrong().empty()) << counts.wrong().size() << " not seen once";
  const st::ChannelObserver observer(guard.name());
  const auto report = st::check_ownership(observer.mapping(), {2, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
  producer_process.kill_now();
}

// --- producer takeover of a fan-out -----------------------------------------

// The producer of a fan-out commits M numbers (one per buffer), takes two
// more buffers it never commits, and is SIGKILLed; a successor attaches,
// continues at records_committed() and closes. Consumers that wait for a new
// producer see every number exactly once, increasing within each
// subpartition (and where the partitioner says), and the pool is whole.
void fan_out_producer_killed_and_taken_over(st::Partitioner partitioner) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint64_t kM = 300;
  constexpr std::uint64_t kN = 900;
  ChannelGuard guard(unique_channel("pkill"));
  SharedCounts counts(kN);
  const bool keyed = partitioner == st::Partitioner::kKey;
  auto target_of = [&](std::uint64_t seq) {
    return keyed ? st::subpartition_for_key(seq, kK) : st::kAnySubpartition;
  };
  Signal holding;
  ChildProcess victim([&]() -> int {
    auto producer = st::Producer::create(guard.name(), partitioned(kK, partitioner, 16, 4));
    for (std::uint64_t seq = 0; seq < kM; ++seq) {
      if (commit_seq(producer, seq, target_of(seq), 60s) != st::Status::kOk) {
        return 1;
      }
    }
    std::array<st::WritableBuffer, 2> taken;
    for (auto& buffer : taken) {
      if (producer.acquire_for(buffer, 60s) != st::Status::kOk) {
        return 2;
      }
    }
    holding.notify();
    for (;;) {
      pause();
    }
  });
  std::vector<std::unique_ptr<ChildProcess>> consumers;
  for (std::uint32_t s = 0; s < kK; ++s) {
    consumers.push_back(std::make_unique<ChildProcess>([&, s] {
      BufferReading how;
      how.wait_for_new_producer = true;
      if (keyed) {
        how.mine = [s](std::uint64_t seq) { return st::subpartition_for_key(seq, kK) == s; };
      }
      return read_buffers_to_end(guard.name(), s, counts, how);
    }));
  }
  ASSERT_TRUE(holding.wait());
  victim.kill_now();
  EXPECT_EQ(victim.wait(), 128 + SIGKILL);

  auto successor = st::Producer::attach(guard.name());
  EXPECT_TRUE(successor.resumed_stream());
  ASSERT_EQ(successor.records_committed(), kM);
  for (std::uint64_t seq = kM; seq < kN; ++seq) {
    ASSERT_EQ(commit_seq(successor, seq, target_of(seq), 60s), st::Status::kOk) << seq;
  }
  successor.close();
  for (auto& consumer : consumers) {
    EXPECT_EQ(consumer->wait(), 0);
  }
  const auto wrong = counts.wrong(partitioner == st::Partitioner::kBroadcast ? kK : 1);
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " numbers not seen once per copy, first "
                             << (wrong.empty() ? 0 : wrong.front());
  const st::ChannelObserver observer(guard.name());
  const auto report = st::check_ownership(observer.mapping(), {2, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
}

TEST(PartitionTakeover, BroadcastProducerKilledIsTakenOverAndNothingIsLost) {
  fan_out_producer_killed_and_taken_over(st::Partitioner::kBroadcast);
}

TEST(PartitionTakeover, RoundRobinProducerKilledIsTakenOverAndNothingIsLost) {
  fan_out_producer_killed_and_taken_over(st::Partitioner::kRoundRobin);
}

TEST(PartitionTakeover, KeyProducerKilledIsTakenOverAndNothingIsLost) {
  fan_out_producer_killed_and_taken_over(st::Partitioner::kKey);
}

TEST(PartitionTakeover, LeastLoadedProducerKilledIsTakenOverAndNothingIsLost) {
  fan_out_producer_killed_and_taken_over(st::Partitioner::kLeastLoaded);
}

// The producer of a fan-out is SIGKILLed again and again at random points
// (a quarter of them right after a successor was started, so inside attach's
// own recovery too), each time taken over by a new one that continues at
// records_committed(). Every number is committed in a buffer of its own, so
// the count is exact: each must arrive exactly once, increasing within its
// subpartition, and the pool must be whole at the end.
void fan_out_producer_killed_again_and_again(st::Partitioner partitioner, int kills) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint64_t kN = 200000;
  ChannelGuard guard(unique_channel("pkills"));
  SharedCounts counts(kN);
  sluice::test::SharedArray<std::atomic<std::uint64_t>> seen(1);
  // Producers commit numbers below this only: each kill then lands while the
  // producer has work left, wherever its restart time would have put it.
  sluice::test::SharedArray<std::atomic<std::uint64_t>> allowed(1);
  auto start_producer = [&](bool create) {
    return std::make_unique<ChildProcess>([&, create]() -> int {
      auto producer = create
                          ? st::Producer::create(guard.name(), partitioned(kK, partitioner, 16, 4))
                          : st::Producer::attach(guard.name(), subpartition(0));
      producer.set_consumer_loss(st::ConsumerLoss::kWaitForNewConsumer);
      for (std::uint64_t seq = producer.records_committed(); seq < kN; ++seq) {
        while (seq >= allowed[0].load()) {
          std::this_thread::sleep_for(100us);  // pacing: the test lets it go on
        }
        if (commit_seq(producer, seq, st::kAnySubpartition, 60s) != st::Status::kOk) {
          return 1;
        }
      }
      producer.close();
      return 0;
    });
  };
  auto producer = start_producer(true);
  std::vector<std::unique_ptr<ChildProcess>> consumers;
  for (std::uint32_t s = 0; s < kK; ++s) {
    consumers.push_back(std::make_unique<ChildProcess>([&, s] {
      BufferReading how;
      how.wait_for_new_producer = true;
      how.seen = &seen[0];
      how.timeout = 60s;
      return read_buffers_to_end(guard.name(), s, counts, how);
    }));
  }
  std::mt19937 random(777 + static_cast<unsigned>(partitioner));
  int early = 0;
  for (int kill = 0; kill < kills; ++kill) {
    const std::uint64_t step = kN / (2 * kills);
    if (random() % 4 != 0) {
      const std::uint64_t target = seen[0].load() + 1 + random() % step;
      allowed[0].store(target + step);
      ASSERT_TRUE(eventually([&] { return seen[0].load() >= target; }, 60s))
          << "kill " << kill << ": stuck at " << seen[0].load();
    } else {
      ++early;
    }
    producer->kill_now();
    const int status = producer->wait();
    ASSERT_TRUE(status == 128 + SIGKILL || status == 0) << "kill " << kill << ": " << status;
    producer = start_producer(false);
  }
  allowed[0].store(kN);
  EXPECT_EQ(producer->wait(), 0);
  for (auto& consumer : consumers) {
    EXPECT_EQ(consumer->wait(), 0);
  }
  const auto wrong = counts.wrong(partitioner == st::Partitioner::kBroadcast ? kK : 1);
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " numbers not seen once per copy, first "
                             << (wrong.empty() ? 0 : wrong.front());
  const st::ChannelObserver observer(guard.name());
  const auto report = st::check_ownership(observer.mapping(), {2, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
  std::printf("%d kills (%d right after a takeover began), %llu numbers each seen once\n", kills,
              early, static_cast<unsigned long long>(kN - wrong.size()));
}

TEST(PartitionTakeover, RoundRobinProducerKilledAgainAndAgainLosesAndRepeatsNothing) {
  fan_out_producer_killed_again_and_again(st::Partitioner::kRoundRobin, 200);
}

TEST(PartitionTakeover, BroadcastProducerKilledAgainAndAgainLosesAndRepeatsNothing) {
  fan_out_producer_killed_again_and_again(st::Partitioner::kBroadcast, 200);
}

// A broadcast producer that died inside its publish of number kFirst, after
// pushing the buffer into `pushed` of the K data rings. With one or more,
// the successor pushes it into the rest at the same position, so every
// consumer gets it once and in order, and the positions of its own publishes
// agree again. With none, the number was never published: the successor
// takes the buffer back and continues at kFirst. Either way the pool is whole.
void broadcast_publish_cut_short(std::uint32_t pushed) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint64_t kFirst = 5;
  constexpr std::uint32_t kPool = 8;
  ChannelGuard guard(unique_channel("bc-cut"));
  {
    auto producer =
        st::Producer::create(guard.name(), partitioned(kK, st::Partitioner::kBroadcast, kPool));
    for (std::uint64_t seq = 0; seq < kFirst; ++seq) {
      ASSERT_EQ(commit_seq(producer, seq), st::Status::kOk);
    }
    // What publish_shared does for number kFirst, cut off after `pushed` rings.
    st::WritableBuffer buffer;
    ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk);
    const std::uint32_t index = buffer.index();
    std::memcpy(buffer.data().data(), &kFirst, sizeof(kFirst));
    buffer.reset();  // the buffer stays marked kWriting, as before a publish
    const st::ChannelMapping& mapping = producer.mapping();
    const std::uint64_t position = mapping.data_ring(0).tail.load();
    mapping.buffer_commits()[index].bytes.store(8);
    mapping.buffer_commits()[index].sequence.store(position);
    mapping.buffer_commits()[index].records_through.store(kFirst + 1);
    mapping.buffer_holders()[index].store((1U << kK) - 1);
    mapping.buffer_states()[index].store(st::state_word(st::BufferState::kShared));
    const std::uint64_t capacity = mapping.config().ring_capacity;
    for (std::uint32_t s = 0; s < pushed; ++s) {
      mapping.data_slots(s)[position & (capacity - 1)].store(st::make_descriptor(index, 8));
      mapping.data_ring(s).tail.store(position + 1);
    }
  }  // gone without closing, as after a SIGKILL
  auto successor = st::Producer::attach(guard.name());
  const std::uint64_t continue_at = pushed > 0 ? kFirst + 1 : kFirst;
  EXPECT_EQ(successor.records_committed(), continue_at);
  for (std::uint32_t s = 0; s < kK; ++s) {
    EXPECT_EQ(successor.mapping().data_ring(s).tail.load(), continue_at) << s;
  }
  // Nobody reads yet: the successor fills what is left of the pool.
  for (std::uint64_t seq = continue_at; seq < kPool; ++seq) {
    ASSERT_EQ(commit_seq(successor, seq, st::kAnySubpartition, 0s), st::Status::kOk) << seq;
  }
  successor.close();
  for (std::uint32_t s = 0; s < kK; ++s) {
    auto consumer = st::Consumer::open(guard.name(), subpartition(s));
    st::ReadableBuffer buffer;
    std::uint64_t expected = 0;
    st::Status status;
    while ((status = consumer.try_receive(buffer)) == st::Status::kOk) {
      EXPECT_EQ(read_u64(buffer.data()), expected) << "subpartition " << s;
      ++expected;
      buffer.reset();
    }
    EXPECT_EQ(status, st::Status::kClosed) << s;
    EXPECT_EQ(expected, kPool) << s;
  }
  const st::ChannelObserver observer(guard.name());
  const auto report = st::check_ownership(observer.mapping(), {2, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
}

TEST(PartitionTakeover, BroadcastPublishCutShortIsCompletedByTheSuccessor) {
  broadcast_publish_cut_short(1);
  broadcast_publish_cut_short(2);
}

// The producer died between a publish and the counter store after it, and
// every consumer has read and released that buffer since: the successor's
// count comes from the freed buffer's commit record, not the lagging counter.
// A successor that dies in turn, holding that buffer, leaves the count to
// its own successor all the same.
void count_lagging_the_last_publish(st::Partitioner partitioner) {
  constexpr std::uint32_t kK = 2;
  constexpr std::uint64_t kRecords = 5;
  ChannelGuard guard(unique_channel("lag"));
  {
    auto producer = st::Producer::create(guard.name(), partitioned(kK, partitioner, 8));
    std::vector<st::Consumer> consumers;
    for (std::uint32_t s = 0; s < kK; ++s) {
      consumers.push_back(st::Consumer::open(guard.name(), subpartition(s)));
    }
    for (std::uint64_t seq = 0; seq < kRecords; ++seq) {
      ASSERT_EQ(commit_seq(producer, seq), st::Status::kOk);
    }
    for (auto& consumer : consumers) {
      st::ReadableBuffer buffer;
      while (consumer.try_receive(buffer) == st::Status::kOk) {
        buffer.reset();
      }
    }
    for (std::uint32_t s = 0; s < kK; ++s) {
      auto& counter = producer.mapping().control(s).producer_counters.records;
      if (counter.load() > 0 &&
          (partitioner == st::Partitioner::kBroadcast || s == (kRecords - 1) % kK)) {
        counter.fetch_sub(1);  // the last publish's count never stored
      }
    }
  }  // both gone, the producer without closing
  {
    auto successor = st::Producer::attach(guard.name());
    EXPECT_EQ(successor.records_committed(), kRecords);
    // It takes every free buffer, the one whose commit record told the count
    // among them, and dies before publishing: its own successor no longer
    // finds that commit record and must find the count where it left it.
    std::vector<st::WritableBuffer> taken;
    st::WritableBuffer buffer;
    while (successor.acquire_until(buffer, st::Deadline::immediate()) == st::Status::kOk) {
      taken.push_back(std::move(buffer));
    }
    EXPECT_EQ(taken.size(), 8U);
  }
  auto second = st::Producer::attach(guard.name());
  EXPECT_EQ(second.records_committed(), kRecords);
}

TEST(PartitionTakeover, BroadcastCountLaggingAFreedPublishIsTakenFromItsCommitRecord) {
  count_lagging_the_last_publish(st::Partitioner::kBroadcast);
}

TEST(PartitionTakeover, RoundRobinCountLaggingAFreedPublishIsTakenFromItsCommitRecord) {
  count_lagging_the_last_publish(st::Partitioner::kRoundRobin);
}

TEST(PartitionTakeover, BroadcastPublishBeforeAnyPushIsTakenBackByTheSuccessor) {
  broadcast_publish_cut_short(0);
}

TEST(PartitionTakeover, LeastLoadedProducerKilledAgainAndAgainLosesAndRepeatsNothing) {
  fan_out_producer_killed_again_and_again(st::Partitioner::kLeastLoaded, 200);
}

// Records: the producer dies inside a record spanning several buffers (its
// first fragments committed to one subpartition, the pool exhausted by them)
// and with a record of another subpartition's writer not yet committed. The
// successor's first buffer to every subpartition starts with a discard
// frame: the half record is dropped, never returned in part, and every
// record counted as committed arrives once, in its key's subpartition.
TEST(PartitionTakeover, AHalfWrittenRecordIsDroppedInItsSubpartitionOnly) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint64_t kM = 501;  // its key's subpartition is 0 (checked below)
  constexpr std::uint64_t kN = 1500;
  constexpr std::uint32_t kBufferBytes = 1024;
  ChannelGuard guard(unique_channel("pkill-rec"));
  SharedCounts counts(kN);
  // The large record goes to subpartition 1, the unflushed one elsewhere.
  std::uint64_t large_key = 0;
  while (st::subpartition_for_key(large_key, kK) != 1) {
    ++large_key;
  }
  Signal stuck;
  ChildProcess victim([&]() -> int {
    auto producer = st::Producer::create(
        guard.name(), partitioned(kK, st::Partitioner::kKey, 16, 4, kBufferBytes));
    st::PartitionWriter writer(producer);
    for (std::uint64_t seq = 0; seq < kM; ++seq) {
      if (writer.write(seq, std::as_bytes(std::span(&seq, 1))) != st::Status::kOk) {
        return 1;
      }
    }
    if (writer.flush() != st::Status::kOk) {
      return 2;
    }
    // Record kM stays in its writer's buffer: never committed.
    const std::uint64_t pending = kM;
    if (st::subpartition_for_key(pending, kK) == 1 ||
        writer.write(pending, std::as_bytes(std::span(&pending, 1))) != st::Status::kOk) {
      return 3;
    }
    stuck.notify();
    // Twice the pool: blocks for good once the pool is spent on its fragments.
    std::vector<std::byte> large(std::size_t{kBufferBytes} * 32, std::byte{0x5A});
    (void)writer.write(large_key, large);
    return 4;
  });
  ASSERT_TRUE(stuck.wait());
  // Blocked: every buffer is out (queued, or held by its writers).
  ASSERT_TRUE(eventually(
      [&] {
        const st::ChannelObserver observer(guard.name());
        return observer.mapping().control(0).producer_counters.blocked_since_ns.load() != 0;
      },
      30s));
  victim.kill_now();
  EXPECT_EQ(victim.wait(), 128 + SIGKILL);

  std::vector<std::unique_ptr<ChildProcess>> consumers;
  for (std::uint32_t s = 0; s < kK; ++s) {
    consumers.push_back(std::make_unique<ChildProcess>([&, s]() -> int {
      auto consumer = st::Consumer::open(guard.name(), subpartition(s));
      consumer.set_producer_loss(st::ProducerLoss::kWaitForNewProducer);
      st::RecordReader reader(consumer);
      std::span<const std::byte> record;
      std::uint64_t last = 0;
      bool first = true;
      st::Status status;
      while ((status = reader.next_for(record, 30s)) == st::Status::kOk) {
        if (record.size() != 8) {
          std::fprintf(stderr, "subpartition %u: a record of %zu bytes\n", s, record.size());
          return 1;
        }
        const std::uint64_t seq = read_u64(record);
        counts.see(seq);
        if ((!first && seq <= last) || st::subpartition_for_key(seq, kK) != s) {
          return 1;
        }
        first = false;
        last = seq;
      }
      return status == st::Status::kClosed ? 0 : 2;
    }));
  }
  auto successor = st::Producer::attach(guard.name(), subpartition(0));
  ASSERT_EQ(successor.records_committed(), kM);
  {
    st::PartitionWriter writer(successor);
    for (std::uint64_t seq = kM; seq < kN; ++seq) {
      ASSERT_EQ(writer.write(seq, std::as_bytes(std::span(&seq, 1))), st::Status::kOk) << seq;
    }
    ASSERT_EQ(writer.close(), st::Status::kOk);
  }
  for (auto& consumer : consumers) {
    EXPECT_EQ(consumer->wait(), 0);
  }
  const auto wrong = counts.wrong();
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " numbers not seen exactly once, first "
                             << (wrong.empty() ? 0 : wrong.front());
  const st::ChannelObserver observer(guard.name());
  const auto report = st::check_ownership(observer.mapping(), {2, 1ms});
  EXPECT_TRUE(report.sound()) << report.problems.front();
}

// A producer that died inside close() left some subpartitions closed and
// others open: a successor is refused (the stream is over) and closes the
// rest, so no consumer waits for ever.
TEST(PartitionTakeover, AStreamClosedInPartIsClosedWholeAndNotTakenOver) {
  ChannelGuard guard(unique_channel("pkill-close"));
  {
    auto producer =
        st::Producer::create(guard.name(), partitioned(3, st::Partitioner::kRoundRobin));
    // As if close() stopped after the first block: the producer then leaves.
    producer.mapping().control(1).stream.closed.store(1);
  }
  const std::string error = setup_error([&] { (void)st::Producer::attach(guard.name()); });
  EXPECT_NE(error.find("was closed by its producer"), std::string::npos) << error;
  const st::ChannelObserver observer(guard.name());
  for (std::uint32_t s = 0; s < 3; ++s) {
    EXPECT_EQ(observer.mapping().control(s).stream.closed.load(), 1U) << s;
  }
}

TEST(Partition, RoundRobinReportsTheDeadConsumerOfItsTurnOnceItsCapIsFull) {
  constexpr std::uint32_t kCap = 3;
  ChannelGuard guard(unique_channel("rrdead"));
  auto producer =
      st::Producer::create(guard.name(), partitioned(2, st::Partitioner::kRoundRobin, 16, kCap));
  auto alive = st::Consumer::open(guard.name(), subpartition(0));
  Signal attached;
  ChildProcess victim([&]() -> int {
    auto consumer = st::Consumer::open(guard.name(), subpartition(1));
    attached.notify();
    for (;;) {
      pause();
    }
  });
  ASSERT_TRUE(attached.wait());
  victim.kill_now();
  EXPECT_EQ(victim.wait(), 128 + SIGKILL);
  // Turns 0, 1, 0, 1, ...: subpartition 1 takes buffers up to its cap, then
  // its turn waits, finds its consumer gone and says so.
  st::Status status = st::Status::kOk;
  std::uint64_t seq = 0;
  for (; seq < 100 && status == st::Status::kOk; ++seq) {
    status = commit_seq(producer, seq, st::kAnySubpartition, 10s);
    st::ReadableBuffer buffer;
    while (alive.try_receive(buffer) == st::Status::kOk) {
      buffer.reset();
    }
  }
  EXPECT_EQ(status, st::Status::kPeerDied);
  EXPECT_EQ(queued_in(producer.mapping(), 1), kCap);
  // Attempts: kCap + 1 to 0 and kCap to 1 succeeded, then 1's turn failed.
  EXPECT_EQ(seq, 2 * kCap + 2);
}

TEST(Partition, LeastLoadedGoesOnWithoutADeadConsumer) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint32_t kCap = 4;
  constexpr std::uint64_t kN = 1000;
  ChannelGuard guard(unique_channel("lldead"));
  SharedCounts counts(kN);
  auto producer =
      st::Producer::create(guard.name(), partitioned(kK, st::Partitioner::kLeastLoaded, 16, kCap));
  Signal attached;
  ChildProcess victim([&]() -> int {
    auto consumer = st::Consumer::open(guard.name(), subpartition(1));
    attached.notify();
    for (;;) {
      pause();
    }
  });
  ASSERT_TRUE(attached.wait());
  victim.kill_now();
  EXPECT_EQ(victim.wait(), 128 + SIGKILL);
  std::vector<std::unique_ptr<ChildProcess>> consumers;
  for (std::uint32_t s : {0U, 2U}) {
    consumers.push_back(std::make_unique<ChildProcess>(
        [&, s] { return read_buffers_to_end(guard.name(), s, counts); }));
  }
  // Every acquire succeeds: the dead consumer's subpartition is left aside
  // (after at most its cap), not reported, while others live.
  for (std::uint64_t seq = 0; seq < kN; ++seq) {
    ASSERT_EQ(commit_seq(producer, seq), st::Status::kOk) << seq;
  }
  EXPECT_LE(queued_in(producer.mapping(), 1), kCap);
  producer.close();
  for (auto& consumer : consumers) {
    EXPECT_EQ(consumer->wait(), 0);
  }
  // A new consumer of subpartition 1 receives what was left there.
  auto successor = st::Consumer::open(guard.name(), subpartition(1));
  st::ReadableBuffer buffer;
  while (successor.try_receive(buffer) == st::Status::kOk) {
    counts.see(read_u64(buffer.data()));
    buffer.reset();
  }
  EXPECT_TRUE(counts.wrong().empty()) << counts.wrong().size() << " not seen once";
}

// --- hostile values ---------------------------------------------------------------

class RawSegment {
 public:
  explicit RawSegment(const std::string& name)
      : object_(bip::open_only, sluice::shm::object_name(name).c_str(), bip::read_write),
        region_(object_, bip::read_write) {}
  std::byte* base() { return static_cast<std::byte*>(region_.get_address()); }
  st::ChannelHeader& header() { return *reinterpret_cast<st::ChannelHeader*>(base()); }

 private:
  bip::shared_memory_object object_;
  bip::mapped_region region_;
};

TEST(PartitionHostile, DescriptorQueuedForAnotherSubpartitionIsCorrupt) {
  ChannelGuard guard(unique_channel("othersub"));
  auto producer = st::Producer::create(guard.name(), partitioned(2, st::Partitioner::kKey));
  auto consumer = st::Consumer::open(guard.name(), subpartition(1));
  st::WritableBuffer buffer;
  ASSERT_EQ(producer.acquire_until(buffer, st::Deadline::immediate(), 0), st::Status::kOk);
  const std::uint32_t index = buffer.index();
  ASSERT_EQ(producer.commit(std::move(buffer), 8), st::Status::kOk);
  // Buffer `index` is queued for subpartition 0; plant it in ring 1 as a
  // rogue producer would (through this process's own mapping of the segment).
  const st::ChannelMapping& mapping = producer.mapping();
  st::RingIndices& ring = mapping.data_ring(1);
  const auto tail = ring.tail.load();
  mapping.data_slots(1)[tail & (mapping.config().ring_capacity - 1)].store(
      st::make_descriptor(index, 8));
  ring.tail.store(tail + 1);
  st::ReadableBuffer received;
  EXPECT_EQ(consumer.try_receive(received), st::Status::kCorrupt);
  EXPECT_NE(consumer.corruption().find("not queued for this subpartition"), std::string::npos)
      << consumer.corruption();
}

TEST(PartitionHostile, FreedByAnotherSubpartitionIsCorruptForTheProducer) {
  ChannelGuard guard(unique_channel("otherfree"));
  auto producer = st::Producer::create(guard.name(), partitioned(2, st::Partitioner::kKey, 2, 2));
  const st::ChannelMapping& mapping = producer.mapping();
  // Take both free buffers out of return ring 0 and commit them to 0.
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(commit_seq(producer, 0, 0, 0ns), st::Status::kOk);
  }
  // Return ring 0 hands back buffer 0, which says "freed by 1": forged.
  mapping.buffer_states()[0].store(st::state_word(st::BufferState::kFree, 1));
  const auto tail = mapping.return_ring(0).tail.load();
  mapping.return_slots(0)[tail & (mapping.config().ring_capacity - 1)].store(0);
  mapping.return_ring(0).tail.store(tail + 1);
  st::WritableBuffer buffer;
  EXPECT_EQ(producer.acquire_until(buffer, st::Deadline::immediate(), 1), st::Status::kCorrupt);
  EXPECT_NE(producer.corruption().find("not freed by its subpartition"), std::string::npos)
      << producer.corruption();
}

TEST(Partition, BuffersAConsumerHoldsWhileReadingCountAgainstItsCap) {
  ChannelGuard guard(unique_channel("holdcap"));
  auto producer = st::Producer::create(guard.name(), partitioned(2, st::Partitioner::kKey, 16, 3));
  auto consumer0 = st::Consumer::open(guard.name(), subpartition(0));
  // Subpartition 0 takes its three buffers off the ring and keeps them.
  std::vector<st::ReadableBuffer> kept(3);
  for (std::uint64_t i = 0; i < 3; ++i) {
    ASSERT_EQ(commit_seq(producer, i, 0, 0ns), st::Status::kOk);
    ASSERT_EQ(consumer0.try_receive(kept[i]), st::Status::kOk);
  }
  // Nothing is queued for it, yet it is at its cap: no fourth buffer.
  EXPECT_EQ(queued_in(producer.mapping(), 0), 0U);
  EXPECT_EQ(commit_seq(producer, 3, 0, 0ns), st::Status::kWouldBlock);
  // The other subpartition is not held back.
  EXPECT_EQ(commit_seq(producer, 4, 1, 0ns), st::Status::kOk);
  // One returned: one more may go.
  kept[0].reset();
  EXPECT_EQ(commit_seq(producer, 3, 0, 0ns), st::Status::kOk);
  EXPECT_EQ(commit_seq(producer, 5, 0, 0ns), st::Status::kWouldBlock);
}

TEST(PartitionHostile, AConsumerCannotGiveBackABufferSentToAnother) {
  ChannelGuard guard(unique_channel("steal"));
  auto producer = st::Producer::create(guard.name(), partitioned(2, st::Partitioner::kKey, 2, 2));
  const st::ChannelMapping& mapping = producer.mapping();
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(commit_seq(producer, 0, 0, 0ns), st::Status::kOk);  // both to subpartition 0
  }
  // Subpartition 1's consumer forges "freed by 1" on buffer 0, which
  // subpartition 0 has queued, and pushes it on its own return ring.
  mapping.buffer_states()[0].store(st::state_word(st::BufferState::kFree, 1));
  mapping.return_slots(1)[0].store(0);
  mapping.return_ring(1).tail.store(1);
  st::WritableBuffer buffer;
  EXPECT_EQ(producer.acquire_until(buffer, st::Deadline::immediate(), 1), st::Status::kCorrupt);
  EXPECT_NE(producer.corruption().find("sent to another subpartition"), std::string::npos)
      << producer.corruption();
}

TEST(PartitionHostile, BadSubpartitionCountInTheHeaderIsRefused) {
  for (const std::uint32_t bad : {0U, 65U, 2U}) {
    ChannelGuard guard(unique_channel("badk"));
    auto producer =
        st::Producer::create(guard.name(), partitioned(3, st::Partitioner::kRoundRobin));
    RawSegment(guard.name()).header().config.subpartitions = bad;
    const std::string error = setup_error([&] { (void)st::Consumer::open(guard.name()); });
    EXPECT_NE(error.find("corrupt"), std::string::npos) << bad << ": " << error;
  }
  ChannelGuard guard(unique_channel("badpart"));
  auto producer = st::Producer::create(guard.name(), partitioned(3, st::Partitioner::kRoundRobin));
  RawSegment(guard.name()).header().config.partitioner = 4;
  const std::string error = setup_error([&] { (void)st::Consumer::open(guard.name()); });
  EXPECT_NE(error.find("partitioner 4"), std::string::npos) << error;
}

// A successor producer reads every state word and ring index its dead
// predecessor and the consumers left; forged ones make it corrupt (with the
// reason), never hand out a buffer twice.
TEST(PartitionHostile, ATakeoverFindingAStateWordOfNoSubpartitionIsCorrupt) {
  ChannelGuard guard(unique_channel("hostile-takeover"));
  {
    auto producer =
        st::Producer::create(guard.name(), partitioned(3, st::Partitioner::kRoundRobin, 8));
    ASSERT_EQ(commit_seq(producer, 0), st::Status::kOk);
    // A free buffer said to be freed by subpartition 7 of 3.
    producer.mapping().buffer_states()[5].store(st::state_word(st::BufferState::kFree, 7));
  }
  auto successor = st::Producer::attach(guard.name());
  st::WritableBuffer buffer;
  EXPECT_EQ(successor.try_acquire(buffer), st::Status::kCorrupt);
  EXPECT_NE(successor.corruption().find("names no place in this fan-out"), std::string::npos)
      << successor.corruption();
}

TEST(PartitionHostile, ATakeoverFindingBroadcastRingsTwoPublishesApartIsCorrupt) {
  ChannelGuard guard(unique_channel("hostile-bc-tails"));
  {
    auto producer =
        st::Producer::create(guard.name(), partitioned(3, st::Partitioner::kBroadcast, 8));
    ASSERT_EQ(commit_seq(producer, 0), st::Status::kOk);
    ASSERT_EQ(commit_seq(producer, 1), st::Status::kOk);
    producer.mapping().data_ring(1).tail.store(0);  // two publishes behind the others
  }
  auto successor = st::Producer::attach(guard.name());
  st::WritableBuffer buffer;
  EXPECT_EQ(successor.try_acquire(buffer), st::Status::kCorrupt);
  EXPECT_NE(successor.corruption().find("more than one publish apart"), std::string::npos)
      << successor.corruption();
}

TEST(PartitionHostile, ImpossibleStateWordsAreReportedByTheCheck) {
  ChannelGuard guard(unique_channel("badstate"));
  auto producer = st::Producer::create(guard.name(), partitioned(2, st::Partitioner::kKey, 4));
  st::WritableBuffer buffer;
  ASSERT_EQ(producer.acquire_until(buffer, st::Deadline::immediate(), 1), st::Status::kOk);
  const std::uint32_t index = buffer.index();
  ASSERT_EQ(producer.commit(std::move(buffer), 8), st::Status::kOk);
  // Queued for 1, in data ring 1: sound. Then claim it is queued for 0.
  EXPECT_TRUE(st::check_ownership(producer.mapping(), {1, 1ms}).sound());
  producer.mapping().buffer_states()[index].store(st::state_word(st::BufferState::kQueued, 0));
  auto report = st::check_ownership(producer.mapping(), {1, 1ms});
  ASSERT_FALSE(report.sound());
  EXPECT_NE(report.problems.front().find("data ring 1 but marked queued (subpartition 0)"),
            std::string::npos)
      << report.problems.front();
  // A subpartition that does not exist.
  producer.mapping().buffer_states()[index].store(st::state_word(st::BufferState::kReading, 9));
  report = st::check_ownership(producer.mapping(), {1, 1ms});
  ASSERT_FALSE(report.sound());
  EXPECT_NE(report.problems.front().find("impossible"), std::string::npos)
      << report.problems.front();
}

// --- the tools ---------------------------------------------------------------------

std::string tool(const char* name) {
  return std::string(SLUICE_TOOLS_DIR) + "/" + name;
}

std::string read_all(FILE* pipe, int& status) {
  std::string out;
  std::array<char, 4096> chunk{};
  while (std::fgets(chunk.data(), chunk.size(), pipe) != nullptr) {
    out += chunk.data();
  }
  const int raw = pclose(pipe);
  status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return out;
}

std::string last_line(const std::string& text) {
  const auto end = text.find_last_not_of('\n');
  const auto start = text.rfind('\n', end);
  const auto from = start == std::string::npos ? 0 : start + 1;
  return text.substr(from, end - from + 1);
}

// The number after "key": in a JSON line; -1 if absent or null.
long long json_number(const std::string& line, const std::string& key) {
  const auto at = line.find("\"" + key + "\":");
  if (at == std::string::npos) {
    return -1;
  }
  const char* text = line.c_str() + at + key.size() + 3;
  return *text >= '0' && *text <= '9' ? std::strtoll(text, nullptr, 10) : -1;
}

struct ToolsRun {
  int producer_status = -1;
  std::string producer_out;
  std::vector<int> consumer_status;
  std::vector<std::string> consumer_summary;
};

ToolsRun run_fan_out(const std::string& channel, std::uint32_t k, const std::string& partition,
                     std::uint64_t n) {
  ToolsRun run;
  std::vector<FILE*> consumers;
  for (std::uint32_t s = 0; s < k; ++s) {
    const std::string command = tool("sluice-consumer") + " --channel " + channel +
                                " --subpartition " + std::to_string(s) + " --json 2>&1";
    consumers.push_back(popen(command.c_str(), "r"));
  }
  const std::string command = tool("sluice-producer") + " --channel " + channel + " --records " +
                              std::to_string(n) + " --size 24 --consumers " + std::to_string(k) +
                              " --partition " + partition + " --json 2>&1";
  FILE* producer = popen(command.c_str(), "r");
  run.producer_out = read_all(producer, run.producer_status);
  for (FILE* consumer : consumers) {
    int status = -1;
    run.consumer_summary.push_back(last_line(read_all(consumer, status)));
    run.consumer_status.push_back(status);
  }
  return run;
}

TEST(PartitionTools, RoundRobinConsumersTogetherReceiveEveryRecordExactlyOnce) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint64_t kN = 30001;
  ChannelGuard guard(unique_channel("tools-rr"));
  const ToolsRun run = run_fan_out(guard.name(), kK, "round-robin", kN);
  EXPECT_EQ(run.producer_status, 0) << run.producer_out;
  const std::string producer_summary = last_line(run.producer_out);
  EXPECT_NE(producer_summary.find("\"partition\":\"round-robin\""), std::string::npos)
      << producer_summary;
  std::uint64_t total = 0;
  for (std::uint32_t s = 0; s < kK; ++s) {
    const std::string& summary = run.consumer_summary[s];
    EXPECT_EQ(run.consumer_status[s], 0) << summary;
    EXPECT_NE(summary.find("\"ok\":true"), std::string::npos) << summary;
    EXPECT_NE(summary.find("\"partition\":\"round-robin\""), std::string::npos) << summary;
    EXPECT_EQ(json_number(summary, "subpartition"), s) << summary;
    EXPECT_EQ(json_number(summary, "lost"), 0) << summary;
    EXPECT_EQ(json_number(summary, "duplicated"), 0) << summary;
    EXPECT_EQ(json_number(summary, "corrupt"), 0) << summary;
    // Exactly s, s+K, ...: the first and last of them, and as many as there are.
    const long long expected = (kN - s + kK - 1) / kK;
    EXPECT_EQ(json_number(summary, "records"), expected) << summary;
    EXPECT_EQ(json_number(summary, "first_seq"), s) << summary;
    EXPECT_EQ(json_number(summary, "last_seq"), static_cast<long long>(s + (expected - 1) * kK))
        << summary;
    total += static_cast<std::uint64_t>(std::max(0LL, json_number(summary, "records")));
  }
  EXPECT_EQ(total, kN);
}

TEST(PartitionTools, LeastLoadedConsumersTogetherReceiveEveryRecord) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint64_t kN = 30000;
  ChannelGuard guard(unique_channel("tools-ll"));
  const ToolsRun run = run_fan_out(guard.name(), kK, "least-loaded", kN);
  EXPECT_EQ(run.producer_status, 0) << run.producer_out;
  std::uint64_t total = 0;
  for (std::uint32_t s = 0; s < kK; ++s) {
    EXPECT_EQ(run.consumer_status[s], 0) << run.consumer_summary[s];
    total +=
        static_cast<std::uint64_t>(std::max(0LL, json_number(run.consumer_summary[s], "records")));
  }
  EXPECT_EQ(total, kN);
}

TEST(PartitionTools, BroadcastConsumersEachReceiveEveryRecord) {
  constexpr std::uint32_t kK = 3;
  constexpr std::uint64_t kN = 30000;
  ChannelGuard guard(unique_channel("tools-bc"));
  const ToolsRun run = run_fan_out(guard.name(), kK, "broadcast", kN);
  EXPECT_EQ(run.producer_status, 0) << run.producer_out;
  const std::string producer_summary = last_line(run.producer_out);
  EXPECT_NE(producer_summary.find("\"partition\":\"broadcast\""), std::string::npos)
      << producer_summary;
  for (std::uint32_t s = 0; s < kK; ++s) {
    const std::string& summary = run.consumer_summary[s];
    EXPECT_EQ(run.consumer_status[s], 0) << summary;
    EXPECT_NE(summary.find("\"ok\":true"), std::string::npos) << summary;
    EXPECT_NE(summary.find("\"partition\":\"broadcast\""), std::string::npos) << summary;
    EXPECT_EQ(json_number(summary, "subpartition"), s) << summary;
    EXPECT_EQ(json_number(summary, "records"), static_cast<long long>(kN)) << summary;
    EXPECT_EQ(json_number(summary, "lost"), 0) << summary;
    EXPECT_EQ(json_number(summary, "duplicated"), 0) << summary;
    EXPECT_EQ(json_number(summary, "first_seq"), 0) << summary;
    EXPECT_EQ(json_number(summary, "last_seq"), static_cast<long long>(kN - 1)) << summary;
  }
}

TEST(PartitionTools, ConsumerWithoutASubpartitionIsToldToNameOne) {
  ChannelGuard guard(unique_channel("tools-nosub"));
  auto producer = st::Producer::create(guard.name(), partitioned(3, st::Partitioner::kRoundRobin));
  int status = -1;
  const std::string out = read_all(popen((tool("sluice-consumer") + " --channel " + guard.name() +
                                          " --records 10 --size 24 2>&1")
                                             .c_str(),
                                         "r"),
                                   status);
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("has 3 subpartitions; read one with --subpartition 0..2"), std::string::npos)
      << out;
}

TEST(PartitionTools, UnknownPartitionerIsRefusedWithExitTwo) {
  ChannelGuard guard(unique_channel("tools-badpart"));
  int status = -1;
  const std::string bad =
      read_all(popen((tool("sluice-producer") + " --channel " + guard.name() +
                      " --records 10 --size 24 --consumers 2 --partition random 2>&1")
                         .c_str(),
                     "r"),
               status);
  EXPECT_EQ(status, 2) << bad;
}

}  // namespace
