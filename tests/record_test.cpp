// Record framing through a real channel in one process: batching, spanning,
// flush policy, and rejection of malformed frames.

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_frame.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/sequence_pattern.hpp"
#include "sluice/transport/write_claim.hpp"
#include "test_support.hpp"

namespace st = sluice::transport;
using namespace std::chrono_literals;
using sluice::test::ChannelGuard;
using sluice::test::unique_channel;

namespace {

st::ChannelConfig config_of(std::uint32_t buffers, std::uint32_t bytes,
                            std::chrono::nanoseconds flush = -1ns) {
  st::ChannelConfig config;
  config.buffer_count = buffers;
  config.buffer_bytes = bytes;
  config.flush_timeout = flush;
  return config;
}

std::vector<std::byte> pattern_record(std::size_t size, std::uint64_t seq) {
  std::vector<std::byte> record(size);
  if (size >= 8) {
    st::pattern::fill(record, seq);
  } else {
    for (std::size_t i = 0; i < size; ++i) {
      record[i] = static_cast<std::byte>(seq + i);
    }
  }
  return record;
}

// Reads pattern records 0.. of `sizes` in order, each intact, then the end.
void expect_pattern_records(st::RecordReader& reader, const std::vector<std::size_t>& sizes) {
  std::span<const std::byte> record;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    ASSERT_EQ(reader.next_for(record, 30s), st::Status::kOk) << "record " << i;
    const auto expected = pattern_record(sizes[i], i);
    ASSERT_EQ(record.size(), expected.size()) << "record " << i;
    ASSERT_TRUE(std::equal(record.begin(), record.end(), expected.begin())) << "record " << i;
  }
  EXPECT_EQ(reader.next_for(record, 30s), st::Status::kClosed);
}

// Writes `sizes` on one thread and reads them back on another; the pool is
// small, so this also exercises blocking in both directions.
void round_trip(const st::ChannelConfig& config, const std::vector<std::size_t>& sizes,
                st::Publication publication = st::Publication::kWholeBuffers) {
  ChannelGuard guard(unique_channel("records"));
  auto producer = st::Producer::create(guard.name(), config);
  auto consumer = st::Consumer::open(guard.name());
  std::thread writer_thread([&producer, &sizes, publication] {
    st::RecordWriter writer(producer, publication);
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const auto record = pattern_record(sizes[i], i);
      ASSERT_EQ(writer.write(record), st::Status::kOk) << "record " << i;
    }
    ASSERT_EQ(writer.close(), st::Status::kOk);
  });
  st::RecordReader reader(consumer);
  expect_pattern_records(reader, sizes);
  writer_thread.join();
  EXPECT_EQ(reader.records_read(), sizes.size());
}

TEST(Records, SmallRecordsAreBatchedManyPerBuffer) {
  ChannelGuard guard(unique_channel("batch"));
  auto producer = st::Producer::create(guard.name(), config_of(4, 1024));
  auto consumer = st::Consumer::open(guard.name());
  st::RecordWriter writer(producer);
  for (std::uint64_t i = 0; i < 50; ++i) {
    ASSERT_EQ(writer.write(pattern_record(8, i)), st::Status::kOk);
  }
  ASSERT_EQ(writer.flush(), st::Status::kOk);
  st::ReadableBuffer buffer;
  ASSERT_EQ(consumer.try_receive(buffer), st::Status::kOk);
  // One run: one header and count for all 50, then the records back to back.
  EXPECT_EQ(buffer.size(), st::frame::kRunHeaderBytes + 50U * 8);
  EXPECT_EQ(st::frame::read_header(buffer.data().data()), st::frame::kRun | 8U);
  EXPECT_EQ(st::frame::read_header(buffer.data().data() + st::frame::kHeaderBytes), 50U);
  st::ReadableBuffer none;
  EXPECT_EQ(consumer.try_receive(none), st::Status::kWouldBlock);
  EXPECT_EQ(producer.mapping().control().producer_counters.records.load(), 50U);
}

TEST(Records, EveryFormOfNextReturnsWhatIsBufferedAndWaitsOnlyWhenNothingIs) {
  // Each form takes the inline path for a record already in the buffer (in
  // a run and in plain frames) and makes its deadline only to wait.
  ChannelGuard guard(unique_channel("forms"));
  auto producer = st::Producer::create(guard.name(), config_of(4, 1024));
  auto consumer = st::Consumer::open(guard.name());
  st::RecordWriter writer(producer);
  const std::vector<std::size_t> sizes = {8, 8, 8, 24, 40, 16};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    ASSERT_EQ(writer.write(pattern_record(sizes[i], i)), st::Status::kOk);
  }
  ASSERT_EQ(writer.flush(), st::Status::kOk);
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  const auto next_by_form = [&](std::size_t i) {
    switch (i % 4) {
      case 0: return reader.try_next(record);
      case 1: return reader.next(record);
      case 2: return reader.next_for(record, 1ms);
      default: return reader.next_until(record, st::Deadline::immediate());
    }
  };
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    ASSERT_EQ(next_by_form(i), st::Status::kOk) << "record " << i;
    const auto expected = pattern_record(sizes[i], i);
    ASSERT_TRUE(std::equal(record.begin(), record.end(), expected.begin(), expected.end()))
        << "record " << i;
  }
  EXPECT_EQ(reader.records_read(), sizes.size());
  EXPECT_EQ(reader.try_next(record), st::Status::kWouldBlock);
  const auto waited_from = std::chrono::steady_clock::now();
  EXPECT_EQ(reader.next_for(record, 20ms), st::Status::kTimeout);
  EXPECT_GE(std::chrono::steady_clock::now() - waited_from, 20ms);
  EXPECT_EQ(reader.next_until(record, st::Deadline::after(1ms)), st::Status::kTimeout);
  ASSERT_EQ(writer.write(pattern_record(8, 6)), st::Status::kOk);
  ASSERT_EQ(writer.flush(), st::Status::kOk);
  ASSERT_EQ(reader.next_for(record, 30s), st::Status::kOk);
  EXPECT_EQ(st::pattern::sequence_of(record), 6U);
}

