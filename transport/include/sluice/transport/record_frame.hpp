#pragma once

// How records are packed into buffers. Each record (or fragment of one) is a
// 4-byte little-endian frame word followed by its bytes, with no padding:
//   bits 0..27  fragment length (< 256 MiB, the largest buffer)
//   bit 28      kInPlace: published in place in an open buffer (see below)
//   bit 29      kDiscard: drop any record in progress (a producer that took over
//               from a dead one writes this, with length 0, before anything else)
//   bit 30      kMoreFollows: the record continues at the start of the next buffer
//   bit 31      kContinuation: this fragment continues the previous buffer's record
// A record that fits in one buffer never spans two. A spanning record ends
// its buffer(s) with a kMoreFollows fragment, and every later buffer of it
// starts with a kContinuation fragment.
//
// Runs (layout version 5): records of one length written one after another
// share one header. The word kRun | length is followed by a 4-byte
// little-endian count (at least 1) and then `count` records of `length`
// (at least 1) bytes, back to back. kRun is a combination no other frame of a
// committed buffer has (kInPlace marks frames of open buffers only), and runs
// appear only in committed buffers, never in open ones. For small records
// the header was most of the transport's own bytes (4 per 8-byte record) and
// a header check per record; a run costs 8 bytes per buffer and lets a
// reader step through its records with no check between them.
//
// In place (open buffers): the consumer holds the buffer while the producer
// appends, and reads each frame as soon as its word is published. Every frame
// there has kInPlace set, starts on a 4-byte boundary (a frame is padded to
// a multiple of 4), and is a whole record or a discard frame. The producer
// writes the bytes, then a zero word where the next frame will start, then
// the frame word with release; so a zero word at the reader's position means
// "not written yet" and a non-zero one is a complete frame. kSealed ends the
// buffer (as does having fewer than 4 bytes left).

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice::transport::frame {

inline constexpr std::size_t kHeaderBytes = 4;
inline constexpr std::uint32_t kLengthMask = (1U << 28) - 1;
inline constexpr std::uint32_t kInPlace = 1U << 28;
inline constexpr std::uint32_t kDiscard = 1U << 29;
inline constexpr std::uint32_t kMoreFollows = 1U << 30;
inline constexpr std::uint32_t kContinuation = 1U << 31;
// Ends an open buffer: no record has all of these flags.
inline constexpr std::uint32_t kSealed = kInPlace | kDiscard | kMoreFollows | kContinuation;
// A run of records of one length, in committed buffers (see above).
inline constexpr std::uint32_t kRun = kInPlace | kContinuation;
inline constexpr std::size_t kRunHeaderBytes = 8;  // the word and the count
// Records longer than this are not put in runs: their header is a small
// share of their bytes, and starting a run moves the record before it.
inline constexpr std::size_t kRunMaxRecordBytes = 1024;

// Bytes an in-place frame takes: its word and body, padded to 4 bytes.
constexpr std::size_t in_place_frame_bytes(std::size_t body_bytes) noexcept {
  return (kHeaderBytes + body_bytes + 3) & ~std::size_t{3};
}

inline void write_header(std::byte* at, std::uint32_t word) noexcept {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "frame words are little-endian");
  std::memcpy(at, &word, sizeof(word));
}

// Copies sizeof(Word) to 2 * sizeof(Word) bytes as two word moves
// (they overlap below 2 * sizeof(Word) bytes), both loaded before either is stored.
template <class Word>
inline void copy_head_and_tail(std::byte* to, const std::byte* from, std::size_t bytes) noexcept {
  Word head = 0;
  Word tail = 0;
  std::memcpy(&head, from, sizeof(Word));
  std::memcpy(&tail, from + bytes - sizeof(Word), sizeof(Word));
  std::memcpy(to, &head, sizeof(Word));
  std::memcpy(to + bytes - sizeof(Word), &tail, sizeof(Word));
}

// Copies a record's bytes. Records up to 64 bytes (the common case for high
// record rates) are copied with a few fixed-size, overlapping moves the
// compiler inlines, not a call to memcpy with a variable length.
inline void copy_payload(std::byte* to, const std::byte* from, std::size_t bytes) noexcept {
  if (bytes == 8) {
    // One move, not two overlapping ones: each store to the shared buffer
    // holds a place in the store queue until its line is this core's.
    std::uint64_t word = 0;
    std::memcpy(&word, from, 8);
    std::memcpy(to, &word, 8);
  } else if (bytes > 8 && bytes <= 16) {
    copy_head_and_tail<std::uint64_t>(to, from, bytes);
  } else if (bytes > 16 && bytes <= 64) {
    // Word by word, the last word overlapping when the length is not a
    // multiple of 8. Wider loads would be fewer, but a record is usually
    // written just before it is copied, field by field: a load that spans
    // two of those stores cannot be forwarded from them and waits until
    // they reach the cache, behind the stores to the shared buffer, whose
    // lines the consumer has just read: 64-byte records filled as the
    // standard record is went through write() at 35-55 M/s with 16-byte
    // moves, 55 M/s with these (before write() asked ahead for the lines).
    // A word load lies within any store of 8 bytes or more.
    std::size_t offset = 0;
    for (; offset + 8 <= bytes; offset += 8) {
      std::uint64_t word = 0;
      std::memcpy(&word, from + offset, 8);
      std::memcpy(to + offset, &word, 8);
    }
    if (offset != bytes) {
      std::uint64_t word = 0;
      std::memcpy(&word, from + bytes - 8, 8);
      std::memcpy(to + bytes - 8, &word, 8);
    }
  } else if (bytes >= 4 && bytes < 8) {
    copy_head_and_tail<std::uint32_t>(to, from, bytes);
  } else if (bytes > 0 && bytes < 4) {
    // 1..3 bytes: the first, and the last two (overlapping it for 2).
    const std::byte first = from[0];
    if (bytes > 1) {
      std::uint16_t last_two = 0;
      std::memcpy(&last_two, from + bytes - 2, 2);
      std::memcpy(to + bytes - 2, &last_two, 2);
    }
    to[0] = first;
  } else if (bytes != 0) {
    std::memcpy(to, from, bytes);
  }
}

inline std::uint32_t read_header(const std::byte* at) noexcept {
  std::uint32_t word = 0;
  std::memcpy(&word, at, sizeof(word));
  return word;
}

// The frame word of an open buffer, which the other process may be writing:
// an atomic access at a 4-byte aligned address. Acquire pairs with the
// writer's release, so the frame's bytes are visible once its word is.
inline std::uint32_t load_in_place_word(const std::byte* at) noexcept {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): 4-aligned word in shared memory
  return __atomic_load_n(reinterpret_cast<const std::uint32_t*>(at), __ATOMIC_ACQUIRE);
}
inline void store_in_place_word(std::byte* at, std::uint32_t word, int order) noexcept {
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): 4-aligned word in shared memory
  __atomic_store_n(reinterpret_cast<std::uint32_t*>(at), word, order);
}

}  // namespace sluice::transport::frame
