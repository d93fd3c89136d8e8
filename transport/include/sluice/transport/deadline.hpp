#pragma once

#include <chrono>

namespace sluice::transport {

using Clock = std::chrono::steady_clock;

// When a blocking call gives up: immediately (try_ calls), never, or at a time.
class Deadline {
 public:
  static constexpr Deadline immediate() noexcept { return Deadline(Kind::kImmediate, {}); }
  static constexpr Deadline never() noexcept { return Deadline(Kind::kNever, {}); }
  // A timeout of a year or more is treated as never (and cannot overflow).
  static Deadline after(std::chrono::nanoseconds timeout) noexcept {
    if (timeout >= std::chrono::hours(24 * 365)) {
      return never();
    }
    return Deadline(Kind::kAt, Clock::now() + timeout);
  }

  [[nodiscard]] bool is_immediate() const noexcept { return kind_ == Kind::kImmediate; }
  [[nodiscard]] bool is_never() const noexcept { return kind_ == Kind::kNever; }
  // Time left from `now`; zero once passed; a large value for never().
  [[nodiscard]] std::chrono::nanoseconds remaining(Clock::time_point now) const noexcept {
    switch (kind_) {
      case Kind::kImmediate: return std::chrono::nanoseconds::zero();
      case Kind::kNever: return std::chrono::hours(24 * 365);
      case Kind::kAt: break;
    }
    return at_ > now ? std::chrono::nanoseconds(at_ - now) : std::chrono::nanoseconds::zero();
  }

 private:
  enum class Kind { kImmediate, kNever, kAt };
  constexpr Deadline(Kind kind, Clock::time_point at) noexcept : kind_(kind), at_(at) {}
  Kind kind_;
  Clock::time_point at_;
};

}  // namespace sluice::transport
