#include "sluice/transport/channel_config.hpp"

#include <algorithm>

#include "sluice/transport/record_frame.hpp"

namespace sluice::transport {

namespace {
constexpr const char* kPartitionerNames[kPartitionerCount] = {"round-robin", "key", "least-loaded",
                                                              "broadcast"};
}  // namespace

const char* partitioner_name(Partitioner partitioner) noexcept {
  const auto index = static_cast<std::uint32_t>(partitioner);
  return index < kPartitionerCount ? kPartitionerNames[index] : "unknown";
}

bool parse_partitioner(std::string_view name, Partitioner& out) noexcept {
  for (std::uint32_t i = 0; i < kPartitionerCount; ++i) {
    if (name == kPartitionerNames[i]) {
      out = static_cast<Partitioner>(i);
      return true;
    }
  }
  return false;
}

std::string config_problem(const ChannelConfig& config) {
  if (config.buffer_bytes < ChannelConfig::kMinBufferBytes ||
      config.buffer_bytes > ChannelConfig::kMaxBufferBytes) {
    return "buffer size " + std::to_string(config.buffer_bytes) + " is outside " +
           std::to_string(ChannelConfig::kMinBufferBytes) + ".." +
           std::to_string(ChannelConfig::kMaxBufferBytes) + " bytes";
  }
  if (config.buffer_count < ChannelConfig::kMinBufferCount ||
      config.buffer_count > ChannelConfig::kMaxBufferCount) {
    return "buffer count " + std::to_string(config.buffer_count) + " is outside " +
           std::to_string(ChannelConfig::kMinBufferCount) + ".." +
           std::to_string(ChannelConfig::kMaxBufferCount);
  }
  const std::uint64_t pool = static_cast<std::uint64_t>(config.buffer_bytes) * config.buffer_count;
  if (pool > (64ULL << 30)) {
    return "buffer pool of " + std::to_string(pool) + " bytes exceeds 64 GiB";
  }
  if (config.subpartitions < 1 || config.subpartitions > ChannelConfig::kMaxSubpartitions) {
    return "subpartition count " + std::to_string(config.subpartitions) + " is outside 1.." +
           std::to_string(ChannelConfig::kMaxSubpartitions);
  }
  if (static_cast<std::uint32_t>(config.partitioner) >= kPartitionerCount) {
    return "partitioner " + std::to_string(static_cast<std::uint32_t>(config.partitioner)) +
           " is unknown (0 round-robin, 1 key, 2 least-loaded, 3 broadcast)";
  }
  // Every subpartition's writer may hold a buffer at once (PartitionWriter);
  // with fewer buffers one would wait for ever for a buffer another holds.
  if (config.buffer_count < config.subpartitions) {
    return "buffer count " + std::to_string(config.buffer_count) + " is below the " +
           std::to_string(config.subpartitions) + " subpartitions (each needs a buffer of its own)";
  }
  // Least-loaded: a PartitionWriter also keeps a writer per subpartition for
  // keyed writes beside its unpinned one, K + 1 buffers held at once.
  if (config.subpartitions > 1 && config.partitioner == Partitioner::kLeastLoaded &&
      config.buffer_count <= config.subpartitions) {
    return "buffer count " + std::to_string(config.buffer_count) + " must exceed the " +
           std::to_string(config.subpartitions) +
           " subpartitions of a least-loaded partition (one buffer per subpartition's writer and "
           "one for the writer that chooses)";
  }
  return {};
}

ChannelConfig sized_for_records(ChannelConfig config, std::uint64_t record_bytes) {
  const std::uint64_t framed = record_bytes + frame::kHeaderBytes;
  if (framed <= config.buffer_bytes || framed > ChannelConfig::kMaxBufferBytes) {
    return config;
  }
  config.buffer_bytes = static_cast<std::uint32_t>(framed);
  const std::uint64_t for_bytes = (kLargeRecordsInFlightBytes + framed - 1) / framed;
  config.buffer_count = static_cast<std::uint32_t>(
      std::max<std::uint64_t>({for_bytes, 2, std::uint64_t{config.subpartitions} + 1}));
  return config;
}

}  // namespace sluice::transport
