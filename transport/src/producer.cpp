#include "sluice/transport/producer.hpp"

#include "sluice/transport/record_frame.hpp"

#include <algorithm>
#include <array>
#include <thread>
#include <vector>

#include "corruption_note.hpp"
#include "endpoint_registration.hpp"
#include "sluice/shm/setup_error.hpp"
#include "sluice/transport/spsc_ring.hpp"

namespace sluice::transport {

namespace detail {

// The producer's view of one subpartition: its control block, the data ring
// it writes and the return ring it reads, and private counts.
struct ProducerSubpartition {
  ChannelControl* control;
  RingWriter data_out;
  RingReader free_in;
  std::uint32_t writing = 0;  // buffers acquired for it and neither committed nor dropped
  // Buffers sent to it and not yet taken back off its return ring: queued,
  // being read, or returned and waiting in the ring (private).
  std::uint64_t sent = 0;
  bool consumer_gone = false;  // least-loaded: its consumer was found dead at the last probe
  // Shadows of the block's producer counters (this producer is their only writer).
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::uint64_t buffers = 0;
  std::uint64_t blocked_ns = 0;
};

struct ProducerState {
  explicit ProducerState(ChannelMapping m)
      : mapping(std::move(m)),
        control(&mapping.control(0)),
        states(mapping.buffer_states()),
        commits(mapping.buffer_commits()),
        holders(mapping.buffer_holders()),
        buffer_count(mapping.config().buffer_count),
        buffer_bytes(mapping.config().buffer_bytes),
        subpartitions(mapping.subpartitions()),
        partitioner(static_cast<Partitioner>(mapping.config().partitioner)),
        broadcast(partitioner == Partitioner::kBroadcast && subpartitions > 1),
        // A single subpartition has nobody to protect from itself: no cap.
        cap(subpartitions > 1 ? mapping.config().max_queued_buffers : UINT32_MAX) {
    abandoned.reserve(buffer_count);  // abandon() must not allocate
    held.assign(buffer_count, 0);
    sent_to.assign(buffer_count, 0);  // every buffer starts free in return ring 0
    destination.assign(buffer_count, 0);
    parts.reserve(subpartitions);
    const std::uint64_t capacity = mapping.config().ring_capacity;
    for (std::uint32_t s = 0; s < subpartitions; ++s) {
      ProducerSubpartition part{
          &mapping.control(s), RingWriter(&mapping.data_ring(s), mapping.data_slots(s), capacity),
          RingReader(&mapping.return_ring(s), mapping.return_slots(s), capacity)};
      const ProducerCounters& c = part.control->producer_counters;
      part.records = c.records.load(std::memory_order_relaxed);
      part.bytes = c.bytes.load(std::memory_order_relaxed);
      part.buffers = c.buffers.load(std::memory_order_relaxed);
      part.blocked_ns = c.blocked_ns.load(std::memory_order_relaxed);
      // Broadcast: each subpartition's counter counts every record.
      records = broadcast ? std::max(records, part.records) : records + part.records;
      // A predecessor that died while blocked left its wait open; it is over.
      part.control->producer_counters.blocked_since_ns.store(0, std::memory_order_relaxed);
      parts.push_back(part);
    }
    parts[0].sent = buffer_count;  // as if sent to 0 and returned: all start in its return ring
    policy = default_wait_policy(subpartitions + 1);
  }

  Status mark_corrupt(const char* what, std::uint64_t value, std::uint64_t limit) noexcept {
    if (!corruption.found()) {
      corruption = {what, value, limit};
      for (ProducerSubpartition& part : parts) {
        part.control->producer_counters.corruption_seen.store(1, std::memory_order_relaxed);
      }
    }
    return Status::kCorrupt;
  }

  // Buffers subpartition `target` holds, as the cap counts them: queued for
  // it, being read by its consumer, or being written for it (what it sent
  // back to its return ring no longer counts); kCorrupt if its consumer
  // moved the return-ring tail impossibly or returned more than it was sent.
  // The cached tail is tried first: it can only overstate.
  Status load_of(std::uint32_t target, std::uint64_t& load, bool exact) noexcept {
    ProducerSubpartition& part = parts[target];
    std::uint64_t returned = part.free_in.waiting_at_least();
    if (!exact && returned <= part.sent && part.sent - returned + part.writing < cap) {
      load = part.sent - returned + part.writing;
      return Status::kOk;
    }
    if (part.free_in.waiting(returned) != RingResult::kOk) {
      return mark_corrupt("return ring index moved backwards or past its capacity", target,
                          subpartitions);
    }
    if (returned > part.sent) {
      return mark_corrupt("return ring holds more buffers than were sent to its subpartition",
                          returned, part.sent);
    }
    load = part.sent - returned + part.writing;
    return Status::kOk;
  }

  // Broadcast: kOk if every subpartition is below the cap, counting the
  // buffers being written (all under subpartition 0) as queued in every ring.
  Status broadcast_room() noexcept {
    const std::uint64_t writing = parts[0].writing;
    for (std::uint32_t k = 0; k < subpartitions; ++k) {
      RingWriter& data_out = parts[k].data_out;
      if (data_out.unread_at_most() + writing < cap) {
        continue;  // the cached head can only overstate
      }
      std::uint64_t unread = 0;
      if (data_out.unread(unread) != RingResult::kOk) {
        return mark_corrupt("data ring head moved backwards or past the tail", k, subpartitions);
      }
      if (unread + writing >= cap) {
        return Status::kWouldBlock;
      }
    }
    return Status::kOk;
  }

