#include "sluice/shm/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
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

int futex_wake(std::atomic<std::uint32_t>& word, int count) {
  const long woken = futex_call(word, FUTEX_WAKE, static_cast<std::uint32_t>(count), nullptr);
  return woken < 0 ? 0 : static_cast<int>(woken);
}

}  // namespace sluice::shm
