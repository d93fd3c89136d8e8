#pragma once

// The standard test record used by the demo programs, the tests and the
// benchmarks: S >= 8 bytes, the first 8 the sequence number (little-endian),
// the rest 64-bit words derived from it, so that every byte is checked and a
// record from another position or a torn copy is caught.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace sluice::transport::pattern {

inline constexpr std::size_t kMinRecordBytes = 8;

constexpr std::uint64_t word_for(std::uint64_t sequence, std::size_t word_index) noexcept {
  return (sequence + 1) * 0x9E3779B97F4A7C15ULL ^ (word_index * 0xBF58476D1CE4E5B9ULL);
}

inline void fill(std::span<std::byte> record, std::uint64_t sequence) noexcept {
  std::memcpy(record.data(), &sequence, sizeof(sequence));
  std::size_t offset = 8;
  std::size_t word_index = 1;
  for (; offset + 8 <= record.size(); offset += 8, ++word_index) {
    const std::uint64_t word = word_for(sequence, word_index);
    std::memcpy(record.data() + offset, &word, 8);
  }
  if (offset < record.size()) {
    const std::uint64_t word = word_for(sequence, word_index);
    std::memcpy(record.data() + offset, &word, record.size() - offset);
  }
}

inline std::uint64_t sequence_of(std::span<const std::byte> record) noexcept {
  std::uint64_t sequence = 0;
  std::memcpy(&sequence, record.data(), sizeof(sequence));
  return sequence;
}

// Whether bytes 8.. match what fill() writes for `sequence`.
inline bool body_matches(std::span<const std::byte> record, std::uint64_t sequence) noexcept {
  std::size_t offset = 8;
  std::size_t word_index = 1;
  std::uint64_t mismatch = 0;
  for (; offset + 8 <= record.size(); offset += 8, ++word_index) {
    std::uint64_t word = 0;
    std::memcpy(&word, record.data() + offset, 8);
    mismatch |= word ^ word_for(sequence, word_index);
  }
  if (offset < record.size()) {
    const std::uint64_t expected = word_for(sequence, word_index);
    std::uint64_t word = 0;
    std::uint64_t want = 0;
    std::memcpy(&word, record.data() + offset, record.size() - offset);
    std::memcpy(&want, &expected, record.size() - offset);
    mismatch |= word ^ want;
  }
  return mismatch == 0;
}

}  // namespace sluice::transport::pattern
