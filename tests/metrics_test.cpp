// Metrics in the segment, the ownership check, and the observer's derived
// rates.

#include <gtest/gtest.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <chrono>
#include <thread>
#include <vector>

#include "sluice/shm/segment_name.hpp"
#include "sluice/transport/channel_metrics.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/ownership_check.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_frame.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/sequence_pattern.hpp"
#include "test_support.hpp"

namespace st = sluice::transport;
namespace bip = boost::interprocess;
using namespace std::chrono_literals;
using sluice::test::ChannelGuard;
using sluice::test::unique_channel;

namespace {

st::ChannelConfig config_of(std::uint32_t buffers, std::uint32_t bytes) {
  st::ChannelConfig config;
  config.buffer_count = buffers;
  config.buffer_bytes = bytes;
  config.flush_timeout = -1ns;  // hand over only when full or flushed: exact buffer counts
  return config;
}

TEST(Metrics, CountersAreExactForAKnownTransfer) {
  ChannelGuard guard(unique_channel("counters"));
  auto producer = st::Producer::create(guard.name(), config_of(8, 1024));
  auto consumer = st::Consumer::open(guard.name());
  // 1000 records of 60 bytes, in runs: a run header (8 bytes) and 16 records
  // per 1024-byte buffer (17 would take 1028), so 62 full buffers and one
  // with 8 records.
  std::thread writer_thread([&producer] {
    st::RecordWriter writer(producer);
    std::vector<std::byte> record(60);
    for (std::uint64_t i = 0; i < 1000; ++i) {
      st::pattern::fill(record, i);
      ASSERT_EQ(writer.write(record), st::Status::kOk);
    }
    ASSERT_EQ(writer.close(), st::Status::kOk);
  });
  {
    st::RecordReader reader(consumer);
    std::span<const std::byte> record;
    std::uint64_t read = 0;
    while (reader.next_for(record, 30s) == st::Status::kOk) {
      ++read;
    }
    EXPECT_EQ(read, 1000U);
  }
  writer_thread.join();
  const st::ChannelObserver observer(guard.name());
  const st::ChannelSnapshot s = observer.snapshot();
  EXPECT_EQ(s.produced.records, 1000U);
  EXPECT_EQ(s.consumed.records, 1000U);
  const std::uint64_t framed_bytes =
      62 * (st::frame::kRunHeaderBytes + 16 * 60) + st::frame::kRunHeaderBytes + 8 * 60;
  EXPECT_EQ(s.produced.bytes, framed_bytes);
  EXPECT_EQ(s.consumed.bytes, framed_bytes);
  EXPECT_EQ(s.produced.buffers, 63U);
  EXPECT_EQ(s.consumed.buffers, 63U);
  EXPECT_TRUE(s.closed);
  EXPECT_EQ(s.pool.free, 8U);
  EXPECT_EQ(s.pool.total(), 8U);
}

TEST(Metrics, BlockedTimeGrowsWhileTheConsumerStalls) {
  ChannelGuard guard(unique_channel("blocked"));
  auto producer = st::Producer::create(guard.name(), config_of(2, 256));
  auto consumer = st::Consumer::open(guard.name());
  for (int i = 0; i < 2; ++i) {
    st::WritableBuffer buffer;
    ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk);
    ASSERT_EQ(producer.commit(std::move(buffer), 10), st::Status::kOk);
  }
  std::thread blocked([&producer] {
    st::WritableBuffer buffer;
    EXPECT_EQ(producer.acquire_for(buffer, 30s), st::Status::kOk);
  });
  const st::ChannelObserver observer(guard.name());
  // The wait in progress counts before it ends.
  ASSERT_TRUE(sluice::test::eventually([&] { return observer.snapshot().produced.waited_ns > 0; }));
  const auto first = observer.snapshot().produced.waited_ns;
  ASSERT_TRUE(
      sluice::test::eventually([&] { return observer.snapshot().produced.waited_ns > first; }));
  st::ReadableBuffer received;
  ASSERT_EQ(consumer.try_receive(received), st::Status::kOk);
  received.reset();  // the stall ends
  blocked.join();
  EXPECT_GT(producer.mapping().control().producer_counters.blocked_ns.load(), 0U);
  EXPECT_EQ(producer.mapping().control().producer_counters.blocked_since_ns.load(), 0U);
  EXPECT_EQ(observer.snapshot().consumed.waited_ns, 0U);  // the consumer never waited
}

