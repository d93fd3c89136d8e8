#include "sluice/transport/channel_info.hpp"

#include "sluice/shm/role_lock.hpp"
#include "sluice/shm/segment.hpp"
#include "sluice/transport/channel.hpp"

namespace sluice::transport {

namespace {

EndpointInfo read_endpoint(const ChannelMapping& mapping, const EndpointRecord& record, Role role) {
  EndpointInfo info;
  info.state = static_cast<EndpointState>(record.state.load(std::memory_order_acquire));
  info.pid = record.pid.load(std::memory_order_relaxed);
  info.start_ticks = record.start_ticks.load(std::memory_order_relaxed);
  info.attach_count = record.attach_count.load(std::memory_order_relaxed);
  info.alive = mapping.probe_role(role) == sluice::shm::LockProbe::kHeld;
  return info;
}

template <class Counters>
CounterSnapshot read_counters(const Counters& c, std::uint64_t waited_ns) {
  return {c.records.load(std::memory_order_relaxed), c.bytes.load(std::memory_order_relaxed),
          c.buffers.load(std::memory_order_relaxed), waited_ns,
          c.corruption_seen.load(std::memory_order_relaxed) != 0};
}

}  // namespace

ChannelInfo inspect_channel(std::string_view name) noexcept {
  ChannelInfo info;
  try {
    info.name = std::string(name);
    const ChannelMapping mapping = ChannelMapping::open(name, {});
    const ChannelConfigRecord& config = mapping.config();
    info.readable = true;
    info.config = config_from_record(config);
    info.segment_bytes = mapping.segment().size();
    info.created_unix_ns = config.created_unix_ns;
    info.mode = mapping.segment().mode();
    info.owner = mapping.segment().owner();
    const ChannelControl& control = mapping.control();
    info.closed = control.stream.closed.load(std::memory_order_acquire) != 0;
    info.producer = read_endpoint(mapping, control.producer, Role::kProducer);
    info.consumer = read_endpoint(mapping, control.consumer, Role::kConsumer);
    info.produced =
        read_counters(control.producer_counters,
                      control.producer_counters.blocked_ns.load(std::memory_order_relaxed));
    info.consumed =
        read_counters(control.consumer_counters,
                      control.consumer_counters.idle_ns.load(std::memory_order_relaxed));
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
