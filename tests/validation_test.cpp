// Segments and shared state that are wrong, foreign or corrupted are refused
// with a clear error, never trusted.

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cstring>

#include "sluice/shm/segment.hpp"
#include "sluice/shm/segment_name.hpp"
#include "sluice/shm/setup_error.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"
#include "test_support.hpp"

namespace st = sluice::transport;
namespace bip = boost::interprocess;
using namespace std::chrono_literals;
using sluice::test::ChannelGuard;
using sluice::test::unique_channel;

namespace {

std::string open_error(const std::string& name) {
  try {
    (void)st::Consumer::open(name);
  } catch (const sluice::shm::SetupError& e) {
    return e.what();
  }
  return "(opened without error)";
}

// Maps a channel's segment directly, as a misbehaving process would.
class RawMapping {
 public:
  explicit RawMapping(const std::string& name)
      : object_(bip::open_only, sluice::shm::object_name(name).c_str(), bip::read_write),
        region_(object_, bip::read_write) {}
  std::byte* base() { return static_cast<std::byte*>(region_.get_address()); }
  template <class T>
  T& at(std::uint64_t offset) {
    return *reinterpret_cast<T*>(base() + offset);
  }

 private:
  bip::shared_memory_object object_;
  bip::mapped_region region_;
};

TEST(Validation, ForeignObjectIsNotASluiceSegment) {
  ChannelGuard guard(unique_channel("foreign"));
  {
    auto segment = sluice::shm::Segment::create(guard.name(), 8192, {});
    std::memset(segment.base(), 0x5A, segment.size());
  }
  const std::string error = open_error(guard.name());
  EXPECT_NE(error.find("not a Sluice segment"), std::string::npos) << error;
  EXPECT_NE(error.find(guard.name()), std::string::npos) << error;
}

TEST(Validation, TooSmallObjectIsTruncated) {
  ChannelGuard guard(unique_channel("tiny"));
  { auto segment = sluice::shm::Segment::create(guard.name(), 16, {}); }
  const std::string error = open_error(guard.name());
  EXPECT_NE(error.find("truncated"), std::string::npos) << error;
}

TEST(Validation, OtherLayoutVersionIsRefusedSayingSo) {
  ChannelGuard guard(unique_channel("version"));
  auto producer = st::Producer::create(guard.name());
  RawMapping raw(guard.name());
  raw.at<st::ChannelHeader>(0).segment.layout_version = st::kLayoutVersion + 1;
  const std::string error = open_error(guard.name());
  EXPECT_NE(error.find("layout version"), std::string::npos) << error;
}

TEST(Validation, OtherBuildIsRefusedNamingTheDifference) {
  ChannelGuard guard(unique_channel("abi"));
  auto producer = st::Producer::create(guard.name());
  RawMapping raw(guard.name());
  raw.at<st::ChannelHeader>(0).segment.abi.cache_line_bytes = 128;
  const std::string error = open_error(guard.name());
  EXPECT_NE(error.find("cache line size is 128"), std::string::npos) << error;
}

TEST(Validation, ResizedSegmentIsRefused) {
  ChannelGuard guard(unique_channel("resized"));
  auto producer = st::Producer::create(guard.name());
  const auto size = producer.mapping().segment().size();
  const int fd = shm_open(sluice::shm::object_name(guard.name()).c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size - 4096)), 0);
  close(fd);
  const std::string error = open_error(guard.name());
  EXPECT_NE(error.find("truncated or resized"), std::string::npos) << error;
}

TEST(Validation, EveryHeaderFieldIsChecked) {
  // Each mutation of the header makes open fail with an explanation.
  struct Mutation {
    const char* label;
    void (*apply)(st::ChannelHeader&);
  };
  const Mutation mutations[] = {
      {"magic", [](st::ChannelHeader& h) { h.segment.magic.store(0xDEAD); }},
      {"kind", [](st::ChannelHeader& h) { h.segment.kind = 7; }},
      {"segment size", [](st::ChannelHeader& h) { h.segment.segment_bytes += 64; }},
      {"region count", [](st::ChannelHeader& h) { h.segment.region_count = 99; }},
      {"region offset",
       [](st::ChannelHeader& h) { h.segment.regions[st::kDataRingRegion].offset += 64; }},
      {"region size",
       [](st::ChannelHeader& h) { h.segment.regions[st::kBufferPoolRegion].bytes *= 2; }},
      {"pointer size", [](st::ChannelHeader& h) { h.segment.abi.pointer_bytes = 4; }},
      {"buffer count", [](st::ChannelHeader& h) { h.config.buffer_count = 0; }},
      {"buffer size", [](st::ChannelHeader& h) { h.config.buffer_bytes = 1ULL << 40; }},
      {"buffer stride", [](st::ChannelHeader& h) { h.config.buffer_stride = 8; }},
      {"ring capacity", [](st::ChannelHeader& h) { h.config.ring_capacity = 3; }},
  };
  for (const auto& mutation : mutations) {
    ChannelGuard guard(unique_channel("header"));
    auto producer = st::Producer::create(guard.name());
    RawMapping raw(guard.name());
    mutation.apply(raw.at<st::ChannelHeader>(0));
    const std::string error = open_error(guard.name());
    EXPECT_NE(error.find(guard.name()), std::string::npos) << mutation.label << ": " << error;
    EXPECT_EQ(error.find("opened without error"), std::string::npos) << mutation.label;
  }
}

