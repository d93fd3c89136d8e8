// The buffer API within one process: ownership, blocking, timeouts, close,
// exclusivity of roles.

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <string>

#include <limits>

#include <fstream>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "sluice/shm/segment.hpp"
#include "sluice/shm/setup_error.hpp"
#include "sluice/transport/channel_config.hpp"
#include "sluice/transport/channel_info.hpp"
#include "sluice/transport/channel_layout.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"
#include "test_support.hpp"

namespace st = sluice::transport;
using namespace std::chrono_literals;
using sluice::test::ChannelGuard;
using sluice::test::unique_channel;

namespace {

st::ChannelConfig small_config(std::uint32_t buffers = 4, std::uint32_t bytes = 256) {
  st::ChannelConfig config;
  config.buffer_count = buffers;
  config.buffer_bytes = bytes;
  return config;
}

TEST(ChannelConfig, SizedForRecordsGivesALargeRecordABufferOfItsOwnAndAboutOneMebibyteInFlight) {
  const st::ChannelConfig defaults;
  // Records that fit a default buffer with their header leave it alone.
  const st::ChannelConfig small = st::sized_for_records(defaults, defaults.buffer_bytes - 4);
  EXPECT_EQ(small.buffer_bytes, defaults.buffer_bytes);
  EXPECT_EQ(small.buffer_count, defaults.buffer_count);

  // One byte more would be split: one record and its header per buffer.
  const st::ChannelConfig just_over = st::sized_for_records(defaults, defaults.buffer_bytes - 3);
  EXPECT_EQ(just_over.buffer_bytes, defaults.buffer_bytes + 1);
  EXPECT_EQ(just_over.buffer_count, 32U);  // 1 MiB / 32769, rounded up

  const st::ChannelConfig at_64k = st::sized_for_records(defaults, 64 * 1024);
  EXPECT_EQ(at_64k.buffer_bytes, 64U * 1024 + 4);
  EXPECT_EQ(at_64k.buffer_count, 16U);
  // At least two, one filled while the other is read.
  const st::ChannelConfig at_1m = st::sized_for_records(defaults, 1U << 20);
  EXPECT_EQ(at_1m.buffer_bytes, (1U << 20) + 4);
  EXPECT_EQ(at_1m.buffer_count, 2U);
  EXPECT_EQ(st::config_problem(at_1m), "");

  // A fan-out keeps a buffer per subpartition's writer and one more.
  st::ChannelConfig fan_out;
  fan_out.subpartitions = 5;
  fan_out.partitioner = st::Partitioner::kLeastLoaded;
  const st::ChannelConfig sized_fan_out = st::sized_for_records(fan_out, 1U << 20);
  EXPECT_EQ(sized_fan_out.buffer_count, 6U);
  EXPECT_EQ(sized_fan_out.subpartitions, 5U);
  EXPECT_EQ(st::config_problem(sized_fan_out), "");

  // Beyond the largest buffer a record is split whatever the size: unchanged.
  const st::ChannelConfig huge =
      st::sized_for_records(defaults, st::ChannelConfig::kMaxBufferBytes);
  EXPECT_EQ(huge.buffer_bytes, defaults.buffer_bytes);
  EXPECT_EQ(huge.buffer_count, defaults.buffer_count);
  const st::ChannelConfig largest =
      st::sized_for_records(defaults, st::ChannelConfig::kMaxBufferBytes - 4);
  EXPECT_EQ(largest.buffer_bytes, st::ChannelConfig::kMaxBufferBytes);
  EXPECT_EQ(largest.buffer_count, 2U);
  EXPECT_EQ(st::config_problem(largest), "");
}

TEST(Channel, CommittedBytesArriveInOrder) {
  ChannelGuard guard(unique_channel("order"));
  auto producer = st::Producer::create(guard.name(), small_config());
  auto consumer = st::Consumer::open(guard.name());
  for (std::uint8_t round = 0; round < 20; ++round) {
    st::WritableBuffer buffer;
    ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk);
    std::memset(buffer.data().data(), round, 10);
    ASSERT_EQ(producer.commit(std::move(buffer), 10), st::Status::kOk);
    EXPECT_FALSE(buffer.valid());

    st::ReadableBuffer received;
    ASSERT_EQ(consumer.try_receive(received), st::Status::kOk);
    ASSERT_EQ(received.size(), 10U);
    EXPECT_EQ(std::to_integer<int>(received.data()[9]), round);
  }
}

