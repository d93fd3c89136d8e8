// Real producer and consumer processes (fork) moving records through one
// channel: volume, large records, backpressure, close and peer death.

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/sequence_pattern.hpp"
#include "test_support.hpp"

namespace st = sluice::transport;
using namespace std::chrono_literals;
using sluice::test::ChannelGuard;
using sluice::test::ChildProcess;
using sluice::test::Signal;
using sluice::test::unique_channel;

namespace {

// Exit codes of the checking consumer.
constexpr int kIntact = 0;
constexpr int kWrongCount = 10;
constexpr int kOutOfOrder = 11;
constexpr int kBadBytes = 12;
constexpr int kNoEndOfStream = 13;

int consume_and_check(const std::string& channel, std::uint64_t records, std::size_t size) {
  st::OpenOptions open;
  open.wait_for_channel = 30s;
  auto consumer = st::Consumer::open(channel, open);
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  std::uint64_t expected = 0;
  st::Status status;
  while ((status = reader.next_for(record, 60s)) == st::Status::kOk) {
    if (record.size() != size) {
      return kWrongCount;
    }
    if (st::pattern::sequence_of(record) != expected) {
      return kOutOfOrder;
    }
    if (!st::pattern::body_matches(record, expected)) {
      return kBadBytes;
    }
    ++expected;
  }
  if (status != st::Status::kClosed) {
    return kNoEndOfStream;
  }
  return expected == records ? kIntact : kWrongCount;
}

void produce(const std::string& channel, std::uint64_t records, std::size_t size,
             const st::ChannelConfig& config = {}) {
  auto producer = st::Producer::create(channel, config);
  st::RecordWriter writer(producer);
  std::vector<std::byte> record(size);
  for (std::uint64_t i = 0; i < records; ++i) {
    st::pattern::fill(record, i);
    ASSERT_EQ(writer.write(record), st::Status::kOk) << "record " << i;
  }
  ASSERT_EQ(writer.close(), st::Status::kOk);
}

TEST(CrossProcess, TenMillionEightByteRecordsArriveCompleteAndInOrder) {
  ChannelGuard guard(unique_channel("10m"));
  constexpr std::uint64_t kRecords = 10'000'000;
  ChildProcess consumer([&] { return consume_and_check(guard.name(), kRecords, 8); });
  produce(guard.name(), kRecords, 8);
  EXPECT_EQ(consumer.wait(), kIntact);
}

TEST(CrossProcess, ThousandOneMebibyteRecordsArriveCompleteAndInOrder) {
  ChannelGuard guard(unique_channel("1mib"));
  constexpr std::uint64_t kRecords = 1000;
  ChildProcess consumer([&] { return consume_and_check(guard.name(), kRecords, 1 << 20); });
  produce(guard.name(), kRecords, 1 << 20);
  EXPECT_EQ(consumer.wait(), kIntact);
}

TEST(CrossProcess, ConsumerMayStartBeforeTheProducer) {
  ChannelGuard guard(unique_channel("early"));
  ChildProcess consumer([&] { return consume_and_check(guard.name(), 5000, 64); });
  // The consumer is already waiting for the channel to appear.
  produce(guard.name(), 5000, 64);
  EXPECT_EQ(consumer.wait(), kIntact);
}

TEST(CrossProcess, ProducerBlocksWhileTheConsumerHoldsEveryBufferAndResumesOnRelease) {
  ChannelGuard guard(unique_channel("backpressure"));
  st::ChannelConfig config;
  config.buffer_count = 4;
  config.buffer_bytes = 4096;
  auto producer = st::Producer::create(guard.name(), config);
  Signal holding;
  Signal release;
  ChildProcess consumer([&] {
    auto c = st::Consumer::open(guard.name());
    std::vector<st::ReadableBuffer> held(4);
    for (auto& buffer : held) {
      if (c.receive_for(buffer, 30s) != st::Status::kOk) {
        return 1;
      }
    }
    holding.notify();
    if (!release.wait()) {
      return 2;
    }
    held.clear();  // releases all four
    st::ReadableBuffer more;
    return c.receive_for(more, 30s) == st::Status::kOk ? 0 : 3;
  });
  for (int i = 0; i < 4; ++i) {
    st::WritableBuffer buffer;
    ASSERT_EQ(producer.acquire_for(buffer, 30s), st::Status::kOk);
    ASSERT_EQ(producer.commit(std::move(buffer), 100), st::Status::kOk);
  }
  ASSERT_TRUE(holding.wait());
  st::WritableBuffer buffer;
  EXPECT_EQ(producer.acquire_for(buffer, 100ms), st::Status::kTimeout);
  release.notify();
  ASSERT_EQ(producer.acquire_for(buffer, 30s), st::Status::kOk);
  ASSERT_EQ(producer.commit(std::move(buffer), 100), st::Status::kOk);
  EXPECT_EQ(consumer.wait(), 0);
  EXPECT_GE(producer.mapping().control().producer_counters.blocked_ns.load(),
            std::chrono::nanoseconds(100ms).count());
}

TEST(CrossProcess, KilledProducerEndsTheStreamAsPeerDiedAfterTheDrain) {
  ChannelGuard guard(unique_channel("producerdies"));
  Signal committed;
  ChildProcess producer([&] {
    auto p = st::Producer::create(guard.name());
    st::RecordWriter writer(p);
    std::vector<std::byte> record(64);
    for (std::uint64_t i = 0; i < 100; ++i) {
      st::pattern::fill(record, i);
      if (writer.write(record) != st::Status::kOk) {
        return 1;
      }
    }
    if (writer.flush() != st::Status::kOk) {
      return 2;
    }
    committed.notify();
    for (;;) {
      pause();  // killed here, without closing
    }
  });
  ASSERT_TRUE(committed.wait());
  auto consumer = st::Consumer::open(guard.name());
  producer.kill_now();
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  std::uint64_t received = 0;
  st::Status status;
  while ((status = reader.next_for(record, 30s)) == st::Status::kOk) {
    ++received;
  }
  EXPECT_EQ(status, st::Status::kPeerDied);
  EXPECT_EQ(received, 100U);
  EXPECT_EQ(producer.wait(), 128 + SIGKILL);
}

TEST(CrossProcess, KilledConsumerWakesABlockedProducerWithPeerDied) {
  ChannelGuard guard(unique_channel("consumerdies"));
  st::ChannelConfig config;
  config.buffer_count = 2;
  auto producer = st::Producer::create(guard.name(), config);
  Signal attached;
  ChildProcess consumer([&]() -> int {
    auto c = st::Consumer::open(guard.name());
    attached.notify();
    for (;;) {
      pause();  // never receives
    }
  });
  ASSERT_TRUE(attached.wait());
  for (int i = 0; i < 2; ++i) {
    st::WritableBuffer buffer;
    ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk);
    ASSERT_EQ(producer.commit(std::move(buffer), 1), st::Status::kOk);
  }
  consumer.kill_now();
  st::WritableBuffer buffer;
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(producer.acquire_for(buffer, 60s), st::Status::kPeerDied);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 30s);
  EXPECT_EQ(consumer.wait(), 128 + SIGKILL);
}

