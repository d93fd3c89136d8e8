#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

namespace sluice::shm {

static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

enum class FutexWaitResult { kWoken, kValueChanged, kTimedOut, kInterrupted };

// Sleeps while *word == expected, for at most `timeout`. Uses the shared
// (non-private) futex so that waiter and waker may be different processes that
// map the word at different addresses.
FutexWaitResult futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                           std::chrono::nanoseconds timeout);

// One word of a wait on several (futex_wait_any): sleep while *word == expected.
struct FutexWaitItem {
  std::atomic<std::uint32_t>* word;
  std::uint32_t expected;
};

// The most words one futex_wait_any call can wait on (the kernel's FUTEX_WAITV_MAX).
inline constexpr std::size_t kMaxFutexWaitItems = 128;

// Sleeps while every item's word still holds its expected value, for at most
// `timeout`: returns when any of them is woken or differs (kValueChanged at
// once if one already differs). Linux 5.16+ futex_waitv, shared futexes (any
// process mapping a word meets it). Where the kernel lacks futex_waitv or
// refuses it (a sandbox), or with more than kMaxFutexWaitItems items, it
// sleeps on the first word for at most 1 ms, so callers that re-check their
// words stay correct, only slower to wake.
FutexWaitResult futex_wait_any(std::span<const FutexWaitItem> items,
                               std::chrono::nanoseconds timeout);

// Wakes up to `count` waiters sleeping on `word`. Returns how many were woken.
int futex_wake(std::atomic<std::uint32_t>& word, int count);

}  // namespace sluice::shm
