// What this machine allows at best, measured in the same run as the
// transports: single-core memcpy bandwidth (in cache and from memory), the
// round trip of one cache line between two cores, and the cost of only
// filling and checking the standard records on one core.

#include <pthread.h>
#include <sched.h>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "sluice/shm/futex.hpp"

namespace cmp {
namespace {

// Makes the compiler assume `p`'s memory is read and written here.
inline void clobber(const void* p) {
  asm volatile("" : : "r"(p) : "memory");
}

struct AlignedBuffer {
  explicit AlignedBuffer(std::size_t bytes)
      : data(static_cast<std::byte*>(::operator new (bytes, std::align_val_t{4096}))), size(bytes) {
    std::memset(data, 1, bytes);  // fault every page in
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { ::operator delete (data, std::align_val_t{4096}); }
  std::byte* data;
  std::size_t size;
};

double memcpy_gbps(std::size_t bytes, double seconds) {
  AlignedBuffer source(bytes);
  AlignedBuffer target(bytes);
  std::memcpy(target.data, source.data, bytes);  // warm up
  std::uint64_t copied = 0;
  const auto start = Clock::now();
  const auto until = start + std::chrono::duration<double>(seconds);
  Clock::time_point now;
  do {
    std::memcpy(target.data, source.data, bytes);
    clobber(target.data);
    copied += bytes;
    now = Clock::now();
  } while (now < until);
  return static_cast<double>(copied) / std::chrono::duration<double>(now - start).count() / 1e9;
}

void pin_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
    fail("cannot pin a thread to cpu " + std::to_string(cpu));
  }
}

struct alignas(64) Line {
  std::atomic<std::uint64_t> value{0};
  char pad[64 - sizeof(std::atomic<std::uint64_t>)]{};
};

// Runs `echo` on a thread pinned to cpu 1 and `lead` on this thread pinned to
// cpu 0, then gives this thread back the cpus it had: the harness forks every
// later run from it, and a child must not inherit the pin. Both bodies run
// even when pinning fails, so that neither waits for a partner that never
// comes; the failure is thrown afterwards.
template <class Echo, class Lead>
void on_cpus_0_and_1(const Echo& echo, const Lead& lead) {
  cpu_set_t before;
  CPU_ZERO(&before);
  const bool saved = pthread_getaffinity_np(pthread_self(), sizeof(before), &before) == 0;
  std::exception_ptr echo_error;  // each thread writes only its own
  std::exception_ptr lead_error;
  std::thread echo_thread([&] {
    try {
      pin_thread(1);
    } catch (...) {
      echo_error = std::current_exception();
    }
    echo();
  });
  try {
    pin_thread(0);
  } catch (...) {
    lead_error = std::current_exception();
  }
  lead();
  echo_thread.join();
  if (saved) {
    pthread_setaffinity_np(pthread_self(), sizeof(before), &before);
  }
  if (lead_error) {
    std::rethrow_exception(lead_error);
  }
  if (echo_error) {
    std::rethrow_exception(echo_error);
  }
}

// One cache line bounced between cpu 0 and cpu 1: the first thread writes
// an odd value and spins until the second answers with the next even one.
CachelineRtt cacheline_rtt(std::uint64_t rounds) {
  Line line;
  std::vector<std::int64_t> samples(rounds);
  constexpr std::uint64_t kBatch = 1000;
  constexpr std::uint64_t kBatches = 200;
  std::vector<double> batch_means;
  on_cpus_0_and_1(
      [&] {
        for (std::uint64_t i = 0; i < kBatches * kBatch + rounds; ++i) {
          while (line.value.load(std::memory_order_acquire) != 2 * i + 1) {
          }
          line.value.store(2 * i + 2, std::memory_order_release);
        }
      },
      [&] {
        // First batches timed as a whole (no clock reads inside; the median
        // batch, so that a preemption does not count), then one by one.
        for (std::uint64_t b = 0; b < kBatches; ++b) {
          const std::int64_t batch_start = now_ns();
          for (std::uint64_t k = 0; k < kBatch; ++k) {
            const std::uint64_t i = b * kBatch + k;
            line.value.store(2 * i + 1, std::memory_order_release);
            while (line.value.load(std::memory_order_acquire) != 2 * i + 2) {
            }
          }
          batch_means.push_back(static_cast<double>(now_ns() - batch_start) / kBatch);
        }
        for (std::uint64_t k = 0; k < rounds; ++k) {
          const std::uint64_t i = kBatches * kBatch + k;
          const std::int64_t start = now_ns();
          line.value.store(2 * i + 1, std::memory_order_release);
          while (line.value.load(std::memory_order_acquire) != 2 * i + 2) {
          }
          samples[k] = now_ns() - start;
        }
      });
  std::sort(batch_means.begin(), batch_means.end());
  Report report;
  summarise_latency(samples, report);
  CachelineRtt result;
  result.mean_ns = batch_means[batch_means.size() / 2];
  result.p50_ns = report.latency_ns[0];
  result.p99_ns = report.latency_ns[1];
  return result;
}

// One word handed between cpu 0 and cpu 1 where each side sleeps on it in
// the kernel (shared futex) until the other has written and woken it: two
// wake-ups per round trip, what a blocking receive that really sleeps pays.
// A wait whose wake-up came first does not sleep; the share of rounds in
// which a side did is reported, so that a run that mostly spun is visible.
FutexRtt futex_rtt(std::uint64_t rounds) {
  std::atomic<std::uint32_t> word{0};
  std::vector<std::int64_t> samples;
  samples.reserve(rounds);
  // Returns whether it slept (was woken) before `wanted` appeared.
  const auto wait_for = [&word](std::uint32_t wanted) {
    bool slept = false;
    for (std::uint32_t seen = word.load(std::memory_order_acquire); seen != wanted;
         seen = word.load(std::memory_order_acquire)) {
      slept |= sluice::shm::futex_wait(word, seen, std::chrono::milliseconds(100)) ==
               sluice::shm::FutexWaitResult::kWoken;
    }
    return slept;
  };
  const std::uint64_t warmup = std::max<std::uint64_t>(100, rounds / 10);
  const std::uint64_t total = warmup + rounds;
  std::uint64_t echo_slept = 0;
  std::uint64_t lead_slept = 0;
  on_cpus_0_and_1(
      [&] {
        for (std::uint64_t i = 0; i < total; ++i) {
          echo_slept += wait_for(static_cast<std::uint32_t>(2 * i + 1)) ? 1 : 0;
          word.store(static_cast<std::uint32_t>(2 * i + 2), std::memory_order_release);
          sluice::shm::futex_wake(word, 1);
        }
      },
      [&] {
        for (std::uint64_t i = 0; i < total; ++i) {
          const std::int64_t start = now_ns();
          word.store(static_cast<std::uint32_t>(2 * i + 1), std::memory_order_release);
          sluice::shm::futex_wake(word, 1);
          lead_slept += wait_for(static_cast<std::uint32_t>(2 * i + 2)) ? 1 : 0;
          if (i >= warmup) {
            samples.push_back(now_ns() - start);
          }
        }
      });
  Report report;
  summarise_latency(samples, report);
  FutexRtt result;
  result.p50_ns = report.latency_ns[0];
  result.p99_ns = report.latency_ns[1];
  result.slept_fraction =
      static_cast<double>(echo_slept + lead_slept) / static_cast<double>(2 * total);
  return result;
}

// Records per second for `step(record, sequence)` over a working set of
// max(size, 256 KiB) bytes, one record after another.
template <class Step>
double records_per_second(std::size_t size, double seconds, const Step& step) {
  const std::size_t count = std::max<std::size_t>(1, (std::size_t{256} * 1024) / size);
  AlignedBuffer memory(count * size);
  for (std::size_t i = 0; i < count; ++i) {
    pattern::fill({memory.data + i * size, size}, i);
  }
  std::uint64_t done = 0;
  const auto start = Clock::now();
  const auto until = start + std::chrono::duration<double>(seconds);
  Clock::time_point now;
  do {
    for (std::size_t i = 0; i < count; ++i) {
      const std::span<std::byte> record(memory.data + i * size, size);
      step(record, done + i, i);
      clobber(record.data());
    }
    done += count;
    now = Clock::now();
  } while (now < until);
  return static_cast<double>(done) / std::chrono::duration<double>(now - start).count();
}

}  // namespace

