#pragma once

// sluice stat with no NAME (every channel on the host) or several: the
// channels, the stages at their ends, the links and the bottleneck.

#include <string>
#include <vector>

namespace sluice::tools {

enum class StatFormat { kText, kJson, kPrometheus };

// `names` empty: every channel. Returns the exit status; a named channel
// that cannot be opened throws (exit status 1).
int run_stat_pipeline(const std::vector<std::string>& names, double interval_seconds,
                      StatFormat format);

}  // namespace sluice::tools
