// Channels asked to live in 2 MiB pages. What the kernel gives follows how
// /dev/shm is mounted (huge=never by default), so each test states what must
// hold for the mount it finds: with huge pages allowed they back the segment,
// without them kIfAvailable goes on with small pages and kRequired refuses
// with a reason. Either way the segment is exactly its configured size and
// the channel moves every byte.

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "sluice/shm/segment.hpp"
#include "sluice/shm/segment_name.hpp"
#include "sluice/shm/setup_error.hpp"
#include "sluice/transport/channel_layout.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/sequence_pattern.hpp"
#include "test_support.hpp"

namespace st = sluice::transport;
using sluice::test::ChannelGuard;
using sluice::test::unique_channel;

namespace {

using sluice::shm::kHugePageBytes;

st::ChannelConfig eight_mib() {
  st::ChannelConfig config;
  config.buffer_bytes = 1U << 20;
  config.buffer_count = 8;
  return config;
}

// How often the kernel wanted a huge page for a file or tmpfs object and fell
// back to small ones (no free 2 MiB of memory): the one reason a mount that
// allows huge pages may still not give them.
std::uint64_t huge_page_fallbacks() {
  std::ifstream vmstat("/proc/vmstat");
  std::string key;
  std::uint64_t value = 0;
  while (vmstat >> key >> value) {
    if (key == "thp_file_fallback") {
      return value;
    }
  }
  return 0;
}

std::size_t whole_huge_pages(const sluice::shm::Segment& segment) {
  return segment.size() / kHugePageBytes * kHugePageBytes;
}

// Every whole 2 MiB of the segment in a 2 MiB page where the mount allows
// them (unless the kernel reports falling back since `fallbacks_before`),
// none where it does not.
void expect_huge_pages_as_the_mount_allows(const sluice::shm::Segment& segment,
                                           std::uint64_t fallbacks_before) {
  const std::optional<std::size_t> huge = segment.huge_page_bytes();
  ASSERT_TRUE(huge.has_value()) << "/proc/self/smaps has no ShmemPmdMapped for the segment";
  if (!sluice::test::mount_gives_huge_pages()) {
    EXPECT_EQ(*huge, 0U) << "/dev/shm huge=" << sluice::shm::Segment::huge_page_mount_option();
  } else if (huge_page_fallbacks() == fallbacks_before) {
    EXPECT_EQ(*huge, whole_huge_pages(segment))
        << "/dev/shm huge=" << sluice::shm::Segment::huge_page_mount_option();
  }
}

}  // namespace