  // Least-loaded: the subpartition with the fewest buffers queued or being
  // written for it, among those whose consumer is alive or never came, and
  // below the cap; turns rotate among equals. kWouldBlock if none is.
  Status pick_least_loaded(std::uint32_t& target) noexcept {
    std::uint64_t best = UINT64_MAX;
    for (std::uint32_t k = 0; k < subpartitions; ++k) {
      const std::uint32_t s = (least_loaded_turn + k) % subpartitions;
      if (parts[s].consumer_gone) {
        continue;
      }
      std::uint64_t load = 0;
      if (const Status status = load_of(s, load, true); status != Status::kOk) {
        return status;
      }
      if (load < cap && load < best) {
        best = load;
        target = s;
      }
    }
    if (best == UINT64_MAX) {
      return Status::kWouldBlock;
    }
    least_loaded_turn = (target + 1) % subpartitions;
    return Status::kOk;
  }

  static constexpr std::uint64_t subpartition_bit(std::uint32_t s) noexcept {
    return s < 64 ? std::uint64_t{1} << s : 0;
  }
  // Whether the next buffer for `s` is its first after a takeover. That one
  // is handed out over the cap: the reader of `s` may hold the dead
  // producer's fragments of a record, and counts them against the cap, until
  // the discard frame this buffer carries lets it drop them.
  [[nodiscard]] bool owes_discard(std::uint32_t s) const noexcept {
    return (discard_owed & subpartition_bit(s)) != 0;
  }
  // Least-loaded: a subpartition still owed its first buffer after a
  // takeover, whose consumer is alive or never came, goes first.
  bool pick_owed(std::uint32_t& target) const noexcept {
    for (std::uint32_t k = 0; k < subpartitions; ++k) {
      const std::uint32_t s = (least_loaded_turn + k) % subpartitions;
      if (owes_discard(s) && !parts[s].consumer_gone) {
        target = s;
        return true;
      }
    }
    return false;
  }

  // Takes a free buffer for subpartition `target` (kAnySubpartition: the
  // least-loaded one), if the target is below its cap.
  Status take_free_buffer(std::uint32_t& index, std::uint32_t& target, bool& first_after_takeover,
                          bool overdraft = false) noexcept {
    if (corruption.found()) {
      return Status::kCorrupt;
    }
    if (closed) {
      return Status::kClosed;
    }
    // Chosen here, per attempt, only when the caller named none.
    const bool pick =
        subpartitions > 1 && partitioner == Partitioner::kLeastLoaded && target == kAnySubpartition;
    if (subpartitions > 1) {
      if (pick && discard_owed != 0 && pick_owed(target)) {
        overdraft = true;  // see owes_discard
      } else if (pick) {
        if (const Status status = pick_least_loaded(target); status != Status::kOk) {
          target = kAnySubpartition;
          return status;
        }
      } else if (broadcast) {
        // A broadcast buffer is queued in every data ring: it counts against
        // every subpartition's cap, and the slowest consumer sets the pace.
        // (Its buffers being written are counted under subpartition 0.)
        target = 0;
        if (const Status status = broadcast_room(); status != Status::kOk) {
          return status;
        }
      } else if (!overdraft && !owes_discard(target)) {
        std::uint64_t load = 0;
        if (const Status status = load_of(target, load, false); status != Status::kOk) {
          return status;
        }
        if (load >= cap) {
          return Status::kWouldBlock;
        }
      }
    }
    const Status taken = take_from_pool(index);
    if (taken == Status::kOk) {
      destination[index] = static_cast<std::uint8_t>(target);
      ++parts[target].writing;
      first_after_takeover = owes_discard(target);
      discard_owed &= ~subpartition_bit(target);
    } else if (pick) {
      target = kAnySubpartition;  // chosen again on the next attempt
    }
    return taken;
  }

  // A free buffer from the abandoned ones, else from the return rings in turn.
  Status take_from_pool(std::uint32_t& index) noexcept {
    if (!abandoned.empty()) {
      index = abandoned.back();
      abandoned.pop_back();
      return Status::kOk;  // already ours and marked kWriting
    }
    for (std::uint32_t k = 0; k < subpartitions; ++k) {
      const std::uint32_t s = subpartitions == 1 ? 0 : (free_turn + k) % subpartitions;
      RingReader& free_in = parts[s].free_in;
      std::uint64_t value = 0;
      switch (free_in.peek(value)) {
        case RingResult::kOk: break;
        case RingResult::kEmpty: continue;
        default:
          return mark_corrupt("return ring index moved backwards or past its capacity", s, 0);
      }
      if (value >= buffer_count) {
        return mark_corrupt("return ring holds a buffer index beyond the pool", value,
                            buffer_count);
      }
      index = static_cast<std::uint32_t>(value);
      // Our own record, not the shared state word, decides whether we hold
      // it: a consumer that forges states cannot make us hand a buffer out twice.
      if (held[index] != 0) {
        return mark_corrupt("return ring handed back a buffer this producer holds", index,
                            buffer_count);
      }
      // Only the subpartition it was sent to may give it back: in a fan-out
      // another consumer could otherwise hand over a buffer its owner still
      // reads. (Broadcast: the last of its holders returns it, whichever.)
      if (!broadcast && sent_to[index] != s) {
        return mark_corrupt(
            "return ring handed back a buffer sent to another subpartition "
            "(that subpartition in value)",
            sent_to[index], s);
      }
      if (!broadcast && parts[s].sent == 0) {
        return mark_corrupt("return ring handed back more buffers than were sent to it", s,
                            subpartitions);
      }
      // Freed by this ring's own consumer, nothing else.
      const auto state = states[index].load(std::memory_order_relaxed);
      if (state != state_word(BufferState::kFree, s)) {
        return mark_corrupt(
            "return ring holds a buffer that is not freed by its subpartition (state in value)",
            state, state_word(BufferState::kFree, s));
      }
      held[index] = 1;
      // Marked before the ring moves on (advance releases it): a successor
      // never finds this buffer neither in the ring nor marked as ours.
      states[index].store(static_cast<std::uint32_t>(BufferState::kWriting),
                          std::memory_order_relaxed);
      free_in.advance();
      if (!broadcast) {
        --parts[s].sent;
      }
      free_turn = s + 1 == subpartitions ? 0 : s + 1;
      return Status::kOk;
    }
    return Status::kWouldBlock;
  }

