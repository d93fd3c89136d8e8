#include "sluice/transport/consumer.hpp"

#include "sluice/transport/record_frame.hpp"

#include <algorithm>
#include <vector>

#include "corruption_note.hpp"
#include "endpoint_registration.hpp"
#include "sluice/shm/setup_error.hpp"
#include "sluice/transport/spsc_ring.hpp"

namespace sluice::transport {

namespace detail {

struct ConsumerState {
  explicit ConsumerState(ChannelMapping m)
      : mapping(std::move(m)),
        control(&mapping.control()),
        states(mapping.buffer_states()),
        commits(mapping.buffer_commits()),
        holders(mapping.buffer_holders()),
        buffer_count(mapping.config().buffer_count),
        buffer_bytes(mapping.config().buffer_bytes),
        data_in(&mapping.data_ring(), mapping.data_slots(), mapping.config().ring_capacity),
        free_out(&mapping.return_ring(), mapping.return_slots(), mapping.config().ring_capacity),
        queued_word(state_word(BufferState::kQueued, mapping.subpartition())),
        reading_word(state_word(BufferState::kReading, mapping.subpartition())),
        free_word(state_word(BufferState::kFree, mapping.subpartition())),
        broadcast(mapping.config().partitioner ==
                      static_cast<std::uint32_t>(Partitioner::kBroadcast) &&
                  mapping.subpartitions() > 1),
        my_bit(std::uint64_t{1} << mapping.subpartition()),
        possible_holders(all_holders(mapping.subpartitions())) {
    held.assign(buffer_count, 0);
    policy = default_wait_policy(mapping.subpartitions() + 1);
    const ConsumerCounters& c = control->consumer_counters;
    records = c.records.load(std::memory_order_relaxed);
    bytes = c.bytes.load(std::memory_order_relaxed);
    buffers = c.buffers.load(std::memory_order_relaxed);
    idle_ns = c.idle_ns.load(std::memory_order_relaxed);
    // A predecessor that died while waiting left its wait open; it is over.
    control->consumer_counters.idle_since_ns.store(0, std::memory_order_relaxed);
  }

  Status mark_corrupt(const char* what, std::uint64_t value, std::uint64_t limit) noexcept {
    if (!corruption.found()) {
      corruption = {what, value, limit};
      control->consumer_counters.corruption_seen.store(1, std::memory_order_relaxed);
    }
    return Status::kCorrupt;
  }

  Status take_queued_buffer(std::uint32_t& index, std::uint32_t& length) noexcept {
    if (corruption.found()) {
      return Status::kCorrupt;
    }
    if (!redeliver.empty()) {  // first what a dead predecessor held, in order
      index = redeliver.front().index;
      length = redeliver.front().bytes;
      redeliver.erase(redeliver.begin());
      return Status::kOk;
    }
    std::uint64_t descriptor = 0;
    RingResult result = data_in.peek(descriptor);
    if (result == RingResult::kEmpty &&
        control->stream.closed.load(std::memory_order_acquire) != 0) {
      // Everything published before the close is visible now; look once more.
      result = data_in.peek(descriptor);
      if (result == RingResult::kEmpty) {
        return Status::kClosed;
      }
    }
    if (result == RingResult::kEmpty) {
      return Status::kWouldBlock;
    }
    if (result != RingResult::kOk) {
      return mark_corrupt("data ring index moved backwards or past its capacity", 0, 0);
    }
    index = descriptor_buffer(descriptor);
    length = descriptor_bytes(descriptor);
    if (index >= buffer_count) {
      return mark_corrupt("data ring holds a buffer index beyond the pool", index, buffer_count);
    }
    if (length > buffer_bytes && length != kOpenBufferBytes) {
      return mark_corrupt("data ring holds a length beyond the buffer size", length, buffer_bytes);
    }
    // Our own record decides whether we hold it already; the shared state
    // word could be forged.
    if (held[index] != 0) {
      return mark_corrupt("data ring delivered a buffer this consumer still holds", index,
                          buffer_count);
    }
    if (broadcast) {
      return take_shared_buffer(index);
    }
    // Queued for this subpartition, nothing else: a buffer queued for
    // another one is not ours to read.
    const auto state = states[index].load(std::memory_order_relaxed);
    if (state != queued_word) {
      return mark_corrupt(
          "data ring holds a buffer that is not queued for this subpartition (state in value)",
          state, queued_word);
    }
    held[index] = 1;
    // Marked before the ring moves on (advance releases it): a successor
    // never finds this buffer neither in the ring nor marked as held.
    states[index].store(reading_word, std::memory_order_relaxed);
    data_in.advance();
    return Status::kOk;
  }

