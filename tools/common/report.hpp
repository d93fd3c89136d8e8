#pragma once

// How the demo programs report a failure: always on stderr, and also as a
// JSON line ("type": "error") on stdout when --json was given.

#include <cstdio>
#include <cstring>
#include <string>

#include "json_line.hpp"

namespace sluice::tools {

inline void report_failure(const std::string& role, bool json, const std::string& message) {
  if (json) {
    std::printf(
        "%s\n",
        JsonLine().add("role", role).add("type", "error").add("error", message).str().c_str());
    std::fflush(stdout);
  }
  std::fprintf(stderr, "sluice-%s: %s\n", role.c_str(), message.c_str());
}

// Whether the command line holds `flag` as a word of its own; used to honour
// --json even when the rest of the command line does not parse.
inline bool command_line_has(int argc, char** argv, const char* flag) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], flag) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace sluice::tools
