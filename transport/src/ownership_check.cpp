#include "sluice/transport/ownership_check.hpp"

#include <algorithm>
#include <set>
#include <thread>

namespace sluice::transport {

namespace {

enum class Place : std::uint8_t { kNone, kReturnRing, kDataRing };

// What a state word says, with its subpartition when the channel has several.
std::string state_name(std::uint32_t word, std::uint32_t subpartitions) {
  if (!state_word_possible(word, subpartitions)) {
    return "impossible (" + std::to_string(word) + ")";
  }
  std::string name;
  switch (static_cast<BufferState>(state_kind(word))) {
    case BufferState::kFree: name = "free"; break;
    case BufferState::kWriting: return "being written";
    case BufferState::kQueued: name = "queued"; break;
    case BufferState::kReading: name = "being read"; break;
    case BufferState::kShared: return "shared";
  }
  if (subpartitions > 1) {
    name += " (subpartition " + std::to_string(state_subpartition(word)) + ")";
  }
  return name;
}

// "data ring" in an ordinary channel, "data ring 3" in a partitioned one.
std::string ring_name(const char* ring, std::uint32_t s, std::uint32_t subpartitions) {
  return subpartitions > 1 ? std::string(ring) + " " + std::to_string(s) : std::string(ring);
}

struct Snapshot {
  std::set<std::string> problems;
  OwnershipPlaces places;
};

// A broadcast buffer (kShared) is accounted once: queued if it is in any
// data ring, else with the consumers. Every subpartition whose data ring
// holds it must still hold it (its bit set); every other subpartition whose
// bit is set has taken it and is reading it, so its consumer must live. A
// shared buffer nobody holds and no ring has is lost to the pool.
void check_shared(std::uint32_t index, bool queued, std::uint64_t in_rings, std::uint64_t who,
                  std::uint32_t subpartitions, const std::vector<std::uint8_t>& consumer_alive,
                  Snapshot& snap) {
  const std::string buffer = "buffer " + std::to_string(index);
  const std::uint64_t possible = all_holders(subpartitions);
  if ((who & ~possible) != 0) {
    snap.problems.insert(buffer + " is shared by subpartitions that do not exist (holders " +
                         std::to_string(who) + ")");
    return;
  }
  if ((in_rings & ~who) != 0) {
    snap.problems.insert(buffer + " is queued for a subpartition that no longer holds it");
  }
  if (who == 0) {
    snap.problems.insert(buffer + " is leaked: shared but held by nobody and in no ring");
    return;
  }
  if (!queued) {  // a queued one was counted when the rings were read
    ++snap.places.with_consumer;
  }
  for (std::uint32_t s = 0; s < subpartitions; ++s) {
    if ((who >> s & 1U) != 0 && (in_rings >> s & 1U) == 0 && consumer_alive[s] == 0) {
      snap.problems.insert(buffer + " is held by a consumer that is gone (subpartition " +
                           std::to_string(s) + ")");
    }
  }
}

// Reads [head, tail) of a ring; false (with a problem) if the indices are impossible.
bool read_ring(const RingIndices& indices, const RingSlot* slots, std::uint64_t capacity,
               const char* ring_name, std::vector<std::uint64_t>& values,
               std::set<std::string>& problems) {
  const std::uint64_t head = indices.head.load(std::memory_order_acquire);
  const std::uint64_t tail = indices.tail.load(std::memory_order_acquire);
  if (tail - head > capacity) {
    problems.insert(std::string(ring_name) + " indices are impossible: head " +
                    std::to_string(head) + ", tail " + std::to_string(tail) + ", capacity " +
                    std::to_string(capacity));
    return false;
  }
  values.clear();
  for (std::uint64_t i = head; i != tail; ++i) {
    values.push_back(slots[i & (capacity - 1)].load(std::memory_order_relaxed));
  }
  return true;
}

Snapshot take_snapshot(const ChannelMapping& mapping) {
  Snapshot snap;
  const ChannelConfigRecord& config = mapping.config();
  const std::uint32_t count = config.buffer_count;
  const std::uint32_t subpartitions = mapping.subpartitions();
  std::vector<Place> place(count, Place::kNone);
  std::vector<std::uint32_t> ring_of(count, 0);  // which subpartition's ring it is in
  // Broadcast: a shared buffer is queued in the data ring of every
  // subpartition that has not taken it yet; bit s: in data ring s.
  const bool broadcast =
      config.partitioner == static_cast<std::uint32_t>(Partitioner::kBroadcast) &&
      subpartitions > 1;
  std::vector<std::uint64_t> data_rings_of(count, 0);
  std::vector<std::uint64_t> values;

  for (std::uint32_t s = 0; s < subpartitions; ++s) {
    const std::string ring = ring_name("return ring", s, subpartitions);
    if (!read_ring(mapping.return_ring(s), mapping.return_slots(s), config.ring_capacity,
                   ring.c_str(), values, snap.problems)) {
      continue;
    }
    for (std::uint64_t value : values) {
      if (value >= count) {
        snap.problems.insert(ring + " holds out-of-range buffer index " + std::to_string(value) +
                             " (pool has " + std::to_string(count) + ")");
        continue;
      }
      if (place[value] != Place::kNone) {
        snap.problems.insert("buffer " + std::to_string(value) + " is in " +
                             (place[value] == Place::kReturnRing && ring_of[value] == s
                                  ? ring_name("the return ring", s, subpartitions)
                                  : std::string("two return rings")) +
                             " more than once (duplicate)");
        continue;
      }
      place[value] = Place::kReturnRing;
      ring_of[value] = s;
      ++snap.places.in_return_ring;
    }
  }
  for (std::uint32_t s = 0; s < subpartitions; ++s) {
    const std::string ring = ring_name("data ring", s, subpartitions);
    if (!read_ring(mapping.data_ring(s), mapping.data_slots(s), config.ring_capacity, ring.c_str(),
                   values, snap.problems)) {
      continue;
    }
    for (std::uint64_t descriptor : values) {
      const std::uint32_t index = descriptor_buffer(descriptor);
      if (index >= count) {
        snap.problems.insert(ring + " holds out-of-range buffer index " + std::to_string(index) +
                             " (pool has " + std::to_string(count) + ")");
        continue;
      }
      if (descriptor_bytes(descriptor) > config.buffer_bytes &&
          descriptor_bytes(descriptor) != kOpenBufferBytes) {
        snap.problems.insert(ring + " holds buffer " + std::to_string(index) + " with length " +
                             std::to_string(descriptor_bytes(descriptor)) +
                             " beyond the buffer size");
      }
      const bool again =
          place[index] == Place::kDataRing && (!broadcast || (data_rings_of[index] >> s & 1U) != 0);
      if (place[index] == Place::kReturnRing || again) {
        snap.problems.insert("buffer " + std::to_string(index) + " is in " +
                             (again
                                  ? ring_name("the data ring", s, subpartitions) + " more than once"
                                  : std::string("both rings")) +
                             " (duplicate)");
        continue;
      }
      if (place[index] == Place::kDataRing && !broadcast) {
        snap.problems.insert("buffer " + std::to_string(index) +
                             " is in two data rings (duplicate)");
        continue;
      }
      data_rings_of[index] |= std::uint64_t{1} << s;
      if (place[index] == Place::kNone) {  // a shared buffer is counted once
        place[index] = Place::kDataRing;
        ring_of[index] = s;
        ++snap.places.in_data_ring;
      }
    }
  }

  const ChannelControl& control = mapping.control(0);
  const bool producer_alive = mapping.probe_role(Role::kProducer) == sluice::shm::LockProbe::kHeld;
  std::vector<std::uint8_t> consumer_alive(subpartitions, 0);
  for (std::uint32_t s = 0; s < subpartitions; ++s) {
    consumer_alive[s] =
        mapping.probe_role(Role::kConsumer, s) == sluice::shm::LockProbe::kHeld ? 1 : 0;
  }
  const BufferStateWord* states = mapping.buffer_states();
  const BufferHolders* holders = mapping.buffer_holders();
  const std::uint32_t shared = state_word(BufferState::kShared);
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint32_t state = states[i].load(std::memory_order_relaxed);
    const std::string buffer = "buffer " + std::to_string(i);
    if (broadcast && state == shared && place[i] != Place::kReturnRing) {
      check_shared(i, place[i] == Place::kDataRing, data_rings_of[i],
                   holders[i].load(std::memory_order_acquire), subpartitions, consumer_alive, snap);
      continue;
    }
    if (!broadcast && state == shared) {
      snap.problems.insert(buffer + " is marked shared in a channel that does not broadcast");
      continue;
    }
    switch (place[i]) {
      case Place::kReturnRing:
        // Freed by the consumer whose return ring holds it.
        if (state != state_word(BufferState::kFree, ring_of[i])) {
          snap.problems.insert(buffer + " is in " +
                               ring_name("the return ring", ring_of[i], subpartitions) +
                               " but marked " + state_name(state, subpartitions));
        }
        break;
      case Place::kDataRing:
        if (state != state_word(BufferState::kQueued, ring_of[i])) {
          snap.problems.insert(buffer + " is in " +
                               ring_name("the data ring", ring_of[i], subpartitions) +
                               " but marked " + state_name(state, subpartitions));
        }
        break;
      case Place::kNone:
        if (!state_word_possible(state, subpartitions)) {
          snap.problems.insert(buffer + " is marked " + state_name(state, subpartitions));
        } else if (state == static_cast<std::uint32_t>(BufferState::kWriting)) {
          ++snap.places.with_producer;
          if (!producer_alive && control.producer.state.load(std::memory_order_acquire) !=
                                     static_cast<std::uint32_t>(EndpointState::kNeverAttached)) {
            snap.problems.insert(buffer + " is held by a producer that is gone");
          }
        } else if (state_kind(state) == static_cast<std::uint32_t>(BufferState::kReading)) {
          ++snap.places.with_consumer;
          if (consumer_alive[state_subpartition(state)] == 0) {
            snap.problems.insert(
                buffer + " is held by a consumer that is gone" +
                (subpartitions > 1
                     ? " (subpartition " + std::to_string(state_subpartition(state)) + ")"
                     : std::string()));
          }
        } else {
          snap.problems.insert(buffer + " is leaked: marked " + state_name(state, subpartitions) +
                               " but in no ring and held by nobody");
        }
        break;
    }
  }
  return snap;
}

}  // namespace

OwnershipReport check_ownership(const ChannelMapping& mapping,
                                const OwnershipCheckOptions& options) {
  OwnershipReport report;
  report.buffer_count = mapping.config().buffer_count;
  std::set<std::string> persistent;
  for (int i = 0; i < std::max(1, options.snapshots); ++i) {
    if (i > 0) {
      std::this_thread::sleep_for(options.spacing);
    }
    Snapshot snap = take_snapshot(mapping);
    if (i == 0) {
      persistent = std::move(snap.problems);
    } else {
      std::set<std::string> both;
      std::set_intersection(persistent.begin(), persistent.end(), snap.problems.begin(),
                            snap.problems.end(), std::inserter(both, both.begin()));
      persistent = std::move(both);
    }
    report.places = snap.places;
  }
  report.problems.assign(persistent.begin(), persistent.end());
  return report;
}

}  // namespace sluice::transport
