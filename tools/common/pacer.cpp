#include "pacer.hpp"

#include <sstream>

#include "arguments.hpp"

namespace sluice::tools {

std::vector<RatePhase> parse_rate_schedule(const std::string& flag, const std::string& text) {
  std::vector<RatePhase> phases;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    const auto colon = item.find(':');
    if (colon == std::string::npos) {
      throw UsageError(flag + " expects SECONDS:RATE pairs separated by commas, got \"" + item +
                       "\"");
    }
    RatePhase phase;
    try {
      std::size_t used_seconds = 0;
      std::size_t used_rate = 0;
      const std::string seconds = item.substr(0, colon);
      const std::string rate = item.substr(colon + 1);
      phase.seconds = std::stod(seconds, &used_seconds);
      phase.rate = std::stod(rate, &used_rate);
      if (used_seconds != seconds.size() || used_rate != rate.size()) {
        throw UsageError("");
      }
    } catch (...) {
      throw UsageError(flag + ": \"" + item + "\" is not SECONDS:RATE");
    }
    if (!(phase.seconds >= 0) || !(phase.rate >= 0)) {
      throw UsageError(flag + ": seconds and rate must not be negative in \"" + item + "\"");
    }
    phases.push_back(phase);
  }
  if (phases.empty()) {
    throw UsageError(flag + " is empty");
  }
  return phases;
}

std::vector<RatePhase> rate_schedule_from(const Arguments& args) {
  if (args.has("--rate") && args.has("--rate-schedule")) {
    throw UsageError("give either --rate or --rate-schedule, not both");
  }
  if (args.has("--rate")) {
    return {{0, args.real_number("--rate", 1e-3, 1e12)}};
  }
  if (args.has("--rate-schedule")) {
    return parse_rate_schedule("--rate-schedule", args.text("--rate-schedule"));
  }
  return {};
}

}  // namespace sluice::tools
