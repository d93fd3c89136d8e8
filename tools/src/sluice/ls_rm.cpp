// sluice ls and sluice rm: list and remove the channels on this host.

#include <cstdio>

#include "../../common/json_line.hpp"
#include "commands.hpp"
#include "sluice/shm/segment_name.hpp"
#include "sluice/transport/channel.hpp"
#include "sluice/transport/channel_info.hpp"

namespace st = sluice::transport;

namespace sluice::tools {

std::string endpoint_text(const st::EndpointInfo& e) {
  switch (e.state) {
    case st::EndpointState::kNeverAttached: return "-";
    case st::EndpointState::kAttached:
      return std::to_string(e.pid) + (e.alive ? " alive" : " dead");
    case st::EndpointState::kDetached:
      return std::to_string(e.pid) + (e.alive ? " alive" : " left");
  }
  return "?";
}

namespace {
const char* state_text(const st::ChannelInfo& info) {
  if (!info.readable) {
    return "unreadable";
  }
  if (info.stale()) {
    return "stale";
  }
  return info.closed ? "closed" : "open";
}

void add_endpoint(JsonLine& line, const std::string& prefix, const st::EndpointInfo& e) {
  line.add(prefix + "_state", e.state == st::EndpointState::kNeverAttached ? "never"
                              : e.state == st::EndpointState::kAttached    ? "attached"
                                                                           : "detached")
      .add(prefix + "_pid", static_cast<std::int64_t>(e.pid))
      .add(prefix + "_alive", e.alive);
}

int list_channels(const sluice::tools::Arguments& args) {
  const bool json = args.has("--json");
  const auto channels = st::inspect_all_channels();
  if (!json) {
    std::printf("%-24s %-7s %8s %9s %-14s %-14s %-10s %14s %14s\n", "NAME", "STATE", "BUFFERS",
                "BUF_SIZE", "PRODUCER", "CONSUMER", "MODE", "SENT", "RECEIVED");
  }
  for (const auto& info : channels) {
    if (json) {
      JsonLine line;
      line.add("name", info.name).add("state", state_text(info)).add("readable", info.readable);
      if (!info.readable) {
        line.add("problem", info.problem);
      } else {
        line.add("buffers", static_cast<std::uint64_t>(info.config.buffer_count))
            .add("buffer_bytes", static_cast<std::uint64_t>(info.config.buffer_bytes))
            .add("flush_timeout_us",
                 static_cast<std::int64_t>(info.config.flush_timeout.count() / 1000))
            .add("segment_bytes", info.segment_bytes)
            .add("mode", static_cast<std::uint64_t>(info.mode))
            .add("closed", info.closed)
            .add("records_sent", info.produced.records)
            .add("records_received", info.consumed.records);
        if (info.config.subpartitions > 1) {
          line.add("subpartitions", static_cast<std::uint64_t>(info.config.subpartitions))
              .add("partition", st::partitioner_name(info.config.partitioner))
              .add("max_queued_buffers",
                   static_cast<std::uint64_t>(info.config.max_queued_buffers));
        }
        add_endpoint(line, "producer", info.producer);
        add_endpoint(line, "consumer", info.consumer);
      }
      std::printf("%s\n", line.str().c_str());
      continue;
    }
    if (!info.readable) {
      std::printf("%-24s %-7s %s\n", info.name.c_str(), "bad", info.problem.c_str());
      continue;
    }
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", info.mode);
    std::printf("%-24s %-7s %8u %9u %-14s %-14s %-10s %14llu %14llu\n", info.name.c_str(),
                state_text(info), info.config.buffer_count, info.config.buffer_bytes,
                endpoint_text(info.producer).c_str(), endpoint_text(info.consumer).c_str(), mode,
                static_cast<unsigned long long>(info.produced.records),
                static_cast<unsigned long long>(info.consumed.records));
    if (info.config.subpartitions > 1) {
      std::printf(
          "%-24s fan-out: %u subpartitions, %s, at most %u queued buffers each "
          "(consumer and counts: subpartition 0)\n",
          "", info.config.subpartitions, st::partitioner_name(info.config.partitioner),
          info.config.max_queued_buffers);
    }
  }
  if (!json && channels.empty()) {
    std::printf("(no channels)\n");
  }
  return 0;
}

int remove_channels(const sluice::tools::Arguments& args) {
  int status = 0;
  if (args.has("--stale")) {
    if (!args.positional().empty()) {
      throw sluice::tools::UsageError("rm takes either names or --stale, not both");
    }
    for (const auto& info : st::inspect_all_channels()) {
      // An unreadable object under our prefix is only removed when it is
      // clearly abandoned; a readable channel when neither end is alive.
      if (info.readable && info.stale()) {
        st::remove_channel(info.name);
        std::printf("removed %s\n", info.name.c_str());
      }
    }
    return 0;
  }
  if (args.positional().empty()) {
    throw sluice::tools::UsageError("rm needs at least one channel name (or --stale)");
  }
  for (const auto& name : args.positional()) {
    if (auto problem = sluice::shm::name_problem(name); !problem.empty()) {
      std::fprintf(stderr, "sluice rm: invalid channel name \"%s\": %s\n", name.c_str(),
                   problem.c_str());
      status = 1;
      continue;
    }
    if (st::remove_channel(name)) {
      std::printf("removed %s\n", name.c_str());
    } else {
      std::fprintf(stderr, "sluice rm: channel \"%s\" does not exist\n", name.c_str());
      status = 1;
    }
  }
  return status;
}

}  // namespace

int run_ls(int argc, char** argv) {
  const Arguments args(argc, argv, 2, {}, {"--json"});
  if (!args.positional().empty()) {
    throw UsageError("ls takes no names");
  }
  return list_channels(args);
}

int run_rm(int argc, char** argv) {
  return remove_channels(Arguments(argc, argv, 2, {}, {"--stale"}));
}

}  // namespace sluice::tools
