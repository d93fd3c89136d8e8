#pragma once

// The shared-memory layout of one channel. Everything here is mapped by two
// processes at different addresses: only offsets and indices, no pointers.
// Each atomic names its single writer and why its memory order suffices.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sluice/shm/segment_header.hpp"
#include "sluice/transport/channel_config.hpp"

namespace sluice::transport {

// 2: frames published in place (open buffers, kOpenBufferBytes).
// 3: fan-out: K subpartitions (K control blocks, data rings and return
//    rings), the partitioner and the per-subpartition cap in the
//    configuration, the subpartition in bits 8..15 of buffer state words.
// 4: broadcast: a holders word per buffer (BufferHolders) and the state
//    kShared.
// 5: runs of equal-length records under one frame header (record_frame.hpp).
inline constexpr std::uint32_t kLayoutVersion = 5;
inline constexpr std::uint32_t kChannelKind = 1;
inline constexpr std::size_t kCacheLine = sluice::shm::kCacheLine;

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::int32_t>::is_always_lock_free);

enum class Role : std::uint32_t { kProducer = 0, kConsumer = 1 };

// Byte of the segment file locked (F_OFD_SETLK) by the endpoint of each
// role: the producer's is byte 0, the consumer of subpartition s holds byte
// 1 + s (byte 1 in a channel of one subpartition, as before fan-out).
constexpr std::uint32_t role_lock_slot(Role role, std::uint32_t subpartition = 0) {
  return role == Role::kProducer ? 0U : 1U + subpartition;
}

enum class EndpointState : std::uint32_t { kNeverAttached = 0, kAttached = 1, kDetached = 2 };

// Where a buffer is. Exactly one place at any time (a broadcast buffer:
// queued in, or being read by, each subpartition that still holds it).
enum class BufferState : std::uint32_t {
  kFree = 0,     // in the return ring or the producer's private cache
  kWriting = 1,  // held by the producer, being filled
  kQueued = 2,   // in the data ring
  kReading = 3,  // held by the consumer
  // Broadcast: queued for or being read by every subpartition whose bit is
  // set in the buffer's holders word (one buffer shared by all consumers).
  kShared = 4,
};

// A buffer state word: the BufferState in bits 0..7 and, for the states that
// belong to one subpartition, its number in bits 8..15 (queued for s, being
// read by the consumer of s, freed by the consumer of s). kWriting belongs to
// the producer alone and carries 0. With one subpartition every word equals
// its plain BufferState, as in layout 2.
constexpr std::uint32_t state_word(BufferState state, std::uint32_t subpartition = 0) {
  return static_cast<std::uint32_t>(state) | (subpartition << 8);
}
constexpr std::uint32_t state_kind(std::uint32_t word) {
  return word & 0xFFU;
}
constexpr std::uint32_t state_subpartition(std::uint32_t word) {
  return (word >> 8) & 0xFFU;
}
// Whether `word` could have been written by an endpoint of a channel of
// `subpartitions` subpartitions (bits above 15 clear, a known state, a
// subpartition that exists, none on kWriting or kShared, which belong to no
// single subpartition).
constexpr bool state_word_possible(std::uint32_t word, std::uint32_t subpartitions) {
  const std::uint32_t kind = state_kind(word);
  return (word >> 16) == 0 && kind <= static_cast<std::uint32_t>(BufferState::kShared) &&
         state_subpartition(word) < subpartitions &&
         ((kind != static_cast<std::uint32_t>(BufferState::kWriting) &&
           kind != static_cast<std::uint32_t>(BufferState::kShared)) ||
          state_subpartition(word) == 0);
}

// Immutable after creation; validated on open.
struct ChannelConfigRecord {
  std::uint64_t buffer_bytes;
  std::uint64_t buffer_stride;  // distance between buffers: buffer_bytes rounded up to a cache line
  std::uint32_t buffer_count;
  std::uint32_t ring_capacity;  // power of two >= buffer_count, so no ring can overflow
  std::int64_t flush_timeout_ns;
  std::uint64_t created_unix_ns;
  std::uint32_t subpartitions;       // K, 1..kMaxSubpartitions
  std::uint32_t partitioner;         // Partitioner as a number
  std::uint32_t max_queued_buffers;  // cap per subpartition, 1..buffer_count
  std::uint32_t reserved;            // 0
};

enum RegionIndex : std::uint32_t {
  kControlRegion = 0,
  kDataRingRegion = 1,
  kReturnRingRegion = 2,
  kBufferStateRegion = 3,
  kBufferCommitRegion = 4,
  kBufferPoolRegion = 5,
  kBufferHolderRegion = 6,
  kRegionCount = 7,
};

struct alignas(kCacheLine) ChannelHeader {
  sluice::shm::SegmentHeader segment;
  ChannelConfigRecord config;
};

