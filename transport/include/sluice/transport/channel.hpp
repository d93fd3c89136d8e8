#pragma once

#include <sys/types.h>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "sluice/shm/role_lock.hpp"
#include "sluice/shm/segment.hpp"
#include "sluice/transport/channel_config.hpp"
#include "sluice/transport/channel_layout.hpp"

namespace sluice::transport {

// Whether the segment asks for 2 MiB pages (see shm::CreateOptions): fewer TLB
// misses over a large pool. /dev/shm must allow them (mounted huge=advise,
// within_size or always); with the default huge=never none are given.
enum class HugePages : std::uint8_t {
  kNo,           // default: 4 KiB pages (unless the mount gives huge ones anyway)
  kIfAvailable,  // ask; go on with small pages if none are given
  kRequired,     // ask; creating the channel fails, saying why, unless every whole
                 // 2 MiB of the segment is a 2 MiB page (and if it is under 2 MiB)
};

struct CreateOptions {
  // Owner-only unless the caller widens it (e.g. 0660 for a group).
  mode_t mode = 0600;
  // Decided by the creator: the pages belong to the segment, and every
  // process that maps it later gets the same pages.
  HugePages huge_pages = HugePages::kNo;
  // When a segment of this name exists but no living process is attached to
  // it, remove it and create a fresh one instead of failing.
  bool replace_stale = false;
};

struct OpenOptions {
  // How long open() waits for the channel to appear and finish initialising.
  std::chrono::nanoseconds wait_for_channel = std::chrono::nanoseconds::zero();
  // Which subpartition of a partitioned channel this process serves (a
  // consumer reads only its own); must be below the channel's count. 0 for
  // an ordinary channel.
  std::uint32_t subpartition = 0;
};

// One channel's segment mapped into this process, with typed access to its
// regions. Creating it initialises every region; opening it validates the
// header, the configuration and every region offset before anything else is
// read. Owns the file descriptor that carries this process's role locks.
class ChannelMapping {
 public:
  static ChannelMapping create(std::string_view name, const ChannelConfig& config,
                               const CreateOptions& options);
  static ChannelMapping open(std::string_view name, const OpenOptions& options);

  [[nodiscard]] const std::string& name() const noexcept { return segment_.name(); }
  [[nodiscard]] const sluice::shm::Segment& segment() const noexcept { return segment_; }
  // The validated configuration, from this process's private copy.
  [[nodiscard]] const ChannelConfigRecord& config() const noexcept { return config_; }
  // Subpartitions in this channel (K), and the one this mapping serves by
  // default (OpenOptions::subpartition; 0 for a creator).
  [[nodiscard]] std::uint32_t subpartitions() const noexcept { return config_.subpartitions; }
  [[nodiscard]] std::uint32_t subpartition() const noexcept { return subpartition_; }
  // Subpartition s's control block and rings (s < subpartitions(); callers
  // check values that come from elsewhere). The forms without s are this
  // mapping's own subpartition's.
  [[nodiscard]] ChannelControl& control(std::uint32_t s) const noexcept {
    return region<ChannelControl>(kControlRegion)[s];
  }
  [[nodiscard]] RingIndices& data_ring(std::uint32_t s) const noexcept {
    return *ring(kDataRingRegion, s);
  }
  [[nodiscard]] RingSlot* data_slots(std::uint32_t s) const noexcept {
    return slots_after(kDataRingRegion, s);
  }
  [[nodiscard]] RingIndices& return_ring(std::uint32_t s) const noexcept {
    return *ring(kReturnRingRegion, s);
  }
  [[nodiscard]] RingSlot* return_slots(std::uint32_t s) const noexcept {
    return slots_after(kReturnRingRegion, s);
  }
  [[nodiscard]] ChannelControl& control() const noexcept { return control(subpartition_); }
  [[nodiscard]] RingIndices& data_ring() const noexcept { return data_ring(subpartition_); }
  [[nodiscard]] RingSlot* data_slots() const noexcept { return data_slots(subpartition_); }
  [[nodiscard]] RingIndices& return_ring() const noexcept { return return_ring(subpartition_); }
  [[nodiscard]] RingSlot* return_slots() const noexcept { return return_slots(subpartition_); }
  [[nodiscard]] BufferStateWord* buffer_states() const noexcept {
    return region<BufferStateWord>(kBufferStateRegion);
  }
  [[nodiscard]] BufferCommit* buffer_commits() const noexcept {
    return region<BufferCommit>(kBufferCommitRegion);
  }
  [[nodiscard]] BufferHolders* buffer_holders() const noexcept {
    return region<BufferHolders>(kBufferHolderRegion);
  }
  // Buffer `index` (must be < buffer_count; callers check peer-supplied values).
  [[nodiscard]] std::byte* buffer(std::uint32_t index) const noexcept {
    return segment_.base() + regions_[kBufferPoolRegion].offset +
           static_cast<std::size_t>(index) * config_.buffer_stride;
  }

  // Role locks; a consumer's is its subpartition's (role_lock_slot), by
  // default this mapping's own.
  bool try_lock_role(Role role) const noexcept;
  void unlock_role(Role role) const noexcept;
  [[nodiscard]] sluice::shm::LockProbe probe_role(Role role) const noexcept;
  [[nodiscard]] sluice::shm::LockProbe probe_role(Role role,
                                                  std::uint32_t subpartition) const noexcept;

 private:
  ChannelMapping(sluice::shm::Segment segment, const ChannelLayout& layout,
                 std::uint32_t subpartition)
      : segment_(std::move(segment)),
        config_(layout.config),
        ring_stride_(layout.ring_stride),
        subpartition_(subpartition) {
    std::copy_n(layout.regions.begin(), kRegionCount, regions_.begin());
  }
  template <class T>
  T* region(RegionIndex index) const noexcept {
    return reinterpret_cast<T*>(segment_.base() + regions_[index].offset);
  }
  RingIndices* ring(RegionIndex region, std::uint32_t s) const noexcept {
    return reinterpret_cast<RingIndices*>(segment_.base() + regions_[region].offset +
                                          s * ring_stride_);
  }
  RingSlot* slots_after(RegionIndex region, std::uint32_t s) const noexcept {
    return reinterpret_cast<RingSlot*>(reinterpret_cast<std::byte*>(ring(region, s)) +
                                       sizeof(RingIndices));
  }
  sluice::shm::Segment segment_;
  // Validated copies; the shared header is never read again after open.
  ChannelConfigRecord config_;
  std::array<sluice::shm::RegionEntry, kRegionCount> regions_{};
  std::uint64_t ring_stride_;
  std::uint32_t subpartition_;
};

// Removes a channel's name. Processes that have it mapped keep working.
bool remove_channel(std::string_view name);

}  // namespace sluice::transport
