#pragma once

// A small, strict command-line parser for the Sluice tools: every flag must
// be known, every number must parse completely and lie in range, and every
// mistake is reported with the flag's name (exit status 2 by convention).

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace sluice::tools {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Arguments {
 public:
  // `valued` flags take a value (--name VALUE or --name=VALUE); `switches` do not.
  Arguments(int argc, char** argv, int first, const std::set<std::string>& valued,
            const std::set<std::string>& switches);

  [[nodiscard]] bool has(const std::string& flag) const { return values_.count(flag) != 0; }
  [[nodiscard]] std::string text(const std::string& flag) const;
  [[nodiscard]] std::optional<std::string> optional_text(const std::string& flag) const;
  [[nodiscard]] std::uint64_t unsigned_number(const std::string& flag, std::uint64_t min,
                                              std::uint64_t max) const;
  [[nodiscard]] std::optional<std::uint64_t> optional_unsigned(const std::string& flag,
                                                               std::uint64_t min,
                                                               std::uint64_t max) const;
  [[nodiscard]] double real_number(const std::string& flag, double min, double max) const;
  [[nodiscard]] const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// Parses "123", "4k", "32KiB", "1M", "1MiB" (binary multiples) into bytes.
std::uint64_t parse_size(const std::string& flag, const std::string& text);

}  // namespace sluice::tools