// A private copy of a ChannelHeader, taken once on open: everything after
// validation uses the copy, never the shared bytes a peer could rewrite.
struct ChannelHeaderImage {
  sluice::shm::SegmentHeaderImage segment;
  ChannelConfigRecord config;
};
static_assert(offsetof(ChannelHeaderImage, config) == offsetof(ChannelHeader, config));
static_assert(sizeof(ChannelHeaderImage) <= sizeof(ChannelHeader));

// Registration of one endpoint. Written only by the process holding the
// role's lock (so there is one writer at a time); read by the peer and by
// tools for display and for telling "never attached" from "gone". `state` is
// stored with release after pid/start_ticks so a reader that acquires
// kAttached sees who attached. The lock, not these fields, decides liveness.
struct alignas(kCacheLine) EndpointRecord {
  std::atomic<std::uint32_t> state;
  std::atomic<std::int32_t> pid;
  std::atomic<std::uint64_t> start_ticks;
  std::atomic<std::uint64_t> attach_count;
};

// A futex word. Written only by the waking side, which bumps it (release)
// after publishing when it sees the sleeper's flag, and always on close and
// detach (state changes a sleeper must see even if it has not announced
// itself yet); the sleeper sleeps only while it still holds the value it
// read before its last check.
// (During a takeover an old and a new endpoint of one role may both bump it
// for a moment, hence fetch_add.)
struct alignas(kCacheLine) WakeWord {
  std::atomic<std::uint32_t> sequence;
};

// Changed only by the waiting side: 1 while it may be asleep on the WakeWord
// (exchange seq_cst before its last re-check; relaxed store of 0 on waking).
// The waker reads it with a value-preserving fetch_add(0, seq_cst); the two
// RMWs order the waiter's re-check against the waker's publish so that no
// wake-up is lost (see wait_strategy.hpp). Alone on its line, away from the
// ring indices, so flag traffic never slows the rings.
struct alignas(kCacheLine) SleepFlag {
  std::atomic<std::uint32_t> sleeping;
};

// Written only by the producer. Relaxed stores of load()+delta (single
// writer, no read-modify-write needed); readers are tools that tolerate a
// slightly stale view, and a producer that takes over, which reads them
// after the writer died (records is stored after each publish, so it is
// exact or one publish behind; see Producer::attach, which stores the exact
// count back before it hands out a buffer). Updated per buffer,
// or per record for records published in place. The *_since_ns
// fields let a tool count a wait that is still going on (CLOCK_MONOTONIC is
// one clock for all processes); they are written only on the slow path.
struct alignas(kCacheLine) ProducerCounters {
  std::atomic<std::uint64_t> records;
  std::atomic<std::uint64_t> bytes;
  std::atomic<std::uint64_t> buffers;
  std::atomic<std::uint64_t> blocked_ns;        // waiting for a free buffer, finished waits
  std::atomic<std::uint64_t> blocked_since_ns;  // steady-clock start of the current wait, 0 if none
  std::atomic<std::uint64_t> corruption_seen;   // nonzero once the producer found bad shared data
};

// Written only by the consumer; same rules as ProducerCounters.
struct alignas(kCacheLine) ConsumerCounters {
  std::atomic<std::uint64_t> records;
  std::atomic<std::uint64_t> bytes;
  std::atomic<std::uint64_t> buffers;
  std::atomic<std::uint64_t> idle_ns;        // waiting for data, finished waits
  std::atomic<std::uint64_t> idle_since_ns;  // steady-clock start of the current wait, 0 if none
  std::atomic<std::uint64_t> corruption_seen;
};

// Written only by the producer: 1 once it closed the stream. Stored with
// release after the last data-ring publish, so a consumer that acquires 1
// and then finds the ring empty has received everything.
struct alignas(kCacheLine) StreamState {
  std::atomic<std::uint32_t> closed;
};

struct ChannelControl {
  EndpointRecord producer;
  EndpointRecord consumer;
  StreamState stream;
  WakeWord data_ready;  // producer wakes the consumer here
  SleepFlag consumer_sleeping;
  WakeWord buffer_free;  // consumer wakes the producer here
  SleepFlag producer_sleeping;
  ProducerCounters producer_counters;
  ConsumerCounters consumer_counters;
};

// The head and tail of one SPSC ring, each on its own line. `tail` is written
// only by the ring's producer with release after it filled the slots, so the
// ring's consumer that acquires it may read them. `head` is written only by
// the ring's consumer with release after it read the slots, so the producer
// that acquires it may overwrite them. Both only grow (64 bits never wrap).
struct RingIndices {
  alignas(kCacheLine) std::atomic<std::uint64_t> tail;
  alignas(kCacheLine) std::atomic<std::uint64_t> head;
};
// Ring slots follow RingIndices; each is written by the ring's producer
// (relaxed: ordered by the tail's release) and read by its consumer (relaxed:
// ordered by the tail's acquire). Atomic so that a misbehaving peer writing
// concurrently is still not a data race in this process.
using RingSlot = std::atomic<std::uint64_t>;
static_assert(sizeof(RingSlot) == 8);

