#pragma once

// The channels and stages in the Prometheus text exposition format (0.0.4),
// for `sluice stat --prometheus` and `sluice export`.

#include <string>
#include <vector>

#include "pipeline.hpp"

namespace sluice::tools {

constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

std::string prometheus_text(const std::vector<ChannelView>& channels, const PipelineReport& report);

}  // namespace sluice::tools
