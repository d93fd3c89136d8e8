// sluice check NAME: proves that every buffer of a channel is in exactly one
// place. Exit status 0 when sound, 1 when not.

#include <cstdio>

#include "commands.hpp"
#include "sluice/transport/channel_metrics.hpp"
#include "sluice/transport/ownership_check.hpp"

namespace st = sluice::transport;

namespace sluice::tools {

int run_check(int argc, char** argv) {
  const Arguments args(argc, argv, 2, {}, {});
  if (args.positional().size() != 1) {
    throw UsageError("check needs exactly one channel name");
  }
  const std::string name = args.positional().front();
  require_channel_name(name);
  const st::ChannelObserver observer(name);
  const st::OwnershipReport report = st::check_ownership(observer.mapping());
  const st::OwnershipPlaces& p = report.places;
  std::printf(
      "channel %s: %u buffers: %u free (return ring), %u with the producer, %u queued "
      "(data ring), %u with the consumer\n",
      name.c_str(), report.buffer_count, p.in_return_ring, p.with_producer, p.in_data_ring,
      p.with_consumer);
  if (report.sound()) {
    std::printf("sound: every buffer is in exactly one place\n");
    return 0;
  }
  std::printf("NOT SOUND: %zu problem%s\n", report.problems.size(),
              report.problems.size() == 1 ? "" : "s");
  for (const std::string& problem : report.problems) {
    std::printf("  - %s\n", problem.c_str());
  }
  return 1;
}

}  // namespace sluice::tools
