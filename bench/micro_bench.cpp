// Micro-benchmarks of what a record pays for on its way through a channel,
// piece by piece: the SPSC ring, the record framing, and the wake-up check a
// publisher makes every time. All in one process; see transfer_bench.cpp for
// the cross-process figures.

#include <benchmark/benchmark.h>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "sluice/shm/futex.hpp"
#include "sluice/transport/channel.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_frame.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/sequence_pattern.hpp"
#include "sluice/transport/spsc_ring.hpp"
#include "sluice/transport/wait_strategy.hpp"

namespace {

namespace st = sluice::transport;

// Power of two (the ring masks indices); the size of a channel ring for 1024 buffers.
constexpr std::uint64_t kRingCapacity = 1024;

// A ring laid out as in a channel's ring region (indices, then slots, from a
// cache-line boundary) but on the heap, so the ring code is timed alone.
class HeapRing {
 public:
  explicit HeapRing(std::uint64_t capacity)
      : capacity_(capacity),
        memory_(static_cast<std::byte*>(::operator new(bytes_for(capacity), kAlignment))) {
    // Start the atomics' lifetimes properly instead of reinterpreting raw
    // bytes; value-initialisation makes every index and slot 0.
    indices_ = ::new (memory_) st::RingIndices{};
    slots_ = reinterpret_cast<st::RingSlot*>(memory_ + sizeof(st::RingIndices));
    std::uninitialized_value_construct_n(slots_, capacity_);
  }
  HeapRing(const HeapRing&) = delete;
  HeapRing& operator=(const HeapRing&) = delete;
  // Atomics of integers are trivially destructible: freeing the memory ends them.
  ~HeapRing() { ::operator delete(memory_, kAlignment); }

  [[nodiscard]] st::RingWriter writer() const noexcept { return {indices_, slots_, capacity_}; }
  [[nodiscard]] st::RingReader reader() const noexcept { return {indices_, slots_, capacity_}; }

 private:
  static constexpr std::align_val_t kAlignment{st::kCacheLine};
  static std::size_t bytes_for(std::uint64_t capacity) {
    return sizeof(st::RingIndices) + capacity * sizeof(st::RingSlot);
  }

