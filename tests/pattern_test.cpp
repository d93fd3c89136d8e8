// The standard record pattern: the vector fill and check agree with the
// word-by-word definition at every size, and every byte is checked.

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "sluice/transport/sequence_pattern.hpp"

namespace st = sluice::transport;

namespace {

// The definition written out one word at a time, without the vector path.
std::vector<std::byte> record_by_definition(std::size_t size, std::uint64_t sequence) {
  std::vector<std::byte> record(size);
  std::memcpy(record.data(), &sequence, sizeof(sequence));
  for (std::size_t offset = 8, word_index = 1; offset < size; offset += 8, ++word_index) {
    const std::uint64_t word = st::pattern::word_for(sequence, word_index);
    std::memcpy(record.data() + offset, &word, std::min<std::size_t>(8, size - offset));
  }
  return record;
}

// Sizes around every boundary of the vector loop, and the benchmark sizes.
std::vector<std::size_t> sizes_to_try() {
  std::vector<std::size_t> sizes;
  for (std::size_t size = st::pattern::kMinRecordBytes; size <= 300; ++size) {
    sizes.push_back(size);
  }
  for (const std::size_t size : {1024U, 1031U, 4096U, 65536U, 65541U}) {
    sizes.push_back(size);
  }
  return sizes;
}

}  // namespace

TEST(Pattern, FillWritesTheDefinedWordsAtEverySize) {
  for (const std::size_t size : sizes_to_try()) {
    for (const std::uint64_t sequence : {0ULL, 1ULL, 0x123456789ULL, ~0ULL}) {
      std::vector<std::byte> record(size, std::byte{0xAA});
      st::pattern::fill(record, sequence);
      ASSERT_EQ(record, record_by_definition(size, sequence)) << size << " bytes, seq " << sequence;
      ASSERT_EQ(st::pattern::sequence_of(record), sequence);
      ASSERT_TRUE(st::pattern::body_matches(record, sequence)) << size << " bytes";
    }
  }
}

TEST(Pattern, CheckCatchesAFlippedBitAnywhereInTheBody) {
  for (const std::size_t size : sizes_to_try()) {
    if (size > 1031) {
      continue;  // every position of the larger sizes adds time, not coverage
    }
    std::vector<std::byte> record = record_by_definition(size, 42);
    for (std::size_t position = 8; position < size; ++position) {
      for (const std::byte bit : {std::byte{0x01}, std::byte{0x80}}) {
        record[position] ^= bit;
        ASSERT_FALSE(st::pattern::body_matches(record, 42)) << size << " bytes, byte " << position;
        record[position] ^= bit;
      }
    }
    ASSERT_TRUE(st::pattern::body_matches(record, 42));
  }
}

TEST(Pattern, CheckCatchesARecordOfAnotherSequence) {
  for (const std::size_t size : sizes_to_try()) {
    if (size == st::pattern::kMinRecordBytes) {
      continue;  // no body: only the sequence word tells records apart
    }
    const std::vector<std::byte> record = record_by_definition(size, 7);
    ASSERT_FALSE(st::pattern::body_matches(record, 8)) << size << " bytes";
    if (size >= 16) {  // a shorter body holds only low bytes, which this one shares
      ASSERT_FALSE(st::pattern::body_matches(record, 7 + (1ULL << 32))) << size << " bytes";
    }
  }
}
