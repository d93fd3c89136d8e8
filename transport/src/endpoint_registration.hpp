#pragma once

#include "sluice/transport/channel.hpp"
#include "sluice/transport/channel_layout.hpp"

namespace sluice::transport::detail {

// Fills this process's identity into `record` and marks it attached. The
// caller holds the role's lock, which makes it the record's only writer.
void register_endpoint(EndpointRecord& record);

// Marks `record` detached and gives up the role's lock.
void detach(const ChannelMapping& mapping, EndpointRecord& record, Role role) noexcept;

}  // namespace sluice::transport::detail