TEST(Records, ARunWrittenRecordByRecordIsCountedExactlyWhateverCallComesNext) {
  // write() appends to an open run without counting each record; every
  // other call, and records_written(), must see them all.
  ChannelGuard guard(unique_channel("runcount"));
  auto producer = st::Producer::create(guard.name(), config_of(4, 1024));
  auto consumer = st::Consumer::open(guard.name());
  st::RecordWriter writer(producer);
  std::uint64_t seq = 0;
  for (; seq < 60; ++seq) {
    ASSERT_EQ(writer.write(pattern_record(8, seq)), st::Status::kOk);
    ASSERT_EQ(writer.records_written(), seq + 1);
  }
  ASSERT_EQ(
      writer.write_batch(
          8, 5, [&seq](std::span<std::byte> record) noexcept { st::pattern::fill(record, seq++); }),
      st::Status::kOk);
  EXPECT_EQ(writer.records_written(), 65U);
  ASSERT_EQ(writer.write(pattern_record(8, seq++)), st::Status::kOk);
  std::span<std::byte> in_place;
  ASSERT_EQ(writer.begin_record(8, in_place), st::Status::kOk);
  st::pattern::fill(in_place, seq++);
  ASSERT_EQ(writer.finish_record(), st::Status::kOk);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(writer.write(pattern_record(8, seq++)), st::Status::kOk);
  }
  EXPECT_EQ(writer.records_written(), 70U);
  ASSERT_EQ(writer.flush(), st::Status::kOk);
  // One buffer, committed with the count of every record in it.
  EXPECT_EQ(producer.mapping().control().producer_counters.records.load(), 70U);
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  for (std::uint64_t i = 0; i < 70; ++i) {
    ASSERT_EQ(reader.try_next(record), st::Status::kOk) << "record " << i;
    ASSERT_EQ(record.size(), 8U);
    EXPECT_EQ(st::pattern::sequence_of(record), i);
  }
  EXPECT_EQ(reader.try_next(record), st::Status::kWouldBlock);
}

TEST(Records, CopyPayloadCopiesExactlyTheRecordsBytesAtEverySize) {
  // Each size range has its own overlapping moves: every byte arrives, and
  // none is written before or after the record.
  constexpr std::size_t kGuard = 16;
  for (std::size_t size = 0; size <= 130; ++size) {
    std::vector<std::byte> from(size);
    for (std::size_t i = 0; i < size; ++i) {
      from[i] = static_cast<std::byte>(i * 7 + 1);
    }
    std::vector<std::byte> to(size + 2 * kGuard, std::byte{0xEE});
    st::frame::copy_payload(to.data() + kGuard, from.data(), size);
    for (std::size_t i = 0; i < kGuard; ++i) {
      ASSERT_EQ(to[i], std::byte{0xEE}) << "size " << size << ", before at " << i;
      ASSERT_EQ(to[kGuard + size + i], std::byte{0xEE}) << "size " << size << ", after at " << i;
    }
    ASSERT_TRUE(std::equal(from.begin(), from.end(), to.begin() + kGuard)) << "size " << size;
  }
}

TEST(Records, RunsOfEqualLengthsMixWithOtherFramesAndBufferEnds) {
  // Runs that start after a plain frame, end at a length change, a buffer's
  // end or a spanning record, and single records between them; lengths of
  // 0 (never in a run), 1, the longest in a run and one more.
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < 4'000; ++i) {
    const std::size_t group = (i / 7) % 9;
    const std::size_t lengths[] = {
        8, 1, 0, 8, 24, st::frame::kRunMaxRecordBytes, st::frame::kRunMaxRecordBytes + 1, 13, 300};
    sizes.push_back(i % 11 == 10 ? 5 : lengths[group]);
  }
  round_trip(config_of(4, 2048), sizes);
  round_trip(config_of(3, 256), sizes);  // records of 1 KiB span buffers here
}

TEST(Records, MixedSizesIncludingEmptyAndExactFitsRoundTrip) {
  const std::uint32_t buffer = 256;
  std::vector<std::size_t> sizes = {0, 1, 8, 252, 0, 248, 251, 253, 100, 7, 0};
  for (std::size_t i = 0; i < 200; ++i) {
    sizes.push_back((i * 37) % 260);
  }
  round_trip(config_of(3, buffer), sizes);
}

TEST(Records, RecordsLargerThanABufferSpanSeveral) {
  round_trip(config_of(4, 128),
             {1000, 8, 125, 124, 126, 5000, 3, 128 * 7, 128 * 7 - 4, 128 * 7 + 4, 64 * 1024});
}

TEST(Records, FrameHeaderNeverSplitsAcrossBuffers) {
  // Leaves 1..4 bytes free at a buffer's end before a spanning record.
  std::vector<std::size_t> sizes;
  for (std::size_t tail = 0; tail < 8; ++tail) {
    sizes.push_back(128 - 4 - 4 - tail);
    sizes.push_back(300);
  }
  round_trip(config_of(2, 128), sizes);
}

