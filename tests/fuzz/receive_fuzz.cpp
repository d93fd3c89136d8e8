// Fuzz target: the consumer's receive path against a hostile producer.
//
// Each input creates a real channel (a small pool) with Producer::create and
// attaches a Consumer in the same process. The input is then a program of
// operations: hostile writes to the shared state a producer can reach (data
// ring tail, head and slots, return ring indices, per-buffer state words,
// buffer contents and frame words, the stream-closed flag, any byte of the
// control block), honest producer commits, and consumer calls (try_receive,
// release, RecordReader::try_next, zero-timeout waits, re-attach). Every
// status is acceptable; a crash, a sanitizer report, a leak, an unbounded
// allocation, or a view outside its buffer (checked here, since ASan cannot
// see it inside the mapping) is a bug. Nothing blocks: only try_ calls and
// zero timeouts.
//
// Input: u8 flags, u8 config, then operations until the input runs out
// (at most kMaxOps). Config byte: buffer count 1 + (c & 7), buffer size
// {64, 100, 256, 1000}[(c >> 3) & 3]. Flags: bit 0 attach the consumer only
// at its first use (so it starts from hostile indices), bit 1 small record
// limit (96 bytes) instead of 64 KiB, bit 2 a fan-out of 2 subpartitions
// (round-robin; at least 2 buffers) read as subpartition 1: the hostile
// writes then hit subpartition 1's control block and rings, and the state
// words carry subpartitions.

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include "fuzz_support.hpp"
#include "sluice/shm/segment.hpp"
#include "sluice/shm/setup_error.hpp"
#include "sluice/transport/channel_layout.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_frame.hpp"
#include "sluice/transport/record_reader.hpp"

namespace st = sluice::transport;
namespace shm = sluice::shm;
using sluice::fuzz::FuzzInput;
using sluice::fuzz::violated;

namespace {

constexpr int kMaxOps = 512;

// SLUICE_FUZZ_TRACE=1 prints each operation and the statuses it got, for
// reading a reproducer (./sluice_fuzz_receive crash-file).
bool tracing() {
  // Read once, before any thread could set the environment.
  static const bool on =
      std::getenv("SLUICE_FUZZ_TRACE") != nullptr;  // NOLINT(concurrency-mt-unsafe)
  return on;
}
void trace(const char* what, st::Status status) {
  if (tracing()) {
    std::fprintf(stderr, "  %s -> %s\n", what, std::string(st::to_string(status)).c_str());
  }
}
constexpr int kMaxHeavyOps = 4;  // 1024-poll loops and zero-timeout waits

enum Op : std::uint8_t {
  kDataTail,        // set or move the data ring's tail
  kDataHead,        // set or move the data ring's head (the consumer's index)
  kDataSlot,        // write any data ring slot
  kPlant,           // append a descriptor as a rogue producer would
  kState,           // write a buffer state word
  kBufferBytes,     // write bytes into a buffer
  kFrameWord,       // write one frame word into a buffer
  kClosed,          // write the stream-closed flag
  kReturnRing,      // write the return ring's indices or slots
  kControlBytes,    // write any bytes of the control block
  kReceive,         // Consumer::try_receive into a holding slot
  kRelease,         // release a held buffer
  kReadRecords,     // RecordReader::try_next a few times
  kProducerCommit,  // honest (or framing-hostile) producer acquires and commits
  kProducerClose,   // Producer::close
  kProducerGone,    // the producer detaches without closing (as if it died)
  kPollMany,        // 1024 try_receive calls: reaches the periodic liveness probe
  kZeroWait,        // receive_for / next_for with a zero timeout
  kReattach,        // the consumer detaches and a new one opens (takeover)
  kOpCount,
};

st::ChannelConfig config_from_byte(std::uint8_t c) {
  static constexpr std::uint32_t kSizes[] = {64, 100, 256, 1000};
  st::ChannelConfig config;
  config.buffer_count = 1 + (c & 7U);
  config.buffer_bytes = kSizes[(c >> 3) & 3U];
  return config;
}

// The hostile producer's view: a mapping of its own, with the regions taken
// from the header before anything was rewritten (this target never touches
// the header; the open fuzzer does).
struct Raw {
  Raw(const std::string& name, std::uint32_t subpartition)
      : mapping(st::ChannelMapping::open(name, {.subpartition = subpartition})) {
    count = mapping.config().buffer_count;
    capacity = mapping.config().ring_capacity;
    buffer_bytes = mapping.config().buffer_bytes;
    stride = mapping.config().buffer_stride;
    control = &mapping.control();
    data_ring = &mapping.data_ring();
    data_slots = mapping.data_slots();
    return_ring = &mapping.return_ring();
    return_slots = mapping.return_slots();
    states = mapping.buffer_states();
    pool = mapping.buffer(0);
  }
  std::byte* buffer(std::uint32_t index) const { return pool + index * stride; }

