#pragma once

// How records are packed into buffers. Each record (or fragment of one) is a
// 4-byte little-endian frame word followed by its bytes, with no padding:
//   bits 0..28  fragment length (so a fragment is < 512 MiB; buffers are <= 256 MiB)
//   bit 29      kDiscard: drop any record in progress (a producer that took over
//               from a dead one writes this, with length 0, before anything else)
//   bit 30      kMoreFollows: the record continues at the start of the next buffer
//   bit 31      kContinuation: this fragment continues the previous buffer's record
// A record that fits in one buffer never spans two. A spanning record ends
// its buffer(s) with a kMoreFollows fragment, and every later buffer of it
// starts with a kContinuation fragment.

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sluice::transport::frame {

inline constexpr std::size_t kHeaderBytes = 4;
inline constexpr std::uint32_t kLengthMask = (1U << 29) - 1;
inline constexpr std::uint32_t kDiscard = 1U << 29;
inline constexpr std::uint32_t kMoreFollows = 1U << 30;
inline constexpr std::uint32_t kContinuation = 1U << 31;

inline void write_header(std::byte* at, std::uint32_t word) noexcept {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "frame words are little-endian");
  std::memcpy(at, &word, sizeof(word));
}

inline std::uint32_t read_header(const std::byte* at) noexcept {
  std::uint32_t word = 0;
  std::memcpy(&word, at, sizeof(word));
  return word;
}

}  // namespace sluice::transport::frame