TEST(Records, ManyRecordsThroughATinyPool) {
  std::vector<std::size_t> sizes(20'000, 16);
  round_trip(config_of(2, 64), sizes);
}

TEST(Records, ZeroFlushTimeoutHandsOverEveryRecord) {
  ChannelGuard guard(unique_channel("flush0"));
  auto producer = st::Producer::create(guard.name(), config_of(8, 1024, 0ns));
  auto consumer = st::Consumer::open(guard.name());
  st::RecordWriter writer(producer);
  ASSERT_EQ(writer.write(pattern_record(8, 1)), st::Status::kOk);
  st::ReadableBuffer buffer;
  ASSERT_EQ(consumer.try_receive(buffer), st::Status::kOk);
  EXPECT_EQ(buffer.size(), st::frame::kHeaderBytes + 8);
}

TEST(Records, ExpiredFlushTimeoutHandsOverAPartialBuffer) {
  ChannelGuard guard(unique_channel("flushdue"));
  // 500 ms: the "not due yet" look comes within it even on a loaded machine.
  auto producer = st::Producer::create(guard.name(), config_of(8, 1024, 500ms));
  auto consumer = st::Consumer::open(guard.name());
  st::RecordWriter writer(producer);
  const auto written = std::chrono::steady_clock::now();
  ASSERT_EQ(writer.write(pattern_record(8, 1)), st::Status::kOk);
  ASSERT_EQ(writer.flush_if_due(), st::Status::kOk);
  st::ReadableBuffer buffer;
  const st::Status early = consumer.try_receive(buffer);
  if (std::chrono::steady_clock::now() - written < 400ms) {
    EXPECT_EQ(early, st::Status::kWouldBlock);  // not due yet
  }
  ASSERT_TRUE(sluice::test::eventually([&] {
    (void)writer.flush_if_due();
    return consumer.try_receive(buffer) == st::Status::kOk;
  }));
  EXPECT_EQ(buffer.size(), st::frame::kHeaderBytes + 8);
}

TEST(Records, WritesCheckTheFlushTimeoutWithoutExplicitCalls) {
  ChannelGuard guard(unique_channel("flushwrite"));
  auto producer = st::Producer::create(guard.name(), config_of(8, 64 * 1024, 1ms));
  auto consumer = st::Consumer::open(guard.name());
  st::RecordWriter writer(producer);
  st::ReadableBuffer buffer;
  // A slow trickle of records: the buffer is far from full, yet it must be
  // handed over once the timeout expires while the writer keeps writing.
  ASSERT_TRUE(sluice::test::eventually([&] {
    EXPECT_EQ(writer.write(pattern_record(8, 0)), st::Status::kOk);
    return consumer.try_receive(buffer) == st::Status::kOk;
  }));
  EXPECT_LT(buffer.size(), 64U * 1024U);
}

TEST(Records, ASlowSteadyStreamIsHandedOverCloseToTheTimeout) {
  ChannelGuard guard(unique_channel("flushslow"));
  auto producer = st::Producer::create(guard.name(), config_of(8, 64 * 1024, 1ms));
  auto consumer = st::Consumer::open(guard.name());
  st::RecordWriter writer(producer);
  st::ReadableBuffer buffer;
  // One record every 200 us, no flush_if_due(): the writer must read the
  // clock often enough on its own that the first buffer goes out after about
  // five records, not after a fixed count of writes. A slower machine only
  // stretches the pauses, which means fewer records per buffer.
  std::uint64_t written = 0;
  ASSERT_TRUE(sluice::test::eventually([&] {
    EXPECT_EQ(writer.write(pattern_record(8, written)), st::Status::kOk);
    ++written;
    std::this_thread::sleep_for(200us);
    return consumer.try_receive(buffer) == st::Status::kOk;
  }));
  const std::size_t records = buffer.size() / (st::frame::kHeaderBytes + 8);
  EXPECT_GE(records, 1U);
  EXPECT_LT(records, 32U) << "the flush timeout was checked too rarely";
}

TEST(InPlace, EveryRecordIsReadableAtOnceWithoutAFlush) {
  ChannelGuard guard(unique_channel("inplace-now"));
  auto producer = st::Producer::create(guard.name(), config_of(4, 1024));
  auto consumer = st::Consumer::open(guard.name());
  st::RecordWriter writer(producer, st::Publication::kEachRecordInPlace);
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  EXPECT_EQ(reader.try_next(record), st::Status::kWouldBlock);
  for (std::uint64_t i = 0; i < 200; ++i) {  // several buffers' worth
    ASSERT_EQ(writer.write(pattern_record(40, i)), st::Status::kOk);
    ASSERT_EQ(reader.try_next(record), st::Status::kOk) << "record " << i;
    ASSERT_EQ(record.size(), 40U);
    EXPECT_TRUE(st::pattern::body_matches(record, i));
    EXPECT_EQ(st::pattern::sequence_of(record), i);
    EXPECT_EQ(reader.try_next(record), st::Status::kWouldBlock);
  }
  ASSERT_EQ(writer.close(), st::Status::kOk);
  EXPECT_EQ(reader.next_for(record, 10s), st::Status::kClosed);
  EXPECT_EQ(writer.records_written(), 200U);
  EXPECT_EQ(reader.records_read(), 200U);
}

TEST(InPlace, RecordsOfEverySizeRoundTripThroughATinyPool) {
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < 5'000; ++i) {
    sizes.push_back((i * 37) % 300);  // 0 .. 299: in place, sealed whole and spanning
  }
  round_trip(config_of(3, 128), sizes, st::Publication::kEachRecordInPlace);
}

TEST(InPlace, ManySmallRecordsRoundTrip) {
  std::vector<std::size_t> sizes(50'000, 8);
  round_trip(config_of(4, 4096), sizes, st::Publication::kEachRecordInPlace);
}

TEST(InPlace, ABlockedReaderIsWokenByARecordPublishedInPlace) {
  ChannelGuard guard(unique_channel("inplace-wake"));
  auto producer = st::Producer::create(guard.name(), config_of(4, 1024));
  auto consumer = st::Consumer::open(guard.name());
  st::WaitPolicy sleep_at_once;  // straight to the futex: the wake-up must arrive
  sleep_at_once.spin_rounds = 0;
  sleep_at_once.yield_rounds = 0;
  consumer.set_wait_policy(sleep_at_once);
  const auto& idle_since = consumer.mapping().control().consumer_counters.idle_since_ns;
  std::thread writer_thread([&] {
    st::RecordWriter writer(producer, st::Publication::kEachRecordInPlace);
    std::uint64_t last_wait = 0;
    for (std::uint64_t i = 0; i < 20; ++i) {
      // Only once the reader waits for this very record: a wait that began
      // after the one for the previous record.
      ASSERT_TRUE(sluice::test::eventually([&] {
        const std::uint64_t since = idle_since.load();
        if (since == 0 || since == last_wait) {
          return false;
        }
        last_wait = since;
        return true;
      }));
      ASSERT_EQ(writer.write(pattern_record(16, i)), st::Status::kOk);
    }
    ASSERT_EQ(writer.close(), st::Status::kOk);
  });
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  for (std::uint64_t i = 0; i < 20; ++i) {
    ASSERT_EQ(reader.next_for(record, 30s), st::Status::kOk) << "record " << i;
    EXPECT_EQ(st::pattern::sequence_of(record), i);
  }
  EXPECT_EQ(reader.next_for(record, 30s), st::Status::kClosed);
  writer_thread.join();
}

// Reads everything with read_batch, stopping every `stop_every`th record.
std::vector<std::vector<std::byte>> read_in_batches(st::RecordReader& reader,
                                                    std::size_t stop_every) {
  std::vector<std::vector<std::byte>> got;
  st::Status status;
  std::size_t calls = 0;
  while ((status = reader.read_batch_until(
              [&](std::span<const std::byte> record) {
                got.emplace_back(record.begin(), record.end());
                return got.size() % stop_every != 0;
              },
              st::Deadline::after(30s))) == st::Status::kOk) {
    ++calls;
  }
  EXPECT_EQ(status, st::Status::kClosed);
  EXPECT_GT(calls, 0U);
  return got;
}

TEST(Batches, ReadBatchYieldsWhatNextWouldInOrder) {
  for (const auto publication :
       {st::Publication::kWholeBuffers, st::Publication::kEachRecordInPlace}) {
    ChannelGuard guard(unique_channel("batch"));
    auto producer = st::Producer::create(guard.name(), config_of(4, 256));
    auto consumer = st::Consumer::open(guard.name());
    std::vector<std::size_t> sizes;
    for (std::size_t i = 0; i < 3'000; ++i) {
      sizes.push_back((i * 53) % 600);  // whole, exact fits and spanning records
    }
    std::thread writer_thread([&] {
      st::RecordWriter writer(producer, publication);
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        ASSERT_EQ(writer.write(pattern_record(sizes[i], i)), st::Status::kOk);
      }
      ASSERT_EQ(writer.close(), st::Status::kOk);
    });
    st::RecordReader reader(consumer);
    const auto got = read_in_batches(reader, 7);  // stops early now and then
    writer_thread.join();
    ASSERT_EQ(got.size(), sizes.size());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      ASSERT_EQ(got[i], pattern_record(sizes[i], i)) << "record " << i;
    }
    EXPECT_EQ(reader.records_read(), sizes.size());
  }
}