TEST(Channel, ExhaustedPoolBlocksTheProducerUntilARelease) {
  ChannelGuard guard(unique_channel("block"));
  auto producer = st::Producer::create(guard.name(), small_config(4));
  auto consumer = st::Consumer::open(guard.name());
  for (int i = 0; i < 4; ++i) {
    st::WritableBuffer buffer;
    ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk);
    ASSERT_EQ(producer.commit(std::move(buffer), 1), st::Status::kOk);
  }
  st::WritableBuffer extra;
  EXPECT_EQ(producer.try_acquire(extra), st::Status::kWouldBlock);
  EXPECT_EQ(producer.acquire_for(extra, 30ms), st::Status::kTimeout);

  // The consumer holds several buffers and releases them out of order.
  std::vector<st::ReadableBuffer> held(4);
  for (auto& buffer : held) {
    ASSERT_EQ(consumer.try_receive(buffer), st::Status::kOk);
  }
  EXPECT_EQ(producer.try_acquire(extra), st::Status::kWouldBlock);

  const std::uint32_t released_index = held[2].index();
  std::thread releaser([&held] {
    std::this_thread::sleep_for(20ms);  // let the producer reach its sleep
    held[2].reset();
  });
  EXPECT_EQ(producer.acquire_for(extra, 10s), st::Status::kOk);
  releaser.join();
  EXPECT_EQ(extra.index(), released_index);
  const auto blocked = producer.mapping().control().producer_counters.blocked_ns.load();
  EXPECT_GT(blocked, 0U);
}

TEST(Channel, AbandonedBufferIsReusedNotLost) {
  ChannelGuard guard(unique_channel("abandon"));
  auto producer = st::Producer::create(guard.name(), small_config(1));
  {
    st::WritableBuffer buffer;
    ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk);
    st::WritableBuffer none;
    EXPECT_EQ(producer.try_acquire(none), st::Status::kWouldBlock);
  }  // dropped uncommitted
  st::WritableBuffer again;
  EXPECT_EQ(producer.try_acquire(again), st::Status::kOk);
}

TEST(Channel, CommitRejectsMoreBytesThanTheBuffer) {
  ChannelGuard guard(unique_channel("toolong"));
  auto producer = st::Producer::create(guard.name(), small_config(2, 128));
  st::WritableBuffer buffer;
  ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk);
  EXPECT_EQ(producer.commit(std::move(buffer), 129), st::Status::kInvalidArgument);
  EXPECT_TRUE(buffer.valid());  // still the caller's
  EXPECT_EQ(producer.commit(std::move(buffer), 128), st::Status::kOk);
}

TEST(Channel, CloseDeliversEverythingThenEndOfStream) {
  ChannelGuard guard(unique_channel("close"));
  auto producer = st::Producer::create(guard.name(), small_config(4));
  auto consumer = st::Consumer::open(guard.name());
  for (int i = 0; i < 3; ++i) {
    st::WritableBuffer buffer;
    ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk);
    ASSERT_EQ(producer.commit(std::move(buffer), 4), st::Status::kOk);
  }
  producer.close();
  st::WritableBuffer late;
  EXPECT_EQ(producer.try_acquire(late), st::Status::kClosed);
  for (int i = 0; i < 3; ++i) {
    st::ReadableBuffer buffer;
    ASSERT_EQ(consumer.receive_for(buffer, 5s), st::Status::kOk);
  }
  st::ReadableBuffer none;
  EXPECT_EQ(consumer.receive_for(none, 5s), st::Status::kClosed);
  EXPECT_EQ(consumer.try_receive(none), st::Status::kClosed);
}

TEST(Channel, CloseWakesASleepingConsumer) {
  ChannelGuard guard(unique_channel("closewake"));
  auto producer = st::Producer::create(guard.name(), small_config());
  auto consumer = st::Consumer::open(guard.name());
  std::thread closer([&producer] {
    // Closes once the consumer has announced its sleep (the flag is set
    // right before the futex wait).
    const auto& flag = producer.mapping().control().consumer_sleeping.sleeping;
    (void)sluice::test::eventually([&] { return flag.load() != 0; }, 60s);
    producer.close();
  });
  st::ReadableBuffer buffer;
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(consumer.receive_for(buffer, 20s), st::Status::kClosed);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  closer.join();
  EXPECT_GT(consumer.mapping().control().consumer_counters.idle_ns.load(), 0U);
}

