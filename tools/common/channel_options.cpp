#include "channel_options.hpp"

#include <chrono>
#include <cstdlib>

namespace sluice::tools {

namespace st = sluice::transport;

void channel_options_from(const Arguments& args, st::ChannelConfig& config,
                          st::CreateOptions& create, std::uint64_t min_flush_timeout_us) {
  if (auto bytes = args.optional_unsigned("--buffer-size", st::ChannelConfig::kMinBufferBytes,
                                          st::ChannelConfig::kMaxBufferBytes)) {
    config.buffer_bytes = static_cast<std::uint32_t>(*bytes);
  }
  if (auto count = args.optional_unsigned("--buffers", st::ChannelConfig::kMinBufferCount,
                                          st::ChannelConfig::kMaxBufferCount)) {
    config.buffer_count = static_cast<std::uint32_t>(*count);
  }
  if (auto us =
          args.optional_unsigned("--flush-timeout-us", min_flush_timeout_us, 3'600'000'000ULL)) {
    config.flush_timeout = std::chrono::microseconds(*us);
  }
  if (auto mode = args.optional_text("--mode")) {
    char* end = nullptr;
    const unsigned long value = std::strtoul(mode->c_str(), &end, 8);
    if (mode->empty() || *end != '\0' || value > 0777 || (value & 0600) != 0600) {
      throw UsageError(
          "--mode expects octal permissions that include owner read/write (e.g. 600, 660)");
    }
    create.mode = static_cast<mode_t>(value);
  }
  create.replace_stale = args.has("--replace-stale");
}

bool partition_options_from(const Arguments& args, st::ChannelConfig& config) {
  bool partitioned = false;
  if (auto k = args.optional_unsigned("--consumers", 1, st::ChannelConfig::kMaxSubpartitions)) {
    config.subpartitions = static_cast<std::uint32_t>(*k);
    partitioned = true;
  }
  if (auto name = args.optional_text("--partition")) {
    if (!st::parse_partitioner(*name, config.partitioner)) {
      throw UsageError("--partition expects round-robin, key, least-loaded or broadcast, not \"" +
                       *name + "\"");
    }
    partitioned = true;
  }
  if (auto n =
          args.optional_unsigned("--max-queued-buffers", 1, st::ChannelConfig::kMaxBufferCount)) {
    config.max_queued_buffers = static_cast<std::uint32_t>(*n);
  }
  return partitioned;
}

}  // namespace sluice::tools
