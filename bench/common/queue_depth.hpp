#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::bench {

// Queue depth (messages) for systems that count in messages: 2 MiB of
// payload in flight, like Sluice's default pool (64 x 32 KiB), at least 8
// and at most 256 (iceoryx's compile-time maximum subscriber queue).
inline std::uint64_t queue_depth(std::size_t size) {
  const std::uint64_t by_bytes = (std::uint64_t{2} << 20) / size;
  return by_bytes < 8 ? 8 : (by_bytes > 256 ? 256 : by_bytes);
}

}  // namespace sluice::bench