// Per-buffer state, one 32-bit atomic each; written by whichever side owns
// the buffer at the time (ownership passes through the rings, whose
// release/acquire orders these relaxed stores too). Broadcast: the producer
// stores kShared with release (after the holders word; see BufferHolders),
// no consumer changes it while it shares the buffer, and only the last
// holder stores kFree | s << 8, before its return-ring push.
using BufferStateWord = std::atomic<std::uint32_t>;

// What the producer committed into a buffer: its length, its position in
// the data ring, and how many records the stream held once it was
// committed. Written only by the producer, before the state turns kQueued
// and before the data-ring publish (release), so whoever acquires the
// descriptor, or later finds the buffer kReading after a consumer died,
// reads values that match. Lets a consumer that takes over redeliver the
// buffers its dead predecessor held, in their original order, and a producer
// that takes over learn exactly how many records reached the stream. Not
// rewritten until the buffer's next commit, so it outlives reuse of the data.
struct BufferCommit {
  std::atomic<std::uint32_t> bytes;
  std::uint32_t reserved;
  std::atomic<std::uint64_t> sequence;
  std::atomic<std::uint64_t> records_through;
};
static_assert(sizeof(BufferCommit) == 24);

// Broadcast: which subpartitions still hold a kShared buffer, bit s for
// subpartition s (K <= 64), one word per buffer. Writers and orders:
// - the producer stores the mask of all K subpartitions with release, after
//   the commit record and before the state turns kShared (release) and the
//   descriptor is pushed into every data ring; a consumer taking over that
//   acquires the state and then the holders word therefore reads the commit
//   record of the same publish (Consumer::open, "broadcast");
// - consumer s, releasing, clears bit s with a compare-exchange (acq_rel)
//   unless bit s is the only one left. Then it is the last holder: it leaves
//   the word alone, marks the buffer kFree | s << 8 and returns it through
//   its own return ring. Exactly one consumer finds its bit alone (the
//   others' compare-exchanges cleared theirs), and the word says which one
//   for as long as the release is unfinished, so a successor of a consumer
//   that died mid-release knows whether the buffer is still its to free,
//   without a live consumer ever being in the same window for that buffer.
//   The release half of every clear, continued as a release sequence up to
//   the last holder's acquire load, orders every consumer's reads of the
//   data before the buffer goes back to the pool.
// Unused (0) outside broadcast channels.
using BufferHolders = std::atomic<std::uint64_t>;
static_assert(sizeof(BufferHolders) == 8);

// The holders word of a channel of `subpartitions` subpartitions with every
// subpartition's bit set.
constexpr std::uint64_t all_holders(std::uint32_t subpartitions) {
  return subpartitions >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << subpartitions) - 1;
}

// Committed length of an open buffer: handed to the consumer before it is
// written, its records then published one by one in place (record_frame.hpp,
// "in place"). Larger than any buffer, so it cannot be a real length.
inline constexpr std::uint32_t kOpenBufferBytes = 0xFFFFFFFFU;
static_assert(kOpenBufferBytes > ChannelConfig::kMaxBufferBytes);

struct ChannelLayout {
  std::array<sluice::shm::RegionEntry, kRegionCount> regions;
  std::uint64_t total_bytes;
  ChannelConfigRecord config;
  // Distance between the rings of consecutive subpartitions in the data-ring
  // and return-ring regions: RingIndices and ring_capacity slots, rounded up
  // to a cache line. (The control region holds K ChannelControl blocks.)
  std::uint64_t ring_stride;
};

// The exact layout a configuration produces. Creation writes it; opening
// recomputes it from the recorded configuration and requires equality, so a
// damaged offset or size is refused before anything is touched.
ChannelLayout compute_layout(const ChannelConfig& config);
ChannelConfig config_from_record(const ChannelConfigRecord& record);

// Data-ring descriptor: buffer index in the low half, committed bytes in the high half.
constexpr std::uint64_t make_descriptor(std::uint32_t buffer, std::uint32_t bytes) {
  return (static_cast<std::uint64_t>(bytes) << 32) | buffer;
}
constexpr std::uint32_t descriptor_buffer(std::uint64_t d) {
  return static_cast<std::uint32_t>(d);
}
constexpr std::uint32_t descriptor_bytes(std::uint64_t d) {
  return static_cast<std::uint32_t>(d >> 32);
}

}  // namespace sluice::transport
