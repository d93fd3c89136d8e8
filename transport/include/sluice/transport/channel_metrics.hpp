#pragma once

// Flink-style metrics of a channel, read from its segment by any process
// without attaching and without disturbing the endpoints: counters are
// single-writer atomics read relaxed, buffer states are scanned.

#include <cstdint>
#include <string_view>

#include "sluice/transport/channel.hpp"
#include "sluice/transport/channel_config.hpp"
#include "sluice/transport/channel_info.hpp"

namespace sluice::transport {

struct PoolUsage {
  std::uint32_t free = 0;
  std::uint32_t writing = 0;  // held by the producer
  std::uint32_t queued = 0;   // in the data ring
  std::uint32_t reading = 0;  // held by the consumer
  std::uint32_t shared = 0;   // broadcast: queued for or being read by some consumers
  std::uint32_t invalid = 0;  // a state word with an impossible value
  [[nodiscard]] std::uint32_t total() const noexcept {
    return free + writing + queued + reading + shared + invalid;
  }
};

struct ChannelSnapshot {
  std::uint64_t taken_ns = 0;  // steady clock
  CounterSnapshot produced;    // waited_ns = blocked, including a wait in progress
  CounterSnapshot consumed;    // waited_ns = idle, including a wait in progress
  PoolUsage pool;
  bool closed = false;
  EndpointInfo producer;
  EndpointInfo consumer;
};

// Flink's thresholds on the backpressured-time ratio: <= 0.10 OK, <= 0.50 LOW, above HIGH.
enum class BackpressureLevel : std::uint8_t { kOk, kLow, kHigh };
constexpr std::string_view to_string(BackpressureLevel level) noexcept {
  switch (level) {
    case BackpressureLevel::kOk: return "OK";
    case BackpressureLevel::kLow: return "LOW";
    case BackpressureLevel::kHigh: return "HIGH";
  }
  return "?";
}
BackpressureLevel backpressure_level(double backpressured_ms_per_sec) noexcept;

// Rates between two snapshots, as Flink derives them.
struct ChannelRates {
  double seconds = 0;
  double records_out_per_sec = 0;  // committed by the producer
  double records_in_per_sec = 0;   // read by the consumer
  double bytes_out_per_sec = 0;    // buffer bytes handed over, framing included
  double bytes_in_per_sec = 0;
  double buffers_out_per_sec = 0;
  double buffers_in_per_sec = 0;
  double backpressured_ms_per_sec = 0;  // producer waiting for a free buffer
  double producer_busy_ms_per_sec = 0;  // 1000 - backpressured
  double idle_ms_per_sec = 0;           // consumer waiting for data
  double consumer_busy_ms_per_sec = 0;  // 1000 - idle
  double out_pool_usage = 0;            // buffers not free / all buffers, at the later snapshot
  double buffer_fill = 0;               // bytes per handed-over buffer / buffer size
  BackpressureLevel level = BackpressureLevel::kOk;
};

ChannelRates derive_rates(const ChannelSnapshot& before, const ChannelSnapshot& after,
                          const ChannelConfig& config) noexcept;

// A read-only view of a channel for tools: opens and validates the segment
// but never attaches as an endpoint.
class ChannelObserver {
 public:
  explicit ChannelObserver(std::string_view name);  // throws shm::SetupError
  // Counters of the mapping's own subpartition (0): for a partitioned
  // channel, one subpartition's share only.
  [[nodiscard]] ChannelSnapshot snapshot() const noexcept;
  // Counters of subpartition `subpartition` (each has its own producer and
  // consumer counters); an index >= subpartitions() gives zero counters.
  [[nodiscard]] ChannelSnapshot snapshot(std::uint32_t subpartition) const noexcept;
  [[nodiscard]] std::uint32_t subpartitions() const noexcept { return mapping_.subpartitions(); }
  [[nodiscard]] ChannelConfig config() const noexcept {
    return config_from_record(mapping_.config());
  }
  [[nodiscard]] const ChannelMapping& mapping() const noexcept { return mapping_; }

 private:
  ChannelMapping mapping_;
};

}  // namespace sluice::transport
