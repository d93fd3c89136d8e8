#pragma once

// Whether a consumer of a partitioned channel is the last one out: every
// other subpartition's consumer came and is gone. Only the last one may
// remove the channel's name; an earlier one would pull it from under a
// consumer that has not opened it yet.

#include "sluice/transport/consumer.hpp"

namespace sluice::tools {

inline bool last_consumer_out(const sluice::transport::Consumer& consumer) {
  namespace st = sluice::transport;
  const st::ChannelMapping& mapping = consumer.mapping();
  for (std::uint32_t s = 0; s < mapping.subpartitions(); ++s) {
    if (s == mapping.subpartition()) {
      continue;
    }
    const auto state = mapping.control(s).consumer.state.load(std::memory_order_acquire);
    if (state == static_cast<std::uint32_t>(st::EndpointState::kNeverAttached) ||
        mapping.probe_role(st::Role::kConsumer, s) != sluice::shm::LockProbe::kFree) {
      return false;
    }
  }
  return true;
}

}  // namespace sluice::tools