  // Hands buffer `index` to the consumer: its commit record first, then the
  // state, then the data-ring push (release), so whoever acquires the
  // descriptor, or finds the buffer kReading after a consumer died, reads a
  // matching commit record. On failure the buffer stays ours (kWriting).
  Status publish(std::uint32_t index, std::uint32_t committed_bytes,
                 std::uint64_t records_through) noexcept {
    if (broadcast) {
      return publish_shared(index, committed_bytes, records_through);
    }
    const std::uint32_t target = destination[index];
    RingWriter& data_out = parts[target].data_out;
    BufferCommit& record = commits[index];
    record.bytes.store(committed_bytes, std::memory_order_relaxed);
    record.sequence.store(data_out.position(), std::memory_order_relaxed);
    record.records_through.store(records_through, std::memory_order_relaxed);
    states[index].store(state_word(BufferState::kQueued, target), std::memory_order_relaxed);
    if (data_out.push(make_descriptor(index, committed_bytes)) != RingResult::kOk) {
      // Cannot be full while the consumer plays by the rules: capacity >= buffers.
      states[index].store(static_cast<std::uint32_t>(BufferState::kWriting),
                          std::memory_order_relaxed);
      return mark_corrupt("data ring reported full or its head is out of range",
                          data_out.position(), mapping.config().ring_capacity);
    }
    held[index] = 0;
    sent_to[index] = static_cast<std::uint8_t>(target);
    ++parts[target].sent;
    --parts[target].writing;
    return Status::kOk;
  }

  // Broadcast: hands buffer `index` to every consumer at once. The commit
  // record, then the holders word (release: all K bits), then the state
  // kShared (release), then the push into every data ring (each push's
  // release orders all of these before its descriptor). The commit sequence
  // is the position in the data rings, which is the same in every ring:
  // every broadcast push (and every close-time push) goes into all of them.
  // A consumer taking over relies on both (Consumer::open, "broadcast").
  // No consumer can free the buffer before the last push: its own bit stays
  // set until it took the buffer off its own ring.
  Status publish_shared(std::uint32_t index, std::uint32_t committed_bytes,
                        std::uint64_t records_through) noexcept {
    BufferCommit& record = commits[index];
    const std::uint64_t position = parts[0].data_out.position();
    record.bytes.store(committed_bytes, std::memory_order_relaxed);
    record.sequence.store(position, std::memory_order_relaxed);
    record.records_through.store(records_through, std::memory_order_relaxed);
    holders[index].store(all_holders(subpartitions), std::memory_order_release);
    states[index].store(state_word(BufferState::kShared), std::memory_order_release);
    for (std::uint32_t k = 0; k < subpartitions; ++k) {
      RingWriter& data_out = parts[k].data_out;
      if (data_out.position() != position ||
          data_out.push(make_descriptor(index, committed_bytes)) != RingResult::kOk) {
        // Cannot happen while the consumers play by the rules (capacity >=
        // buffers; a consumer's bit stays set until it took the buffer off
        // its ring). Pushed into some rings already: the buffer is lost to
        // this producer, which stops here.
        held[index] = 0;
        return mark_corrupt("data ring reported full or its head is out of range", k,
                            mapping.config().ring_capacity);
      }
    }
    held[index] = 0;
    --parts[0].writing;
    return Status::kOk;
  }

  // How many records reached the stream, exactly. Two sources, each exact
  // in the crash windows where the other is not; the larger is the count:
  // - the records counter, which the producer stores after every publish
  //   (buffer pushed, record published in place): it lags by one publish if
  //   the predecessor died between publishing and counting;
  // - the commit at data-ring position tail-1 (the last published buffer):
  //   its records_through, plus, if that buffer is still open and still
  //   queued or being read (so not yet reused), the records published in it
  //   in place. It is missing if the predecessor died while rewriting that
  //   very buffer's commit record for its next use, and an open buffer's
  //   content is no longer its own once it was sealed and taken back; in
  //   both windows the counter is exact, since nothing was published since
  //   it was stored.
  // (One subpartition only: attach() refuses partitioned channels.)
  void recount_committed_records() noexcept {
    const std::uint64_t tail = parts[0].data_out.position();
    std::uint64_t committed = control->producer_counters.records.load(std::memory_order_relaxed);
    for (std::uint32_t i = 0; i < buffer_count && tail > 0; ++i) {
      if (commits[i].sequence.load(std::memory_order_relaxed) != tail - 1) {
        continue;
      }
      std::uint64_t through = commits[i].records_through.load(std::memory_order_relaxed);
      if (commits[i].bytes.load(std::memory_order_relaxed) == kOpenBufferBytes) {
        const auto state = static_cast<BufferState>(states[i].load(std::memory_order_relaxed));
        if (state != BufferState::kQueued && state != BufferState::kReading) {
          break;  // sealed, returned and taken back: its content is not that stream's
        }
        through += seal_open_buffer(i);
      }
      committed = std::max(committed, through);
      break;
    }
    records = committed;
    parts[0].records = committed;
    control->producer_counters.records.store(records, std::memory_order_relaxed);
  }

