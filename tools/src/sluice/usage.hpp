#pragma once

// The help texts of `sluice` and of each of its subcommands.

#include <string_view>

namespace sluice::tools {

// The overview printed by `sluice help` and on a bad command line.
extern const char* const kSluiceUsage;

// The help of one subcommand (`sluice ls --help`, `sluice help ls`), or
// nullptr for a command that has none here (experiment prints its own).
const char* subcommand_usage(std::string_view command) noexcept;

}  // namespace sluice::tools
