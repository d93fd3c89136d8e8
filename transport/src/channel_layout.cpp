#include "sluice/transport/channel_layout.hpp"

#include <algorithm>
#include <bit>

namespace sluice::transport {

namespace {
constexpr std::uint64_t round_up(std::uint64_t value, std::uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}
constexpr std::uint64_t kPage = 4096;
}  // namespace

ChannelLayout compute_layout(const ChannelConfig& config) {
  ChannelLayout layout{};
  layout.config.buffer_bytes = config.buffer_bytes;
  layout.config.buffer_stride = round_up(config.buffer_bytes, kCacheLine);
  layout.config.buffer_count = config.buffer_count;
  layout.config.ring_capacity = std::bit_ceil(config.buffer_count);
  layout.config.flush_timeout_ns = config.flush_timeout.count();
  layout.config.subpartitions = config.subpartitions;
  layout.config.partitioner = static_cast<std::uint32_t>(config.partitioner);
  layout.config.max_queued_buffers =
      std::clamp<std::uint32_t>(config.max_queued_buffers, 1, std::max(config.buffer_count, 1U));

  std::uint64_t cursor = round_up(sizeof(ChannelHeader), kCacheLine);
  auto place = [&cursor](std::uint64_t bytes, std::uint64_t alignment) {
    cursor = round_up(cursor, alignment);
    const sluice::shm::RegionEntry entry{cursor, bytes};
    cursor += bytes;
    return entry;
  };
  const std::uint64_t subpartitions = config.subpartitions;
  layout.ring_stride =
      round_up(sizeof(RingIndices) + std::uint64_t{layout.config.ring_capacity} * sizeof(RingSlot),
               kCacheLine);
  static_assert(sizeof(ChannelControl) % kCacheLine == 0);
  layout.regions[kControlRegion] = place(subpartitions * sizeof(ChannelControl), kCacheLine);
  layout.regions[kDataRingRegion] = place(subpartitions * layout.ring_stride, kCacheLine);
  layout.regions[kReturnRingRegion] = place(subpartitions * layout.ring_stride, kCacheLine);
  layout.regions[kBufferStateRegion] =
      place(round_up(config.buffer_count * sizeof(BufferStateWord), kCacheLine), kCacheLine);
  layout.regions[kBufferCommitRegion] =
      place(round_up(config.buffer_count * sizeof(BufferCommit), kCacheLine), kCacheLine);
  layout.regions[kBufferHolderRegion] =
      place(round_up(config.buffer_count * sizeof(BufferHolders), kCacheLine), kCacheLine);
  // Page-aligned so that buffers can be huge-page or page-prefaulted alike.
  layout.regions[kBufferPoolRegion] =
      place(layout.config.buffer_stride * config.buffer_count, kPage);
  layout.total_bytes = round_up(cursor, kPage);
  return layout;
}

ChannelConfig config_from_record(const ChannelConfigRecord& record) {
  ChannelConfig config;
  config.buffer_bytes = static_cast<std::uint32_t>(record.buffer_bytes);
  config.buffer_count = record.buffer_count;
  config.flush_timeout = std::chrono::nanoseconds(record.flush_timeout_ns);
  config.subpartitions = record.subpartitions;
  config.partitioner = static_cast<Partitioner>(record.partitioner);
  config.max_queued_buffers = record.max_queued_buffers;
  return config;
}

}  // namespace sluice::transport
