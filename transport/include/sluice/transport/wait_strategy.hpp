#pragma once

// How an endpoint waits for its ring: spin briefly, then yield, then sleep on
// a futex in shared memory. The protocol (see WakeWord and SleepFlag):
//   waiter: seen = sequence (acquire); sleeping.exchange(1, seq_cst);
//           re-check the ring; futex_wait(sequence, seen)
//   waker:  publish (release); sleeping.fetch_add(0, seq_cst) == 1 ?
//           sequence.fetch_add(1, release), futex_wake
// Both flag operations are read-modify-writes, so they are totally ordered
// in the flag's modification order. If the waiter's exchange comes first, the
// waker reads 1 and wakes it. If the waker's RMW comes first, the waiter's
// exchange reads from it and synchronises with it (release/acquire), so the
// re-check sees the publish and the waiter does not sleep. Either way no
// wake-up is lost. (The classic form uses two seq_cst fences; ThreadSanitizer
// cannot follow fences, and RMWs cost the same on x86: one locked op.) A
// waker whose peer is awake makes no system call. Sleeps are sliced so that
// a dead peer, who can wake nobody, is noticed within one slice through its
// liveness lock.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "sluice/shm/futex.hpp"
#include "sluice/transport/channel_layout.hpp"
#include "sluice/transport/deadline.hpp"
#include "sluice/transport/status.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace sluice::transport {

struct WaitPolicy {
  std::uint32_t spin_rounds = 256;  // pause-instruction polls: ~10 us
  std::uint32_t yield_rounds = 16;  // sched_yield polls
  std::chrono::nanoseconds sleep_slice = std::chrono::milliseconds(20);  // peer-death check period
};

// CPUs this process may run on (its affinity mask), read once.
std::uint32_t usable_cpus() noexcept;

// The policy an endpoint starts with, for a channel of `endpoints` processes
// (a fan-out's producer and its K consumers). While they fit the CPUs,
// spinning catches the peer's next step within a microsecond; once they do
// not, a spinning waiter holds a CPU that one of the others needs to make
// the progress it waits for, so it goes straight to yielding.
inline WaitPolicy default_wait_policy(std::uint32_t endpoints) noexcept {
  WaitPolicy policy;
  if (endpoints > usable_cpus()) {
    policy.spin_rounds = 0;
  }
  return policy;
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Called by the side that just published something its peer may sleep on.
inline void wake_peer(WakeWord& word, SleepFlag& peer_sleeping) noexcept {
  // An RMW that leaves the value as it is: it orders the publish before the
  // look at the flag (see above); it is the waker's only access to the flag.
  if (peer_sleeping.sleeping.fetch_add(0, std::memory_order_seq_cst) != 0) {
    // Release: a sleeper that reads the new sequence also sees what was published.
    word.sequence.fetch_add(1, std::memory_order_release);
    sluice::shm::futex_wake(word.sequence, 1);
  }
}

// Unconditional wake for state changes a sleeper must see (close, detach):
// the bump makes a sleeper's futex_wait return, and its release makes the
// change visible to whoever reads the new sequence.
inline void wake_peer_always(WakeWord& word) noexcept {
  word.sequence.fetch_add(1, std::memory_order_release);
  sluice::shm::futex_wake(word.sequence, 1);
}

// Repeats `attempt` (returns kOk, kWouldBlock or a final error) until it
// succeeds, the deadline passes, or `peer_status` (kOk while the peer may
// still deliver; otherwise kClosed/kPeerDied) says nothing more will come.
// `waited` receives the time spent once the first attempt failed (0 if it
// did not), for the blocked/idle counters. If `waiting_since` is given, the
// start of a wait is stored there (relaxed; for tools) and left for the
// caller to clear once it has counted the wait.
template <class Attempt, class PeerStatus>
Status wait_for(Attempt&& attempt, PeerStatus&& peer_status, WakeWord& word, SleepFlag& own_flag,
                const Deadline& deadline, const WaitPolicy& policy,
                std::chrono::nanoseconds& waited,
                std::atomic<std::uint64_t>* waiting_since = nullptr) noexcept {
  waited = std::chrono::nanoseconds::zero();
  Status status = attempt();
  if (status != Status::kWouldBlock || deadline.is_immediate()) {
    return status;
  }
  const Clock::time_point started = Clock::now();
  if (waiting_since != nullptr) {
    waiting_since->store(static_cast<std::uint64_t>(started.time_since_epoch().count()),
                         std::memory_order_relaxed);
  }
  auto finish = [&](Status result) {
    waited = Clock::now() - started;
    return result;
  };
  for (std::uint32_t i = 0; i < policy.spin_rounds; ++i) {
    cpu_relax();
    if ((status = attempt()) != Status::kWouldBlock) {
      return finish(status);
    }
  }
  for (std::uint32_t i = 0; i < policy.yield_rounds; ++i) {
    std::this_thread::yield();
    if ((status = attempt()) != Status::kWouldBlock) {
      return finish(status);
    }
  }
  for (;;) {
    // Read before the peer check: a detach that bumps the sequence after this
    // read makes the futex_wait below return at once, and one that bumped
    // before it is visible to the peer check (acquire).
    const std::uint32_t seen = word.sequence.load(std::memory_order_acquire);
    const Status peer = peer_status();
    if (peer != Status::kOk) {
      // Whatever the peer published before going away is still ours to take.
      status = attempt();
      return finish(status != Status::kWouldBlock ? status : peer);
    }
    const auto left = deadline.remaining(Clock::now());
    if (left <= std::chrono::nanoseconds::zero()) {
      return finish(Status::kTimeout);
    }
    own_flag.sleeping.exchange(1, std::memory_order_seq_cst);
    status = attempt();
    if (status == Status::kWouldBlock) {
      sluice::shm::futex_wait(word.sequence, seen, std::min(left, policy.sleep_slice));
      status = attempt();
    }
    own_flag.sleeping.store(0, std::memory_order_relaxed);
    if (status != Status::kWouldBlock) {
      return finish(status);
    }
  }
}

}  // namespace sluice::transport
