#include "sluice/transport/wait_strategy.hpp"

#include <sched.h>

namespace sluice::transport {

std::uint32_t usable_cpus() noexcept {
  // Read once: the affinity mask rarely changes, and endpoints are made often.
  static const std::uint32_t cpus = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof(set), &set) != 0) {
      return 1U;  // unknown: do not spin
    }
    const int count = CPU_COUNT(&set);
    return count > 0 ? static_cast<std::uint32_t>(count) : 1U;
  }();
  return cpus;
}

}  // namespace sluice::transport