TEST(Channel, ReceiveTimesOutOnAnEmptyChannel) {
  ChannelGuard guard(unique_channel("timeout"));
  auto producer = st::Producer::create(guard.name(), small_config());
  auto consumer = st::Consumer::open(guard.name());
  st::ReadableBuffer buffer;
  EXPECT_EQ(consumer.try_receive(buffer), st::Status::kWouldBlock);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(consumer.receive_for(buffer, 50ms), st::Status::kTimeout);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 50ms);
}

TEST(Channel, ProducerDestroyedWithoutCloseIsAPeerDeath) {
  ChannelGuard guard(unique_channel("noclose"));
  auto consumer_holder = std::optional<st::Consumer>();
  {
    auto producer = st::Producer::create(guard.name(), small_config());
    consumer_holder.emplace(st::Consumer::open(guard.name()));
    st::WritableBuffer buffer;
    ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk);
    ASSERT_EQ(producer.commit(std::move(buffer), 3), st::Status::kOk);
  }
  st::ReadableBuffer buffer;
  EXPECT_EQ(consumer_holder->receive_for(buffer, 5s), st::Status::kOk);
  buffer.reset();
  EXPECT_EQ(consumer_holder->receive_for(buffer, 5s), st::Status::kPeerDied);
}

TEST(Channel, ConsumerGoneMakesABlockedProducerReturn) {
  ChannelGuard guard(unique_channel("consumergone"));
  auto producer = st::Producer::create(guard.name(), small_config(1));
  auto consumer = std::optional<st::Consumer>(st::Consumer::open(guard.name()));
  st::WritableBuffer buffer;
  ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk);
  ASSERT_EQ(producer.commit(std::move(buffer), 1), st::Status::kOk);
  std::thread leaver([&consumer] {
    std::this_thread::sleep_for(30ms);
    consumer.reset();  // detaches without taking the buffer
  });
  EXPECT_EQ(producer.acquire_for(buffer, 20s), st::Status::kPeerDied);
  leaver.join();
}

