#pragma once

#include <sys/types.h>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/transport/channel_config.hpp"
#include "sluice/transport/channel_layout.hpp"

namespace sluice::transport {

struct EndpointInfo {
  EndpointState state = EndpointState::kNeverAttached;
  bool alive = false;  // holds its liveness lock right now
  std::int32_t pid = 0;
  std::uint64_t start_ticks = 0;
  std::uint64_t attach_count = 0;
};

struct CounterSnapshot {
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::uint64_t buffers = 0;
  std::uint64_t waited_ns = 0;  // producer: blocked; consumer: idle
  bool corruption_seen = false;
};

// What a tool may learn about a channel without attaching to it or
// disturbing it: configuration, endpoints, counters. Never throws.
struct ChannelInfo {
  std::string name;
  bool readable = false;  // false: `problem` says why (not ours, corrupt, no access, ...)
  std::string problem;
  ChannelConfig config;
  std::uint64_t segment_bytes = 0;
  std::uint64_t created_unix_ns = 0;
  std::uint32_t mode = 0;
  uid_t owner = 0;
  bool closed = false;
  EndpointInfo producer;
  EndpointInfo consumer;  // of subpartition 0 in a partitioned channel
  CounterSnapshot produced;
  CounterSnapshot consumed;
  // A partitioned channel: whether the consumer of another subpartition lives.
  bool other_consumer_alive = false;

  // No living endpoint and at least one that attached once.
  [[nodiscard]] bool stale() const noexcept {
    return !producer.alive && !consumer.alive && !other_consumer_alive;
  }
};

ChannelInfo inspect_channel(std::string_view name) noexcept;
std::vector<ChannelInfo> inspect_all_channels() noexcept;

}  // namespace sluice::transport