  // The last buffer the previous producer published was open: count the
  // records it published in place and seal it where it stopped, so the
  // consumer moves on to this producer's buffers. The frames are checked as
  // the reader checks them; counting stops at the first that is not a record.
  std::uint64_t seal_open_buffer(std::uint32_t index) noexcept {
    std::byte* base = mapping.buffer(index);
    std::uint64_t found = 0;
    std::uint64_t offset = 0;
    while (offset + frame::kHeaderBytes <= buffer_bytes) {
      const std::uint32_t word = frame::load_in_place_word(base + offset);
      const std::uint64_t length = word & frame::kLengthMask;
      const std::uint32_t flags = word & ~frame::kLengthMask;
      const bool record = flags == frame::kInPlace;
      const bool discard = flags == (frame::kInPlace | frame::kDiscard) && length == 0;
      if ((!record && !discard) || length > buffer_bytes - offset - frame::kHeaderBytes) {
        break;  // 0 (where it stopped), kSealed, or not a frame we could have written
      }
      found += record ? 1 : 0;
      offset += frame::in_place_frame_bytes(length);
    }
    if (offset + frame::kHeaderBytes <= buffer_bytes &&
        frame::load_in_place_word(base + offset) == 0) {
      frame::store_in_place_word(base + offset, frame::kSealed, __ATOMIC_RELEASE);
      wake_peer(control->data_ready, control->consumer_sleeping);
    }
    return found;
  }

  // A free buffer the previous producer marked kWriting but died before
  // taking off its return ring (it marks first, then advances): the ring
  // moves past it, and the scan of the states then finds it as its own.
  void pass_buffers_taken_but_not_advanced() noexcept {
    for (std::uint32_t s = 0; s < subpartitions; ++s) {
      RingReader& free_in = parts[s].free_in;
      std::uint64_t value = 0;
      if (free_in.peek(value) == RingResult::kOk && value < buffer_count &&
          states[value].load(std::memory_order_relaxed) ==
              static_cast<std::uint32_t>(BufferState::kWriting)) {
        free_in.advance();
      }
    }
  }

  // After the previous producer of a partitioned channel (not broadcast)
  // died: adopt what it held and rebuild its private books from the shared
  // state words, which a consumer changes only within its own subpartition
  // (queued for s -> being read by s -> freed by s, then into return ring s).
  // A buffer counts as sent to s from its publication until this producer
  // takes it off return ring s, so sent[s] is every published buffer whose
  // word names s, whatever the consumer of s does meanwhile.
  void recover_partitioned() {
    // Heads first, then state words: a consumer marks a buffer kReading
    // before it moves its head past it, so a published buffer still kQueued
    // lies in [head, tail) of the ring read here (tails are ours, stable).
    std::vector<std::uint8_t> published(buffer_count, 0);
    const std::uint64_t capacity = mapping.config().ring_capacity;
    pass_buffers_taken_but_not_advanced();
    for (std::uint32_t s = 0; s < subpartitions; ++s) {
      const std::uint64_t head = mapping.data_ring(s).head.load(std::memory_order_acquire);
      const std::uint64_t tail = parts[s].data_out.position();
      if (tail - head > capacity) {
        mark_corrupt("data ring head moved backwards or past the tail", s, subpartitions);
        return;
      }
      for (std::uint64_t i = head; i != tail; ++i) {
        const std::uint32_t index = descriptor_buffer(
            mapping.data_slots(s)[i & (capacity - 1)].load(std::memory_order_relaxed));
        if (index < buffer_count) {
          published[index] = 1;
        }
      }
    }
    parts[0].sent = 0;  // the constructor's start (all in return ring 0) is replaced by a count
    std::uint64_t committed = records;
    std::uint32_t last_owner = 0;  // the subpartition of the buffer that told `committed`
    for (std::uint32_t i = 0; i < buffer_count; ++i) {
      const std::uint32_t word = states[i].load(std::memory_order_relaxed);
      const auto state = static_cast<BufferState>(word & 0xFFU);
      const std::uint32_t owner = word >> 8U;
      if (state == BufferState::kWriting || (state == BufferState::kQueued && published[i] == 0)) {
        // An unpublished commit is dropped: its commit() never returned.
        states[i].store(static_cast<std::uint32_t>(BufferState::kWriting),
                        std::memory_order_relaxed);
        held[i] = 1;
        abandoned.push_back(i);
        continue;
      }
      const bool placed = state == BufferState::kQueued || state == BufferState::kReading ||
                          state == BufferState::kFree;
      if (!placed || owner >= subpartitions) {
        mark_corrupt("buffer state word names no place in this fan-out (word in value)", word, i);
        return;
      }
      sent_to[i] = static_cast<std::uint8_t>(owner);
      ++parts[owner].sent;
      // The last published buffer's records_through is the stream's count;
      // the counters, stored after each publish, may lag it by that buffer.
      const std::uint64_t through = commits[i].records_through.load(std::memory_order_relaxed);
      if (through > committed) {
        committed = through;
        last_owner = owner;
      }
    }
    // The lag is that buffer's records, counted in its subpartition. Stored
    // now: this producer may take that very buffer and die before its first
    // publish, and its successor then finds the count only here.
    if (committed > records) {
      ProducerSubpartition& part = parts[last_owner];
      part.records += committed - records;
      part.control->producer_counters.records.store(part.records, std::memory_order_relaxed);
    }
    records = committed;
  }

