#include "sluice/shm/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <ctime>

namespace sluice::shm {

namespace {
long futex_call(std::atomic<std::uint32_t>& word, int op, std::uint32_t value,
                const timespec* timeout) {
  // FUTEX_WAIT/FUTEX_WAKE without FUTEX_PRIVATE_FLAG: the kernel keys the
  // waiter on the backing page, so any process mapping the word meets it.
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op, value, timeout, nullptr,
                 0);
}
}  // namespace

FutexWaitResult futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                           std::chrono::nanoseconds timeout) {
  if (timeout.count() <= 0) {
    return FutexWaitResult::kTimedOut;
  }
  timespec relative{};
  relative.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
  relative.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
  if (futex_call(word, FUTEX_WAIT, expected, &relative) == 0) {
    return FutexWaitResult::kWoken;
  }
  switch (errno) {
    case EAGAIN: return FutexWaitResult::kValueChanged;
    case ETIMEDOUT: return FutexWaitResult::kTimedOut;
    default: return FutexWaitResult::kInterrupted;
  }
}

FutexWaitResult futex_wait_any(std::span<const FutexWaitItem> items,
                               std::chrono::nanoseconds timeout) {
  if (timeout.count() <= 0) {
    return FutexWaitResult::kTimedOut;
  }
  if (items.empty()) {
    return FutexWaitResult::kValueChanged;
  }
  constexpr std::chrono::nanoseconds kFallbackSlice = std::chrono::milliseconds(1);
  if (items.size() > kMaxFutexWaitItems) {
    return futex_wait(*items.front().word, items.front().expected,
                      std::min(timeout, kFallbackSlice));
  }
  std::array<futex_waitv, kMaxFutexWaitItems> waiters{};
  for (std::size_t i = 0; i < items.size(); ++i) {
    waiters[i].val = items[i].expected;
    waiters[i].uaddr = reinterpret_cast<std::uintptr_t>(items[i].word);
    // FUTEX_32 without FUTEX_PRIVATE_FLAG: shared, keyed on the backing page.
    waiters[i].flags = FUTEX_32;
  }
  // futex_waitv takes an absolute time on the given clock.
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const std::int64_t until_ns =
      static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec + timeout.count();
  timespec until{};
  until.tv_sec = static_cast<time_t>(until_ns / 1'000'000'000);
  until.tv_nsec = static_cast<long>(until_ns % 1'000'000'000);
  const long woken = syscall(SYS_futex_waitv, waiters.data(), static_cast<unsigned>(items.size()),
                             0U, &until, CLOCK_MONOTONIC);
  if (woken >= 0) {
    return FutexWaitResult::kWoken;
  }
  switch (errno) {
    case EAGAIN: return FutexWaitResult::kValueChanged;
    case ETIMEDOUT: return FutexWaitResult::kTimedOut;
    case EINTR: return FutexWaitResult::kInterrupted;
    default:
      // ENOSYS (kernel before 5.16), or a sandbox refusing the call (EPERM):
      // sleep in slices on one word instead of returning at once, so that a
      // waiter that re-checks all its words never spins at full speed.
      return futex_wait(*items.front().word, items.front().expected,
                        std::min(timeout, kFallbackSlice));
  }
}

int futex_wake(std::atomic<std::uint32_t>& word, int count) {
  const long woken = futex_call(word, FUTEX_WAKE, static_cast<std::uint32_t>(count), nullptr);
  return woken < 0 ? 0 : static_cast<int>(woken);
}

}  // namespace sluice::shm
