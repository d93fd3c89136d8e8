// sluice ls and sluice rm: list and remove the channels on this host.

#include <cstdio>
#include <vector>

#include "../../common/bridge_status.hpp"
#include "../../common/json_line.hpp"
#include "commands.hpp"
#include "sluice/shm/segment.hpp"
#include "sluice/shm/segment_name.hpp"
#include "sluice/transport/channel.hpp"
#include "sluice/transport/channel_info.hpp"

namespace st = sluice::transport;

namespace sluice::tools {

void require_channel_name(const std::string& name) {
  if (auto problem = sluice::shm::name_problem(name); !problem.empty()) {
    throw UsageError("invalid channel name \"" + name + "\": " + problem);
  }
}

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
    std::printf("%-24s %-7s %8s %9s %-14s %-14s %-10s %14s %14s %12s %12s %10s %10s\n", "NAME",
                "STATE", "BUFFERS", "BUF_SIZE", "PRODUCER", "CONSUMER", "MODE", "SENT", "RECEIVED",
                "BUFS_SENT", "BUFS_RECV", "MB_SENT", "MB_RECV");
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
            .add("records_received", info.consumed.records)
            .add("buffers_sent", info.produced.buffers)
            .add("buffers_received", info.consumed.buffers)
            .add("bytes_sent", info.produced.bytes)
            .add("bytes_received", info.consumed.bytes);
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
    std::printf("%-24s %-7s %8u %9u %-14s %-14s %-10s %14llu %14llu %12llu %12llu %10.1f %10.1f\n",
                info.name.c_str(), state_text(info), info.config.buffer_count,
                info.config.buffer_bytes, endpoint_text(info.producer).c_str(),
                endpoint_text(info.consumer).c_str(), mode,
                static_cast<unsigned long long>(info.produced.records),
                static_cast<unsigned long long>(info.consumed.records),
                static_cast<unsigned long long>(info.produced.buffers),
                static_cast<unsigned long long>(info.consumed.buffers),
                static_cast<double>(info.produced.bytes) / 1e6,
                static_cast<double>(info.consumed.bytes) / 1e6);
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

// Records and bytes the producer handed over that no consumer has received.
// Bytes cover traffic through the buffer API, where records are counted only
// when commit() is told them.
struct Unread {
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  [[nodiscard]] bool any() const noexcept { return records > 0 || bytes > 0; }
};

Unread unread_in(const st::ChannelInfo& info) {
  Unread unread;
  if (info.produced.records > info.consumed.records) {
    unread.records = info.produced.records - info.consumed.records;
  }
  if (info.produced.bytes > info.consumed.bytes) {
    unread.bytes = info.produced.bytes - info.consumed.bytes;
  }
  return unread;
}

std::string unread_text(const Unread& unread) {
  return std::to_string(unread.records) + " unread record" + (unread.records == 1 ? "" : "s") +
         " (" + std::to_string(unread.bytes) + " bytes)";
}

// Every channel on the host, or only those named.
std::vector<st::ChannelInfo> channels_named(const std::vector<std::string>& names, int& status) {
  if (names.empty()) {
    return st::inspect_all_channels();
  }
  std::vector<st::ChannelInfo> channels;
  for (const auto& name : names) {
    if (!sluice::shm::Segment::exists(name)) {
      std::fprintf(stderr, "sluice rm: channel \"%s\" does not exist\n", name.c_str());
      status = 1;
      continue;
    }
    channels.push_back(st::inspect_channel(name));
  }
  return channels;
}

int remove_stale_channels(const std::vector<std::string>& names, bool force) {
  int status = 0;
  for (const auto& info : channels_named(names, status)) {
    // An unreadable object under our prefix is only removed when it is
    // clearly abandoned; a readable channel when neither end is alive.
    if (!info.readable || !info.stale()) {
      continue;
    }
    const Unread unread = unread_in(info);
    if (unread.any() && !force) {
      std::fprintf(stderr, "sluice rm: kept %s: it holds %s; --force removes it anyway\n",
                   info.name.c_str(), unread_text(unread).c_str());
      status = 1;
      continue;
    }
    if (!st::remove_channel(info.name)) {
      continue;  // removed by someone else meanwhile
    }
    sluice::tools::remove_bridge_files(info.name);
    if (unread.any()) {
      std::fprintf(stderr, "sluice rm: warning: %s held %s, now gone\n", info.name.c_str(),
                   unread_text(unread).c_str());
      std::printf("removed %s; discarded %s\n", info.name.c_str(), unread_text(unread).c_str());
    } else {
      std::printf("removed %s\n", info.name.c_str());
    }
  }
  if (names.empty()) {
    // What bridges left beside channels that are gone (a resume state, a
    // status of a bridge that was killed).
    for (const std::string& path : sluice::tools::remove_orphaned_bridge_files()) {
      std::printf("removed %s (a bridge's file; its channel is gone)\n", path.c_str());
    }
  }
  return status;
}

int remove_channels(const sluice::tools::Arguments& args) {
  // Every name is checked before anything is removed.
  for (const auto& name : args.positional()) {
    require_channel_name(name);
  }
  if (args.has("--stale")) {
    return remove_stale_channels(args.positional(), args.has("--force"));
  }
  if (args.has("--force")) {
    throw sluice::tools::UsageError(
        "--force goes with --stale (a named channel is always removed)");
  }
  if (args.positional().empty()) {
    throw sluice::tools::UsageError("rm needs at least one channel name (or --stale)");
  }
  int status = 0;
  for (const auto& name : args.positional()) {
    const st::ChannelInfo info = st::inspect_channel(name);
    const Unread unread = info.readable ? unread_in(info) : Unread{};
    if (st::remove_channel(name)) {
      sluice::tools::remove_bridge_files(name);
      if (unread.any()) {
        std::fprintf(stderr, "sluice rm: warning: %s held %s, now gone\n", name.c_str(),
                     unread_text(unread).c_str());
      }
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
  return remove_channels(Arguments(argc, argv, 2, {}, {"--stale", "--force"}));
}

}  // namespace sluice::tools
