// sluice stat NAME: one channel's configuration, endpoints, counters and the
// rates derived over the last interval.

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include "../../common/bridge_status.hpp"
#include "channel_json.hpp"
#include "commands.hpp"
#include "pipeline.hpp"
#include "sluice/transport/channel_metrics.hpp"
#include "stat_pipeline.hpp"

namespace st = sluice::transport;

namespace sluice::tools {

namespace {

std::string local_time(std::uint64_t unix_ns) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000ULL);
  std::tm parts{};
  localtime_r(&seconds, &parts);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &parts);
  return text;
}

std::string bridges_json(const std::vector<StatusPairs>& bridges) {
  std::string json = "[";
  for (const StatusPairs& pairs : bridges) {
    json += json.size() == 1 ? "{" : ",{";
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      json += (i == 0 ? "\"" : ",\"") + pairs[i].first + "\":" + pairs[i].second;
    }
    json += "}";
  }
  return json + "]";
}

void print_bridges(const std::vector<StatusPairs>& bridges) {
  for (const StatusPairs& pairs : bridges) {
    std::printf("%s\n", bridge_text(pairs).c_str());
  }
}

void print_text(const std::string& name, const st::ChannelObserver& observer,
                const st::ChannelSnapshot& s, const st::ChannelRates& r) {
  const st::ChannelConfig config = observer.config();
  const auto& segment = observer.mapping().segment();
  std::printf("channel %s  (%zu bytes, mode %04o, created %s)\n", name.c_str(), segment.size(),
              segment.mode(), local_time(observer.mapping().config().created_unix_ns).c_str());
  std::printf("config   %u buffers x %u bytes, flush timeout %lld us\n", config.buffer_count,
              config.buffer_bytes, static_cast<long long>(config.flush_timeout.count() / 1000));
  if (config.subpartitions > 1) {
    std::printf(
        "fan-out  %u subpartitions, %s, at most %u queued buffers each; "
        "consumer and counts below: subpartition 0\n",
        config.subpartitions, st::partitioner_name(config.partitioner), config.max_queued_buffers);
  }
  std::printf("producer %-14s consumer %-14s stream %s\n", endpoint_text(s.producer).c_str(),
              endpoint_text(s.consumer).c_str(), s.closed ? "closed" : "open");
  std::printf("\nover the last %.2f s        %14s %14s\n", r.seconds, "producer", "consumer");
  std::printf("records/s                  %14.0f %14.0f\n", r.records_out_per_sec,
              r.records_in_per_sec);
  std::printf("MB/s                       %14.1f %14.1f\n", r.bytes_out_per_sec / 1e6,
              r.bytes_in_per_sec / 1e6);
  std::printf("buffers/s                  %14.0f %14.0f\n", r.buffers_out_per_sec,
              r.buffers_in_per_sec);
  std::printf("backpressured ms/s         %14.1f %14s\n", r.backpressured_ms_per_sec, "");
  std::printf("idle ms/s                  %14s %14.1f\n", "", r.idle_ms_per_sec);
  std::printf("busy ms/s                  %14.1f %14.1f\n", r.producer_busy_ms_per_sec,
              r.consumer_busy_ms_per_sec);
  std::printf(
      "\npool     %u free, %u producer, %u queued, %u consumer%s%s  (out-pool usage %.0f%%)\n",
      s.pool.free, s.pool.writing, s.pool.queued, s.pool.reading,
      s.pool.shared > 0 ? (", " + std::to_string(s.pool.shared) + " shared").c_str() : "",
      s.pool.invalid > 0 ? (", " + std::to_string(s.pool.invalid) + " INVALID").c_str() : "",
      100.0 * r.out_pool_usage);
  std::printf("fill     %.0f%% of each handed-over buffer used\n", 100.0 * r.buffer_fill);
  std::printf("totals   %llu records / %llu bytes sent, %llu records / %llu bytes received\n",
              static_cast<unsigned long long>(s.produced.records),
              static_cast<unsigned long long>(s.produced.bytes),
              static_cast<unsigned long long>(s.consumed.records),
              static_cast<unsigned long long>(s.consumed.bytes));
  std::printf("waited   producer blocked %.3f s, consumer idle %.3f s\n",
              static_cast<double>(s.produced.waited_ns) / 1e9,
              static_cast<double>(s.consumed.waited_ns) / 1e9);
  std::printf("level    backpressure %s (ratio %.2f; OK <= 0.10 < LOW <= 0.50 < HIGH)\n",
              std::string(st::to_string(r.level)).c_str(), r.backpressured_ms_per_sec / 1000.0);
  if (s.produced.corruption_seen || s.consumed.corruption_seen) {
    std::printf("CORRUPT  an endpoint found impossible values in shared memory\n");
  }
}

}  // namespace

int run_stat(int argc, char** argv) {
  const Arguments args(argc, argv, 2, {"--interval"}, {"--json", "--prometheus"});
  if (args.has("--json") && args.has("--prometheus")) {
    throw UsageError("stat takes --json or --prometheus, not both");
  }
  const double interval = args.has("--interval") ? args.real_number("--interval", 0.01, 3600) : 1.0;
  for (const std::string& name : args.positional()) {
    require_channel_name(name);
  }
  if (args.positional().size() != 1 || args.has("--prometheus")) {
    return run_stat_pipeline(args.positional(), interval,
                             args.has("--json")         ? StatFormat::kJson
                             : args.has("--prometheus") ? StatFormat::kPrometheus
                                                        : StatFormat::kText);
  }
  const std::string name = args.positional().front();
  require_channel_name(name);
  const st::ChannelObserver observer(name);
  const st::ChannelSnapshot before = observer.snapshot();
  std::this_thread::sleep_for(std::chrono::duration<double>(interval));
  const st::ChannelSnapshot after = observer.snapshot();
  const st::ChannelRates rates = st::derive_rates(before, after, observer.config());
  if (args.has("--json")) {
    const PipelineReport report = analyse_pipeline({{name, after, rates}});
    std::printf("%s\n", channel_json(name, observer, after, rates)
                            .add_raw("bridges", bridges_json(running_bridges(name)))
                            .add_raw("stages", stages_json(report))
                            .add_raw("links", links_json(report))
                            .add_raw("bottleneck", bottleneck_json(report))
                            .str()
                            .c_str());
  } else {
    print_text(name, observer, after, rates);
    print_bridges(running_bridges(name));
  }
  return 0;
}

}  // namespace sluice::tools