  // Broadcast: the descriptor names a buffer shared by every consumer whose
  // bit is set in its holders word. Taking it changes no shared word (the
  // others share the state); holding it is our bit, set until we release it.
  Status take_shared_buffer(std::uint32_t index) noexcept {
    const auto state = states[index].load(std::memory_order_relaxed);
    if (state != state_word(BufferState::kShared)) {
      return mark_corrupt(
          "data ring of a broadcast channel holds a buffer that is not shared "
          "(state in value)",
          state, state_word(BufferState::kShared));
    }
    // Relaxed: the tail's acquire ordered the producer's store before it.
    const std::uint64_t who = holders[index].load(std::memory_order_relaxed);
    if ((who & ~possible_holders) != 0) {
      return mark_corrupt("a shared buffer's holders name subpartitions that do not exist", who,
                          possible_holders);
    }
    if ((who & my_bit) == 0) {
      return mark_corrupt("data ring holds a shared buffer this subpartition does not hold", who,
                          my_bit);
    }
    held[index] = 1;
    data_in.advance();
    return Status::kOk;
  }

  // Broadcast: gives up our share of buffer `index`. Unless our bit is the
  // only one left, clear it (compare-exchange, release: our reads of the
  // data come before whoever frees it) and leave the buffer to the others.
  // If it is, we are the last holder (the acquire load sees every other
  // consumer's clear): the word stays as it is, naming us, while we mark the
  // buffer kFree | s << 8 and push it into our return ring, as in a 1:1
  // release. A death anywhere in here leaves either our bit set (a
  // successor receives the buffer again and releases it itself) or the
  // buffer kFree | s << 8 outside our return ring (a successor returns it);
  // see take_over_from_previous_consumer.
  void release_shared(std::uint32_t index) noexcept {
    std::uint64_t who = holders[index].load(std::memory_order_acquire);
    for (;;) {
      if ((who & ~possible_holders) != 0 || (who & my_bit) == 0) {
        mark_corrupt("a shared buffer's holders lost this subpartition's bit before its release",
                     who, my_bit);
        return;
      }
      if (who == my_bit) {
        break;
      }
      if (holders[index].compare_exchange_weak(who, who & ~my_bit, std::memory_order_acq_rel,
                                               std::memory_order_acquire)) {
        return;
      }
    }
    return_to_pool(index);
  }

  void return_to_pool(std::uint32_t index) noexcept {
    states[index].store(free_word, std::memory_order_relaxed);
    if (free_out.push(index) != RingResult::kOk) {
      // Cannot be full while the producer plays by the rules: capacity >= buffers.
      mark_corrupt("return ring reported full or its head is out of range", index, buffer_count);
      return;
    }
    wake_peer(control->buffer_free, control->producer_sleeping);
  }

  // Broadcast: the buffers the dead consumer of this subpartition had taken
  // off its data ring and not released. Each has our bit set (only this
  // subpartition clears it) and a commit sequence below the ring's head (the
  // sequence is the buffer's position in every data ring; the head is ours
  // alone now). Read in this order: the state (acquire), then the holders
  // (acquire), then the commit record. A state of a newer publish
  // (release-stored after its holders and commit record) brings those of
  // the same publish, whose sequence is at or past the head; a holders word
  // of a newer publish likewise brings its commit record. An old value of
  // either, with our bit still set, belongs to a buffer that cannot have
  // been reused (the predecessor never released it: its clear, ordered
  // before its death and so before our lock, would be seen), so its commit
  // record is still the one it was received with.
  bool take_over_shared_buffers(std::uint64_t head) noexcept {
    for (std::uint32_t i = 0; i < buffer_count; ++i) {
      if (states[i].load(std::memory_order_acquire) != state_word(BufferState::kShared)) {
        continue;
      }
      const std::uint64_t who = holders[i].load(std::memory_order_acquire);
      if ((who & my_bit) == 0) {
        continue;
      }
      if ((who & ~possible_holders) != 0) {
        mark_corrupt("a shared buffer's holders name subpartitions that do not exist", who,
                     possible_holders);
        return false;
      }
      const std::uint64_t sequence = commits[i].sequence.load(std::memory_order_relaxed);
      if (sequence >= head) {
        continue;  // still in our data ring, or being pushed into it
      }
      const std::uint32_t committed = commits[i].bytes.load(std::memory_order_relaxed);
      if (committed > buffer_bytes) {
        mark_corrupt("a held buffer's committed length is beyond the buffer size", committed,
                     buffer_bytes);
        return false;
      }
      held[i] = 1;
      redeliver.push_back({sequence, i, committed});
    }
    return true;
  }