class HostileRing : public ::testing::Test {
 protected:
  void SetUp() override {
    st::ChannelConfig config;
    config.buffer_count = 4;
    config.buffer_bytes = 256;
    producer_.emplace(st::Producer::create(guard_.name(), config));
    consumer_.emplace(st::Consumer::open(guard_.name()));
    raw_.emplace(guard_.name());
  }
  const st::ChannelHeader& header() { return raw_->at<st::ChannelHeader>(0); }
  st::RingIndices& ring(st::RegionIndex which) {
    return raw_->at<st::RingIndices>(header().segment.regions[which].offset);
  }
  st::RingSlot* slots(st::RegionIndex which) {
    return reinterpret_cast<st::RingSlot*>(raw_->base() + header().segment.regions[which].offset +
                                           sizeof(st::RingIndices));
  }
  st::BufferStateWord* states() {
    return &raw_->at<st::BufferStateWord>(header().segment.regions[st::kBufferStateRegion].offset);
  }
  // Plants a descriptor in the data ring as a rogue producer would.
  void plant_descriptor(std::uint64_t descriptor) {
    auto& indices = ring(st::kDataRingRegion);
    const auto tail = indices.tail.load();
    slots(st::kDataRingRegion)[tail & (header().config.ring_capacity - 1)].store(descriptor);
    indices.tail.store(tail + 1);
  }
  void expect_consumer_corrupt(const std::string& fragment) {
    st::ReadableBuffer buffer;
    EXPECT_EQ(consumer_->try_receive(buffer), st::Status::kCorrupt);
    EXPECT_NE(consumer_->corruption().find(fragment), std::string::npos) << consumer_->corruption();
    EXPECT_EQ(consumer_->receive_for(buffer, 10ms), st::Status::kCorrupt);  // sticky
    EXPECT_EQ(consumer_->mapping().control().consumer_counters.corruption_seen.load(), 1U);
  }

  ChannelGuard guard_{unique_channel("hostile")};
  std::optional<st::Producer> producer_;
  std::optional<st::Consumer> consumer_;
  std::optional<RawMapping> raw_;
};

TEST_F(HostileRing, BufferIndexBeyondThePool) {
  plant_descriptor(st::make_descriptor(4, 10));
  expect_consumer_corrupt("beyond the pool");
}

TEST_F(HostileRing, LengthBeyondTheBuffer) {
  states()[0].store(static_cast<std::uint32_t>(st::BufferState::kQueued));
  plant_descriptor(st::make_descriptor(0, 257));
  expect_consumer_corrupt("beyond the buffer size");
}

TEST_F(HostileRing, BufferThatWasNeverQueued) {
  plant_descriptor(st::make_descriptor(1, 10));  // buffer 1 is free, not queued
  expect_consumer_corrupt("not queued");
}

TEST_F(HostileRing, SameBufferQueuedTwice) {
  st::WritableBuffer buffer;
  ASSERT_EQ(producer_->try_acquire(buffer), st::Status::kOk);
  const auto index = buffer.index();
  ASSERT_EQ(producer_->commit(std::move(buffer), 5), st::Status::kOk);
  plant_descriptor(st::make_descriptor(index, 5));
  st::ReadableBuffer first;
  ASSERT_EQ(consumer_->try_receive(first), st::Status::kOk);
  expect_consumer_corrupt("still holds");
}

TEST_F(HostileRing, DataTailFarAhead) {
  ring(st::kDataRingRegion).tail.store(1000);
  expect_consumer_corrupt("data ring index");
}

TEST_F(HostileRing, ReturnRingIndexBeyondThePool) {
  // Take all four initial buffers, then plant a bogus free index.
  std::vector<st::WritableBuffer> held(4);
  for (auto& buffer : held) {
    ASSERT_EQ(producer_->try_acquire(buffer), st::Status::kOk);
  }
  auto& indices = ring(st::kReturnRingRegion);
  const auto tail = indices.tail.load();
  slots(st::kReturnRingRegion)[tail & 3].store(77);
  indices.tail.store(tail + 1);
  st::WritableBuffer extra;
  EXPECT_EQ(producer_->try_acquire(extra), st::Status::kCorrupt);
  EXPECT_NE(producer_->corruption().find("beyond the pool"), std::string::npos);
  EXPECT_EQ(producer_->acquire_for(extra, 10ms), st::Status::kCorrupt);
}