TEST(Batches, ARecordWhoseHandlerThrowsCountsAsRead) {
  ChannelGuard guard(unique_channel("batch-throw"));
  auto producer = st::Producer::create(guard.name(), config_of(4, 1024));
  auto consumer = st::Consumer::open(guard.name());
  st::RecordWriter writer(producer);
  for (std::uint64_t i = 0; i < 10; ++i) {
    ASSERT_EQ(writer.write(pattern_record(16, i)), st::Status::kOk);
  }
  ASSERT_EQ(writer.close(), st::Status::kOk);
  st::RecordReader reader(consumer);
  std::uint64_t seen = 0;
  EXPECT_THROW((void)reader.read_batch([&](std::span<const std::byte> record) {
    EXPECT_EQ(st::pattern::sequence_of(record), seen);
    if (++seen == 4) {
      throw std::runtime_error("handler failed");
    }
    return true;
  }),
               std::runtime_error);
  std::span<const std::byte> record;
  ASSERT_EQ(reader.next_for(record, 10s), st::Status::kOk);
  EXPECT_EQ(st::pattern::sequence_of(record), 4U);  // the one that threw is not repeated
  EXPECT_EQ(reader.records_read(), 5U);
}

// What a reader makes of an open buffer whose first frame word is `word`.
st::Status read_open_buffer(std::uint32_t word, const char** why) {
  ChannelGuard guard(unique_channel("inplace-bad"));
  auto producer = st::Producer::create(guard.name(), config_of(4, 256));
  auto consumer = st::Consumer::open(guard.name());
  st::WritableBuffer buffer;
  EXPECT_EQ(producer.try_acquire(buffer), st::Status::kOk);
  std::memset(buffer.data().data(), 0, buffer.capacity());
  std::memcpy(buffer.data().data(), &word, sizeof(word));
  std::span<std::byte> writable;
  EXPECT_EQ(producer.publish_open(std::move(buffer), writable), st::Status::kOk);
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  const st::Status status = reader.next_for(record, 10s);
  *why = reader.framing_error();
  EXPECT_EQ(reader.next_for(record, 10s), status);  // sticky
  return status;
}

TEST(InPlace, AHostileFrameInAnOpenBufferIsReportedNotRead) {
  const char* why = nullptr;
  EXPECT_EQ(read_open_buffer(st::frame::kInPlace | st::frame::kMoreFollows | 8, &why),
            st::Status::kCorrupt);
  ASSERT_NE(why, nullptr);
  EXPECT_NE(std::string(why).find("neither a whole record"), std::string::npos) << why;
  EXPECT_EQ(read_open_buffer(st::frame::kInPlace | 300, &why), st::Status::kCorrupt);
  ASSERT_NE(why, nullptr);
  EXPECT_NE(std::string(why).find("past the end of its buffer"), std::string::npos) << why;
}

class CorruptFrames : public ::testing::Test {
 protected:
  enum class Reading { kNext, kBatch, kRuns };

  // Commits raw bytes as one buffer and returns what the reader makes of
  // it. Read record by record; the batch and run forms must end the same way.
  st::Status read_raw(const std::vector<std::uint8_t>& bytes, const char** why = nullptr) {
    const st::Status status = read_raw_by(bytes, Reading::kNext, why);
    EXPECT_EQ(read_raw_by(bytes, Reading::kBatch, nullptr), status) << "read_batch";
    EXPECT_EQ(read_raw_by(bytes, Reading::kRuns, nullptr), status) << "read_runs_until";
    return status;
  }

 private:
  st::Status read_raw_by(const std::vector<std::uint8_t>& bytes, Reading how, const char** why) {
    ChannelGuard guard(unique_channel("frames"));
    auto producer = st::Producer::create(guard.name(), config_of(4, 256));
    auto consumer = st::Consumer::open(guard.name());
    st::WritableBuffer buffer;
    EXPECT_EQ(producer.try_acquire(buffer), st::Status::kOk);
    std::memcpy(buffer.data().data(), bytes.data(), bytes.size());
    EXPECT_EQ(producer.commit(std::move(buffer), bytes.size()), st::Status::kOk);
    producer.close();
    st::RecordReader reader(consumer);
    std::span<const std::byte> record;
    const auto deadline = st::Deadline::after(5s);
    st::Status status;
    do {
      switch (how) {
        case Reading::kNext: status = reader.next_for(record, 5s); break;
        case Reading::kBatch:
          status =
              reader.read_batch_until([](std::span<const std::byte>) { return true; }, deadline);
          break;
        case Reading::kRuns:
          status = reader.read_runs_until(
              [](std::span<const std::byte>, std::uint64_t) { return true; }, deadline);
          break;
      }
    } while (status == st::Status::kOk);
    if (why != nullptr) {
      *why = reader.framing_error();
    }
    EXPECT_EQ(reader.next_for(record, 5s), status);  // sticky
    return status;
  }
};

TEST_F(CorruptFrames, LengthBeyondTheCommittedBytes) {
  const char* why = nullptr;
  EXPECT_EQ(read_raw({200, 0, 0, 0, 1, 2, 3}, &why), st::Status::kCorrupt);
  ASSERT_NE(why, nullptr);
  EXPECT_NE(std::string(why).find("length"), std::string::npos);
}

TEST_F(CorruptFrames, HeaderCutOffAtTheEnd) {
  EXPECT_EQ(read_raw({1, 0, 0, 0, 9, 2, 0}), st::Status::kCorrupt);
}

TEST_F(CorruptFrames, ContinuationWithoutAStart) {
  EXPECT_EQ(read_raw({1, 0, 0, 0, 9, 1, 0, 0, 0x80, 9}), st::Status::kCorrupt);
}