  std::uint64_t capacity_;
  std::byte* memory_;
  st::RingIndices* indices_ = nullptr;
  st::RingSlot* slots_ = nullptr;
};

// Spin politely, then give the core away: on a loaded 2-core machine a pure
// spinner can keep its own peer from running.
class Backoff {
 public:
  void pause() noexcept {
    if (++spins_ < kSpinsBeforeYield) {
      st::cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  void reset() noexcept { spins_ = 0; }

 private:
  static constexpr std::uint32_t kSpinsBeforeYield = 1024;
  std::uint32_t spins_ = 0;
};

// A channel that exists for one benchmark run. The name carries the pid and
// a counter because Google Benchmark calls each function several times
// while it calibrates, and other runs may share the host.
class ScratchChannel {
 public:
  explicit ScratchChannel(const st::ChannelConfig& config = {})
      : name_(next_name()), producer_(st::Producer::create(name_, config)) {}
  ScratchChannel(const ScratchChannel&) = delete;
  ScratchChannel& operator=(const ScratchChannel&) = delete;
  // Only the name goes here; the mappings go with the endpoints.
  ~ScratchChannel() { st::remove_channel(name_); }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] st::Producer& producer() noexcept { return producer_; }
  [[nodiscard]] st::ChannelControl& control() const noexcept {
    return producer_.mapping().control();
  }

 private:
  static std::string next_name() {
    static unsigned counter = 0;
    return "bench-micro-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  }

  std::string name_;
  st::Producer producer_;
};

// ---------------------------------------------------------------------------
// Ring

// Stage `batch` values, publish once, pop them all back, on one thread: the
// ring's own instruction cost with every cache line already local.
void BM_RingPushPop(benchmark::State& state) {
  const auto batch = static_cast<std::uint64_t>(state.range(0));
  const HeapRing ring(kRingCapacity);
  st::RingWriter writer = ring.writer();
  st::RingReader reader = ring.reader();
  std::uint64_t next = 0;
  bool intact = true;
  for (auto _ : state) {
    for (std::uint64_t i = 0; i < batch; ++i) {
      // Cannot be full: every round empties the ring again.
      if (writer.stage(next + i) != st::RingResult::kOk) [[unlikely]] {
        intact = false;
      }
    }
    writer.publish();
    for (std::uint64_t i = 0; i < batch; ++i) {
      std::uint64_t value = 0;
      if (reader.pop(value) != st::RingResult::kOk || value != next + i) [[unlikely]] {
        intact = false;
      }
      benchmark::DoNotOptimize(value);
    }
    next += batch;
    if (!intact) [[unlikely]] {
      state.SkipWithError("ring returned something other than what was pushed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}
BENCHMARK(BM_RingPushPop)->ArgName("batch")->Arg(1)->Arg(32);

// A producer thread streams sequence numbers (publishing every `batch`
// values, or sooner when the ring is full) while this thread pops them one by
// one. Both index lines bounce between cores, as they do between processes.
void BM_RingPingThreads(benchmark::State& state) {
  const auto batch = static_cast<std::uint64_t>(state.range(0));
  const HeapRing ring(kRingCapacity);
  st::RingReader reader = ring.reader();
  std::atomic<bool> stop{false};
  std::thread producer([&ring, &stop, batch] {
    st::RingWriter writer = ring.writer();
    std::uint64_t next = 0;
    Backoff backoff;
    while (!stop.load(std::memory_order_relaxed)) {
      std::uint64_t staged = 0;
      while (staged < batch && writer.stage(next) == st::RingResult::kOk) {
        ++next;
        ++staged;
      }
      if (staged > 0) {
        writer.publish();
        backoff.reset();
      } else {
        backoff.pause();  // full
      }
    }
  });

  std::uint64_t expected = 0;
  Backoff backoff;
  for (auto _ : state) {
    std::uint64_t value = 0;
    st::RingResult result;
    while ((result = reader.pop(value)) == st::RingResult::kEmpty) {
      backoff.pause();
    }
    backoff.reset();
    if (result != st::RingResult::kOk || value != expected) [[unlikely]] {
      state.SkipWithError("ring delivered out of order or reported corruption");
      break;
    }
    ++expected;
  }
  stop.store(true, std::memory_order_relaxed);
  producer.join();
  state.SetItemsProcessed(static_cast<std::int64_t>(expected));
}
// Real time: the rate is the pair's, and this thread's CPU time says nothing
// about the producer thread.
BENCHMARK(BM_RingPingThreads)->ArgName("batch")->Arg(1)->Arg(32)->UseRealTime();

// ---------------------------------------------------------------------------
// Record framing

// Writes a batch of records with RecordWriter, flushes, reads them back with
// RecordReader, all through a real channel on one thread: framing, buffer
// hand-over and both rings, but no cross-core traffic.
// mode 0: whole buffers, read with next(); 1: whole buffers, read with
// read_batch(); 2: every record published in place, read with next();
// 3: whole buffers written with write_batch(), read with read_batch().
void BM_RecordFraming(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto mode = state.range(1);
  try {
    ScratchChannel channel;
    st::Consumer consumer = st::Consumer::open(channel.name());
    const st::ChannelConfigRecord& config = channel.producer().config();
    // Writer and reader share this thread, so a batch must fit in half the
    // pool: otherwise write() would wait for a reader that cannot run.
    const std::size_t pool_bytes = config.buffer_bytes * config.buffer_count;
    const std::size_t batch =
        std::min<std::size_t>(4096, pool_bytes / 2 / (st::frame::kHeaderBytes + size));

    std::vector<std::byte> payload(size);
    st::pattern::fill(payload, 0);
    st::RecordWriter writer(channel.producer(), mode == 2 ? st::Publication::kEachRecordInPlace
                                                          : st::Publication::kWholeBuffers);
    st::RecordReader reader(consumer);

    auto round_trip = [&]() noexcept {
      if (mode == 3) {
        const st::Status status =
            writer.write_batch(size, batch, [&payload](std::span<std::byte> record) noexcept {
              // The copy write() makes, so that only the framing differs.
              st::frame::copy_payload(record.data(), payload.data(), record.size());
            });
        if (status != st::Status::kOk) {
          return false;
        }
      } else {
        for (std::size_t i = 0; i < batch; ++i) {
          if (writer.write(payload) != st::Status::kOk) {
            return false;
          }
        }
      }
      if (writer.flush() != st::Status::kOk) {
        return false;
      }
      if (mode == 1 || mode == 3) {
        std::size_t read = 0;
        bool intact = true;
        while (read < batch) {
          const st::Status status = reader.try_read_batch([&](std::span<const std::byte> record) {
            intact = intact && record.size() == size;
            benchmark::DoNotOptimize(record.data());
            return ++read < batch;
          });
          if (status != st::Status::kOk || !intact) {
            return false;
          }
        }
        return true;
      }
      for (std::size_t i = 0; i < batch; ++i) {
        std::span<const std::byte> record;
        // try_next: everything was flushed, so waiting could only mean a bug.
        if (reader.try_next(record) != st::Status::kOk || record.size() != size) {
          return false;
        }
        benchmark::DoNotOptimize(record.data());
      }
      return true;
    };
    for (auto _ : state) {
      if (!round_trip()) {
        state.SkipWithError("a record was not written or not read back intact");
        break;
      }
    }
    const auto records = state.iterations() * static_cast<std::int64_t>(batch);
    state.SetItemsProcessed(records);
    state.SetBytesProcessed(records * static_cast<std::int64_t>(size));
    state.counters["batch"] = static_cast<double>(batch);
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
}
BENCHMARK(BM_RecordFraming)
    ->ArgNames({"bytes", "mode"})
    ->ArgsProduct({{8, 64, 1024}, {0, 1, 2, 3}});

// A relay stage's cost: records already in channel A are read and written
// unchanged into channel B, on one thread (B is drained after each batch).
// mode 0: record by record, read_batch() and write() per record (as
// sluice-relay does when throttled); 1: read_runs_until() and
// write_records(), a run per call (as it does otherwise).
void BM_Relay(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const bool by_runs = state.range(1) == 1;
  try {
    ScratchChannel input;
    ScratchChannel output;
    st::Consumer input_consumer = st::Consumer::open(input.name());
    st::Consumer output_consumer = st::Consumer::open(output.name());
    const st::ChannelConfigRecord& config = input.producer().config();
    const std::size_t pool_bytes = config.buffer_bytes * config.buffer_count;
    const std::size_t batch =
        std::min<std::size_t>(4096, pool_bytes / 2 / (st::frame::kHeaderBytes + size));
    std::vector<std::byte> payload(size);
    st::pattern::fill(payload, 0);
    st::RecordWriter source(input.producer());
    st::RecordReader from(input_consumer);
    st::RecordWriter to(output.producer());
    st::RecordReader sink(output_consumer);

    auto relay_batch = [&]() noexcept {
      if (source.write_batch(size, batch,
                             [&payload](std::span<std::byte> record) noexcept {
                               st::frame::copy_payload(record.data(), payload.data(),
                                                       record.size());
                             }) != st::Status::kOk ||
          source.flush() != st::Status::kOk) {
        return false;
      }
      std::size_t relayed = 0;
      bool written = true;
      while (relayed < batch && written) {
        const st::Status status =
            by_runs ? from.read_runs_until(
                          [&](std::span<const std::byte> records, std::uint64_t count) {
                            written = to.write_records(records, count) == st::Status::kOk;
                            relayed += count;
                            return written && relayed < batch;
                          },
                          st::Deadline::immediate())
                    : from.try_read_batch([&](std::span<const std::byte> record) {
                        written = to.write(record) == st::Status::kOk;
                        ++relayed;
                        return written && relayed < batch;
                      });
        if (status != st::Status::kOk) {
          return false;
        }
      }
      if (!written || to.flush() != st::Status::kOk) {
        return false;
      }
      std::size_t read = 0;
      bool intact = true;
      while (read < batch) {
        if (sink.try_read_batch([&](std::span<const std::byte> record) {
              intact = intact && record.size() == size;
              benchmark::DoNotOptimize(record.data());
              return ++read < batch;
            }) != st::Status::kOk ||
            !intact) {
          return false;
        }
      }
      return true;
    };
    for (auto _ : state) {
      if (!relay_batch()) {
        state.SkipWithError("a record was not relayed or not read back intact");
        break;
      }
    }
    const auto records = state.iterations() * static_cast<std::int64_t>(batch);
    state.SetItemsProcessed(records);
    state.SetBytesProcessed(records * static_cast<std::int64_t>(size));
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
}
BENCHMARK(BM_Relay)->ArgNames({"bytes", "mode"})->ArgsProduct({{8, 64, 1024}, {0, 1}});

// ---------------------------------------------------------------------------
// Wake-up: every commit and every release calls wake_peer(). With the peer
// awake it must stay one locked instruction on the peer's flag line and no
// system call; only a sleeping peer costs a futex_wake. Measured on a real
// channel's words (shared memory), as in use.

void BM_FutexWakeNoSleeper(benchmark::State& state) {
  try {
    ScratchChannel channel;
    st::WakeWord& word = channel.control().data_ready;
    for (auto _ : state) {
      benchmark::DoNotOptimize(sluice::shm::futex_wake(word.sequence, 1));
    }
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
}
BENCHMARK(BM_FutexWakeNoSleeper);

// The fast path: the consumer's sleeping flag is clear, so no system call.
void BM_WakePeerAwake(benchmark::State& state) {
  try {
    ScratchChannel channel;
    st::ChannelControl& control = channel.control();
    for (auto _ : state) {
      st::wake_peer(control.data_ready, control.consumer_sleeping);
    }
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
}
BENCHMARK(BM_WakePeerAwake);

// For contrast, the slow path: the flag says "sleeping" (no consumer is
// attached, so nobody really is), so every call bumps the word and enters
// the kernel.
void BM_WakePeerFlagSet(benchmark::State& state) {
  try {
    ScratchChannel channel;
    st::ChannelControl& control = channel.control();
    control.consumer_sleeping.sleeping.store(1, std::memory_order_relaxed);
    for (auto _ : state) {
      st::wake_peer(control.data_ready, control.consumer_sleeping);
    }
    control.consumer_sleeping.sleeping.store(0, std::memory_order_relaxed);
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
}
BENCHMARK(BM_WakePeerFlagSet);

}  // namespace
