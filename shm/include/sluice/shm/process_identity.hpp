#pragma once

#include <sys/types.h>
#include <cstdint>

namespace sluice::shm {

// A process as shown to people: pid plus the kernel's start time (clock ticks
// since boot), so that a reused pid is not mistaken for the original process.
// Liveness is never decided from this; see RoleLock.
struct ProcessIdentity {
  pid_t pid = 0;
  std::uint64_t start_ticks = 0;

  static ProcessIdentity self();
  // Start time of `pid`, or 0 when no such process exists.
  static std::uint64_t start_ticks_of(pid_t pid);
};

}  // namespace sluice::shm
