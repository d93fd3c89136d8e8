// The no-transport reference: the standard work with no transport at all. The
// parent maps shared memory before it forks the pair; the producer fills the
// records in place in a ring of bare buffers and hands each buffer over with
// one release store of a counter, the consumer checks them in place and hands
// the buffer back the same way. No framing, no ownership state, no metrics,
// no wake-ups: what is left is filling, checking and moving the bytes from
// one core to the other, the part every transport pays. It is measured like
// the systems (forked, interleaved, same record counts), so it is a
// reference, not a strict bound: a single run of a system can beat it.
//
// Same geometry as Sluice's rows: records up to 1 KiB packed into 64
// buffers of 32 KiB, larger ones one per buffer in as many buffers as the
// library's sized_for_records gives (about 1 MiB in flight, at least 2).

#include <sched.h>
#include <sys/mman.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <system_error>

#include "harness.hpp"
#include "sluice/transport/channel_config.hpp"

namespace cmp {
namespace {

constexpr std::size_t kPackedBufferBytes = std::size_t{32} * 1024;
constexpr std::uint64_t kPackedBufferCount = 64;
constexpr std::size_t kPackedMaxRecordBytes = 1024;
constexpr std::size_t kControlBytes = 4096;  // the two counters; buffers start page-aligned

// Each counter on its own pair of cache lines (the adjacent-line prefetcher
// pulls lines in pairs), so the two sides never share one.
struct alignas(128) Counter {
  std::atomic<std::uint64_t> value{0};
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

struct Control {
  // Buffers filled so far. Written by the producer only, with release after
  // it filled the buffer; the consumer's acquire load makes the records
  // visible before it reads them.
  Counter produced;
  // Buffers checked so far. Written by the consumer only, with release after
  // its last read of the buffer; the producer's acquire load orders its
  // refill after those reads.
  Counter consumed;
};
static_assert(sizeof(Control) <= kControlBytes);

struct Geometry {
  std::size_t buffer_bytes = 0;
  std::uint64_t buffer_count = 0;
  std::uint64_t records_per_buffer = 0;
};

Geometry geometry_for(std::size_t record_bytes) {
  Geometry geometry;
  if (record_bytes <= kPackedMaxRecordBytes) {
    geometry.buffer_bytes = kPackedBufferBytes;
    geometry.buffer_count = kPackedBufferCount;
    geometry.records_per_buffer = kPackedBufferBytes / record_bytes;
  } else {
    geometry.buffer_bytes = record_bytes;
    sluice::transport::ChannelConfig config;
    config.buffer_bytes = sluice::transport::ChannelConfig::kMinBufferBytes;
    geometry.buffer_count = sluice::transport::sized_for_records(config, record_bytes).buffer_count;
    geometry.records_per_buffer = 1;
  }
  return geometry;
}

// Spins (with the pause hint) while the other side is expected soon, then
// yields, so that an unpinned pair that lands on one core still progresses.
class Backoff {
 public:
  void wait() {
    if (spins_ < kSpinsBeforeYield) {
      ++spins_;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      ::sched_yield();
    }
  }

 private:
  static constexpr unsigned kSpinsBeforeYield = 1U << 14U;
  unsigned spins_ = 0;
};

template <class Ready>
void wait_until(const Ready& ready) {
  Backoff backoff;
  while (!ready()) {
    backoff.wait();
  }
}

class NoTransportSystem final : public System {
 public:
  NoTransportSystem() = default;
  NoTransportSystem(const NoTransportSystem&) = delete;
  NoTransportSystem& operator=(const NoTransportSystem&) = delete;
  ~NoTransportSystem() override { unmap(); }

  [[nodiscard]] std::string name() const override { return "no-transport"; }
  [[nodiscard]] bool is_reference() const override { return true; }
  [[nodiscard]] bool has_ping() const override { return false; }

  void prepare_throughput(const Work& work) override {
    unmap();
    geometry_ = geometry_for(work.size);
    bytes_ = kControlBytes + geometry_.buffer_bytes * geometry_.buffer_count;
    // Shared and anonymous: the forked pair inherits it; populated, as
    // Sluice's endpoints populate their mapping when they attach.
    void* memory = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (memory == MAP_FAILED) {
      throw std::system_error(errno, std::generic_category(), "mmap");
    }
    memory_ = static_cast<std::byte*>(memory);
    control_ = new (memory_) Control();
  }
  void cleanup() override { unmap(); }

  void produce(Link& link, const Work& work) override {
    link.ready();
    std::uint64_t sequence = 0;
    std::uint64_t filled = 0;
    std::uint64_t consumed_seen = 0;
    while (sequence < work.records) {
      // The cached count first: the consumer's line is read only when the
      // ring looks full.
      if (filled - consumed_seen >= geometry_.buffer_count) {
        wait_until([&] {
          consumed_seen = control_->consumed.value.load(std::memory_order_acquire);
          return filled - consumed_seen < geometry_.buffer_count;
        });
      }
      std::byte* record = buffer(filled);
      const std::uint64_t end = std::min(work.records, sequence + geometry_.records_per_buffer);
      for (; sequence < end; ++sequence, record += work.size) {
        pattern::fill({record, work.size}, sequence);
      }
      control_->produced.value.store(++filled, std::memory_order_release);
    }
    link.done();
  }

  void consume(Link& link, const Work& work) override {
    link.ready();
    std::uint64_t sequence = 0;
    std::uint64_t checked = 0;
    std::uint64_t produced_seen = 0;
    while (sequence < work.records) {
      if (produced_seen == checked) {
        wait_until([&] {
          produced_seen = control_->produced.value.load(std::memory_order_acquire);
          return produced_seen != checked;
        });
      }
      // Never trust the other side, even here: a count that runs ahead of
      // what fits in the ring is a broken run, not a record to read.
      if (produced_seen - checked > geometry_.buffer_count) {
        fail("no-transport: produced counter ran ahead of the ring");
      }
      const std::byte* record = buffer(checked);
      const std::uint64_t end = std::min(work.records, sequence + geometry_.records_per_buffer);
      for (; sequence < end; ++sequence, record += work.size) {
        check_record({record, work.size}, work.size, sequence);
      }
      control_->consumed.value.store(++checked, std::memory_order_release);
    }
    link.done();
  }

  void ping(Link& /*link*/, const PingWork& /*work*/) override {
    fail("no-transport has no ping-pong; see the cache-line round trip in the limits");
  }
  void pong(Link& /*link*/, const PingWork& /*work*/) override {
    fail("no-transport has no ping-pong; see the cache-line round trip in the limits");
  }

 private:
  [[nodiscard]] std::byte* buffer(std::uint64_t index) const {
    return memory_ + kControlBytes + (index % geometry_.buffer_count) * geometry_.buffer_bytes;
  }

  void unmap() {
    if (memory_ != nullptr) {
      ::munmap(memory_, bytes_);
      memory_ = nullptr;
      control_ = nullptr;
    }
  }

  Geometry geometry_;
  std::size_t bytes_ = 0;
  std::byte* memory_ = nullptr;
  Control* control_ = nullptr;
};

}  // namespace

std::unique_ptr<System> make_no_transport() {
  return std::make_unique<NoTransportSystem>();
}

}  // namespace cmp
