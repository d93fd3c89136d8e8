#pragma once

// The command-line flags that configure a channel a tool creates, shared by
// every program that creates one: --buffer-size, --buffers,
// --flush-timeout-us, --mode and --replace-stale.

#include <cstdint>

#include "arguments.hpp"
#include "sluice/transport/channel.hpp"
#include "sluice/transport/channel_config.hpp"

namespace sluice::tools {

// Applies the flags present in `args` (throws UsageError naming the flag).
// --flush-timeout-us must be at least `min_flush_timeout_us`.
void channel_options_from(const Arguments& args, sluice::transport::ChannelConfig& config,
                          sluice::transport::CreateOptions& create,
                          std::uint64_t min_flush_timeout_us = 0);

// Applies --consumers K, --partition NAME and --max-queued-buffers N (fan-out);
// true if --consumers or --partition was given.
bool partition_options_from(const Arguments& args, sluice::transport::ChannelConfig& config);

}  // namespace sluice::tools