  // After the previous producer of a broadcast channel died. Every buffer
  // it published went into all K data rings at one position (its commit
  // sequence), ring 0 first; a death inside that loop leaves the rings after
  // the last one pushed one short. The successor completes those pushes
  // from a ring that has them (a slot is overwritten only by the push one
  // capacity later, which never came), so that all tails are equal again
  // before it publishes anything; the holders word was stored with all K
  // bits before the first push, and the consumers of the short rings have
  // not cleared theirs. A buffer marked kShared whose sequence is at or past
  // every tail was pushed nowhere: it is the dead producer's again.
  void recover_broadcast() {
    std::uint64_t last_tail = 0;
    std::uint32_t longest = 0;
    for (std::uint32_t s = 0; s < subpartitions; ++s) {
      if (parts[s].data_out.position() > last_tail) {
        last_tail = parts[s].data_out.position();
        longest = s;
      }
    }
    const std::uint64_t capacity = mapping.config().ring_capacity;
    const RingSlot* source = mapping.data_slots(longest);
    for (std::uint32_t s = 0; s < subpartitions; ++s) {
      RingWriter& data_out = parts[s].data_out;
      // One publish was in progress at most: a larger gap was not ours.
      if (last_tail - data_out.position() > 1) {
        mark_corrupt("broadcast data rings' tails are more than one publish apart", s,
                     last_tail - data_out.position());
        return;
      }
      while (data_out.position() < last_tail) {
        const std::uint64_t value =
            source[data_out.position() & (capacity - 1)].load(std::memory_order_relaxed);
        if (data_out.push(value) != RingResult::kOk) {
          mark_corrupt("data ring reported full or its head is out of range", s, capacity);
          return;
        }
        wake_peer_always(parts[s].control->data_ready);
      }
    }
    pass_buffers_taken_but_not_advanced();
    std::uint64_t committed = records;
    for (std::uint32_t i = 0; i < buffer_count; ++i) {
      const std::uint32_t word = states[i].load(std::memory_order_relaxed);
      const bool writing = word == static_cast<std::uint32_t>(BufferState::kWriting);
      const bool shared = word == state_word(BufferState::kShared);
      const std::uint64_t sequence = commits[i].sequence.load(std::memory_order_relaxed);
      if (writing || (shared && sequence >= last_tail)) {
        // An unpublished commit is dropped: its commit() never returned.
        states[i].store(static_cast<std::uint32_t>(BufferState::kWriting),
                        std::memory_order_relaxed);
        holders[i].store(0, std::memory_order_relaxed);
        held[i] = 1;
        abandoned.push_back(i);
        continue;
      }
      // Shared or freed: its commit record is that of its last publish. The
      // last publish's is the stream's count, even once every consumer has
      // released that buffer (the counters, stored after each publish, may
      // lag it by that buffer).
      committed = std::max(committed, commits[i].records_through.load(std::memory_order_relaxed));
    }
    records = committed;
    // Stored now (each subpartition's counter counts every record): this
    // producer may take the buffer that told the count and die before its
    // first publish, and its successor then finds the count only here.
    for (ProducerSubpartition& part : parts) {
      part.records = committed;
      part.control->producer_counters.records.store(committed, std::memory_order_relaxed);
    }
  }

  // After the previous producer died: adopt what it held, so no buffer leaks.
  void recover_from_previous_producer() {
    if (broadcast) {
      recover_broadcast();
      return;
    }
    if (subpartitions > 1) {
      recover_partitioned();
      return;
    }
    const RingWriter& data_out = parts[0].data_out;
    recount_committed_records();
    pass_buffers_taken_but_not_advanced();
    // What is in the data ring right now. The consumer marks a buffer
    // kReading before it moves the head past it, so a kQueued buffer outside
    // [head, tail) was marked but never published.
    std::vector<std::uint8_t> published(buffer_count, 0);
    const RingIndices& ring = mapping.data_ring();
    const std::uint64_t head = ring.head.load(std::memory_order_acquire);
    const std::uint64_t tail = data_out.position();
    const std::uint64_t capacity = mapping.config().ring_capacity;
    if (tail - head <= capacity) {
      for (std::uint64_t i = head; i != tail; ++i) {
        const std::uint32_t index = descriptor_buffer(
            mapping.data_slots()[i & (capacity - 1)].load(std::memory_order_relaxed));
        if (index < buffer_count) {
          published[index] = 1;
        }
      }
    }
    for (std::uint32_t i = 0; i < buffer_count; ++i) {
      const auto state = static_cast<BufferState>(states[i].load(std::memory_order_relaxed));
      const bool orphan =
          state == BufferState::kWriting || (state == BufferState::kQueued && published[i] == 0);
      if (orphan) {
        // An unpublished commit is dropped: its commit() never returned.
        states[i].store(static_cast<std::uint32_t>(BufferState::kWriting),
                        std::memory_order_relaxed);
        held[i] = 1;
        abandoned.push_back(i);
      }
    }
  }

  // Whether the consumer of subpartition `s` is gone: it came and its lock
  // is free. (A consumer that never came is waited for.)
  bool consumer_gone(std::uint32_t s) const noexcept {
    const auto state = parts[s].control->consumer.state.load(std::memory_order_acquire);
    if (state == static_cast<std::uint32_t>(EndpointState::kNeverAttached)) {
      return false;
    }
    return mapping.probe_role(Role::kConsumer, s) == sluice::shm::LockProbe::kFree;
  }

  // Consumer liveness as the producer's wait for a buffer for `target` sees
  // it: a consumer that never came is waited for; one that is gone holds
  // buffers only a successor can give back, so the wait ends with kPeerDied
  // unless the caller chose to wait for that successor (ConsumerLoss).
  // Least-loaded (target kAnySubpartition): the liveness of every consumer is
  // refreshed for the choice, and the wait ends only once all are gone.
  Status consumer_status(std::uint32_t target) noexcept {
    bool gone = false;
    if (broadcast) {
      // Every consumer must release every buffer: one gone holds them all.
      for (std::uint32_t s = 0; s < subpartitions && !gone; ++s) {
        gone = consumer_gone(s);
      }
    } else if (target != kAnySubpartition) {
      gone = consumer_gone(target);
    } else {
      gone = true;
      for (std::uint32_t s = 0; s < subpartitions; ++s) {
        parts[s].consumer_gone = consumer_gone(s);
        gone = gone && parts[s].consumer_gone;
      }
    }
    if (!gone) {
      return Status::kOk;
    }
    return consumer_loss == ConsumerLoss::kWaitForNewConsumer ? Status::kOk : Status::kPeerDied;
  }