TEST(HugePages, IfAvailableFollowsTheMountAndKeepsTheChannelWhole) {
  ChannelGuard guard(unique_channel("huge"));
  st::CreateOptions options;
  options.huge_pages = st::HugePages::kIfAvailable;
  const std::uint64_t fallbacks_before = huge_page_fallbacks();
  auto producer = st::Producer::create(guard.name(), eight_mib(), options);
  auto consumer = st::Consumer::open(guard.name());

  const sluice::shm::Segment& segment = producer.mapping().segment();
  EXPECT_EQ(segment.size(), st::compute_layout(eight_mib()).total_bytes);
  struct stat st {};
  ASSERT_EQ(::fstat(segment.fd(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), segment.size());
  expect_huge_pages_as_the_mount_allows(segment, fallbacks_before);
  // The consumer maps the same pages: by 2 MiB entries too where they exist.
  expect_huge_pages_as_the_mount_allows(consumer.mapping().segment(), fallbacks_before);

  // Twice around the pool, every byte written and checked.
  for (std::uint64_t sequence = 0; sequence < 16; ++sequence) {
    st::WritableBuffer buffer;
    ASSERT_EQ(producer.try_acquire(buffer), st::Status::kOk) << sequence;
    st::pattern::fill(buffer.data(), sequence);
    ASSERT_EQ(producer.commit(std::move(buffer), buffer.data().size(), 1), st::Status::kOk);
    st::ReadableBuffer received;
    ASSERT_EQ(consumer.try_receive(received), st::Status::kOk) << sequence;
    ASSERT_EQ(received.size(), eight_mib().buffer_bytes);
    EXPECT_EQ(st::pattern::sequence_of(received.data()), sequence);
    EXPECT_TRUE(st::pattern::body_matches(received.data(), sequence)) << sequence;
  }
}

// A consumer started first maps the object as soon as it has a size. Pages it
// faulted before the creator populated them would be small ones: openers wait
// for the creator's magic without touching their mapping.
TEST(HugePages, AConsumerWaitingForTheChannelTakesNoSmallPages) {
  for (int round = 0; round < 10; ++round) {
    ChannelGuard guard(unique_channel("hugewait"));
    std::optional<st::Consumer> consumer;
    std::string open_error;
    {
      // Joined at the end of the scope whatever happens; a failure to open
      // is reported, not thrown out of the thread.
      std::jthread opener([&] {
        try {
          st::OpenOptions open;
          open.wait_for_channel = std::chrono::seconds(30);
          consumer.emplace(st::Consumer::open(guard.name(), open));
        } catch (const std::exception& e) {
          open_error = e.what();
        }
      });
      const std::uint64_t fallbacks_before = huge_page_fallbacks();
      st::CreateOptions options;
      options.huge_pages = st::HugePages::kIfAvailable;
      auto producer = st::Producer::create(guard.name(), eight_mib(), options);
      opener.join();
      ASSERT_TRUE(consumer.has_value()) << open_error;
      expect_huge_pages_as_the_mount_allows(producer.mapping().segment(), fallbacks_before);
      expect_huge_pages_as_the_mount_allows(consumer->mapping().segment(), fallbacks_before);
    }
  }
}

// The window those openers must not touch, made by hand: an object with its
// size but no pages and no magic yet, as a creator asking for huge pages leaves
// it between sizing and populating. Opening fails as "not finished" and must
// not have allocated a page (tmpfs counts them in st_blocks).
TEST(HugePages, OpeningAChannelStillBeingCreatedAllocatesNoPage) {
  ChannelGuard guard(unique_channel("hugewindow"));
  const std::string object = sluice::shm::object_name(guard.name());
  const int fd = ::shm_open(object.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(eight_mib().buffer_bytes)), 0);
  try {
    (void)st::Consumer::open(guard.name());
    ADD_FAILURE() << "opened a channel without a header";
  } catch (const sluice::shm::SetupError& e) {
    EXPECT_NE(std::string(e.what()).find("has not finished initialising"), std::string::npos)
        << e.what();
  }
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_blocks, 0) << "the opener faulted pages of the object in";
  ::close(fd);
}

TEST(HugePages, RequiredGetsThemAllOrRefusesAndLeavesNothingBehind) {
  ChannelGuard guard(unique_channel("hugereq"));
  st::CreateOptions options;
  options.huge_pages = st::HugePages::kRequired;
  const std::uint64_t fallbacks_before = huge_page_fallbacks();
  try {
    auto producer = st::Producer::create(guard.name(), eight_mib(), options);
    EXPECT_TRUE(sluice::test::mount_gives_huge_pages()) << "created without huge pages";
    const sluice::shm::Segment& segment = producer.mapping().segment();
    EXPECT_EQ(segment.huge_page_bytes(), std::optional(whole_huge_pages(segment)));
  } catch (const sluice::shm::SetupError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(!sluice::test::mount_gives_huge_pages() ||
                huge_page_fallbacks() != fallbacks_before)
        << "refused where the mount allows them and the kernel did not fall back: " << what;
    EXPECT_NE(what.find("huge pages were required"), std::string::npos) << what;
    EXPECT_NE(what.find(guard.name()), std::string::npos) << what;
    EXPECT_FALSE(sluice::shm::Segment::exists(guard.name()));
  }
}

TEST(HugePages, RequiredRefusesASegmentSmallerThanOneHugePage) {
  ChannelGuard guard(unique_channel("hugesmall"));
  st::ChannelConfig config;
  config.buffer_bytes = 4096;
  config.buffer_count = 4;
  st::CreateOptions options;
  options.huge_pages = st::HugePages::kRequired;
  try {
    (void)st::Producer::create(guard.name(), config, options);
    FAIL() << "a segment under 2 MiB cannot be mapped by a 2 MiB page";
  } catch (const sluice::shm::SetupError& e) {
    EXPECT_NE(std::string(e.what()).find("smaller than one"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(sluice::shm::Segment::exists(guard.name()));
}