TEST_F(CorruptFrames, LeadingContinuationAfterATakeoverIsSkipped) {
  // The tail of a record whose start a dead consumer received: skipped, not
  // returned in part; the next record is delivered.
  EXPECT_EQ(read_raw({1, 0, 0, 0x80, 9, 1, 0, 0, 0, 7}), st::Status::kClosed);
}

TEST_F(CorruptFrames, DiscardFrameDropsAHalfRecord) {
  // A discard frame (a producer took over) ends any record in progress.
  EXPECT_EQ(read_raw({0, 0, 0, 0x20, 1, 0, 0, 0, 7}), st::Status::kClosed);
}

TEST_F(CorruptFrames, MoreFollowsButNotLastInBuffer) {
  EXPECT_EQ(read_raw({1, 0, 0, 0x40, 9, 1, 0, 0, 0, 7}), st::Status::kCorrupt);
}

TEST_F(CorruptFrames, RunsThatAreEmptyOrRunPastTheirBuffer) {
  const char* why = nullptr;
  // kRun | 2, count 3: 6 bytes, 5 committed.
  EXPECT_EQ(read_raw({2, 0, 0, 0x90, 3, 0, 0, 0, 1, 2, 3, 4, 5}, &why), st::Status::kCorrupt);
  ASSERT_NE(why, nullptr);
  EXPECT_NE(std::string(why).find("run"), std::string::npos) << why;
  EXPECT_EQ(read_raw({2, 0, 0, 0x90, 0, 0, 0, 0}), st::Status::kCorrupt);  // count 0
  EXPECT_EQ(read_raw({0, 0, 0, 0x90, 5, 0, 0, 0}), st::Status::kCorrupt);  // length 0
  EXPECT_EQ(read_raw({2, 0, 0, 0x90, 0xff, 0xff, 0xff, 0xff, 1, 2}), st::Status::kCorrupt);
  EXPECT_EQ(read_raw({2, 0, 0, 0x90, 1, 0}), st::Status::kCorrupt);  // count cut off
  // A run where a spanning record should continue.
  EXPECT_EQ(read_raw({1, 0, 0, 0x40, 9}), st::Status::kClosed);  // (a record cut short)
  EXPECT_EQ(read_raw({2, 0, 0, 0x90, 3, 0, 0, 0, 1, 2, 3, 4, 5, 6}), st::Status::kClosed);
}

// A closed stream of `count` pattern records of `bytes` each, numbered from
// 0, written in one batch (one run while they fit a buffer).
void write_closed_run(st::Producer& producer, std::size_t bytes, std::uint64_t count) {
  st::RecordWriter writer(producer);
  std::uint64_t sequence = 0;
  ASSERT_EQ(writer.write_batch(bytes, count,
                               [&](std::span<std::byte> record) noexcept {
                                 st::pattern::fill(record, sequence++);
                               }),
            st::Status::kOk);
  ASSERT_EQ(writer.close(), st::Status::kOk);
}

TEST(Batches, ReadBatchStopsInsideARunAndNextContinuesIt) {
  ChannelGuard guard(unique_channel("run-stop"));
  auto producer = st::Producer::create(guard.name(), config_of(4, 4096));
  auto consumer = st::Consumer::open(guard.name());
  write_closed_run(producer, 16, 100);
  st::RecordReader reader(consumer);
  std::uint64_t seen = 0;
  ASSERT_EQ(reader.read_batch([&](std::span<const std::byte> record) {
    EXPECT_EQ(st::pattern::sequence_of(record), seen);
    return ++seen < 30;
  }),
            st::Status::kOk);
  EXPECT_EQ(seen, 30U);
  std::span<const std::byte> record;
  for (; seen < 60; ++seen) {
    ASSERT_EQ(reader.next_for(record, 10s), st::Status::kOk);
    ASSERT_EQ(st::pattern::sequence_of(record), seen);
  }
  EXPECT_THROW((void)reader.read_batch([&](std::span<const std::byte> got) -> bool {
    EXPECT_EQ(st::pattern::sequence_of(got), seen);
    if (++seen == 70) {
      throw std::runtime_error("handler failed");
    }
    return true;
  }),
               std::runtime_error);
  ASSERT_EQ(reader.read_batch([&](std::span<const std::byte> got) {
    EXPECT_EQ(st::pattern::sequence_of(got), seen);
    ++seen;
    return true;
  }),
            st::Status::kOk);
  EXPECT_EQ(seen, 100U);
  EXPECT_EQ(reader.next_for(record, 10s), st::Status::kClosed);
  EXPECT_EQ(reader.records_read(), 100U);
}

// Reads `from` with read_runs_until (at most `most` records a call) and
// writes what it gets to `to` with write_records, as a relay does, until the
// stream ends. Returns how many calls handed over more than one record.
std::uint64_t relay_by_runs(st::RecordReader& from, st::RecordWriter& to, std::uint64_t most,
                            std::uint64_t& records) {
  std::uint64_t runs = 0;
  st::Status status;
  while ((status = from.read_runs_until(
              [&](std::span<const std::byte> got, std::uint64_t count) {
                EXPECT_GE(count, 1U);
                EXPECT_LE(count, most);
                EXPECT_EQ(got.size() % count, 0U);
                runs += count > 1 ? 1 : 0;
                records += count;
                return to.write_records(got, count) == st::Status::kOk;
              },
              st::Deadline::after(30s), most)) == st::Status::kOk) {
  }
  EXPECT_EQ(status, st::Status::kClosed);
  EXPECT_EQ(to.close(), st::Status::kOk);
  return runs;
}

TEST(RunsRelay, EveryRecordPassesUnchangedThroughReadRunsAndWriteRecords) {
  // Runs of two sizes, then records of every size up to ones that span the
  // input's 512-byte buffers, relayed into 200-byte buffers: runs that do
  // not fit are split, records too large are written spanning.
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < 4'000; ++i) {
    const std::size_t phase = i % 500;
    sizes.push_back(phase < 300 ? 16 : phase < 420 ? 190 : (i * 37) % 700);
  }
  for (const std::uint64_t most : {std::numeric_limits<std::uint64_t>::max(), std::uint64_t{7}}) {
    SCOPED_TRACE(most);
    ChannelGuard input(unique_channel("runs-in"));
    ChannelGuard output(unique_channel("runs-out"));
    auto in_producer = st::Producer::create(input.name(), config_of(4, 512));
    auto in_consumer = st::Consumer::open(input.name());
    auto out_producer = st::Producer::create(output.name(), config_of(4, 200));
    auto out_consumer = st::Consumer::open(output.name());
    std::thread source([&] {
      st::RecordWriter writer(in_producer);
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        ASSERT_EQ(writer.write(pattern_record(sizes[i], i)), st::Status::kOk) << i;
      }
      ASSERT_EQ(writer.close(), st::Status::kOk);
    });
    st::RecordReader from(in_consumer);
    std::uint64_t relayed = 0;
    std::uint64_t runs = 0;
    std::thread relay([&] {
      st::RecordWriter to(out_producer);
      runs = relay_by_runs(from, to, most, relayed);
    });
    st::RecordReader reader(out_consumer);
    expect_pattern_records(reader, sizes);
    source.join();
    relay.join();
    EXPECT_EQ(relayed, sizes.size());
    EXPECT_EQ(from.records_read(), sizes.size());
    EXPECT_GT(runs, 0U);  // runs came in one call each, not record by record
  }
}

