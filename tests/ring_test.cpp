#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "sluice/transport/spsc_ring.hpp"

namespace st = sluice::transport;

namespace {

// A ring in ordinary memory, laid out as in a segment.
class HeapRing {
 public:
  explicit HeapRing(std::uint64_t capacity) : capacity_(capacity) {
    const std::size_t bytes = sizeof(st::RingIndices) + capacity * sizeof(st::RingSlot);
    memory_ = static_cast<std::byte*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
    indices_ = new (memory_) st::RingIndices{};
    slots_ = reinterpret_cast<st::RingSlot*>(memory_ + sizeof(st::RingIndices));
    for (std::uint64_t i = 0; i < capacity; ++i) {
      new (&slots_[i]) st::RingSlot(0);
    }
  }
  ~HeapRing() { std::free(memory_); }
  HeapRing(const HeapRing&) = delete;
  HeapRing& operator=(const HeapRing&) = delete;

  st::RingWriter writer() { return {indices_, slots_, capacity_}; }
  st::RingReader reader() { return {indices_, slots_, capacity_}; }
  st::RingIndices& indices() { return *indices_; }
  st::RingSlot* slots() { return slots_; }

 private:
  std::uint64_t capacity_;
  std::byte* memory_;
  st::RingIndices* indices_;
  st::RingSlot* slots_;
};

TEST(Ring, PopsInPushOrderAndReportsEmpty) {
  HeapRing ring(8);
  auto writer = ring.writer();
  auto reader = ring.reader();
  std::uint64_t value = 0;
  EXPECT_EQ(reader.pop(value), st::RingResult::kEmpty);
  for (std::uint64_t i = 0; i < 5; ++i) {
    ASSERT_EQ(writer.push(100 + i), st::RingResult::kOk);
  }
  for (std::uint64_t i = 0; i < 5; ++i) {
    ASSERT_EQ(reader.pop(value), st::RingResult::kOk);
    EXPECT_EQ(value, 100 + i);
  }
  EXPECT_EQ(reader.pop(value), st::RingResult::kEmpty);
}

TEST(Ring, ReportsFullAtCapacityAndRecoversAfterPop) {
  HeapRing ring(4);
  auto writer = ring.writer();
  auto reader = ring.reader();
  for (std::uint64_t i = 0; i < 4; ++i) {
    ASSERT_EQ(writer.push(i), st::RingResult::kOk);
  }
  EXPECT_EQ(writer.push(99), st::RingResult::kFull);
  std::uint64_t value = 0;
  ASSERT_EQ(reader.pop(value), st::RingResult::kOk);
  EXPECT_EQ(value, 0U);
  EXPECT_EQ(writer.push(4), st::RingResult::kOk);
  for (std::uint64_t expected = 1; expected <= 4; ++expected) {
    ASSERT_EQ(reader.pop(value), st::RingResult::kOk);
    EXPECT_EQ(value, expected);
  }
}

TEST(Ring, StagedValuesStayInvisibleUntilPublished) {
  HeapRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();
  for (std::uint64_t i = 0; i < 10; ++i) {
    ASSERT_EQ(writer.stage(i), st::RingResult::kOk);
  }
  std::uint64_t value = 0;
  EXPECT_EQ(reader.pop(value), st::RingResult::kEmpty);
  writer.publish();
  for (std::uint64_t i = 0; i < 10; ++i) {
    ASSERT_EQ(reader.pop(value), st::RingResult::kOk);
    EXPECT_EQ(value, i);
  }
}

TEST(Ring, WrapsAroundManyTimes) {
  HeapRing ring(4);
  auto writer = ring.writer();
  auto reader = ring.reader();
  std::uint64_t value = 0;
  for (std::uint64_t i = 0; i < 1000; ++i) {
    ASSERT_EQ(writer.push(i), st::RingResult::kOk);
    ASSERT_EQ(reader.pop(value), st::RingResult::kOk);
    ASSERT_EQ(value, i);
  }
  EXPECT_EQ(ring.indices().head.load(), 1000U);
  EXPECT_EQ(ring.indices().tail.load(), 1000U);
}

TEST(Ring, HandlesResumeWhereTheSharedIndicesStand) {
  HeapRing ring(8);
  {
    auto writer = ring.writer();
    ASSERT_EQ(writer.push(1), st::RingResult::kOk);
    ASSERT_EQ(writer.push(2), st::RingResult::kOk);
  }
  auto reader = ring.reader();
  std::uint64_t value = 0;
  ASSERT_EQ(reader.pop(value), st::RingResult::kOk);
  EXPECT_EQ(value, 1U);
  auto writer = ring.writer();  // a re-attached writer continues after value 2
  ASSERT_EQ(writer.push(3), st::RingResult::kOk);
  ASSERT_EQ(reader.pop(value), st::RingResult::kOk);
  EXPECT_EQ(value, 2U);
  ASSERT_EQ(reader.pop(value), st::RingResult::kOk);
  EXPECT_EQ(value, 3U);
}

TEST(Ring, ReaderRejectsATailBeyondCapacity) {
  HeapRing ring(8);
  auto reader = ring.reader();
  ring.indices().tail.store(9);
  std::uint64_t value = 0;
  EXPECT_EQ(reader.pop(value), st::RingResult::kCorrupt);
}

TEST(Ring, ReaderRejectsATailBehindItsHead) {
  HeapRing ring(8);
  auto writer = ring.writer();
  auto reader = ring.reader();
  ASSERT_EQ(writer.push(1), st::RingResult::kOk);
  std::uint64_t value = 0;
  ASSERT_EQ(reader.pop(value), st::RingResult::kOk);
  ring.indices().tail.store(0);  // moved backwards
  EXPECT_EQ(reader.pop(value), st::RingResult::kCorrupt);
}

TEST(Ring, WriterRejectsAHeadBeyondItsTail) {
  HeapRing ring(2);
  auto writer = ring.writer();
  ASSERT_EQ(writer.push(1), st::RingResult::kOk);
  ASSERT_EQ(writer.push(2), st::RingResult::kOk);
  ring.indices().head.store(7);  // past anything written
  EXPECT_EQ(writer.push(3), st::RingResult::kCorrupt);
}

TEST(Ring, TwoThreadsTransferEveryValueInOrder) {
  constexpr std::uint64_t kCount = 2'000'000;
  HeapRing ring(64);
  auto writer = ring.writer();
  auto reader = ring.reader();
  std::thread producer([&writer] {
    for (std::uint64_t i = 0; i < kCount;) {
      const auto result = writer.push(i);
      if (result == st::RingResult::kOk) {
        ++i;
      } else if (result == st::RingResult::kFull) {
        // Yield, not spin: under the sanitizers this test ran for half a
        // minute with both cores busy, starving the tests beside it.
        std::this_thread::yield();
      } else {
        return;
      }
    }
  });
  std::uint64_t expected = 0;
  bool in_order = true;
  while (expected < kCount) {
    std::uint64_t value = 0;
    const auto result = reader.pop(value);
    if (result == st::RingResult::kOk) {
      in_order = in_order && value == expected;
      ++expected;
    } else if (result == st::RingResult::kEmpty) {
      std::this_thread::yield();
    } else {
      break;
    }
  }
  producer.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(expected, kCount);
}

}  // namespace
