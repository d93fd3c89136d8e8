#include "sluice/transport/ownership_check.hpp"

#include <algorithm>
#include <set>
#include <thread>

namespace sluice::transport {

namespace {

enum class Place : std::uint8_t { kNone, kReturnRing, kDataRing };

const char* state_name(std::uint32_t state) {
  switch (static_cast<BufferState>(state)) {
    case BufferState::kFree: return "free";
    case BufferState::kWriting: return "being written";
    case BufferState::kQueued: return "queued";
    case BufferState::kReading: return "being read";
  }
  return "impossible";
}

struct Snapshot {
  std::set<std::string> problems;
  OwnershipPlaces places;
};

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
  std::vector<Place> place(count, Place::kNone);
  std::vector<std::uint64_t> values;

  if (read_ring(mapping.return_ring(), mapping.return_slots(), config.ring_capacity, "return ring",
                values, snap.problems)) {
    for (std::uint64_t value : values) {
      if (value >= count) {
        snap.problems.insert("return ring holds out-of-range buffer index " +
                             std::to_string(value) + " (pool has " + std::to_string(count) + ")");
        continue;
      }
      if (place[value] != Place::kNone) {
        snap.problems.insert("buffer " + std::to_string(value) +
                             " is in the return ring more than once (duplicate)");
        continue;
      }
      place[value] = Place::kReturnRing;
      ++snap.places.in_return_ring;
    }
  }
  if (read_ring(mapping.data_ring(), mapping.data_slots(), config.ring_capacity, "data ring",
                values, snap.problems)) {
    for (std::uint64_t descriptor : values) {
      const std::uint32_t index = descriptor_buffer(descriptor);
      if (index >= count) {
        snap.problems.insert("data ring holds out-of-range buffer index " + std::to_string(index) +
                             " (pool has " + std::to_string(count) + ")");
        continue;
      }
      if (descriptor_bytes(descriptor) > config.buffer_bytes &&
          descriptor_bytes(descriptor) != kOpenBufferBytes) {
        snap.problems.insert("data ring holds buffer " + std::to_string(index) + " with length " +
                             std::to_string(descriptor_bytes(descriptor)) +
                             " beyond the buffer size");
      }
      if (place[index] != Place::kNone) {
        snap.problems.insert(
            "buffer " + std::to_string(index) + " is in " +
            (place[index] == Place::kDataRing ? "the data ring more than once" : "both rings") +
            " (duplicate)");
        continue;
      }
      place[index] = Place::kDataRing;
      ++snap.places.in_data_ring;
    }
  }

  const ChannelControl& control = mapping.control();
  const bool producer_alive = mapping.probe_role(Role::kProducer) == sluice::shm::LockProbe::kHeld;
  const bool consumer_alive = mapping.probe_role(Role::kConsumer) == sluice::shm::LockProbe::kHeld;
  const BufferStateWord* states = mapping.buffer_states();
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint32_t state = states[i].load(std::memory_order_relaxed);
    const std::string buffer = "buffer " + std::to_string(i);
    switch (place[i]) {
      case Place::kReturnRing:
        if (state != static_cast<std::uint32_t>(BufferState::kFree)) {
          snap.problems.insert(buffer + " is in the return ring but marked " + state_name(state));
        }
        break;
      case Place::kDataRing:
        if (state != static_cast<std::uint32_t>(BufferState::kQueued)) {
          snap.problems.insert(buffer + " is in the data ring but marked " + state_name(state));
        }
        break;
      case Place::kNone:
        if (state == static_cast<std::uint32_t>(BufferState::kWriting)) {
          ++snap.places.with_producer;
          if (!producer_alive && control.producer.state.load(std::memory_order_acquire) !=
                                     static_cast<std::uint32_t>(EndpointState::kNeverAttached)) {
            snap.problems.insert(buffer + " is held by a producer that is gone");
          }
        } else if (state == static_cast<std::uint32_t>(BufferState::kReading)) {
          ++snap.places.with_consumer;
          if (!consumer_alive) {
            snap.problems.insert(buffer + " is held by a consumer that is gone");
          }
        } else {
          snap.problems.insert(buffer + " is leaked: marked " + state_name(state) +
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
