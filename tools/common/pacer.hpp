#pragma once

// Throttles a loop to a records-per-second schedule: phases of "SECONDS at
// RATE" (RATE 0 = as fast as possible); the last phase's rate continues.

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

class Pacer {
 public:
  using Clock = std::chrono::steady_clock;

  Pacer() = default;
  explicit Pacer(std::vector<RatePhase> phases) : phases_(std::move(phases)) {}

  [[nodiscard]] bool active() const noexcept { return !phases_.empty(); }
  void start(Clock::time_point now) noexcept {
    started_ = now;
    phase_started_ = now;
    phase_ = 0;
    in_phase_ = 0;
  }

  // Call once per record before producing/consuming it. `before_sleep` runs
  // before any sleep (e.g. to flush a partly filled buffer).
  template <class BeforeSleep>
  void pace(BeforeSleep&& before_sleep) {
    if (phases_.empty()) {
      return;
    }
    const RatePhase* phase = &phases_[phase_];
    if (phase->rate <= 0 && (++unthrottled_count_ & 63U) != 0) {
      return;  // unthrottled: look at the clock only now and then for the next phase
    }
    auto now = Clock::now();
    advance_phase(now);
    phase = &phases_[phase_];
    if (phase->rate > 0) {
      const auto due = phase_started_ +
                       std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                           static_cast<double>(in_phase_) / phase->rate));
      if (due > now + std::chrono::microseconds(100)) {
        before_sleep();
        std::this_thread::sleep_until(due);
      }
    }
    ++in_phase_;
  }

 private:
  void advance_phase(Clock::time_point now) noexcept {
    while (phase_ + 1 < phases_.size()) {
      const auto end = phase_started_ + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(phases_[phase_].seconds));
      if (now < end) {
        break;
      }
      ++phase_;
      phase_started_ = now;
      in_phase_ = 0;
    }
  }

  std::vector<RatePhase> phases_;
  std::size_t phase_ = 0;
  std::uint64_t in_phase_ = 0;
  std::uint64_t unthrottled_count_ = 0;
  Clock::time_point started_{};
  Clock::time_point phase_started_{};
};

}  // namespace sluice::tools
