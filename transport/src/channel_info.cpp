#include "sluice/transport/channel_info.hpp"

#include "sluice/shm/segment.hpp"
#include "sluice/transport/channel_metrics.hpp"

namespace sluice::transport {

ChannelInfo inspect_channel(std::string_view name) noexcept {
  ChannelInfo info;
  try {
    info.name = std::string(name);
    const ChannelObserver observer(name);
    const ChannelMapping& mapping = observer.mapping();
    info.readable = true;
    info.config = observer.config();
    info.segment_bytes = mapping.segment().size();
    info.created_unix_ns = mapping.config().created_unix_ns;
    info.mode = mapping.segment().mode();
    info.owner = mapping.segment().owner();
    const ChannelSnapshot snapshot = observer.snapshot();
    info.closed = snapshot.closed;
    info.producer = snapshot.producer;
    info.consumer = snapshot.consumer;
    info.produced = snapshot.produced;
    info.consumed = snapshot.consumed;
    for (std::uint32_t s = 1; s < mapping.subpartitions(); ++s) {
      info.other_consumer_alive =
          info.other_consumer_alive ||
          mapping.probe_role(Role::kConsumer, s) == sluice::shm::LockProbe::kHeld;
    }
  } catch (const std::exception& e) {
    info.readable = false;
    info.problem = e.what();
  }
  return info;
}

std::vector<ChannelInfo> inspect_all_channels() noexcept {
  std::vector<ChannelInfo> all;
  try {
    for (const std::string& name : sluice::shm::Segment::list()) {
      all.push_back(inspect_channel(name));
    }
  } catch (...) {
  }
  return all;
}

}  // namespace sluice::transport
