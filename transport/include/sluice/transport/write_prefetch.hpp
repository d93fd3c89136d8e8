#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "sluice/transport/channel_layout.hpp"

namespace sluice::transport {

// How far ahead of the write position write() asks for the buffer's lines.
// A line of a reused buffer was last read by the consumer's core, so a
// store to it waits for the line to come back (a read for ownership, some
// hundred cycles). Stores leave the core in order, so while the oldest one
// waits every later one queues behind it; a record copied from the caller's
// memory takes a store for each word it is filled with and one for each it
// is copied with, and the store queue then covers only a few lines: write()
// of 8-byte records ran at half the rate it reaches asking ahead (190 vs
// 390-440 M records/s), 64-byte ones at 0.6 (50 vs 80-95 M/s). 2 KiB ahead
// keeps about thirty-two lines on their way; asked for once per line (see
// prefetch_ahead_on_new_line), that went further than 1 KiB: 8-byte
// records 458-477 -> 500-506 M/s, 64-byte ones 85-90 -> 93-101 M/s. (Asked
// for at every record, 2 and 4 KiB had been no faster than 1 KiB.)
inline constexpr std::size_t kWritePrefetchBytes = 2048;

// Asks, without waiting, for the cache line holding `address` in a state
// this core may write (PREFETCHW: a read for ownership). A plain prefetch
// would fetch the line shared, and the store would still have to claim it.
// x86-64 processors older than the instruction take its encoding for a
// no-op hint.
inline void prefetch_for_write(std::uintptr_t address) noexcept {
#if defined(__x86_64__)
  asm volatile("prefetchw (%0)" : : "r"(address));
#else
  // NOLINTNEXTLINE(performance-no-int-to-ptr): the address is only a hint
  __builtin_prefetch(reinterpret_cast<const void*>(address), 1);
#endif
}

// The line kWritePrefetchBytes after `at`, or the last one before `limit`
// (the end of the writer's buffer): the lines after it belong to other
// buffers, possibly being read by the consumer right now.
inline void prefetch_ahead_for_write(const std::byte* at, const std::byte* limit) noexcept {
  prefetch_for_write(std::min(reinterpret_cast<std::uintptr_t>(at) + kWritePrefetchBytes,
                              reinterpret_cast<std::uintptr_t>(limit) - 1));
}

// write()'s look ahead, once per cache line instead of once per record:
// when the record about to be written at [at, at + size) reaches past the
// line `at` lies in. With records up to a line long every line is asked
// for once, as the write position enters the line kWritePrefetchBytes
// before it, and 8-byte records spend a comparison instead of a prefetch on
// seven records out of eight (through write(): 400-416 -> 433-455 M/s,
// 1 KiB ahead). A record longer than a line asks for as many lines as it
// spans, from kWritePrefetchBytes ahead: at one line per record, 1 KiB
// records through write() ran at 0.69-0.86x of write_batch (3.97-4.92 M/s),
// with all of them at 0.80-1.02x (4.68-6.19 M/s), in six rounds each.
inline void prefetch_ahead_on_new_line(const std::byte* at, std::size_t size,
                                       const std::byte* limit) noexcept {
  const auto first = reinterpret_cast<std::uintptr_t>(at);
  if (((first + size) ^ first) >= kCacheLine) {
    prefetch_ahead_for_write(at, limit);
    if (size > kCacheLine) {
      const std::uintptr_t end =
          std::min(first + kWritePrefetchBytes + size, reinterpret_cast<std::uintptr_t>(limit));
      for (std::uintptr_t line = first + kWritePrefetchBytes + kCacheLine; line < end;
           line += kCacheLine) {
        prefetch_for_write(line);
      }
    }
  }
}

// For a buffer just taken: its first kWritePrefetchBytes, which the
// writer's look ahead reached for only once the buffer was there.
inline void prefetch_start_for_write(const std::byte* begin, const std::byte* limit) noexcept {
  const auto first = reinterpret_cast<std::uintptr_t>(begin);
  const auto end = std::min(first + kWritePrefetchBytes, reinterpret_cast<std::uintptr_t>(limit));
  for (std::uintptr_t line = first; line < end; line += kCacheLine) {
    prefetch_for_write(line);
  }
}

}  // namespace sluice::transport
