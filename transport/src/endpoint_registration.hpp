#pragma once

#include "sluice/transport/channel.hpp"
#include "sluice/transport/channel_layout.hpp"

namespace sluice::transport::detail {

// Takes the role's liveness lock, or throws shm::SetupError naming the channel
// and the process that holds the role.
void claim_role(const ChannelMapping& mapping, Role role);

// Fills this process's identity into `record` and marks it attached. The
// caller holds the role's lock, which makes it the record's only writer.
void register_endpoint(EndpointRecord& record);

// Marks `record` detached and gives up the role's lock.
void detach(const ChannelMapping& mapping, EndpointRecord& record, Role role) noexcept;

}  // namespace sluice::transport::detail