TEST(Metrics, IdleTimeGrowsWhileTheProducerStalls) {
  ChannelGuard guard(unique_channel("idle"));
  auto producer = st::Producer::create(guard.name(), config_of(2, 256));
  auto consumer = st::Consumer::open(guard.name());
  std::thread waiting([&consumer] {
    st::ReadableBuffer buffer;
    EXPECT_EQ(consumer.receive_for(buffer, 30s), st::Status::kOk);
  });
  const st::ChannelObserver observer(guard.name());
  ASSERT_TRUE(sluice::test::eventually([&] { return observer.snapshot().consumed.waited_ns > 0; }));
  const auto first = observer.snapshot().consumed.waited_ns;
  ASSERT_TRUE(
      sluice::test::eventually([&] { return observer.snapshot().consumed.waited_ns > first; }));
  st::WritableBuffer buffer;
  ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk);
  ASSERT_EQ(producer.commit(std::move(buffer), 10), st::Status::kOk);
  waiting.join();
  EXPECT_GT(consumer.mapping().control().consumer_counters.idle_ns.load(), 0U);
  EXPECT_EQ(observer.snapshot().produced.waited_ns, 0U);
}

TEST(Metrics, DerivedRatesFollowFlink) {
  st::ChannelSnapshot before;
  st::ChannelSnapshot after;
  before.taken_ns = 1'000'000'000;
  after.taken_ns = 3'000'000'000;  // 2 s later
  before.produced = {100, 6400, 1, 0, false};
  after.produced = {2100, 134400, 5, 600'000'000, false};  // blocked 0.6 s of 2 s
  before.consumed = {100, 6400, 1, 0, false};
  after.consumed = {2100, 134400, 5, 200'000'000, false};
  after.pool = {2, 1, 4, 1, 0};
  const auto r = st::derive_rates(before, after, config_of(8, 32768));
  EXPECT_DOUBLE_EQ(r.seconds, 2.0);
  EXPECT_DOUBLE_EQ(r.records_out_per_sec, 1000.0);
  EXPECT_DOUBLE_EQ(r.bytes_in_per_sec, 64000.0);
  EXPECT_DOUBLE_EQ(r.backpressured_ms_per_sec, 300.0);
  EXPECT_DOUBLE_EQ(r.producer_busy_ms_per_sec, 700.0);
  EXPECT_DOUBLE_EQ(r.idle_ms_per_sec, 100.0);
  EXPECT_DOUBLE_EQ(r.out_pool_usage, 0.75);
  EXPECT_DOUBLE_EQ(r.buffer_fill, 128000.0 / (4 * 32768.0));
  EXPECT_EQ(r.level, st::BackpressureLevel::kLow);
  EXPECT_EQ(st::backpressure_level(100), st::BackpressureLevel::kOk);
  EXPECT_EQ(st::backpressure_level(101), st::BackpressureLevel::kLow);
  EXPECT_EQ(st::backpressure_level(500), st::BackpressureLevel::kLow);
  EXPECT_EQ(st::backpressure_level(501), st::BackpressureLevel::kHigh);
}

// Pokes a channel's rings directly, as a broken peer or a crash would leave them.
class PlantedFault : public ::testing::Test {
 protected:
  void SetUp() override {
    producer_.emplace(st::Producer::create(guard_.name(), config_of(4, 256)));
    object_ = bip::shared_memory_object(
        bip::open_only, sluice::shm::object_name(guard_.name()).c_str(), bip::read_write);
    region_ = bip::mapped_region(object_, bip::read_write);
  }
  std::byte* base() { return static_cast<std::byte*>(region_.get_address()); }
  const st::ChannelMapping& mapping() { return producer_->mapping(); }
  st::RingIndices& return_ring() {
    return *reinterpret_cast<st::RingIndices*>(
        base() +
        (reinterpret_cast<std::byte*>(&mapping().return_ring()) - mapping().segment().base()));
  }
  st::RingSlot* return_slots() {
    return reinterpret_cast<st::RingSlot*>(reinterpret_cast<std::byte*>(&return_ring()) +
                                           sizeof(st::RingIndices));
  }
  st::OwnershipReport check() {
    const st::ChannelObserver observer(guard_.name());
    return st::check_ownership(observer.mapping(), {2, 1ms});
  }
  static bool mentions(const st::OwnershipReport& report, const std::string& text) {
    for (const auto& problem : report.problems) {
      if (problem.find(text) != std::string::npos) return true;
    }
    return false;
  }

  ChannelGuard guard_{unique_channel("planted")};
  std::optional<st::Producer> producer_;
  bip::shared_memory_object object_;
  bip::mapped_region region_;
};

TEST_F(PlantedFault, HealthyChannelIsSound) {
  const auto report = check();
  EXPECT_TRUE(report.sound()) << report.problems.front();
  EXPECT_EQ(report.places.in_return_ring, 4U);
}