TEST(RunsRelay, ACallTakesAtMostItsBoundAndAThrowingHandlerHasReadWhatItWasGiven) {
  ChannelGuard guard(unique_channel("runs-bound"));
  auto producer = st::Producer::create(guard.name(), config_of(4, 4096));
  auto consumer = st::Consumer::open(guard.name());
  write_closed_run(producer, 16, 100);
  st::RecordReader reader(consumer);
  std::uint64_t seen = 0;
  const auto check = [&](std::span<const std::byte> records, std::uint64_t count) {
    EXPECT_EQ(records.size(), count * 16);
    for (std::uint64_t i = 0; i < count; ++i) {
      EXPECT_EQ(st::pattern::sequence_of(records.subspan(i * 16, 16)), seen + i);
    }
    seen += count;
  };
  // The first record alone, then the rest of the run up to the bound.
  std::vector<std::uint64_t> counts;
  ASSERT_EQ(reader.read_runs_until(
                [&](std::span<const std::byte> records, std::uint64_t count) {
                  check(records, count);
                  counts.push_back(count);
                  return true;
                },
                st::Deadline::after(10s), 10),
            st::Status::kOk);
  EXPECT_EQ(counts, (std::vector<std::uint64_t>{1, 9}));
  std::span<const std::byte> record;
  ASSERT_EQ(reader.next_for(record, 10s), st::Status::kOk);
  EXPECT_EQ(st::pattern::sequence_of(record), 10U);
  ++seen;
  // A handler that throws on the rest of the run: all it was given is read.
  std::uint64_t calls = 0;
  EXPECT_THROW((void)reader.read_runs_until(
                   [&](std::span<const std::byte> records, std::uint64_t count) -> bool {
                     check(records, count);
                     if (++calls == 2) {
                       throw std::runtime_error("handler failed");
                     }
                     return true;
                   },
                   st::Deadline::after(10s)),
               std::runtime_error);
  EXPECT_EQ(seen, 100U);
  EXPECT_EQ(reader.records_read(), 100U);
  EXPECT_EQ(reader.next_for(record, 10s), st::Status::kClosed);
}

TEST(RunsRelay, WriteRecordsRefusesBytesThatAreNotWholeRecords) {
  ChannelGuard guard(unique_channel("runs-args"));
  auto producer = st::Producer::create(guard.name(), config_of(4, 256));
  st::RecordWriter writer(producer);
  const std::vector<std::byte> bytes(10);
  EXPECT_EQ(writer.write_records(bytes, 3), st::Status::kInvalidArgument);
  EXPECT_EQ(writer.write_records(bytes, 0), st::Status::kInvalidArgument);
  EXPECT_EQ(writer.write_records({}, 0), st::Status::kOk);
  EXPECT_EQ(writer.records_written(), 0U);
  EXPECT_EQ(writer.write_records(bytes, 5), st::Status::kOk);
  EXPECT_EQ(writer.records_written(), 5U);
}

TEST_F(CorruptFrames, WellFormedBytesAreAccepted) {
  EXPECT_EQ(read_raw({1, 0, 0, 0, 9, 0, 0, 0, 0}), st::Status::kClosed);
}

TEST(Records, OversizedSpanningRecordIsRefusedNotAllocated) {
  ChannelGuard guard(unique_channel("maxrecord"));
  auto producer = st::Producer::create(guard.name(), config_of(4, 128));
  auto consumer = st::Consumer::open(guard.name());
  std::thread writer_thread([&producer] {
    st::RecordWriter writer(producer);
    (void)writer.write(pattern_record(4096, 0));
    (void)writer.close();
  });
  st::RecordReaderOptions options;
  options.max_record_bytes = 1000;
  st::RecordReader reader(consumer, options);
  std::span<const std::byte> record;
  EXPECT_EQ(reader.next_for(record, 10s), st::Status::kCorrupt);
  // Drain so the writer can finish.
  st::ReadableBuffer buffer;
  while (consumer.receive_for(buffer, 10s) == st::Status::kOk) {
    buffer.reset();
  }
  writer_thread.join();
}

}  // namespace

