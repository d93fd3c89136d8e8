#include "sluice/transport/channel_config.hpp"

namespace sluice::transport {

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
  return {};
}

}  // namespace sluice::transport
