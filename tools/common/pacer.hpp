#pragma once

// Throttles a loop to a records-per-second schedule: phases of "SECONDS at
// RATE" (RATE 0 = as fast as possible); the last phase's rate continues.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace sluice::tools {

struct RatePhase {
  double seconds = 0;  // length; the last phase lasts for ever
  double rate = 0;     // records per second; 0 = unthrottled
};

// Parses "SECONDS:RATE,SECONDS:RATE,..." (throws UsageError naming `flag`).
std::vector<RatePhase> parse_rate_schedule(const std::string& flag, const std::string& text);

class Arguments;
// The schedule given by --rate R or --rate-schedule LIST (at most one of
// them); empty when neither: unthrottled.
std::vector<RatePhase> rate_schedule_from(const Arguments& args);

class Pacer {
 public:
  using Clock = std::chrono::steady_clock;

  Pacer() = default;
  explicit Pacer(std::vector<RatePhase> phases) : phases_(std::move(phases)) {}

  [[nodiscard]] bool active() const noexcept { return !phases_.empty(); }
  void start(Clock::time_point now) noexcept {
    phase_started_ = now;
    phase_ = 0;
    in_phase_ = 0;
    since_check_ = 0;
    stride_ = 1;
  }

  // Call once per record before producing/consuming it. `before_sleep` runs
  // before any sleep (e.g. to flush a partly filled buffer). The clock is
  // read only every `stride_` records (about every 50 us of records at the
  // current rate, every 64 when unthrottled), so pacing costs next to nothing.
  template <class BeforeSleep>
  void pace(BeforeSleep&& before_sleep) {
    if (phases_.empty()) {
      return;
    }
    ++in_phase_;
    if (++since_check_ < stride_) {
      return;
    }
    since_check_ = 0;
    const auto now = Clock::now();
    advance_phase(now);
    const double rate = phases_[phase_].rate;
    if (rate <= 0) {
      stride_ = 64;
      return;
    }
    stride_ = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(rate * 50e-6));
    const auto due =
        phase_started_ + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(static_cast<double>(in_phase_) / rate));
    if (due > now + std::chrono::microseconds(100)) {
      before_sleep();
      std::this_thread::sleep_until(due);
    }
  }

  // For callers that produce records in runs: how many records after the
  // one just paced may go before pace() must look at the clock again (no
  // limit when unthrottled), and count(n) accounts for n of them.
  [[nodiscard]] std::uint64_t records_until_check() const noexcept {
    return phases_.empty() ? UINT64_MAX : stride_ - std::min(stride_, since_check_ + 1);
  }
  void count(std::uint64_t records) noexcept {
    in_phase_ += records;
    since_check_ += records;
  }

  // Index of the phase in force (for reports).
  [[nodiscard]] std::size_t phase() const noexcept { return phase_; }

 private:
  void advance_phase(Clock::time_point now) noexcept {
    while (phase_ + 1 < phases_.size()) {
      const auto end = phase_started_ + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(phases_[phase_].seconds));
      if (now < end) {
        break;
      }
      // The next phase starts where this one ended, so phases do not drift.
      phase_started_ = end;
      ++phase_;
      in_phase_ = 0;
    }
  }

  std::vector<RatePhase> phases_;
  std::size_t phase_ = 0;
  std::uint64_t in_phase_ = 0;  // records paced in the current phase
  std::uint64_t since_check_ = 0;
  std::uint64_t stride_ = 1;  // records between clock reads
  Clock::time_point phase_started_{};
};

}  // namespace sluice::tools