TEST_F(HostileRing, ReturnedBufferThatIsNotFree) {
  std::vector<st::WritableBuffer> held(4);
  for (auto& buffer : held) {
    ASSERT_EQ(producer_->try_acquire(buffer), st::Status::kOk);
  }
  auto& indices = ring(st::kReturnRingRegion);
  const auto tail = indices.tail.load();
  slots(st::kReturnRingRegion)[tail & 3].store(held[0].index());  // still being written
  indices.tail.store(tail + 1);
  st::WritableBuffer extra;
  EXPECT_EQ(producer_->try_acquire(extra), st::Status::kCorrupt);
  EXPECT_NE(producer_->corruption().find("this producer holds"), std::string::npos)
      << producer_->corruption();
}

TEST_F(HostileRing, ForgedFreeStateCannotMakeTheProducerHandOutABufferTwice) {
  std::vector<st::WritableBuffer> held(4);
  for (auto& buffer : held) {
    ASSERT_EQ(producer_->try_acquire(buffer), st::Status::kOk);
  }
  const auto index = held[1].index();
  states()[index].store(static_cast<std::uint32_t>(st::BufferState::kFree));  // forged
  auto& indices = ring(st::kReturnRingRegion);
  const auto tail = indices.tail.load();
  slots(st::kReturnRingRegion)[tail & 3].store(index);
  indices.tail.store(tail + 1);
  st::WritableBuffer extra;
  EXPECT_EQ(producer_->try_acquire(extra), st::Status::kCorrupt);
  EXPECT_FALSE(extra.valid());
}

TEST_F(HostileRing, HeaderRewrittenAfterOpenIsNeverReadAgain) {
  // A peer enlarging the recorded buffer size or moving the pool after open
  // must not move this process's view of the buffers.
  auto& header = raw_->at<st::ChannelHeader>(0);
  header.config.buffer_bytes = 1U << 30;
  header.config.buffer_stride = 1U << 30;
  header.segment.regions[st::kBufferPoolRegion].offset = 1ULL << 40;
  EXPECT_EQ(producer_->config().buffer_bytes, 256U);
  st::WritableBuffer buffer;
  ASSERT_EQ(producer_->try_acquire(buffer), st::Status::kOk);
  EXPECT_EQ(buffer.capacity(), 256U);
  const auto& segment = producer_->mapping().segment();
  const auto* segment_end = segment.base() + segment.size();
  EXPECT_LE(buffer.data().data() + buffer.capacity(), segment_end);
  ASSERT_EQ(producer_->commit(std::move(buffer), 256), st::Status::kOk);
  st::ReadableBuffer view;
  ASSERT_EQ(consumer_->try_receive(view), st::Status::kOk);
  EXPECT_EQ(view.size(), 256U);
}

}  // namespace

namespace {

TEST(Security, AnotherUserCannotAttachToAnOwnerOnlyChannel) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root to act as a second user";
  }
  ChannelGuard guard(unique_channel("otheruser"));
  auto producer = st::Producer::create(guard.name());  // mode 0600, owned by root
  sluice::test::ChildProcess other([&]() -> int {
    if (setgid(65534) != 0 || setuid(65534) != 0) {  // nobody
      return 10;
    }
    try {
      (void)st::Consumer::open(guard.name());
      return 1;  // must not get in
    } catch (const sluice::shm::SetupError& e) {
      const std::string what = e.what();
      return what.find("permission denied") != std::string::npos &&
                     what.find(guard.name()) != std::string::npos
                 ? 0
                 : 2;
    }
  });
  EXPECT_EQ(other.wait(), 0);
}

TEST(Security, AGroupReadableChannelAdmitsAnotherUserOnlyWhenAsked) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root to act as a second user";
  }
  ChannelGuard guard(unique_channel("shared"));
  st::CreateOptions options;
  options.mode = 0666;
  auto producer = st::Producer::create(guard.name(), {}, options);
  sluice::test::ChildProcess other([&]() -> int {
    if (setgid(65534) != 0 || setuid(65534) != 0) {
      return 10;
    }
    try {
      auto consumer = st::Consumer::open(guard.name());
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    }
  });
  EXPECT_EQ(other.wait(), 0);
}

TEST(Security, APlantedSymlinkIsNeverFollowedOnCreate) {
  const std::string name = unique_channel("symlink");
  const std::string target = "/tmp/" + name + ".target";
  ASSERT_EQ(symlink(target.c_str(), sluice::shm::object_path(name).c_str()), 0);
  EXPECT_THROW((void)st::Producer::create(name), sluice::shm::SetupError);
  struct stat st {};
  EXPECT_NE(stat(target.c_str(), &st), 0) << "the symlink target was created";
  unlink(sluice::shm::object_path(name).c_str());
}

}  // namespace
