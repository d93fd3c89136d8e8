#pragma once

// Proves the ownership invariant of a channel: every buffer is in exactly one
// place (return ring, producer, data ring, consumer). Reads only; safe
// against a live channel: a snapshot is repeated, and only what persists
// across all of them is reported, so a buffer caught in flight is no leak.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "sluice/transport/channel.hpp"

namespace sluice::transport {

struct OwnershipPlaces {
  std::uint32_t in_return_ring = 0;  // free
  std::uint32_t with_producer = 0;   // being written (or dropped unsent, reusable)
  std::uint32_t in_data_ring = 0;    // queued
  std::uint32_t with_consumer = 0;   // being read
};

struct OwnershipReport {
  std::uint32_t buffer_count = 0;
  OwnershipPlaces places;             // from the last snapshot
  std::vector<std::string> problems;  // each persisted in every snapshot
  [[nodiscard]] bool sound() const noexcept { return problems.empty(); }
};

struct OwnershipCheckOptions {
  int snapshots = 4;
  std::chrono::milliseconds spacing{10};
};

OwnershipReport check_ownership(const ChannelMapping& mapping,
                                const OwnershipCheckOptions& options = {});

}  // namespace sluice::transport
