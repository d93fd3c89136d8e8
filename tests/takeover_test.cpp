// Crash recovery with real processes killed by SIGKILL: a new consumer takes
// over the dead one's buffers (at-least-once), a new producer continues the
// stream of a dead one, and no buffer leaks either way.

#include <gtest/gtest.h>

#include <optional>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <chrono>
#include <cstring>
#include <vector>

#include "sluice/shm/segment_name.hpp"
#include "sluice/shm/setup_error.hpp"
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
using sluice::test::ChildProcess;
using sluice::test::Signal;
using sluice::test::unique_channel;

namespace {

st::ChannelConfig small(std::uint32_t buffers = 6, std::uint32_t bytes = 256) {
  st::ChannelConfig config;
  config.buffer_count = buffers;
  config.buffer_bytes = bytes;
  config.flush_timeout = -1ns;
  return config;
}

bool sound(const std::string& channel) {
  const st::ChannelObserver observer(channel);
  const auto report = st::check_ownership(observer.mapping(), {2, 1ms});
  for (const auto& problem : report.problems) {
    ADD_FAILURE() << problem;
  }
  return report.sound();
}

void commit_marked(st::Producer& producer, std::uint8_t mark) {
  st::WritableBuffer buffer;
  ASSERT_EQ(producer.acquire_for(buffer, 10s), st::Status::kOk);
  buffer.data()[0] = std::byte{mark};
  ASSERT_EQ(producer.commit(std::move(buffer), 1), st::Status::kOk);
}

TEST(Takeover, NewConsumerReceivesWhatTheDeadOneHeldFirstInOrder) {
  ChannelGuard guard(unique_channel("consumer-takeover"));
  auto producer = st::Producer::create(guard.name(), small());
  for (std::uint8_t mark = 0; mark < 5; ++mark) {
    commit_marked(producer, mark);
  }
  Signal holding;
  ChildProcess first([&]() -> int {
    auto consumer = st::Consumer::open(guard.name());
    std::vector<st::ReadableBuffer> held(4);
    for (auto& buffer : held) {
      if (consumer.receive_for(buffer, 10s) != st::Status::kOk) return 1;
    }
    held[1].reset();  // released 1; still holds 0, 2 and 3
    holding.notify();
    for (;;) pause();
  });
  ASSERT_TRUE(holding.wait());
  first.kill_now();
  EXPECT_EQ(first.wait(), 128 + SIGKILL);

  auto consumer = st::Consumer::open(guard.name());
  EXPECT_EQ(consumer.redelivery_pending(), 3U);
  std::vector<int> marks;
  st::ReadableBuffer buffer;
  while (consumer.try_receive(buffer) == st::Status::kOk) {
    marks.push_back(std::to_integer<int>(buffer.data()[0]));
    buffer.reset();
  }
  EXPECT_EQ(marks, (std::vector<int>{0, 2, 3, 4}));
  EXPECT_TRUE(sound(guard.name()));
  // The pool is whole: every buffer can be used again.
  for (std::uint8_t mark = 10; mark < 16; ++mark) {
    commit_marked(producer, mark);
  }
}

TEST(Takeover, BufferFreedButNeverReturnedIsRecovered) {
  ChannelGuard guard(unique_channel("freed"));
  auto producer = st::Producer::create(guard.name(), small(2));
  commit_marked(producer, 1);
  commit_marked(producer, 2);
  ChildProcess first([&]() -> int {
    auto consumer = st::Consumer::open(guard.name());
    st::ReadableBuffer buffer;
    if (consumer.receive_for(buffer, 10s) != st::Status::kOk) return 1;
    // Die between marking the buffer free and pushing it to the return
    // ring, as a crash at that instant would.
    namespace bip = boost::interprocess;
    bip::shared_memory_object object(bip::open_only, sluice::shm::object_name(guard.name()).c_str(),
                                     bip::read_write);
    bip::mapped_region region(object, bip::read_write);
    auto* states = reinterpret_cast<st::BufferStateWord*>(
        static_cast<std::byte*>(region.get_address()) +
        (reinterpret_cast<std::byte*>(consumer.mapping().buffer_states()) -
         consumer.mapping().segment().base()));
    states[buffer.index()].store(static_cast<std::uint32_t>(st::BufferState::kFree));
    _exit(0);
  });
  ASSERT_EQ(first.wait(), 0);
  auto consumer = st::Consumer::open(guard.name());
  EXPECT_TRUE(sound(guard.name()));
  st::WritableBuffer buffer;
  EXPECT_EQ(producer.acquire_for(buffer, 10s), st::Status::kOk);  // the recovered one
}

TEST(Takeover, ProducerWaitingForANewConsumerResumesWhenOneAttaches) {
  ChannelGuard guard(unique_channel("waitconsumer"));
  auto producer = st::Producer::create(guard.name(), small(2));
  producer.set_consumer_loss(st::ConsumerLoss::kWaitForNewConsumer);
  Signal attached;
  ChildProcess first([&]() -> int {
    auto consumer = st::Consumer::open(guard.name());
    attached.notify();
    for (;;) pause();
  });
  ASSERT_TRUE(attached.wait());
  commit_marked(producer, 1);
  commit_marked(producer, 2);
  first.kill_now();
  (void)first.wait();
  st::WritableBuffer buffer;
  EXPECT_EQ(producer.acquire_for(buffer, 100ms), st::Status::kTimeout);  // waits, no kPeerDied
  ChildProcess second([&]() -> int {
    auto consumer = st::Consumer::open(guard.name());
    st::ReadableBuffer view;
    int received = 0;
    while (consumer.receive_for(view, 10s) == st::Status::kOk) {
      view.reset();
      if (++received == 3) return 0;
    }
    return 1;
  });
  ASSERT_EQ(producer.acquire_for(buffer, 30s), st::Status::kOk);
  ASSERT_EQ(producer.commit(std::move(buffer), 1), st::Status::kOk);
  EXPECT_EQ(second.wait(), 0);
}

TEST(Takeover, NewProducerContinuesTheStreamOfAKilledOne) {
  ChannelGuard guard(unique_channel("producer-takeover"));
  constexpr std::uint64_t kRecords = 20'000;
  Signal started;
  ChildProcess first([&]() -> int {
    auto producer = st::Producer::create(guard.name(), small(4, 512));
    started.notify();
    st::RecordWriter writer(producer);
    std::vector<std::byte> record(700);  // spans buffers: the kill can cut one in half
    for (std::uint64_t seq = 0;; ++seq) {
      st::pattern::fill(record, seq);
      if (writer.write(record) != st::Status::kOk) return 1;
    }
  });
  ASSERT_TRUE(started.wait());
  auto consumer = st::Consumer::open(guard.name());
  consumer.set_producer_loss(st::ProducerLoss::kWaitForNewProducer);
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  std::uint64_t expected = 0;
  std::uint64_t bad = 0;
  auto check = [&] {
    if (record.size() != 700 || st::pattern::sequence_of(record) != expected ||
        !st::pattern::body_matches(record, expected)) {
      ++bad;
    }
    ++expected;
  };
  while (expected < 300 && reader.next_for(record, 30s) == st::Status::kOk) {
    check();
  }
  first.kill_now();  // mid-stream, quite possibly mid-record
  (void)first.wait();

  ChildProcess second([&]() -> int {
    auto producer = st::Producer::attach(guard.name());
    st::RecordWriter writer(producer);
    std::vector<std::byte> payload(700);
    for (std::uint64_t seq = producer.records_committed(); seq < kRecords; ++seq) {
      st::pattern::fill(payload, seq);
      if (writer.write(payload) != st::Status::kOk) return 1;
    }
    return writer.close() == st::Status::kOk ? 0 : 2;
  });
  st::Status status;
  while ((status = reader.next_for(record, 30s)) == st::Status::kOk) {
    check();
  }
  EXPECT_EQ(status, st::Status::kClosed);
  EXPECT_EQ(bad, 0U);
  EXPECT_EQ(expected, kRecords);
  EXPECT_EQ(second.wait(), 0);
  EXPECT_TRUE(sound(guard.name()));
}

TEST(Takeover, NewProducerSealsAndCountsTheOpenBufferOfAKilledOne) {
  ChannelGuard guard(unique_channel("inplace-takeover"));
  constexpr std::uint64_t kFirst = 37;  // fewer than one buffer holds: it stays open
  constexpr std::uint64_t kRecords = 5'000;
  ChildProcess first([&]() -> int {
    auto producer = st::Producer::create(guard.name(), small(4, 4096));
    st::RecordWriter writer(producer, st::Publication::kEachRecordInPlace);
    std::vector<std::byte> payload(24);
    for (std::uint64_t seq = 0; seq < kFirst; ++seq) {
      st::pattern::fill(payload, seq);
      if (writer.write(payload) != st::Status::kOk) return 1;
    }
    _exit(0);  // gone without sealing or closing, as in a crash
  });
  ASSERT_EQ(first.wait(), 0);
  auto consumer = st::Consumer::open(guard.name());
  consumer.set_producer_loss(st::ProducerLoss::kWaitForNewProducer);
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  std::uint64_t expected = 0;
  std::uint64_t bad = 0;
  auto check = [&] {
    if (record.size() != 24 || st::pattern::sequence_of(record) != expected ||
        !st::pattern::body_matches(record, expected)) {
      ++bad;
    }
    ++expected;
  };
  // Everything published in place before the death is there; then the
  // reader waits on the open buffer, which only a successor can end.
  while (expected < kFirst && reader.next_for(record, 30s) == st::Status::kOk) {
    check();
  }
  EXPECT_EQ(reader.try_next(record), st::Status::kWouldBlock);
  ChildProcess second([&]() -> int {
    auto producer = st::Producer::attach(guard.name());
    if (producer.records_committed() != kFirst) return 3;  // counted from the open buffer
    st::RecordWriter writer(producer, st::Publication::kEachRecordInPlace);
    std::vector<std::byte> payload(24);
    for (std::uint64_t seq = producer.records_committed(); seq < kRecords; ++seq) {
      st::pattern::fill(payload, seq);
      if (writer.write(payload) != st::Status::kOk) return 1;
    }
    return writer.close() == st::Status::kOk ? 0 : 2;
  });
  st::Status status;
  while ((status = reader.next_for(record, 30s)) == st::Status::kOk) {
    check();
  }
  EXPECT_EQ(status, st::Status::kClosed);
  EXPECT_EQ(bad, 0U);
  EXPECT_EQ(expected, kRecords);
  EXPECT_EQ(second.wait(), 0);
  EXPECT_TRUE(sound(guard.name()));
}

TEST(Takeover, RecordsCommittedStaysExactWhenTheLastOpenBufferWasTakenBack) {
  // One buffer: sealed with kRecords in place, read and returned, then taken
  // back by the producer, which zeroes its start for the next open use and
  // dies before publishing it. The buffer's content no longer shows the
  // records, yet they were all delivered.
  ChannelGuard guard(unique_channel("inplace-reused"));
  constexpr std::uint64_t kRecords = 9;
  auto consumer_holder = std::optional<st::Consumer>();
  {
    auto producer = st::Producer::create(guard.name(), small(1, 512));
    consumer_holder.emplace(st::Consumer::open(guard.name()));
    {
      st::RecordWriter writer(producer, st::Publication::kEachRecordInPlace);
      std::vector<std::byte> payload(24);
      for (std::uint64_t seq = 0; seq < kRecords; ++seq) {
        st::pattern::fill(payload, seq);
        ASSERT_EQ(writer.write(payload), st::Status::kOk);
      }
    }  // the writer seals its open buffer
    {
      st::RecordReader reader(*consumer_holder);
      std::span<const std::byte> record;
      for (std::uint64_t seq = 0; seq < kRecords; ++seq) {
        ASSERT_EQ(reader.next_for(record, 10s), st::Status::kOk);
        EXPECT_EQ(st::pattern::sequence_of(record), seq);
      }
      EXPECT_EQ(reader.try_next(record), st::Status::kWouldBlock);  // sealed: returned
    }
    st::WritableBuffer buffer;
    ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk);
    std::memset(buffer.data().data(), 0, st::frame::kHeaderBytes);  // as a new open buffer
  }  // buffer, then producer, gone without a close
  auto successor = st::Producer::attach(guard.name());
  EXPECT_EQ(successor.records_committed(), kRecords);
}

