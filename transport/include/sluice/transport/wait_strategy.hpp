#pragma once

// How an endpoint waits for its ring: spin briefly, then yield, then sleep on
// a futex in shared memory. The protocol (see WakeWord and SleepFlag):
//   waiter: read sequence; set sleeping; seq_cst fence; re-check; futex_wait(sequence)
//   waker:  publish; seq_cst fence; if sleeping: bump sequence, futex_wake
// so a wake-up is never lost, and a waker whose peer is awake makes no system
// call. Sleeps are sliced so that a dead peer (who can wake nobody) is
// noticed within one slice through its liveness lock.

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
  std::uint32_t spin_rounds = 256;   // pause-instruction polls: ~10 us
  std::uint32_t yield_rounds = 16;   // sched_yield polls
  std::chrono::nanoseconds sleep_slice = std::chrono::milliseconds(20);  // peer-death check period
};

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Called by the side that just published something its peer may sleep on.
inline void wake_peer(WakeWord& word, SleepFlag& peer_sleeping) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (peer_sleeping.sleeping.load(std::memory_order_relaxed) != 0) {
    // Release: a sleeper that reads the new sequence also sees what was published.
    word.sequence.store(word.sequence.load(std::memory_order_relaxed) + 1,
                        std::memory_order_release);
    sluice::shm::futex_wake(word.sequence, 1);
  }
}

// Unconditional wake for state changes a sleeper must see (close, detach).
inline void wake_peer_always(WakeWord& word) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  word.sequence.store(word.sequence.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  sluice::shm::futex_wake(word.sequence, 1);
}

// Repeats `attempt` (returns kOk, kWouldBlock or a final error) until it
// succeeds, the deadline passes, or `peer_status` (kOk while the peer may
// still deliver; otherwise kClosed/kPeerDied) says nothing more will come.
// `waited` receives the time spent once the first attempt failed (0 if it
// did not), for the blocked/idle counters.
template <class Attempt, class PeerStatus>
Status wait_for(Attempt&& attempt, PeerStatus&& peer_status, WakeWord& word, SleepFlag& own_flag,
                const Deadline& deadline, const WaitPolicy& policy,
                std::chrono::nanoseconds& waited) noexcept {
  waited = std::chrono::nanoseconds::zero();
  Status status = attempt();
  if (status != Status::kWouldBlock || deadline.is_immediate()) {
    return status;
  }
  const Clock::time_point started = Clock::now();
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
    const std::uint32_t seen = word.sequence.load(std::memory_order_acquire);
    own_flag.sleeping.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
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