TEST_F(PlantedFault, HeldAndQueuedBuffersAreAttributed) {
  auto consumer = st::Consumer::open(guard_.name());
  std::vector<st::WritableBuffer> writing(2);
  for (auto& b : writing) ASSERT_EQ(producer_->try_acquire(b), st::Status::kOk);
  ASSERT_EQ(producer_->commit(std::move(writing[0]), 1), st::Status::kOk);
  st::WritableBuffer another;
  ASSERT_EQ(producer_->try_acquire(another), st::Status::kOk);
  ASSERT_EQ(producer_->commit(std::move(another), 1), st::Status::kOk);
  st::ReadableBuffer reading;
  ASSERT_EQ(consumer.try_receive(reading), st::Status::kOk);
  const auto report = check();
  EXPECT_TRUE(report.sound()) << report.problems.front();
  EXPECT_EQ(report.places.in_return_ring, 1U);
  EXPECT_EQ(report.places.with_producer, 1U);
  EXPECT_EQ(report.places.in_data_ring, 1U);
  EXPECT_EQ(report.places.with_consumer, 1U);
}

TEST_F(PlantedFault, LeakedBufferIsFound) {
  // Advance the return ring's head past buffer 0 as if it had been taken,
  // while nobody holds it: it is free but in no ring.
  return_ring().head.store(return_ring().head.load() + 1);
  const auto report = check();
  EXPECT_FALSE(report.sound());
  EXPECT_TRUE(mentions(report, "buffer 0 is leaked")) << report.problems.front();
}

TEST_F(PlantedFault, DuplicatedBufferIsFound) {
  std::vector<st::WritableBuffer> held(4);
  for (auto& b : held) ASSERT_EQ(producer_->try_acquire(b), st::Status::kOk);
  held.clear();  // abandoned: back to the producer's private list, states "being written"
  const auto tail = return_ring().tail.load();
  return_slots()[tail & 3].store(2);
  return_slots()[(tail + 1) & 3].store(2);
  return_ring().tail.store(tail + 2);
  const auto report = check();
  EXPECT_TRUE(mentions(report, "buffer 2 is in the return ring more than once"))
      << report.problems.front();
}

TEST_F(PlantedFault, OutOfRangeIndexIsFound) {
  std::vector<st::WritableBuffer> held(4);
  for (auto& b : held) ASSERT_EQ(producer_->try_acquire(b), st::Status::kOk);
  const auto tail = return_ring().tail.load();
  return_slots()[tail & 3].store(1234);
  return_ring().tail.store(tail + 1);
  const auto report = check();
  EXPECT_TRUE(mentions(report, "out-of-range buffer index 1234")) << report.problems.front();
}

TEST_F(PlantedFault, BufferHeldByADeadConsumerIsReported) {
  st::WritableBuffer buffer;
  ASSERT_EQ(producer_->try_acquire(buffer), st::Status::kOk);
  ASSERT_EQ(producer_->commit(std::move(buffer), 1), st::Status::kOk);
  sluice::test::ChildProcess consumer([&]() -> int {
    auto c = st::Consumer::open(guard_.name());
    st::ReadableBuffer view;
    if (c.receive_for(view, 10s) != st::Status::kOk) return 1;
    _exit(0);  // dies holding the buffer
  });
  ASSERT_EQ(consumer.wait(), 0);
  const auto report = check();
  EXPECT_TRUE(mentions(report, "held by a consumer that is gone")) << report.problems.front();
}

TEST(OwnershipCheck, LiveChannelUnderLoadIsSound) {
  ChannelGuard guard(unique_channel("live"));
  auto producer = st::Producer::create(guard.name(), config_of(4, 256));
  auto consumer = st::Consumer::open(guard.name());
  std::atomic<bool> stop{false};
  std::thread writer_thread([&] {
    st::RecordWriter writer(producer);
    std::vector<std::byte> record(16);
    for (std::uint64_t i = 0; !stop.load(); ++i) {
      st::pattern::fill(record, i);
      if (writer.write_for(record, 5s) != st::Status::kOk) break;
    }
    (void)writer.close();
  });
  std::thread reader_thread([&] {
    st::RecordReader reader(consumer);
    std::span<const std::byte> record;
    while (reader.next_for(record, 5s) == st::Status::kOk) {
    }
  });
  const st::ChannelObserver observer(guard.name());
  // A hand-over caught half done looks like a leak in one snapshot; the
  // check reports only what all its snapshots show. Spread over 350 ms, a
  // thread preempted mid-hand-over on a loaded machine does not span them,
  // while a real leak would.
  for (int i = 0; i < 5; ++i) {
    const auto report = st::check_ownership(observer.mapping(), {8, std::chrono::milliseconds(50)});
    EXPECT_TRUE(report.sound()) << report.problems.front();
  }
  stop = true;
  writer_thread.join();
  reader_thread.join();
}

}  // namespace