  // Blocks until `attempt` succeeds as wait_for does, but sleeps on every
  // subpartition's buffer_free word at once (futex_wait_any): a buffer or
  // room under the cap may come from any consumer. Announces itself on every
  // subpartition's producer_sleeping flag before its last re-check, so the
  // unchanged consumer's release (wake_peer on its own block) never loses the
  // wake-up. Counts the wait in every block.
  template <class Attempt, class PeerStatus>
  Status wait_any_subpartition(Attempt& attempt, PeerStatus&& peer_status,
                               const Deadline& deadline) noexcept {
    Status status = attempt();
    if (status != Status::kWouldBlock || deadline.is_immediate()) {
      return status;
    }
    const Clock::time_point started = Clock::now();
    for (ProducerSubpartition& part : parts) {
      part.control->producer_counters.blocked_since_ns.store(
          static_cast<std::uint64_t>(started.time_since_epoch().count()),
          std::memory_order_relaxed);
    }
    auto finish = [&](Status result) {
      const auto waited = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started).count());
      for (ProducerSubpartition& part : parts) {
        ProducerCounters& c = part.control->producer_counters;
        c.blocked_ns.store(part.blocked_ns += waited, std::memory_order_relaxed);
        c.blocked_since_ns.store(0, std::memory_order_relaxed);
      }
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
    std::array<sluice::shm::FutexWaitItem, ChannelConfig::kMaxSubpartitions> items{};
    for (;;) {
      // Read before the peer check, as in wait_for.
      for (std::uint32_t s = 0; s < subpartitions; ++s) {
        std::atomic<std::uint32_t>& word = parts[s].control->buffer_free.sequence;
        items[s] = {&word, word.load(std::memory_order_acquire)};
      }
      const Status peer = peer_status();
      if (peer != Status::kOk) {
        status = attempt();
        return finish(status != Status::kWouldBlock ? status : peer);
      }
      const auto left = deadline.remaining(Clock::now());
      if (left <= std::chrono::nanoseconds::zero()) {
        return finish(Status::kTimeout);
      }
      for (ProducerSubpartition& part : parts) {
        part.control->producer_sleeping.sleeping.exchange(1, std::memory_order_seq_cst);
      }
      status = attempt();
      if (status == Status::kWouldBlock) {
        sluice::shm::futex_wait_any(std::span(items.data(), subpartitions),
                                    std::min(left, policy.sleep_slice));
        status = attempt();
      }
      for (ProducerSubpartition& part : parts) {
        part.control->producer_sleeping.sleeping.store(0, std::memory_order_relaxed);
      }
      if (status != Status::kWouldBlock) {
        return finish(status);
      }
    }
  }

  ChannelMapping mapping;
  ChannelControl* control;  // subpartition 0's: the only one of an ordinary channel
  BufferStateWord* states;
  BufferCommit* commits;
  BufferHolders* holders;
  std::uint32_t buffer_count;
  std::uint64_t buffer_bytes;
  std::uint32_t subpartitions;
  Partitioner partitioner;
  bool broadcast;     // every buffer goes to every subpartition (K > 1)
  std::uint64_t cap;  // most buffers queued or being written for one subpartition
  std::vector<ProducerSubpartition> parts;
  std::vector<std::uint32_t> abandoned;  // dropped uncommitted; reused first
  std::vector<std::uint8_t> held;        // 1 while this producer owns the buffer (private)
  // The subpartition each buffer was last sent to, the only one whose return
  // ring may give it back (private; K <= 64 fits a byte).
  std::vector<std::uint8_t> sent_to;
  std::vector<std::uint8_t> destination;  // subpartition each held buffer was acquired for
  std::uint32_t next_turn = 0;            // round-robin: the next buffer's subpartition
  std::uint32_t free_turn = 0;            // the return ring looked at first
  std::uint32_t least_loaded_turn = 0;    // where the least-loaded search starts
  std::uint32_t acquires = 0;             // least-loaded: liveness is refreshed every 1024th
  WaitPolicy policy;
  CorruptionNote corruption;
  bool closed = false;
  bool resumed = false;  // took over a stream from a producer that died
  // Bit s: the next buffer for subpartition s must start with a discard
  // frame (its predecessor may have stopped inside a record). K <= 64.
  std::uint64_t discard_owed = 0;
  ConsumerLoss consumer_loss = ConsumerLoss::kReturnPeerDied;
  std::uint32_t empty_polls = 0;
  // Records committed to the whole stream (every subpartition), for
  // records_through and records_committed().
  std::uint64_t records = 0;
};

// The buffer stays the producer's (state kWriting): it is in no ring, and
// the ownership check must find it attributed to the producer.
void abandon_buffer(ProducerState& owner, std::uint32_t index, bool first_after_takeover) noexcept {
  if (first_after_takeover) {  // its discard frame was never sent: the next buffer carries it
    owner.discard_owed |= ProducerState::subpartition_bit(owner.destination[index]);
  }
  --owner.parts[owner.destination[index]].writing;
  owner.abandoned.push_back(index);
}

}  // namespace detail

using detail::ProducerState;
using detail::ProducerSubpartition;

Producer::Producer(std::unique_ptr<ProducerState> state) : state_(std::move(state)) {}
Producer::Producer(Producer&&) noexcept = default;

Producer& Producer::operator=(Producer&& other) noexcept {
  if (this != &other) {
    detach();
    state_ = std::move(other.state_);
  }
  return *this;
}

Producer::~Producer() {
  detach();
}