  // After the previous consumer died (or left holding buffers): take over
  // what it held, to receive it again first, and return what it freed but
  // never handed back. Runs before this consumer touches either ring.
  void take_over_from_previous_consumer() noexcept {
    std::uint64_t descriptor = 0;
    if (broadcast) {
      if (!take_over_shared_buffers(mapping.data_ring().head.load(std::memory_order_acquire))) {
        return;
      }
    } else if (data_in.peek(descriptor) == RingResult::kOk) {
      // A descriptor it marked kReading but died before taking off the
      // ring: it is among the held buffers below, so skip its ring entry.
      const std::uint32_t index = descriptor_buffer(descriptor);
      if (index < buffer_count && states[index].load(std::memory_order_relaxed) == reading_word) {
        data_in.advance();
      }
    }
    // Only what the dead consumer of this subpartition held: a live
    // consumer of another subpartition keeps its own.
    for (std::uint32_t i = 0; i < buffer_count && !broadcast; ++i) {
      if (states[i].load(std::memory_order_relaxed) == reading_word) {
        const std::uint32_t committed = commits[i].bytes.load(std::memory_order_relaxed);
        if (committed > buffer_bytes && committed != kOpenBufferBytes) {
          mark_corrupt("a held buffer's committed length is beyond the buffer size", committed,
                       buffer_bytes);
          return;
        }
        held[i] = 1;
        redeliver.push_back({commits[i].sequence.load(std::memory_order_relaxed), i, committed});
      }
    }
    std::sort(redeliver.begin(), redeliver.end(),
              [](const Redelivery& a, const Redelivery& b) { return a.sequence < b.sequence; });

    // What is in the return ring now. The producer marks a buffer kWriting
    // before it moves the head past it, so a buffer freed by this
    // subpartition's consumer (kFree | s << 8) outside [head, tail) was freed
    // by the dead consumer but never returned. Another subpartition's live
    // consumer marks its frees with its own number, so its in-flight free is
    // never taken twice.
    const RingIndices& ring = mapping.return_ring();
    const std::uint64_t head = ring.head.load(std::memory_order_acquire);
    const std::uint64_t tail = free_out.position();
    const std::uint64_t capacity = mapping.config().ring_capacity;
    if (tail - head > capacity) {
      mark_corrupt("return ring indices are out of range", tail - head, capacity);
      return;
    }
    std::vector<std::uint8_t> returned(buffer_count, 0);
    for (std::uint64_t i = head; i != tail; ++i) {
      const std::uint64_t index =
          mapping.return_slots()[i & (capacity - 1)].load(std::memory_order_relaxed);
      if (index < buffer_count) {
        returned[index] = 1;
      }
    }
    bool pushed = false;
    for (std::uint32_t i = 0; i < buffer_count; ++i) {
      if (returned[i] == 0 && states[i].load(std::memory_order_relaxed) == free_word) {
        if (free_out.stage(i) != RingResult::kOk) {
          mark_corrupt("return ring is full while returning a leaked buffer", i, buffer_count);
          return;
        }
        pushed = true;
      }
    }
    if (pushed) {
      free_out.publish();
      wake_peer(control->buffer_free, control->producer_sleeping);
    }
  }

  // Blocks on data_ready until `attempt` succeeds (see wait_for), counting
  // the time waited as idle time (Flink's idleTimeMsPerSecond).
  template <class Attempt>
  Status wait_counting_idle(Attempt& attempt, const Deadline& deadline) noexcept {
    std::chrono::nanoseconds waited{};
    ConsumerCounters& c = control->consumer_counters;
    const Status status = wait_for(
        attempt, [this] { return producer_status(); }, control->data_ready,
        control->consumer_sleeping, deadline, policy, waited, &c.idle_since_ns);
    if (waited.count() > 0) {
      idle_ns += static_cast<std::uint64_t>(waited.count());
      c.idle_ns.store(idle_ns, std::memory_order_relaxed);
      c.idle_since_ns.store(0, std::memory_order_relaxed);
    }
    return status;
  }

