#pragma once

// One channel's configuration, endpoints, counters and rates as the keys of
// `sluice stat NAME --json` (also each entry of "channels" in the
// several-channel form).

#include <string>

#include "../../common/json_line.hpp"
#include "sluice/transport/channel_metrics.hpp"

namespace sluice::tools {

JsonLine channel_json(const std::string& name, const sluice::transport::ChannelObserver& observer,
                      const sluice::transport::ChannelSnapshot& s,
                      const sluice::transport::ChannelRates& r);

}  // namespace sluice::tools
