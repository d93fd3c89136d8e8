#include "endpoint_registration.hpp"

#include <string>

#include "sluice/shm/process_identity.hpp"
#include "sluice/shm/setup_error.hpp"

namespace sluice::transport::detail {

void claim_role(const ChannelMapping& mapping, Role role) {
  if (mapping.try_lock_role(role)) {
    return;
  }
  const EndpointRecord& holder =
      role == Role::kProducer ? mapping.control().producer : mapping.control().consumer;
  const std::string what =
      role == Role::kProducer || mapping.subpartitions() == 1
          ? std::string(role == Role::kProducer ? "producer" : "consumer")
          : "consumer of subpartition " + std::to_string(mapping.subpartition());
  throw sluice::shm::SetupError("channel \"" + mapping.name() + "\" already has a " + what +
                                " attached (pid " +
                                std::to_string(holder.pid.load(std::memory_order_relaxed)) +
                                "); only one " + what + " may attach at a time");
}

void register_endpoint(EndpointRecord& record) {
  const auto self = sluice::shm::ProcessIdentity::self();
  record.pid.store(self.pid, std::memory_order_relaxed);
  record.start_ticks.store(self.start_ticks, std::memory_order_relaxed);
  record.attach_count.store(record.attach_count.load(std::memory_order_relaxed) + 1,
                            std::memory_order_relaxed);
  // Release: whoever acquires kAttached also sees the identity above.
  record.state.store(static_cast<std::uint32_t>(EndpointState::kAttached),
                     std::memory_order_release);
}

// The caller wakes the peer only after this returns: a peer that reads the
// wake sequence, then probes the lock, must find it released once the
// sequence has moved (the spin model's wake-before-unlock mutant loses the
// wake-up otherwise).
void detach(const ChannelMapping& mapping, EndpointRecord& record, Role role) noexcept {
  record.state.store(static_cast<std::uint32_t>(EndpointState::kDetached),
                     std::memory_order_release);
  mapping.unlock_role(role);
}

}  // namespace sluice::transport::detail