TEST(CrossProcess, BlockedProducerFollowsASlowConsumer) {
  // Every record makes it although the consumer sleeps now and then with a
  // pool far smaller than the stream: backpressure, not loss.
  ChannelGuard guard(unique_channel("slow"));
  constexpr std::uint64_t kRecords = 20'000;
  ChildProcess consumer([&] {
    st::OpenOptions open;
    open.wait_for_channel = 30s;
    auto c = st::Consumer::open(guard.name(), open);
    st::RecordReader reader(c);
    std::span<const std::byte> record;
    std::uint64_t expected = 0;
    st::Status status;
    while ((status = reader.next_for(record, 60s)) == st::Status::kOk) {
      if (st::pattern::sequence_of(record) != expected++ ||
          !st::pattern::body_matches(record, expected - 1)) {
        return 1;
      }
      if (expected % 2000 == 0) {
        std::this_thread::sleep_for(5ms);  // a slow consumer, on purpose
      }
    }
    return status == st::Status::kClosed && expected == kRecords ? 0 : 2;
  });
  st::ChannelConfig config;
  config.buffer_count = 2;
  config.buffer_bytes = 1024;
  produce(guard.name(), kRecords, 100, config);
  EXPECT_EQ(consumer.wait(), 0);
}

}  // namespace