namespace {

TEST(Records, RecordsWrittenInPlaceArriveLikeCopiedOnes) {
  ChannelGuard guard(unique_channel("inplace"));
  auto producer = st::Producer::create(guard.name(), config_of(3, 256));
  auto consumer = st::Consumer::open(guard.name());
  std::thread writer_thread([&producer] {
    st::RecordWriter writer(producer);
    for (std::uint64_t seq = 0; seq < 5000; ++seq) {
      std::span<std::byte> room;
      ASSERT_EQ(writer.begin_record(8 + seq % 200, room), st::Status::kOk);
      st::pattern::fill(room, seq);
      ASSERT_EQ(writer.finish_record(), st::Status::kOk);
    }
    std::span<std::byte> too_big;
    EXPECT_EQ(writer.begin_record(253, too_big), st::Status::kInvalidArgument);
    ASSERT_EQ(writer.close(), st::Status::kOk);
  });
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  std::uint64_t seq = 0;
  while (reader.next_for(record, 30s) == st::Status::kOk) {
    ASSERT_EQ(record.size(), 8 + seq % 200);
    ASSERT_TRUE(st::pattern::body_matches(record, seq));
    ASSERT_EQ(st::pattern::sequence_of(record), seq);
    ++seq;
  }
  writer_thread.join();
  EXPECT_EQ(seq, 5000U);
  EXPECT_EQ(producer.mapping().control().producer_counters.records.load(), 5000U);
}

// A pool that nobody empties: begin_record_for gives up with kTimeout and
// places nothing, in both publication modes, and the records before it,
// and one begun once the reader made room, arrive intact and in order.
TEST(Records, BeginRecordForTimesOutOnAFullPoolAndPlacesNothing) {
  for (const auto publication :
       {st::Publication::kWholeBuffers, st::Publication::kEachRecordInPlace}) {
    SCOPED_TRACE(publication == st::Publication::kWholeBuffers ? "whole buffers" : "in place");
    ChannelGuard guard(unique_channel("beginfor"));
    auto producer = st::Producer::create(guard.name(), config_of(2, 256));
    auto consumer = st::Consumer::open(guard.name());
    st::RecordWriter writer(producer, publication);
    constexpr std::size_t kBytes = 200;  // one record per buffer
    // What the writer says it takes is what begin_record_for takes: a whole
    // buffer's frame holds 252 bytes, an in-place one (word after it, room
    // for a discard frame) 244.
    const std::size_t largest = publication == st::Publication::kWholeBuffers ? 256 - 4 : 256 - 12;
    EXPECT_TRUE(writer.accepts_begin_record(largest));
    EXPECT_FALSE(writer.accepts_begin_record(largest + 1));
    std::span<std::byte> refused;
    EXPECT_EQ(writer.begin_record_for(largest + 1, refused, 50ms), st::Status::kInvalidArgument);
    EXPECT_EQ(writer.records_written(), 0U);
    std::uint64_t written = 0;
    st::Status status = st::Status::kOk;
    std::span<std::byte> room;
    // Until the pool is full; a bound, so that a writer that never blocks fails here.
    while (written < 10 &&
           (status = writer.begin_record_for(kBytes, room, 50ms)) == st::Status::kOk) {
      ASSERT_EQ(room.size(), kBytes);
      st::pattern::fill(room, written++);
      ASSERT_EQ(writer.finish_record(), st::Status::kOk);
    }
    ASSERT_EQ(status, st::Status::kTimeout);
    EXPECT_EQ(written, 2U);  // the pool holds two buffers, one record each
    EXPECT_EQ(writer.records_written(), written);

    st::RecordReader reader(consumer);
    std::span<const std::byte> record;
    for (std::uint64_t seq = 0; seq < written; ++seq) {
      ASSERT_EQ(reader.next_for(record, 30s), st::Status::kOk) << "record " << seq;
      ASSERT_EQ(record.size(), kBytes);
      ASSERT_EQ(st::pattern::sequence_of(record), seq);
      ASSERT_TRUE(st::pattern::body_matches(record, seq));
    }
    // The reader handed its buffers back when it moved on: room again.
    EXPECT_EQ(reader.try_next(record), st::Status::kWouldBlock);
    ASSERT_EQ(writer.begin_record_for(kBytes, room, 30s), st::Status::kOk);
    st::pattern::fill(room, written);
    ASSERT_EQ(writer.finish_record(), st::Status::kOk);
    ASSERT_EQ(writer.close(), st::Status::kOk);
    ASSERT_EQ(reader.next_for(record, 30s), st::Status::kOk);
    EXPECT_EQ(st::pattern::sequence_of(record), written);
    EXPECT_TRUE(st::pattern::body_matches(record, written));
    EXPECT_EQ(reader.next_for(record, 30s), st::Status::kClosed);
  }
}

}  // namespace