Limits measure_limits(const std::vector<std::size_t>& sizes, double seconds_each) {
  Limits limits;
  try {
    limits.memcpy_cache_gbps = memcpy_gbps(std::size_t{256} * 1024, seconds_each);
    limits.memcpy_memory_gbps = memcpy_gbps(256 << 20, std::max(seconds_each, 0.5));
    for (const std::size_t size : sizes) {
      Limits::FillCheck row;
      row.size = size;
      bool ok = true;
      row.fill_check_rps = records_per_second(
          size, seconds_each,
          [&ok](std::span<std::byte> record, std::uint64_t sequence, std::size_t) {
            pattern::fill(record, sequence);
            clobber(record.data());
            ok &=
                pattern::sequence_of(record) == sequence && pattern::body_matches(record, sequence);
          });
      row.fill_rps = records_per_second(
          size, seconds_each, [](std::span<std::byte> record, std::uint64_t sequence, std::size_t) {
            pattern::fill(record, sequence);
          });
      row.check_rps = records_per_second(
          size, seconds_each, [&ok](std::span<std::byte> record, std::uint64_t, std::size_t index) {
            // The working set was filled with sequence = index.
            ok &= pattern::sequence_of(record) == index && pattern::body_matches(record, index);
          });
      if (!ok) {
        limits.problem = "fill/check mismatch at " + std::to_string(size) + " bytes";
      }
      limits.fill_check.push_back(row);
    }
  } catch (const std::exception& error) {
    limits.problem = error.what();
  }
  return limits;
}

namespace {

// A measurement that failed (a thread that cannot be pinned, say) comes
// back with its reason in `problem`, for the limits table to show.
template <class Result>
Result or_problem(Result (*measure)(std::uint64_t), std::uint64_t rounds) {
  try {
    return measure(rounds);
  } catch (const std::exception& error) {
    Result result;
    result.problem = error.what();
    return result;
  }
}

}  // namespace

CachelineRtt measure_cacheline(std::uint64_t rounds) {
  return or_problem(cacheline_rtt, rounds);
}

FutexRtt measure_futex(std::uint64_t rounds) {
  return or_problem(futex_rtt, rounds);
}

}  // namespace cmp