TEST(Takeover, AttachIsRefusedWhileAProducerLivesOrAfterClose) {
  ChannelGuard guard(unique_channel("attach-refused"));
  {
    auto producer = st::Producer::create(guard.name(), small());
    try {
      (void)st::Producer::attach(guard.name());
      FAIL() << "attached beside a living producer";
    } catch (const sluice::shm::SetupError& e) {
      EXPECT_NE(std::string(e.what()).find("already has a producer"), std::string::npos)
          << e.what();
    }
    producer.close();
  }
  try {
    (void)st::Producer::attach(guard.name());
    FAIL() << "attached to a closed stream";
  } catch (const sluice::shm::SetupError& e) {
    EXPECT_NE(std::string(e.what()).find("was closed"), std::string::npos) << e.what();
  }
}

}  // namespace

namespace {

TEST(Takeover, ResumedWriterNeverWritesPastItsBuffer) {
  // The discard frame takes the first bytes of the first buffer; a record
  // that would have filled an empty buffer exactly must not run over.
  ChannelGuard guard(unique_channel("resume-fit"));
  { auto first = st::Producer::create(guard.name(), small(3, 128)); }  // gone without close
  auto producer = st::Producer::attach(guard.name());
  auto consumer = st::Consumer::open(guard.name());
  st::RecordWriter writer(producer);
  std::vector<std::byte> record(124);
  st::pattern::fill(record, 7);
  ASSERT_EQ(writer.write(record), st::Status::kOk);
  // Written whole after the discard frame, the record would make the buffer
  // 132 bytes long and the commit would fail; split, it fits.
  ASSERT_EQ(writer.close(), st::Status::kOk);
  st::RecordReader reader(consumer);
  std::span<const std::byte> got;
  ASSERT_EQ(reader.next_for(got, 10s), st::Status::kOk);
  EXPECT_EQ(got.size(), 124U);
  EXPECT_TRUE(st::pattern::body_matches(got, 7));
  EXPECT_EQ(reader.next_for(got, 10s), st::Status::kClosed);
  EXPECT_TRUE(sound(guard.name()));
}

}  // namespace
