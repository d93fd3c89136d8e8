#pragma once

// The standard test record used by the demo programs, the tests and the
// benchmarks: S >= 8 bytes, the first 8 the sequence number (little-endian),
// the rest 64-bit words derived from it, so that every byte is checked and a
// record from another position or a torn copy is caught.
//
// Word i (i >= 1, at byte 8 * i) is base ^ (i * kIndexFactor) with
// base = (sequence + 1) * kSequenceFactor; a tail shorter than a word holds
// the low bytes of the next word. Filling and checking are the whole cost of
// the benchmarks' standard work, so the body is done two 16-byte vectors per
// step (SSE2, the x86-64 baseline; other targets split them): about 40 GB/s
// in cache against 12 GB/s one word per step. The index terms advance by
// addition, as 64-bit vector multiplies do not exist below AVX-512.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace sluice::transport::pattern {

inline constexpr std::size_t kMinRecordBytes = 8;
inline constexpr std::uint64_t kSequenceFactor = 0x9E3779B97F4A7C15ULL;
inline constexpr std::uint64_t kIndexFactor = 0xBF58476D1CE4E5B9ULL;

constexpr std::uint64_t word_for(std::uint64_t sequence, std::size_t word_index) noexcept {
  return (sequence + 1) * kSequenceFactor ^ (word_index * kIndexFactor);
}

namespace detail {

using WordPair = std::uint64_t __attribute__((vector_size(16)));
inline constexpr std::size_t kStepBytes = 2 * sizeof(WordPair);  // words i .. i+3

// Words 1 .. 4 and the per-step increment of their index terms.
inline constexpr WordPair kFirstLowTerms = {1 * kIndexFactor, 2 * kIndexFactor};
inline constexpr WordPair kFirstHighTerms = {3 * kIndexFactor, 4 * kIndexFactor};
inline constexpr WordPair kStepTerms = {4 * kIndexFactor, 4 * kIndexFactor};

// The vector loop pays once a record has at least one full step of body.
inline constexpr std::size_t kVectorFromBytes = 8 + kStepBytes;

// The low `count` (1..7) bytes of `word`, little-endian, in fixed-size moves:
// a memcpy with a run-time length is a library call, which made a 12-byte
// record cost about twice an 8- or 16-byte one in the comparison.
inline void store_low_bytes(std::byte* to, std::uint64_t word, std::size_t count) noexcept {
  if ((count & 4U) != 0) {
    const auto part = static_cast<std::uint32_t>(word);
    std::memcpy(to, &part, 4);
    to += 4;
    word >>= 32U;
  }
  if ((count & 2U) != 0) {
    const auto part = static_cast<std::uint16_t>(word);
    std::memcpy(to, &part, 2);
    to += 2;
    word >>= 16U;
  }
  if ((count & 1U) != 0) {
    *to = static_cast<std::byte>(word);
  }
}

inline std::uint64_t load_low_bytes(const std::byte* from, std::size_t count) noexcept {
  std::uint64_t word = 0;
  unsigned shift = 0;
  if ((count & 4U) != 0) {
    std::uint32_t part = 0;
    std::memcpy(&part, from, 4);
    word |= std::uint64_t{part};
    from += 4;
    shift = 32;
  }
  if ((count & 2U) != 0) {
    std::uint16_t part = 0;
    std::memcpy(&part, from, 2);
    word |= std::uint64_t{part} << shift;
    from += 2;
    shift += 16;
  }
  if ((count & 1U) != 0) {
    word |= std::uint64_t{std::to_integer<std::uint8_t>(*from)} << shift;
  }
  return word;
}

inline std::uint64_t low_bytes_of(std::uint64_t word, std::size_t count) noexcept {
  return word & ((std::uint64_t{1} << (8 * count)) - 1);  // count < 8
}

}  // namespace detail

inline void fill(std::span<std::byte> record, std::uint64_t sequence) noexcept {
  std::memcpy(record.data(), &sequence, sizeof(sequence));
  if (record.size() <= 8) {
    return;  // the sequence number alone (see body_matches)
  }
  const std::uint64_t base = (sequence + 1) * kSequenceFactor;
  std::size_t offset = 8;
  if (record.size() >= detail::kVectorFromBytes) {
    const detail::WordPair bases = {base, base};
    detail::WordPair low_terms = detail::kFirstLowTerms;
    detail::WordPair high_terms = detail::kFirstHighTerms;
    for (; offset + detail::kStepBytes <= record.size(); offset += detail::kStepBytes) {
      const detail::WordPair low = bases ^ low_terms;
      const detail::WordPair high = bases ^ high_terms;
      std::memcpy(record.data() + offset, &low, sizeof(low));
      std::memcpy(record.data() + offset + sizeof(low), &high, sizeof(high));
      low_terms += detail::kStepTerms;
      high_terms += detail::kStepTerms;
    }
  }
  std::size_t word_index = offset / 8;
  for (; offset + 8 <= record.size(); offset += 8, ++word_index) {
    const std::uint64_t word = base ^ (word_index * kIndexFactor);
    std::memcpy(record.data() + offset, &word, 8);
  }
  if (offset < record.size()) {
    const std::uint64_t word = base ^ (word_index * kIndexFactor);
    detail::store_low_bytes(record.data() + offset, word, record.size() - offset);
  }
}

inline std::uint64_t sequence_of(std::span<const std::byte> record) noexcept {
  std::uint64_t sequence = 0;
  std::memcpy(&sequence, record.data(), sizeof(sequence));
  return sequence;
}

// Whether bytes 8.. match what fill() writes for `sequence`.
inline bool body_matches(std::span<const std::byte> record, std::uint64_t sequence) noexcept {
  // An 8-byte record is its sequence number alone. Without this return
  // the general path's tests for a body that is not there came out as a
  // chain of jumps (seven taken per record in sluice-consumer's loop,
  // which then ran at 630 M records/s, at 800-840 M with it).
  if (record.size() <= 8) {
    return true;
  }
  const std::uint64_t base = (sequence + 1) * kSequenceFactor;
  std::uint64_t mismatch = 0;
  std::size_t offset = 8;
  if (record.size() >= detail::kVectorFromBytes) {
    const detail::WordPair bases = {base, base};
    detail::WordPair low_terms = detail::kFirstLowTerms;
    detail::WordPair high_terms = detail::kFirstHighTerms;
    detail::WordPair mismatches = {0, 0};
    for (; offset + detail::kStepBytes <= record.size(); offset += detail::kStepBytes) {
      detail::WordPair low;
      detail::WordPair high;
      std::memcpy(&low, record.data() + offset, sizeof(low));
      std::memcpy(&high, record.data() + offset + sizeof(low), sizeof(high));
      mismatches |= (low ^ bases ^ low_terms) | (high ^ bases ^ high_terms);
      low_terms += detail::kStepTerms;
      high_terms += detail::kStepTerms;
    }
    mismatch = mismatches[0] | mismatches[1];
  }
  std::size_t word_index = offset / 8;
  for (; offset + 8 <= record.size(); offset += 8, ++word_index) {
    std::uint64_t word = 0;
    std::memcpy(&word, record.data() + offset, 8);
    mismatch |= word ^ base ^ (word_index * kIndexFactor);
  }
  if (offset < record.size()) {
    const std::size_t tail = record.size() - offset;
    const std::uint64_t expected = base ^ (word_index * kIndexFactor);
    mismatch |=
        detail::load_low_bytes(record.data() + offset, tail) ^ detail::low_bytes_of(expected, tail);
  }
  return mismatch == 0;
}

}  // namespace sluice::transport::pattern
