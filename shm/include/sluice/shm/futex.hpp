#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace sluice::shm {

static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

enum class FutexWaitResult { kWoken, kValueChanged, kTimedOut, kInterrupted };

// Sleeps while *word == expected, for at most `timeout`. Uses the shared
// (non-private) futex so that waiter and waker may be different processes that
// map the word at different addresses.
FutexWaitResult futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                           std::chrono::nanoseconds timeout);

// Wakes up to `count` waiters sleeping on `word`. Returns how many were woken.
int futex_wake(std::atomic<std::uint32_t>& word, int count);

}  // namespace sluice::shm
