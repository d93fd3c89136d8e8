#pragma once

// What every process of one topology run shares (sluice_bench_topology):
// the start signal, the finish time, the count of finished consumers and
// the CPU all of them spent.

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <thread>

#include "sluice/transport/sequence_pattern.hpp"

namespace sluice::bench::topology {

// Shared by the parent and every child of one run (MAP_SHARED | MAP_ANONYMOUS).
struct RunControl {
  std::atomic<std::uint32_t> ready;           // children set up
  std::atomic<std::uint32_t> go;              // 1: start
  std::atomic<std::int64_t> go_ns;            // when go was given
  std::atomic<std::int64_t> last_done_ns;     // latest consumer finish
  std::atomic<std::uint32_t> consumers_done;  // consumers that checked everything
  std::atomic<std::uint32_t> failures;        // children that failed
  std::atomic<std::int64_t> cpu_ns;           // all children's CPU from go until they end
};

// CPU time (user + system) of this process so far, all threads.
inline std::int64_t process_cpu_ns() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return (static_cast<std::int64_t>(usage.ru_utime.tv_sec) + usage.ru_stime.tv_sec) *
             1'000'000'000 +
         (static_cast<std::int64_t>(usage.ru_utime.tv_usec) + usage.ru_stime.tv_usec) * 1'000;
}

// This process's CPU when it was told to go (each child is its own process).
inline std::int64_t g_cpu_at_go_ns = -1;

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Tells the parent this process is set up, then waits for the start.
inline void wait_for_go(RunControl& control) {
  control.ready.fetch_add(1);
  while (control.go.load(std::memory_order_acquire) == 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  g_cpu_at_go_ns = process_cpu_ns();
}

// Adds this process's CPU since go (set-up excluded) to the run's total.
inline void count_cpu(RunControl& control) {
  if (g_cpu_at_go_ns >= 0) {
    control.cpu_ns.fetch_add(process_cpu_ns() - g_cpu_at_go_ns);
  }
}

// A consumer has checked its last record: the run's time ends at the latest.
inline void finished(RunControl& control) {
  const std::int64_t done = now_ns();
  std::int64_t seen = control.last_done_ns.load();
  while (done > seen && !control.last_done_ns.compare_exchange_weak(seen, done)) {
  }
  control.consumers_done.fetch_add(1);
}

// Publishers whose samples live only as long as they do (iceoryx) wait here
// until every consumer has finished or failed (a failed run ends anyway,
// killed by the parent's timeout).
inline void wait_for_consumers(RunControl& control, std::uint32_t consumers) {
  while (control.consumers_done.load() + control.failures.load() < consumers) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

inline bool intact(std::span<const std::byte> record, std::size_t size, std::uint64_t sequence) {
  namespace pattern = sluice::transport::pattern;
  return record.size() == size && pattern::sequence_of(record) == sequence &&
         pattern::body_matches(record, sequence);
}

}  // namespace sluice::bench::topology