void Producer::detach() noexcept {
  if (state_) {
    // Every block carries the producer's registration; the lock goes last.
    for (std::uint32_t s = 1; s < state_->subpartitions; ++s) {
      state_->parts[s].control->producer.state.store(
          static_cast<std::uint32_t>(EndpointState::kDetached), std::memory_order_release);
    }
    detail::detach(state_->mapping, state_->control->producer, Role::kProducer);
    // A consumer asleep waiting for data must learn that no more will come.
    for (ProducerSubpartition& part : state_->parts) {
      wake_peer_always(part.control->data_ready);
    }
    state_.reset();
  }
}

Producer Producer::create(std::string_view name, const ChannelConfig& config,
                          const CreateOptions& options) {
  ChannelMapping mapping = ChannelMapping::create(name, config, options);
  // Endpoints touch every buffer within the first pass: map them all now.
  (void)mapping.segment().prefault();
  // create() took the producer lock before publishing the segment.
  for (std::uint32_t s = 0; s < mapping.subpartitions(); ++s) {
    detail::register_endpoint(mapping.control(s).producer);
  }
  return Producer(std::make_unique<ProducerState>(std::move(mapping)));
}

Producer Producer::attach(std::string_view name, const OpenOptions& options) {
  ChannelMapping mapping = ChannelMapping::open(name, options);
  const std::uint32_t subpartitions = mapping.subpartitions();
  // Endpoints touch every buffer within the first pass: map them all now.
  (void)mapping.segment().prefault();
  detail::claim_role(mapping, Role::kProducer);
  // A producer that died inside close() may have closed some subpartitions
  // and not the others: the stream is over, so the rest are closed here,
  // or their consumers would wait for a successor that is never let in.
  bool closed = false;
  for (std::uint32_t s = 0; s < subpartitions; ++s) {
    closed = closed || mapping.control(s).stream.closed.load(std::memory_order_acquire) != 0;
  }
  if (closed) {
    for (std::uint32_t s = 0; s < subpartitions; ++s) {
      mapping.control(s).stream.closed.store(1, std::memory_order_release);
      wake_peer_always(mapping.control(s).data_ready);
    }
    mapping.unlock_role(Role::kProducer);
    throw sluice::shm::SetupError("channel \"" + std::string(name) +
                                  "\" was closed by its producer; its stream is over");
  }
  for (std::uint32_t s = 0; s < subpartitions; ++s) {
    detail::register_endpoint(mapping.control(s).producer);
  }
  auto state = std::make_unique<ProducerState>(std::move(mapping));
  state->recover_from_previous_producer();
  state->resumed = true;
  // Every subpartition's stream may end in half a record (a broadcast
  // buffer, always "for" subpartition 0, reaches them all).
  const std::uint32_t streams = state->broadcast ? 1 : subpartitions;
  state->discard_owed = streams == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << streams) - 1;
  return Producer(std::move(state));
}

Status Producer::try_acquire(WritableBuffer& out) noexcept {
  return acquire_until(out, Deadline::immediate());
}

Status Producer::acquire(WritableBuffer& out) noexcept {
  return acquire_until(out, Deadline::never());
}

Status Producer::acquire_for(WritableBuffer& out, std::chrono::nanoseconds timeout) noexcept {
  return acquire_until(out, Deadline::after(timeout));
}

Status Producer::acquire_until(WritableBuffer& out, const Deadline& deadline,
                               std::uint32_t subpartition, CapUse cap_use) noexcept {
  ProducerState& s = *state_;
  if (subpartition != kAnySubpartition && (subpartition >= s.subpartitions || s.broadcast)) {
    return Status::kInvalidArgument;  // a broadcast buffer goes to all, never to one
  }
  // The target: named, the next in turn, or (least-loaded) chosen per attempt.
  std::uint32_t target = subpartition;
  if (target == kAnySubpartition) {
    if (s.subpartitions == 1 || s.broadcast) {
      target = 0;
    } else if (s.partitioner != Partitioner::kLeastLoaded) {
      target = s.next_turn;
    } else if ((++s.acquires & 1023U) == 0) {
      (void)s.consumer_status(kAnySubpartition);  // refreshes who is gone
    }
  }
  const std::uint32_t wanted = target;
  std::uint32_t index = 0;
  const bool overdraft = cap_use == CapUse::kOverdraft && subpartition != kAnySubpartition;
  bool first_after_takeover = false;
  auto attempt = [&s, &index, &target, &first_after_takeover, overdraft] {
    return s.take_free_buffer(index, target, first_after_takeover, overdraft);
  };
  Status status;
  if (deadline.is_immediate()) {
    status = attempt();
    // A polling caller must still learn that the consumer is gone; probing
    // costs a system call, so only every 1024th empty poll pays it.
    if (status == Status::kWouldBlock && (++s.empty_polls & 1023U) == 0) {
      if (s.consumer_status(wanted) == Status::kPeerDied) {
        status = attempt();
        status = status == Status::kWouldBlock ? Status::kPeerDied : status;
      }
    }
  } else if (s.subpartitions == 1) {
    std::chrono::nanoseconds waited{};
    ProducerCounters& c = s.control->producer_counters;
    status = wait_for(
        attempt, [&s] { return s.consumer_status(0); }, s.control->buffer_free,
        s.control->producer_sleeping, deadline, s.policy, waited, &c.blocked_since_ns);
    if (waited.count() > 0) {
      ProducerSubpartition& part = s.parts[0];
      part.blocked_ns += static_cast<std::uint64_t>(waited.count());
      c.blocked_ns.store(part.blocked_ns, std::memory_order_relaxed);
      c.blocked_since_ns.store(0, std::memory_order_relaxed);
    }
  } else {
    status = s.wait_any_subpartition(
        attempt, [&s, wanted] { return s.consumer_status(wanted); }, deadline);
  }
  if (status == Status::kOk) {
    if (subpartition == kAnySubpartition && s.partitioner != Partitioner::kLeastLoaded) {
      s.next_turn = target + 1 == s.subpartitions ? 0 : target + 1;
    }
    out = WritableBuffer(&s, index, target, first_after_takeover,
                         std::span<std::byte>(s.mapping.buffer(index), s.buffer_bytes));
  }
  return status;
}