  st::ChannelMapping mapping;
  std::uint32_t count = 0;
  std::uint32_t capacity = 0;
  std::uint64_t buffer_bytes = 0;
  std::uint64_t stride = 0;
  st::ChannelControl* control = nullptr;
  st::RingIndices* data_ring = nullptr;
  st::RingSlot* data_slots = nullptr;
  st::RingIndices* return_ring = nullptr;
  st::RingSlot* return_slots = nullptr;
  st::BufferStateWord* states = nullptr;
  std::byte* pool = nullptr;
};

// Sets an index to a fuzz value, or moves it by a small signed step (the
// interesting cases: one past, one behind, a full ring ahead).
void write_index(std::atomic<std::uint64_t>& index, FuzzInput& in) {
  const std::uint8_t how = in.u8();
  if ((how & 1U) != 0) {
    index.store(in.u64(), std::memory_order_release);
  } else {
    const auto step = static_cast<std::int8_t>(in.u8());
    index.store(
        index.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(std::int64_t{step}),
        std::memory_order_release);
  }
}

// A descriptor that is mostly plausible, sometimes anything.
std::uint64_t make_descriptor(const Raw& raw, FuzzInput& in) {
  const std::uint8_t how = in.u8();
  if ((how & 1U) != 0) {
    return in.u64();
  }
  const std::uint32_t index = in.u8() % (raw.count + 1);  // == count: one beyond the pool
  const std::uint32_t bytes = (how & 2U) != 0
                                  ? st::kOpenBufferBytes  // read in place
                                  : static_cast<std::uint32_t>(in.u16() % (raw.buffer_bytes + 2));
  return st::make_descriptor(index, bytes);
}

void write_into_buffer(const Raw& raw, std::uint32_t index, std::size_t offset,
                       std::span<const std::uint8_t> bytes) {
  offset %= raw.buffer_bytes;
  const std::size_t n = std::min<std::size_t>(bytes.size(), raw.buffer_bytes - offset);
  if (n > 0) {
    std::memcpy(raw.buffer(index) + offset, bytes.data(), n);
  }
}

class Session {
 public:
  Session(std::string name, const st::ChannelConfig& config, std::uint8_t flags)
      : name_(std::move(name)),
        max_record_bytes_((flags & 2U) != 0 ? 96 : std::size_t{64} << 10),
        subpartition_((flags & 4U) != 0 ? 1 : 0) {
    st::ChannelConfig chosen = config;
    if (subpartition_ != 0) {
      chosen.subpartitions = 2;
      chosen.partitioner = st::Partitioner::kRoundRobin;
      chosen.buffer_count = std::max<std::uint32_t>(chosen.buffer_count, 2);
    }
    producer_.emplace(st::Producer::create(name_, chosen));
    raw_.emplace(name_, subpartition_);
    if ((flags & 1U) == 0) {
      consumer();
    }
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void run(FuzzInput& in) {
    int heavy = 0;
    for (int ops = 0; ops < kMaxOps && !in.empty(); ++ops) {
      const auto op = static_cast<Op>(in.u8() % kOpCount);
      if (tracing()) {
        std::fprintf(stderr, "op %d\n", static_cast<int>(op));
      }
      if ((op == kPollMany || op == kZeroWait) && ++heavy > kMaxHeavyOps) {
        continue;
      }
      step(op, in);
    }
    // Drain what is left, as a consumer would before giving up.
    read_records(in, 16);
  }

 private:
  void step(Op op, FuzzInput& in) {
    Raw& raw = *raw_;
    switch (op) {
      case kDataTail: write_index(raw.data_ring->tail, in); break;
      case kDataHead: write_index(raw.data_ring->head, in); break;
      case kDataSlot: {
        const std::uint32_t slot = in.u8() % raw.capacity;
        raw.data_slots[slot].store(make_descriptor(raw, in), std::memory_order_relaxed);
        break;
      }
      case kPlant: {
        const std::uint8_t how = in.u8();
        const std::uint64_t descriptor = make_descriptor(raw, in);
        const std::uint32_t index = st::descriptor_buffer(descriptor);
        if ((how & 1U) != 0 && index < raw.count) {
          raw.states[index].store(static_cast<std::uint32_t>(st::BufferState::kQueued),
                                  std::memory_order_relaxed);
        }
        const std::uint64_t tail = raw.data_ring->tail.load(std::memory_order_relaxed);
        raw.data_slots[tail & (raw.capacity - 1)].store(descriptor, std::memory_order_relaxed);
        raw.data_ring->tail.store(tail + 1, std::memory_order_release);
        break;
      }
      case kState: {
        const std::uint32_t index = in.u8() % raw.count;
        const std::uint8_t how = in.u8();
        const std::uint32_t value = (how & 1U) != 0 ? in.u32() : (how >> 1) % 5U;
        raw.states[index].store(value, std::memory_order_relaxed);
        break;
      }
      case kBufferBytes: {
        const std::uint32_t index = in.u8() % raw.count;
        const std::size_t offset = in.u16();
        const std::size_t length = in.u8();
        write_into_buffer(raw, index, offset, in.bytes(length));
        break;
      }
      case kFrameWord: {
        const std::uint32_t index = in.u8() % raw.count;
        const std::size_t offset = std::min<std::size_t>(
            in.u16() % raw.buffer_bytes, raw.buffer_bytes - st::frame::kHeaderBytes);
        st::frame::write_header(raw.buffer(index) + offset, in.u32());
        break;
      }
      case kClosed:
        raw.control->stream.closed.store(in.u8() % 3U, std::memory_order_release);
        break;
      case kReturnRing: {
        const std::uint8_t which = in.u8() % 3U;
        if (which == 0) {
          write_index(raw.return_ring->tail, in);
        } else if (which == 1) {
          write_index(raw.return_ring->head, in);
        } else {
          const std::uint32_t slot = in.u8() % raw.capacity;
          raw.return_slots[slot].store(in.u8() % (raw.count + 1), std::memory_order_relaxed);
        }
        break;
      }
      case kControlBytes: {
        const std::size_t offset = in.u16() % sizeof(st::ChannelControl);
        const auto bytes = in.bytes(in.u8() % 16U);
        const std::size_t n = std::min(bytes.size(), sizeof(st::ChannelControl) - offset);
        if (n > 0) {
          std::memcpy(reinterpret_cast<std::byte*>(raw.control) + offset, bytes.data(), n);
        }
        break;
      }
      case kReceive: {
        st::Consumer* c = consumer();
        if (c == nullptr) {
          break;
        }
        st::ReadableBuffer& slot = held_[in.u8() % held_.size()];
        slot.reset();
        const st::Status status = c->try_receive(slot);
        trace("try_receive", status);
        if (status == st::Status::kOk) {
          check_buffer(slot);
        }
        break;
      }
      case kRelease: held_[in.u8() % held_.size()].reset(); break;
      case kReadRecords: read_records(in, 1 + in.u8() % 16U); break;
      case kProducerCommit: producer_commit(in); break;
      case kProducerClose:
        if (producer_) {
          producer_->close();
        }
        break;
      case kProducerGone: producer_.reset(); break;
      case kPollMany: {
        st::Consumer* c = consumer();
        if (c == nullptr) {
          break;
        }
        for (int i = 0; i < 1024; ++i) {
          st::ReadableBuffer buffer;
          const st::Status status = c->try_receive(buffer);
          if (status == st::Status::kOk) {
            check_buffer(buffer);
          } else if (status != st::Status::kWouldBlock) {
            trace("try_receive (poll loop)", status);
            break;
          }
        }
        break;
      }
      case kZeroWait: {
        st::Consumer* c = consumer();
        if (c == nullptr) {
          break;
        }
        if ((in.u8() & 1U) != 0) {
          st::ReadableBuffer buffer;
          const st::Status status = c->receive_for(buffer, std::chrono::nanoseconds::zero());
          trace("receive_for(0)", status);
          if (status == st::Status::kOk) {
            check_buffer(buffer);
          }
        } else if (st::RecordReader* r = reader(); r != nullptr) {
          std::span<const std::byte> record;
          const st::Status status = r->next_for(record, std::chrono::nanoseconds::zero());
          trace("next_for(0)", status);
          if (status == st::Status::kOk) {
            check_record(record);
          }
        }
        break;
      }
      case kReattach: {
        reader_.reset();
        for (auto& buffer : held_) {
          buffer.reset();
        }
        consumer_.reset();
        consumer_failed_ = false;
        consumer();
        break;
      }
      case kOpCount: break;
    }
  }

  // Attaches on first use. Open may refuse (SetupError); then the consumer
  // ops do nothing for the rest of the input.
  st::Consumer* consumer() {
    if (!consumer_ && !consumer_failed_) {
      try {
        consumer_.emplace(st::Consumer::open(name_, {.subpartition = subpartition_}));
      } catch (const shm::SetupError&) {
        consumer_failed_ = true;
      }
    }
    return consumer_ ? &*consumer_ : nullptr;
  }

  st::RecordReader* reader() {
    st::Consumer* c = consumer();
    if (c == nullptr) {
      return nullptr;
    }
    if (!reader_) {
      st::RecordReaderOptions options;
      options.max_record_bytes = max_record_bytes_;
      reader_.emplace(*c, options);
    }
    return &*reader_;
  }

  void read_records(FuzzInput& in, unsigned count) {
    st::RecordReader* r = reader();
    if (r == nullptr) {
      return;
    }
    const unsigned form = in.u8() % 3U;
    if (form == 1) {
      // The run form: records back to back, a whole run per call; each
      // must lie inside one buffer, as a record of the batch form must.
      std::uint64_t delivered = 0;
      const st::Status status = r->read_runs_until(
          [&](std::span<const std::byte> records, std::uint64_t n) {
            if (n == 0 || records.size() % n != 0 || delivered + n > count) {
              violated("a run that is not whole records, or more than the bound");
            }
            check_record(records);  // the run as a whole inside one buffer
            const std::size_t bytes = records.size() / n;
            for (std::uint64_t i = 0; i < n; ++i) {
              check_record(records.subspan(i * bytes, bytes));
            }
            delivered += n;
            return delivered < count;
          },
          st::Deadline::immediate(), count);
      trace("read_runs_until", status);
      return;
    }
    if (form == 0) {
      // The batch form, which steps through runs and plain frames itself.
      unsigned delivered = 0;
      const st::Status status = r->try_read_batch([&](std::span<const std::byte> record) {
        check_record(record);
        return ++delivered < count;
      });
      trace("try_read_batch", status);
      return;
    }
    for (unsigned i = 0; i < count; ++i) {
      std::span<const std::byte> record;
      const st::Status status = r->try_next(record);
      trace("try_next", status);
      if (status != st::Status::kOk) {
        if (status == st::Status::kCorrupt && tracing()) {
          std::fprintf(stderr, "  framing: %s; consumer: %s\n",
                       r->framing_error() != nullptr ? r->framing_error() : "-",
                       consumer_->corruption().c_str());
        }
        break;
      }
      check_record(record);
    }
  }

  void producer_commit(FuzzInput& in) {
    if (!producer_) {
      return;
    }
    const std::uint8_t how = in.u8();
    st::WritableBuffer buffer;
    if (const st::Status status = producer_->try_acquire(buffer); status != st::Status::kOk) {
      trace("try_acquire", status);
      return;
    }
    const std::span<std::byte> data = buffer.data();
    std::size_t used = 0;
    if ((how & 1U) != 0) {
      // Frames, lengths and flags as the input says: well formed unless the
      // flag bits (how >> 1) make them a spanning record's pieces.
      const unsigned records = 1 + in.u8() % 4U;
      if ((how & 64U) != 0 && data.size() >= st::frame::kRunHeaderBytes) {
        // A run first: its length and count as the input says, so sometimes
        // empty or running past the committed bytes.
        const std::uint32_t length = in.u8() % 33U;
        const std::uint32_t count = in.u8();
        st::frame::write_header(data.data(), st::frame::kRun | length);
        st::frame::write_header(data.data() + st::frame::kHeaderBytes, count);
        used = st::frame::kRunHeaderBytes;
        const auto body =
            in.bytes(std::min<std::size_t>(std::size_t{length} * count, data.size() - used));
        if (!body.empty()) {
          std::memcpy(data.data() + used, body.data(), body.size());
        }
        used += std::min<std::size_t>(std::size_t{length} * count, data.size() - used);
      }
      for (unsigned r = 0; r < records; ++r) {
        if (data.size() - used < st::frame::kHeaderBytes) {
          break;
        }
        const std::size_t room = data.size() - used - st::frame::kHeaderBytes;
        const std::size_t length = std::min<std::size_t>(in.u8(), room);
        std::uint32_t word = static_cast<std::uint32_t>(length);
        if ((how & 16U) != 0) {
          word |= st::frame::kInPlace;  // as an open buffer's frames, wherever they are
        }
        if (r == 0 && (how & 2U) != 0) {
          word |= st::frame::kContinuation;
        }
        if (r + 1 == records && (how & 4U) != 0) {
          word |= st::frame::kMoreFollows;
        }
        st::frame::write_header(data.data() + used, word);
        used += st::frame::kHeaderBytes;
        const auto body = in.bytes(length);
        if (!body.empty()) {
          std::memcpy(data.data() + used, body.data(), body.size());
        }
        used += length;  // bytes beyond the input stay as they were
      }
    } else {
      const auto bytes = in.bytes(std::min<std::size_t>(in.u8(), data.size()));
      if (!bytes.empty()) {
        std::memcpy(data.data(), bytes.data(), bytes.size());
      }
      used = bytes.size();
    }
    if ((how & 8U) != 0) {
      used = in.u16() % (data.size() + 2);  // may exceed: kInvalidArgument
    }
    if ((how & 32U) != 0) {
      // Handed over open: the reader polls whatever frame words are there.
      std::span<std::byte> writable;
      trace("publish_open", producer_->publish_open(std::move(buffer), writable));
      return;
    }
    trace("commit", producer_->commit(std::move(buffer), used, 1));
  }

  // A received buffer must be one of the pool's, no longer than a buffer.
  void check_buffer(const st::ReadableBuffer& buffer) const {
    const Raw& raw = *raw_;
    if (buffer.index() >= raw.count) {
      violated("received buffer index beyond the pool");
    }
    if (buffer.size() > raw.buffer_bytes) {
      violated("received buffer longer than a buffer");
    }
    const std::byte* start = consumer_->mapping().buffer(buffer.index());
    const auto& segment = consumer_->mapping().segment();
    if (buffer.data().data() != start || start + buffer.size() > segment.base() + segment.size()) {
      violated("received view is not its buffer");
    }
    touch(buffer.data());
  }

  // A record view lies inside one buffer of the mapping or in the reader's
  // private assembly (heap, which ASan guards); never across buffers.
  void check_record(std::span<const std::byte> record) const {
    const Raw& raw = *raw_;
    if (record.size() > std::max<std::size_t>(max_record_bytes_, raw.buffer_bytes)) {
      violated("record larger than both the reader's limit and a buffer");
    }
    const auto& segment = consumer_->mapping().segment();
    const std::byte* base = segment.base();
    const std::byte* end = base + segment.size();
    if (!record.empty() && record.data() >= base && record.data() < end) {
      const std::byte* pool = consumer_->mapping().buffer(0);
      if (record.data() < pool) {
        violated("record view points before the buffer pool");
      }
      const auto offset = static_cast<std::uint64_t>(record.data() - pool);
      const std::uint64_t index = offset / raw.stride;
      const std::uint64_t within = offset % raw.stride;
      if (index >= raw.count || within + record.size() > raw.buffer_bytes) {
        violated("record view runs outside its buffer");
      }
    }
    touch(record);
  }

  static void touch(std::span<const std::byte> bytes) {
    std::uint8_t sum = 0;
    for (std::byte b : bytes) {
      sum = static_cast<std::uint8_t>(sum + static_cast<std::uint8_t>(b));
    }
    // Keeps the reads: the compiler may not drop what it cannot see unused.
    __asm__ volatile("" : : "r"(sum) : "memory");
  }

  std::string name_;
  std::size_t max_record_bytes_;
  std::uint32_t subpartition_;  // 1: a fan-out of two, read as subpartition 1
  // Declaration order is teardown order reversed: views and the reader go
  // before the consumer, the consumer before the producer.
  std::optional<st::Producer> producer_;
  std::optional<Raw> raw_;
  std::optional<st::Consumer> consumer_;
  bool consumer_failed_ = false;
  std::array<st::ReadableBuffer, 4> held_;
  std::optional<st::RecordReader> reader_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string name = sluice::fuzz::process_channel_name("receive");
  sluice::fuzz::NameGuard guard(name);
  FuzzInput in(data, size);
  const std::uint8_t flags = in.u8();
  const st::ChannelConfig config = config_from_byte(in.u8());
  std::optional<Session> session;
  try {
    session.emplace(name, config, flags);
  } catch (const shm::SetupError&) {
    return 0;  // could not set up (e.g. /dev/shm full): not the code under test
  }
  session->run(in);
  return 0;
}
