#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "sluice/transport/channel_config.hpp"

namespace sluice::bench {

// Queue depth (messages) for systems that count in messages: as many records
// as Sluice's pool holds in flight at that size, at most 256 (iceoryx's
// compile-time maximum subscriber queue). Up to 1 KiB that is the default
// pool's 2 MiB of payload, at least 8 records; above, where Sluice gives each
// record a buffer, the buffers sized_for_records gives (about 1 MiB, at
// least 2).
inline std::uint64_t queue_depth(std::size_t size) {
  namespace st = sluice::transport;
  std::uint64_t depth = 0;
  if (size <= 1024) {
    depth = std::max<std::uint64_t>(8, (std::uint64_t{2} << 20) / size);
  } else {
    st::ChannelConfig config;
    config.buffer_bytes = st::ChannelConfig::kMinBufferBytes;  // too small: sized for one record
    depth = st::sized_for_records(config, size).buffer_count;
  }
  return std::min<std::uint64_t>(depth, 256);
}

}  // namespace sluice::bench