Status Producer::commit(WritableBuffer&& buffer, std::size_t bytes,
                        std::uint64_t records) noexcept {
  ProducerState& s = *state_;
  if (buffer.owner_ != &s || bytes > buffer.capacity()) {
    return Status::kInvalidArgument;
  }
  if (s.corruption.found()) {
    return Status::kCorrupt;
  }
  if (s.closed) {
    return Status::kClosed;
  }
  const std::uint32_t index = buffer.index_;
  if (const Status status =
          s.publish(index, static_cast<std::uint32_t>(bytes), s.records + records);
      status != Status::kOk) {
    return status;
  }
  buffer.owner_ = nullptr;  // now the consumer's
  buffer.data_ = {};
  s.records += records;
  auto count = [records, bytes](ProducerSubpartition& part) {
    ProducerCounters& c = part.control->producer_counters;
    c.records.store(part.records += records, std::memory_order_relaxed);
    c.bytes.store(part.bytes += bytes, std::memory_order_relaxed);
    c.buffers.store(++part.buffers, std::memory_order_relaxed);
    wake_peer(part.control->data_ready, part.control->consumer_sleeping);
  };
  if (s.broadcast) {
    for (ProducerSubpartition& part : s.parts) {
      count(part);
    }
  } else {
    count(s.parts[s.destination[index]]);
  }
  return Status::kOk;
}

Status Producer::publish_open(WritableBuffer&& buffer, std::span<std::byte>& writable) noexcept {
  ProducerState& s = *state_;
  if (buffer.owner_ != &s || s.subpartitions > 1) {
    return Status::kInvalidArgument;
  }
  if (s.corruption.found()) {
    return Status::kCorrupt;
  }
  if (s.closed) {
    return Status::kClosed;
  }
  const std::uint32_t index = buffer.index_;
  // records_through: those before this buffer; a successor adds those it
  // finds in place.
  if (const Status status = s.publish(index, kOpenBufferBytes, s.records); status != Status::kOk) {
    return status;
  }
  writable = buffer.data_;
  buffer.owner_ = nullptr;  // now the consumer's; the producer only appends in place
  buffer.data_ = {};
  ProducerCounters& c = s.control->producer_counters;
  c.buffers.store(++s.parts[0].buffers, std::memory_order_relaxed);
  wake_peer(s.control->data_ready, s.control->consumer_sleeping);
  return Status::kOk;
}

Status Producer::published_in_place(std::uint64_t frame_bytes) noexcept {
  ProducerState& s = *state_;
  ProducerCounters& c = s.control->producer_counters;
  // After publishing: a successor relies on this count (recount above).
  ++s.parts[0].records;
  c.records.store(++s.records, std::memory_order_relaxed);
  c.bytes.store(s.parts[0].bytes += frame_bytes, std::memory_order_relaxed);
  wake_peer(s.control->data_ready, s.control->consumer_sleeping);
  // Written after close(): the consumer may have ended the buffer already.
  return s.closed ? Status::kClosed : Status::kOk;
}

void Producer::sealed_in_place() noexcept {
  ProducerState& s = *state_;
  wake_peer(s.control->data_ready, s.control->consumer_sleeping);
}

void Producer::close() noexcept {
  ProducerState& s = *state_;
  if (s.closed) {
    return;
  }
  // Buffers this producer holds unused go to the consumer as empty commits,
  // which it returns to the pool at once: after a close the pool is whole.
  // (In a partitioned channel they go to subpartitions in turn.)
  std::uint32_t turn = 0;
  while (!s.abandoned.empty()) {
    const std::uint32_t index = s.abandoned.back();
    s.abandoned.pop_back();
    if (s.broadcast) {  // to every consumer, as every buffer; the last one returns it
      ++s.parts[0].writing;
      if (s.publish_shared(index, 0, s.records) != Status::kOk) {
        break;
      }
      continue;
    }
    s.held[index] = 0;
    const std::uint32_t target = turn++ % s.subpartitions;
    RingWriter& data_out = s.parts[target].data_out;
    s.commits[index].bytes.store(0, std::memory_order_relaxed);
    s.commits[index].sequence.store(data_out.position(), std::memory_order_relaxed);
    s.commits[index].records_through.store(s.records, std::memory_order_relaxed);
    s.states[index].store(state_word(BufferState::kQueued, target), std::memory_order_relaxed);
    if (data_out.push(make_descriptor(index, 0)) != RingResult::kOk) {
      s.mark_corrupt("data ring reported full or its head is out of range", index, s.buffer_count);
      break;
    }
  }
  s.closed = true;
  // Release: a consumer that acquires closed == 1 sees every earlier publish.
  for (ProducerSubpartition& part : s.parts) {
    part.control->stream.closed.store(1, std::memory_order_release);
    wake_peer_always(part.control->data_ready);
  }
}

const ChannelConfigRecord& Producer::config() const noexcept {
  return state_->mapping.config();
}
const ChannelMapping& Producer::mapping() const noexcept {
  return state_->mapping;
}
const std::string& Producer::name() const noexcept {
  return state_->mapping.name();
}
std::string Producer::corruption() const {
  return state_->corruption.describe(name());
}
void Producer::set_wait_policy(const WaitPolicy& policy) noexcept {
  state_->policy = policy;
}
void Producer::set_consumer_loss(ConsumerLoss policy) noexcept {
  state_->consumer_loss = policy;
}
bool Producer::resumed_stream() const noexcept {
  return state_->resumed;
}
std::uint64_t Producer::records_committed() const noexcept {
  return state_->records;
}

}  // namespace sluice::transport