TEST(Channel, ASecondProducerIsRefused) {
  ChannelGuard guard(unique_channel("twoproducers"));
  auto producer = st::Producer::create(guard.name(), small_config());
  try {
    (void)st::Producer::create(guard.name(), small_config());
    FAIL() << "a second producer was allowed";
  } catch (const sluice::shm::SetupError& e) {
    EXPECT_NE(std::string(e.what()).find(guard.name()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
}

TEST(Channel, ASecondConsumerIsRefused) {
  ChannelGuard guard(unique_channel("twoconsumers"));
  auto producer = st::Producer::create(guard.name(), small_config());
  auto consumer = st::Consumer::open(guard.name());
  try {
    (void)st::Consumer::open(guard.name());
    FAIL() << "a second consumer was allowed";
  } catch (const sluice::shm::SetupError& e) {
    EXPECT_NE(std::string(e.what()).find("already has a consumer"), std::string::npos) << e.what();
  }
}

TEST(Channel, AConsumerMayAttachAfterThePreviousOneLeft) {
  ChannelGuard guard(unique_channel("reattach"));
  auto producer = st::Producer::create(guard.name(), small_config());
  { auto first = st::Consumer::open(guard.name()); }
  EXPECT_NO_THROW((void)st::Consumer::open(guard.name()));
}

TEST(Channel, OpeningAMissingChannelFailsAfterTheWait) {
  const std::string name = unique_channel("missing");
  st::OpenOptions options;
  options.wait_for_channel = 30ms;
  try {
    (void)st::Consumer::open(name, options);
    FAIL() << "opened a channel that does not exist";
  } catch (const sluice::shm::SetupError& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(Channel, OpenWaitsForTheChannelToAppear) {
  ChannelGuard guard(unique_channel("appear"));
  std::optional<st::Producer> producer;
  std::thread creator([&] {
    std::this_thread::sleep_for(50ms);
    producer.emplace(st::Producer::create(guard.name(), small_config()));
  });
  st::OpenOptions options;
  options.wait_for_channel = 20s;
  EXPECT_NO_THROW((void)st::Consumer::open(guard.name(), options));
  creator.join();
}

TEST(Channel, BadNamesAndConfigurationsAreRefusedClearly) {
  for (const char* bad : {"", "a/b", "../x", ".hidden", "sp ace"}) {
    EXPECT_THROW((void)st::Producer::create(bad, small_config()), sluice::shm::SetupError) << bad;
  }
  const std::string name = unique_channel("badconfig");
  try {
    (void)st::Producer::create(name, small_config(0));
    FAIL();
  } catch (const sluice::shm::SetupError& e) {
    EXPECT_NE(std::string(e.what()).find("buffer count"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)st::Producer::create(name, small_config(4, 8)), sluice::shm::SetupError);
  EXPECT_FALSE(sluice::shm::Segment::exists(name));
}

TEST(Channel, SegmentIsOwnerOnlyByDefaultAndSizedByItsConfiguration) {
  ChannelGuard guard(unique_channel("perm"));
  auto producer = st::Producer::create(guard.name(), small_config(8, 1000));
  EXPECT_EQ(producer.mapping().segment().mode(), 0600U);
  EXPECT_EQ(producer.mapping().segment().size(),
            st::compute_layout(small_config(8, 1000)).total_bytes);
  const auto info = st::inspect_channel(guard.name());
  ASSERT_TRUE(info.readable) << info.problem;
  EXPECT_EQ(info.config.buffer_count, 8U);
  EXPECT_EQ(info.config.buffer_bytes, 1000U);
  EXPECT_TRUE(info.producer.alive);
  EXPECT_EQ(info.producer.pid, getpid());
  EXPECT_FALSE(info.consumer.alive);
}

// Resident shared memory of this process, kB (/proc/self/status RssShmem).
std::uint64_t resident_shmem_kb() {
  std::ifstream status("/proc/self/status");
  std::string key;
  std::uint64_t value = 0;
  while (status >> key) {
    if (key == "RssShmem:") {
      status >> value;
      return value;
    }
    status.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

bool kernel_can_populate() {
  void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) {
    return false;
  }
  const bool can = ::madvise(page, 4096, MADV_POPULATE_WRITE) == 0;
  ::munmap(page, 4096);
  return can;
}

TEST(Channel, EndpointsMapTheWholeSegmentUpFront) {
  if (!kernel_can_populate()) {
    GTEST_SKIP() << "this kernel has no MADV_POPULATE_WRITE";
  }
  ChannelGuard guard(unique_channel("prefault"));
  const std::uint64_t before = resident_shmem_kb();
  auto producer = st::Producer::create(guard.name(), small_config(64, 64 * 1024));  // 4 MiB
  // Every page of the pool is mapped before any buffer was touched.
  const std::uint64_t segment_kb = producer.mapping().segment().size() / 1024;
  EXPECT_GE(resident_shmem_kb() - before, segment_kb * 9 / 10);
}

TEST(Channel, WiderPermissionsOnlyWhenAsked) {
  ChannelGuard guard(unique_channel("perm660"));
  st::CreateOptions options;
  options.mode = 0660;
  auto producer = st::Producer::create(guard.name(), small_config(), options);
  EXPECT_EQ(producer.mapping().segment().mode(), 0660U);
}

TEST(Channel, ReplaceStaleReplacesOnlyAnUnusedChannel) {
  ChannelGuard guard(unique_channel("stale"));
  st::CreateOptions replace;
  replace.replace_stale = true;
  {
    auto producer = st::Producer::create(guard.name(), small_config());
    EXPECT_THROW((void)st::Producer::create(guard.name(), small_config(), replace),
                 sluice::shm::SetupError);  // its producer is alive
  }
  EXPECT_THROW((void)st::Producer::create(guard.name(), small_config()), sluice::shm::SetupError);
  EXPECT_NO_THROW((void)st::Producer::create(guard.name(), small_config(16), replace));
}

// A creator holds the producer's role from the moment the object exists, so a
// segment sized but not yet initialised (long while huge pages are populated)
// is never taken for a stale one and replaced under its creator.
TEST(Channel, ReplaceStaleLeavesAChannelBeingCreatedAlone) {
  ChannelGuard guard(unique_channel("creating"));
  sluice::shm::CreateOptions creating;
  creating.lock_slot = st::role_lock_slot(st::Role::kProducer);
  const sluice::shm::Segment half_made = sluice::shm::Segment::create(
      guard.name(), st::compute_layout(small_config()).total_bytes, creating);
  st::CreateOptions replace;
  replace.replace_stale = true;
  try {
    (void)st::Producer::create(guard.name(), small_config(), replace);
    ADD_FAILURE() << "replaced a channel its creator holds";
  } catch (const sluice::shm::SetupError& e) {
    EXPECT_NE(std::string(e.what()).find("producer is alive"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(half_made.remove_own_name());  // still the name of the creator's object
}

}  // namespace
