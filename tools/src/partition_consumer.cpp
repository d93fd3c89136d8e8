#include "partition_consumer.hpp"

#include "../common/last_consumer.hpp"

#include <cstdio>
#include <optional>

#include "../common/json_line.hpp"
#include "../common/partition_check.hpp"
#include "../common/progress.hpp"
#include "../common/report.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/record_reader.hpp"

namespace sluice::tools {

namespace st = sluice::transport;

namespace {}  // namespace

int run_partition_consumer(const PartitionConsumerOptions& options) {
  std::optional<st::Consumer> consumer;
  try {
    st::OpenOptions open;
    open.wait_for_channel = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(options.wait_seconds));
    open.subpartition = options.subpartition;
    consumer.emplace(st::Consumer::open(options.channel, open));
  } catch (const std::exception& e) {
    report_failure("consumer", options.json, e.what());
    return 2;
  }
  const st::ChannelConfigRecord& config = consumer->config();
  PartitionCheck tally;
  tally.partitioner = static_cast<st::Partitioner>(config.partitioner);
  tally.subpartitions = config.subpartitions;
  tally.subpartition = options.subpartition;
  tally.record_bytes = options.size;
  tally.from_first_seen = options.resume;
  if (options.resume) {
    consumer->set_producer_loss(st::ProducerLoss::kWaitForNewProducer);
  }
  // Round-robin and key: exactly this subpartition's share of N; otherwise
  // (or without N) to the end of the stream.
  const std::uint64_t wanted =
      options.records && tally.exact() ? tally.mine_between(0, *options.records) : UINT64_MAX;

  st::Status status = st::Status::kOk;
  std::uint64_t bytes = 0;
  Progress progress("consumer", options.json, options.size);
  {
    st::RecordReader reader(*consumer);
    Pacer pacer(options.schedule);
    std::span<const std::byte> record;
    bool started = false;
    std::uint64_t accepted = 0;
    while (accepted < wanted) {
      pacer.pace([] {});
      status = reader.next(record);
      if (status != st::Status::kOk) {
        break;
      }
      if (!started) {
        started = true;
        progress.start();
        pacer.start(Pacer::Clock::now());
      }
      bytes += record.size();
      if (const auto seq = tally.observe(record)) {
        ++accepted;
        progress.tick(tally.received, *seq);
      }
    }
  }
  tally.finish(options.records);
  const double seconds = tally.received > 0 ? progress.elapsed_seconds() : 0.0;

  std::string error;
  if (status == st::Status::kCorrupt) {
    error = consumer->corruption();
    if (error.empty()) {
      error = "the stream's framing is corrupt";
    }
  } else if (status == st::Status::kPeerDied) {
    error = "the producer went away without closing the stream";
  } else if (status != st::Status::kOk && status != st::Status::kClosed) {
    error = std::string(st::to_string(status));
  }
  const bool intact = error.empty() && tally.clean();
  const char* partition = st::partitioner_name(tally.partitioner);
  if (!intact) {
    std::string message =
        "subpartition " + std::to_string(options.subpartition) + " (" + partition + ") received " +
        std::to_string(tally.received) + " records: " + std::to_string(tally.lost) + " lost, " +
        std::to_string(tally.duplicated) + " duplicated, " + std::to_string(tally.corrupt) +
        " corrupt, " + std::to_string(tally.misrouted) + " of other subpartitions";
    if (!error.empty()) {
      message += "; " + error;
    }
    report_failure("consumer", options.json, message);
  }
  const double idle =
      static_cast<double>(consumer->mapping().control().consumer_counters.idle_ns.load()) / 1e9;
  const double records_per_sec = seconds > 0 ? static_cast<double>(tally.received) / seconds : 0.0;
  const double bytes_per_sec = seconds > 0 ? static_cast<double>(bytes) / seconds : 0.0;
  if (options.json) {
    JsonLine summary;
    summary.add("role", "consumer")
        .add("type", "summary")
        .add("channel", options.channel)
        .add("subpartition", std::uint64_t{options.subpartition})
        .add("subpartitions", std::uint64_t{tally.subpartitions})
        .add("partition", partition)
        .add("ok", intact)
        .add("records", tally.received)
        .add("bytes", bytes)
        .add("seconds", seconds)
        .add("records_per_sec", records_per_sec)
        .add("bytes_per_sec", bytes_per_sec)
        .add("lost", tally.lost)
        .add("duplicated", tally.duplicated)
        .add("corrupt", tally.corrupt)
        .add("misrouted", tally.misrouted)
        .add("idle_seconds", idle);
    tally.first_seq ? summary.add("first_seq", *tally.first_seq) : summary.add_null("first_seq");
    tally.last_seq ? summary.add("last_seq", *tally.last_seq) : summary.add_null("last_seq");
    std::printf("%s\n", summary.str().c_str());
  } else {
    std::printf(
        "consumer summary: subpartition %u of %u (%s): %llu records in %.3f s: %.0f records/s, "
        "%.1f MB/s, idle %.3f s; lost %llu, duplicated %llu, corrupt %llu, misrouted %llu\n",
        options.subpartition, tally.subpartitions, partition,
        static_cast<unsigned long long>(tally.received), seconds, records_per_sec,
        bytes_per_sec / 1e6, idle, static_cast<unsigned long long>(tally.lost),
        static_cast<unsigned long long>(tally.duplicated),
        static_cast<unsigned long long>(tally.corrupt),
        static_cast<unsigned long long>(tally.misrouted));
  }
  std::fflush(stdout);
  if (!options.keep && last_consumer_out(*consumer)) {
    st::remove_channel(options.channel);
  }
  return intact ? 0 : 1;
}

}  // namespace sluice::tools
