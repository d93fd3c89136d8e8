#include "sluice/nats/local_release.hpp"

#include "sluice/transport/channel_layout.hpp"

namespace sluice::nats {

namespace st = sluice::transport;

void ReleaseTracker::committed(std::uint32_t index) {
  entries_.push_back({index, false});
  ++committed_;
}

void ReleaseTracker::acquired(std::uint32_t index) {
  for (Entry& entry : entries_) {
    if (entry.index == index) {
      entry.released = true;
    }
  }
}

std::uint64_t ReleaseTracker::released_prefix() {
  const st::ChannelMapping& mapping = producer_.mapping();
  const std::uint32_t count = mapping.config().buffer_count;
  for (Entry& entry : entries_) {
    if (!entry.released && entry.index < count) {
      // The consumer marks a buffer free before it returns it; relaxed: the
      // answer only times an acknowledgement, it guards no data.
      const std::uint32_t word =
          mapping.buffer_states()[entry.index].load(std::memory_order_relaxed);
      entry.released = st::state_kind(word) == static_cast<std::uint32_t>(st::BufferState::kFree);
    }
  }
  while (!entries_.empty() && entries_.front().released) {
    entries_.pop_front();
    ++released_;
  }
  return released_;
}

}  // namespace sluice::nats
