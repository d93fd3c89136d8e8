#pragma once

#include <cstdint>
#include <string>

namespace sluice::transport::detail {

// The first impossible value an endpoint read from shared memory. Filled on
// the hot path without allocating; turned into text only when asked.
struct CorruptionNote {
  const char* what = nullptr;  // static text naming the field
  std::uint64_t value = 0;
  std::uint64_t limit = 0;

  [[nodiscard]] bool found() const noexcept { return what != nullptr; }
  [[nodiscard]] std::string describe(const std::string& channel) const {
    if (!found()) {
      return {};
    }
    return "channel \"" + channel + "\" is corrupt: " + what + " (value " + std::to_string(value) +
           ", limit " + std::to_string(limit) + ")";
  }
};

}  // namespace sluice::transport::detail
