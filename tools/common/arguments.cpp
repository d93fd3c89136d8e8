#include "arguments.hpp"

#include <charconv>
#include <cmath>

namespace sluice::tools {

Arguments::Arguments(int argc, char** argv, int first, const std::set<std::string>& valued,
                     const std::set<std::string>& switches) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      positional_.push_back(arg);
      continue;
    }
    std::string flag = arg;
    std::optional<std::string> value;
    if (const auto eq = arg.find('='); eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (switches.count(flag) != 0) {
      if (value) {
        throw UsageError(flag + " takes no value");
      }
      values_[flag] = "";
    } else if (valued.count(flag) != 0) {
      if (!value) {
        if (i + 1 >= argc) {
          throw UsageError(flag + " needs a value");
        }
        value = argv[++i];
      }
      values_[flag] = *value;
    } else {
      throw UsageError("unknown option " + flag);
    }
  }
}

std::string Arguments::text(const std::string& flag) const {
  auto value = optional_text(flag);
  if (!value) {
    throw UsageError(flag + " is required");
  }
  return *value;
}

std::optional<std::string> Arguments::optional_text(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::uint64_t parse_size(const std::string& flag, const std::string& text) {
  std::uint64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr == begin) {
    throw UsageError(flag + " expects a whole number, got \"" + text + "\"");
  }
  const std::string suffix(ptr, end);
  std::uint64_t multiplier = 1;
  if (suffix.empty()) {
    multiplier = 1;
  } else if (suffix == "k" || suffix == "K" || suffix == "KiB") {
    multiplier = 1ULL << 10;
  } else if (suffix == "m" || suffix == "M" || suffix == "MiB") {
    multiplier = 1ULL << 20;
  } else if (suffix == "g" || suffix == "G" || suffix == "GiB") {
    multiplier = 1ULL << 30;
  } else {
    throw UsageError(flag + " has an unknown suffix \"" + suffix + "\" (use K, M or G)");
  }
  if (value > UINT64_MAX / multiplier) {
    throw UsageError(flag + " is too large: " + text);
  }
  return value * multiplier;
}

std::uint64_t Arguments::unsigned_number(const std::string& flag, std::uint64_t min,
                                         std::uint64_t max) const {
  const std::uint64_t value = parse_size(flag, text(flag));
  if (value < min || value > max) {
    throw UsageError(flag + " must be between " + std::to_string(min) + " and " +
                     std::to_string(max) + ", got " + std::to_string(value));
  }
  return value;
}

std::optional<std::uint64_t> Arguments::optional_unsigned(const std::string& flag,
                                                          std::uint64_t min,
                                                          std::uint64_t max) const {
  if (!has(flag)) {
    return std::nullopt;
  }
  return unsigned_number(flag, min, max);
}

double Arguments::real_number(const std::string& flag, double min, double max) const {
  const std::string value = text(flag);
  std::size_t used = 0;
  double number = 0;
  try {
    number = std::stod(value, &used);
  } catch (...) {
    used = 0;
  }
  if (used != value.size() || value.empty() || !std::isfinite(number)) {
    throw UsageError(flag + " expects a number, got \"" + value + "\"");
  }
  if (number < min || number > max) {
    throw UsageError(flag + " must be between " + std::to_string(min) + " and " +
                     std::to_string(max));
  }
  return number;
}

}  // namespace sluice::tools