  // Producer liveness as the consumer's wait sees it. The closed flag is read
  // after the lock probe: a producer sets it before it lets go of the lock,
  // so a clean close is never mistaken for a death.
  Status producer_status() const noexcept {
    if (control->stream.closed.load(std::memory_order_acquire) != 0) {
      return Status::kClosed;
    }
    if (mapping.probe_role(Role::kProducer) != sluice::shm::LockProbe::kFree) {
      return Status::kOk;
    }
    if (control->stream.closed.load(std::memory_order_acquire) != 0) {
      return Status::kClosed;
    }
    return producer_loss == ProducerLoss::kWaitForNewProducer ? Status::kOk : Status::kPeerDied;
  }

  ChannelMapping mapping;
  ChannelControl* control;
  BufferStateWord* states;
  BufferCommit* commits;
  BufferHolders* holders;
  std::uint32_t buffer_count;
  std::uint64_t buffer_bytes;
  RingReader data_in;
  RingWriter free_out;
  // This subpartition's state words (see state_word).
  std::uint32_t queued_word;
  std::uint32_t reading_word;
  std::uint32_t free_word;
  bool broadcast;                  // buffers are shared by all subpartitions (kShared)
  std::uint64_t my_bit;            // this subpartition's bit in a holders word
  std::uint64_t possible_holders;  // every subpartition's bit
  std::vector<std::uint8_t> held;  // 1 while this consumer holds the buffer (private)
  struct Redelivery {
    std::uint64_t sequence;
    std::uint32_t index;
    std::uint32_t bytes;
  };
  std::vector<Redelivery> redeliver;  // taken over from a dead consumer, in commit order
  ProducerLoss producer_loss = ProducerLoss::kReturnPeerDied;
  WaitPolicy policy;
  CorruptionNote corruption;
  std::uint32_t empty_polls = 0;
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::uint64_t buffers = 0;
  std::uint64_t idle_ns = 0;
};

void release_buffer(ConsumerState& owner, std::uint32_t index) noexcept {
  if (owner.held[index] == 0) {
    owner.mark_corrupt("released a buffer this consumer does not hold", index, owner.buffer_count);
    return;
  }
  owner.held[index] = 0;
  if (owner.broadcast) {
    owner.release_shared(index);
    return;
  }
  owner.return_to_pool(index);
}

}  // namespace detail

using detail::ConsumerState;

Consumer::Consumer(std::unique_ptr<ConsumerState> state) : state_(std::move(state)) {}
Consumer::Consumer(Consumer&&) noexcept = default;

Consumer& Consumer::operator=(Consumer&& other) noexcept {
  if (this != &other) {
    detach();
    state_ = std::move(other.state_);
  }
  return *this;
}

Consumer::~Consumer() {
  detach();
}

void Consumer::detach() noexcept {
  if (state_) {
    detail::detach(state_->mapping, state_->control->consumer, Role::kConsumer);
    // A producer asleep waiting for buffers must learn that none will come.
    wake_peer_always(state_->control->buffer_free);
    state_.reset();
  }
}

Consumer Consumer::open(std::string_view name, const OpenOptions& options) {
  ChannelMapping mapping = ChannelMapping::open(name, options);
  // Endpoints touch every buffer within the first pass: map them all now.
  (void)mapping.segment().prefault();
  detail::claim_role(mapping, Role::kConsumer);
  const bool takes_over = mapping.control().consumer.state.load(std::memory_order_acquire) !=
                          static_cast<std::uint32_t>(EndpointState::kNeverAttached);
  detail::register_endpoint(mapping.control().consumer);
  auto state = std::make_unique<ConsumerState>(std::move(mapping));
  if (takes_over) {
    state->take_over_from_previous_consumer();
  }
  return Consumer(std::move(state));
}

Status Consumer::try_receive(ReadableBuffer& out) noexcept {
  return receive_until(out, Deadline::immediate());
}

Status Consumer::receive(ReadableBuffer& out) noexcept {
  return receive_until(out, Deadline::never());
}

Status Consumer::receive_for(ReadableBuffer& out, std::chrono::nanoseconds timeout) noexcept {
  return receive_until(out, Deadline::after(timeout));
}

Status Consumer::receive_until(ReadableBuffer& out, const Deadline& deadline) noexcept {
  ConsumerState& s = *state_;
  std::uint32_t index = 0;
  std::uint32_t length = 0;
  auto attempt = [&s, &index, &length] {
    for (;;) {
      const Status taken = s.take_queued_buffer(index, length);
      if (taken != Status::kOk || length != 0) {
        return taken;
      }
      // An empty commit only hands a buffer back (see Producer::close): return it.
      detail::release_buffer(s, index);
    }
  };
  Status status;
  if (deadline.is_immediate()) {
    status = attempt();
    if (status == Status::kWouldBlock && (++s.empty_polls & 1023U) == 0) {
      if (s.producer_status() == Status::kPeerDied) {
        status = attempt();
        status = status == Status::kWouldBlock ? Status::kPeerDied : status;
      }
    }
  } else {
    status = s.wait_counting_idle(attempt, deadline);
  }
  if (status == Status::kOk) {
    const bool open = length == kOpenBufferBytes;
    const std::size_t visible = open ? s.buffer_bytes : length;
    // Written by the producer before the buffer's descriptor was published:
    // the ring's acquire (or, for a buffer taken over, the role lock) orders
    // these relaxed loads after its stores.
    const BufferCommit& commit = s.commits[index];
    out = ReadableBuffer(&s, index, std::span<const std::byte>(s.mapping.buffer(index), visible),
                         open, commit.sequence.load(std::memory_order_relaxed),
                         commit.records_through.load(std::memory_order_relaxed));
    ConsumerCounters& c = s.control->consumer_counters;
    if (!open) {
      c.bytes.store(s.bytes += length, std::memory_order_relaxed);
    }
    c.buffers.store(++s.buffers, std::memory_order_relaxed);
  }
  return status;
}

Status Consumer::wait_in_place(const std::byte* at, const Deadline& deadline,
                               std::uint32_t& word) noexcept {
  ConsumerState& s = *state_;
  auto attempt = [at, &word] {
    word = frame::load_in_place_word(at);
    return word != 0 ? Status::kOk : Status::kWouldBlock;
  };
  Status status;
  if (deadline.is_immediate()) {
    status = attempt();
    // The reader's inline poll comes here once per 1024 empty polls; a
    // liveness probe is a system call, so only every 64th of those probes
    // (once per 65,536 polls, a few milliseconds of busy polling): often
    // enough to report a dead producer soon, rare enough to stay out of a
    // ping-pong's p99.
    if (status == Status::kWouldBlock && (++s.empty_polls & 63U) == 0) {
      const Status producer = s.producer_status();
      if (producer != Status::kOk) {
        status = attempt();
        status = status == Status::kWouldBlock ? producer : status;
      }
    }
    return status;
  }
  return s.wait_counting_idle(attempt, deadline);
}

void Consumer::count_in_place_bytes(std::uint64_t bytes) noexcept {
  state_->control->consumer_counters.bytes.store(state_->bytes += bytes, std::memory_order_relaxed);
}

void Consumer::count_records(std::uint64_t records) noexcept {
  state_->control->consumer_counters.records.store(state_->records += records,
                                                   std::memory_order_relaxed);
}

Status Consumer::producer_status() const noexcept {
  return state_->producer_status();
}

void Consumer::begin_idle(Clock::time_point since) noexcept {
  state_->control->consumer_counters.idle_since_ns.store(
      static_cast<std::uint64_t>(since.time_since_epoch().count()), std::memory_order_relaxed);
}

void Consumer::end_idle(std::chrono::nanoseconds waited) noexcept {
  ConsumerState& s = *state_;
  ConsumerCounters& c = s.control->consumer_counters;
  if (waited.count() > 0) {
    s.idle_ns += static_cast<std::uint64_t>(waited.count());
    c.idle_ns.store(s.idle_ns, std::memory_order_relaxed);
  }
  c.idle_since_ns.store(0, std::memory_order_relaxed);
}

const ChannelConfigRecord& Consumer::config() const noexcept {
  return state_->mapping.config();
}
const ChannelMapping& Consumer::mapping() const noexcept {
  return state_->mapping;
}
const std::string& Consumer::name() const noexcept {
  return state_->mapping.name();
}
std::string Consumer::corruption() const {
  return state_->corruption.describe(name());
}
void Consumer::set_wait_policy(const WaitPolicy& policy) noexcept {
  state_->policy = policy;
}
void Consumer::set_producer_loss(ProducerLoss policy) noexcept {
  state_->producer_loss = policy;
}
std::size_t Consumer::redelivery_pending() const noexcept {
  return state_->redeliver.size();
}

}  // namespace sluice::transport
