#pragma once

// Prints a side's progress about once a second (text, or one JSON object per
// line with --json) and its final summary.

#include <chrono>
#include <cstdint>
#include <string>

namespace sluice::tools {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  Progress(std::string role, bool json, std::uint64_t record_bytes);

  void start() noexcept;
  // Cheap to call per record: looks at the clock only every `stride` calls.
  void tick(std::uint64_t records, std::uint64_t last_seq) {
    if (++calls_ >= stride_) {
      calls_ = 0;
      maybe_print(records, last_seq);
    }
  }
  [[nodiscard]] double elapsed_seconds() const;
  [[nodiscard]] bool json() const noexcept { return json_; }
  [[nodiscard]] const std::string& role() const noexcept { return role_; }

 private:
  void maybe_print(std::uint64_t records, std::uint64_t last_seq);

  std::string role_;
  bool json_;
  std::uint64_t record_bytes_;
  std::uint64_t stride_;
  std::uint64_t calls_ = 0;
  Clock::time_point started_{};
  Clock::time_point last_print_{};
  std::uint64_t records_at_last_print_ = 0;
};

}  // namespace sluice::tools
