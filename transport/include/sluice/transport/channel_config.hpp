#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sluice::transport {

// What a channel is made of. Fixed when the producer creates the channel and
// recorded in the segment header, where the consumer and the tools read it.
struct ChannelConfig {
  // Flink's default memory segment: big enough that framing and hand-over
  // costs vanish for small records, small enough to stay in L2.
  std::uint32_t buffer_bytes = 32 * 1024;
  // 64 x 32 KiB = 2 MiB in flight at most: enough to ride out scheduling
  // hiccups of a few milliseconds at GB/s, small enough to keep latency and
  // memory bounded.
  std::uint32_t buffer_count = 64;
  // The record writer hands over a partly filled buffer once its oldest record
  // has waited this long. 1 ms instead of Flink's 100 ms: within one host a
  // hand-over costs microseconds, so a trickling stream gets low latency,
  // while under load buffers fill long before the timeout and throughput is
  // unchanged. 0 hands over every record; negative means only when full or on
  // flush().
  std::chrono::nanoseconds flush_timeout = std::chrono::milliseconds(1);

  static constexpr std::uint32_t kMinBufferBytes = 64;
  static constexpr std::uint32_t kMaxBufferBytes = 256U << 20;
  static constexpr std::uint32_t kMinBufferCount = 1;
  static constexpr std::uint32_t kMaxBufferCount = 1U << 20;
};

// Empty when the configuration is usable, otherwise what is wrong with it.
std::string config_problem(const ChannelConfig& config);

}  // namespace sluice::transport
