#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::transport {

// How a partitioned channel (fan-out: one producer, K consumers, one pool)
// chooses the subpartition of each buffer. Recorded in the header as a number.
enum class Partitioner : std::uint32_t {
  kRoundRobin = 0,   // buffers (records, through PartitionWriter) go to 0, 1, ..., K-1 in turn
  kKey = 1,          // the caller names the subpartition (PartitionWriter: hash of a key)
  kLeastLoaded = 2,  // the subpartition with the fewest queued buffers whose consumer lives
  kBroadcast = 3,  // every consumer gets every buffer (one shared copy; the slowest sets the pace)
};
inline constexpr std::uint32_t kPartitionerCount = 4;
// "round-robin", "key", "least-loaded", "broadcast".
const char* partitioner_name(Partitioner partitioner) noexcept;
// The partitioner named `name`; false if there is none of that name.
bool parse_partitioner(std::string_view name, Partitioner& out) noexcept;

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

  // Fan-out: the number of subpartitions, each a 1:1 channel to its own
  // consumer over the shared pool. 1 is an ordinary channel.
  std::uint32_t subpartitions = 1;
  Partitioner partitioner = Partitioner::kRoundRobin;
  // With more than one subpartition, the most buffers one subpartition may
  // hold queued or being written for it (Flink's max-buffers-per-channel):
  // a slow or dead consumer holds at most this many, never the others'
  // share. Clamped to 1..buffer_count when the channel is created.
  std::uint32_t max_queued_buffers = 10;

  static constexpr std::uint32_t kMinBufferBytes = 64;
  static constexpr std::uint32_t kMaxBufferBytes = 256U << 20;
  static constexpr std::uint32_t kMinBufferCount = 1;
  static constexpr std::uint32_t kMaxBufferCount = 1U << 20;
  static constexpr std::uint32_t kMaxSubpartitions = 64;
};

// Empty when the configuration is usable, otherwise what is wrong with it.
std::string config_problem(const ChannelConfig& config);

// About this much in flight when buffers hold one large record each: the
// consumer then reads lines the producer wrote moments ago, still in its
// cache, rather than ones already pushed out to the shared cache or memory.
// Measured with the demo programs (2 cores): 64 KiB records ran 1.15-1.25x
// faster with 8-16 buffers than with 32, 1 MiB records 1.5x faster with 2
// than with 4 or 8.
inline constexpr std::uint64_t kLargeRecordsInFlightBytes = 1U << 20;

// `config` made fit for records of `record_bytes`: unchanged when a record
// and its frame header fit one of its buffers, or would not fit the largest
// buffer (such records are split over buffers). Otherwise a buffer holds
// exactly one record and its header, so that none is split and copied
// piecewise at both ends, and the pool has about kLargeRecordsInFlightBytes:
// at least 2 buffers (one filled while the other is read) and at least one
// more than the subpartitions (each subpartition's writer may hold one).
ChannelConfig sized_for_records(ChannelConfig config, std::uint64_t record_bytes);

}  // namespace sluice::transport
