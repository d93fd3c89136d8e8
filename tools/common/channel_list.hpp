#pragma once

// Lists of channels on the command line: "A,B,C", where an entry NAME:I
// names subpartition I of a partitioned channel (fan-out).

#include <string>
#include <vector>

#include "sluice/transport/input_gate.hpp"

namespace sluice::tools {

// Throws UsageError naming `flag` for an empty entry or a bad subpartition.
std::vector<sluice::transport::GateInput> parse_channel_list(const std::string& flag,
                                                             const std::string& text);

}  // namespace sluice::tools