namespace {

// Writes batches of `size`-byte records numbered from 0 on one thread, in
// batches of `batch` records; returns how many the reader got, checking each.
std::uint64_t batch_round_trip(const st::ChannelConfig& config, st::Publication publication,
                               std::size_t size, std::uint64_t total, std::uint64_t batch) {
  ChannelGuard guard(unique_channel("wbatch"));
  auto producer = st::Producer::create(guard.name(), config);
  auto consumer = st::Consumer::open(guard.name());
  std::thread writer_thread([&] {
    st::RecordWriter writer(producer, publication);
    std::uint64_t seq = 0;
    for (std::uint64_t done = 0; done < total; done += batch) {
      const std::uint64_t count = std::min(batch, total - done);
      ASSERT_EQ(writer.write_batch(size, count,
                                   [&seq](std::span<std::byte> record) noexcept {
                                     st::pattern::fill(record, seq++);
                                   }),
                st::Status::kOk);
      ASSERT_EQ(writer.records_written(), done + count);
    }
    ASSERT_EQ(writer.close(), st::Status::kOk);
  });
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  std::uint64_t seq = 0;
  st::Status status;
  while ((status = reader.next_for(record, 30s)) == st::Status::kOk) {
    EXPECT_EQ(record.size(), size);
    EXPECT_EQ(st::pattern::sequence_of(record), seq);
    EXPECT_TRUE(st::pattern::body_matches(record, seq)) << "record " << seq;
    ++seq;
  }
  EXPECT_EQ(status, st::Status::kClosed);
  writer_thread.join();
  EXPECT_EQ(producer.mapping().control().producer_counters.records.load(), total);
  return seq;
}

TEST(WriteBatch, DeliversEveryRecordInOrderAcrossBuffersAndSizes) {
  // Sizes that leave 0..3 bytes at a buffer's end, fill it exactly, or need
  // a buffer each; batches smaller and larger than a buffer's worth.
  // With no flush timeout and with one, whose clock checks split the runs.
  for (const auto flush : {std::chrono::nanoseconds(-1), std::chrono::nanoseconds(1ms)}) {
    for (const std::size_t size : {8U, 9U, 60U, 124U, 252U}) {
      for (const std::uint64_t batch : {1U, 5U, 1000U}) {
        EXPECT_EQ(batch_round_trip(config_of(3, 256, flush), st::Publication::kWholeBuffers, size,
                                   3'000, batch),
                  3'000U)
            << size << " bytes, batches of " << batch << ", flush " << flush.count() << " ns";
      }
    }
  }
}

TEST(WriteBatch, RecordsGivenOneACallStillMakeOneRun) {
  // As write() does: the second record of a length turns the plain first
  // into a run, which the rest join. A round-robin fan-out's writers get
  // one record per call; begin_record's frames take part the same way.
  ChannelGuard guard(unique_channel("wbatch1"));
  auto producer = st::Producer::create(guard.name(), config_of(4, 1024));
  auto consumer = st::Consumer::open(guard.name());
  st::RecordWriter writer(producer);
  std::uint64_t seq = 0;
  std::span<std::byte> first;
  ASSERT_EQ(writer.begin_record(16, first), st::Status::kOk);
  st::pattern::fill(first, seq++);
  ASSERT_EQ(writer.finish_record(), st::Status::kOk);
  for (int i = 1; i < 50; ++i) {
    ASSERT_EQ(writer.write_batch(16, 1,
                                 [&seq](std::span<std::byte> record) noexcept {
                                   st::pattern::fill(record, seq++);
                                 }),
              st::Status::kOk);
  }
  ASSERT_EQ(writer.flush(), st::Status::kOk);
  st::ReadableBuffer buffer;
  ASSERT_EQ(consumer.try_receive(buffer), st::Status::kOk);
  EXPECT_EQ(buffer.size(), st::frame::kRunHeaderBytes + 50U * 16);
  EXPECT_EQ(st::frame::read_header(buffer.data().data()), st::frame::kRun | 16U);
  EXPECT_EQ(st::frame::read_header(buffer.data().data() + st::frame::kHeaderBytes), 50U);
  for (std::uint64_t i = 0; i < 50; ++i) {
    const auto record = buffer.data().subspan(st::frame::kRunHeaderBytes + i * 16, 16);
    EXPECT_EQ(st::pattern::sequence_of(record), i);
    EXPECT_TRUE(st::pattern::body_matches(record, i)) << i;
  }
}

TEST(WriteBatch, PublishesInPlaceRecordByRecord) {
  EXPECT_EQ(
      batch_round_trip(config_of(3, 256), st::Publication::kEachRecordInPlace, 40, 5'000, 300),
      5'000U);
}

TEST(WriteBatch, KeepsTheFlushPolicy) {
  // A zero flush timeout hands every record over in its own buffer, batch or not.
  ChannelGuard guard(unique_channel("wbatch0"));
  auto producer = st::Producer::create(guard.name(), config_of(8, 1024, 0ns));
  auto consumer = st::Consumer::open(guard.name());
  st::RecordWriter writer(producer);
  std::uint64_t seq = 0;
  ASSERT_EQ(
      writer.write_batch(
          8, 3, [&seq](std::span<std::byte> record) noexcept { st::pattern::fill(record, seq++); }),
      st::Status::kOk);
  for (std::uint64_t i = 0; i < 3; ++i) {
    st::ReadableBuffer buffer;
    ASSERT_EQ(consumer.try_receive(buffer), st::Status::kOk) << "buffer " << i;
    EXPECT_EQ(buffer.size(), st::frame::kHeaderBytes + 8);
  }
  st::ReadableBuffer none;
  EXPECT_EQ(consumer.try_receive(none), st::Status::kWouldBlock);
}

TEST(WriteBatch, RefusesRecordsLargerThanABufferAndWritesNothing) {
  ChannelGuard guard(unique_channel("wbatchbig"));
  auto producer = st::Producer::create(guard.name(), config_of(2, 256));
  st::RecordWriter writer(producer);
  std::uint64_t calls = 0;
  const auto count_calls = [&calls](std::span<std::byte>) noexcept { ++calls; };
  EXPECT_EQ(writer.write_batch(253, 10, count_calls), st::Status::kInvalidArgument);
  EXPECT_EQ(writer.write_batch(std::numeric_limits<std::size_t>::max() - 2, 10, count_calls),
            st::Status::kInvalidArgument);
  EXPECT_EQ(writer.write_batch(8, 0, count_calls), st::Status::kOk);
  EXPECT_EQ(calls, 0U);
  EXPECT_EQ(writer.records_written(), 0U);
}

TEST(WriteBatch, StopsWithPeerDiedWhenTheConsumerIsGone) {
  ChannelGuard guard(unique_channel("wbatchgone"));
  auto producer = st::Producer::create(guard.name(), config_of(2, 64));
  std::uint64_t written = 0;
  {
    auto consumer = st::Consumer::open(guard.name());
  }  // gone before anything was read: the pool fills and is never returned
  st::RecordWriter writer(producer);
  const st::Status status =
      writer.write_batch(8, 1'000, [&written](std::span<std::byte>) noexcept { ++written; });
  EXPECT_EQ(status, st::Status::kPeerDied) << st::to_string(status);
  EXPECT_EQ(writer.records_written(), written);
  EXPECT_LT(written, 1'000U);
}

TEST(ClaimForWrite, ZeroesExactlyItsBytes) {
  // Odd offsets and lengths around the string store's line handling; the
  // guard bytes on both sides must keep their value.
  for (const std::size_t offset : {0U, 1U, 63U, 64U}) {
    for (const std::size_t length : {0U, 1U, 4095U, 4096U, 8193U}) {
      std::vector<std::byte> memory(offset + length + 128, std::byte{0x5A});
      st::claim_for_write(std::span<std::byte>(memory).subspan(offset, length));
      for (std::size_t i = 0; i < memory.size(); ++i) {
        const bool claimed = i >= offset && i < offset + length;
        ASSERT_EQ(memory[i], claimed ? std::byte{0} : std::byte{0x5A})
            << "offset " << offset << ", length " << length << ", byte " << i;
      }
    }
  }
}

// Records long enough to be claimed before they are filled in place
// (begin_record, and write_batch's framed loop), in buffers that held other
// records before: each arrives intact, and so do the smaller ones around it.
TEST(WriteBatch, LargeRecordsFilledInPlaceArriveIntactInReusedBuffers) {
  ChannelGuard guard(unique_channel("claimed"));
  constexpr std::size_t kLarge = st::kClaimForWriteFromBytes + 3;
  auto producer = st::Producer::create(guard.name(), config_of(2, 3 * 4096));
  auto consumer = st::Consumer::open(guard.name());
  std::thread writer_thread([&producer] {
    st::RecordWriter writer(producer);
    std::uint64_t sequence = 0;
    for (int round = 0; round < 20; ++round) {
      // Two large records per buffer through write_batch, one through
      // begin_record, then small ones that leave stale bytes behind.
      ASSERT_EQ(writer.write_batch(kLarge, 2,
                                   [&sequence](std::span<std::byte> record) noexcept {
                                     st::pattern::fill(record, sequence++);
                                   }),
                st::Status::kOk);
      std::span<std::byte> out;
      ASSERT_EQ(writer.begin_record(kLarge, out), st::Status::kOk);
      ASSERT_EQ(out.size(), std::size_t{kLarge});
      st::pattern::fill(out, sequence++);
      ASSERT_EQ(writer.finish_record(), st::Status::kOk);
      for (int i = 0; i < 10; ++i) {
        ASSERT_EQ(writer.write(pattern_record(100, sequence)), st::Status::kOk);
        ++sequence;
      }
    }
    ASSERT_EQ(writer.close(), st::Status::kOk);
  });
  std::vector<std::size_t> sizes;
  for (int round = 0; round < 20; ++round) {
    sizes.insert(sizes.end(), {kLarge, kLarge, kLarge});
    sizes.insert(sizes.end(), 10, 100);
  }
  st::RecordReader reader(consumer);
  expect_pattern_records(reader, sizes);
  writer_thread.join();
}

}  // namespace
