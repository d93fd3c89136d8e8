#include "stat_pipeline.hpp"

#include <chrono>
#include <cstdio>
#include <thread>

#include "channel_json.hpp"
#include "commands.hpp"
#include "pipeline.hpp"
#include "prometheus.hpp"

namespace st = sluice::transport;

namespace sluice::tools {

namespace {

void print_json(const std::vector<ChannelSampler::Sample>& samples, const PipelineReport& report) {
  std::string channels = "[";
  for (const auto& sample : samples) {
    channels +=
        (channels.size() > 1 ? "," : "") +
        channel_json(sample.view.name, *sample.observer, sample.view.snapshot, sample.view.rates)
            .str();
  }
  channels += "]";
  JsonLine line;
  line.add_raw("channels", channels)
      .add_raw("stages", stages_json(report))
      .add_raw("links", links_json(report))
      .add_raw("bottleneck", bottleneck_json(report));
  std::printf("%s\n", line.str().c_str());
}

void print_text(const std::vector<ChannelSampler::Sample>& samples, const PipelineReport& report) {
  const double seconds = samples.empty() ? 0.0 : samples.front().view.rates.seconds;
  std::printf("%zu channel%s, over the last %.2f s\n\n", samples.size(),
              samples.size() == 1 ? "" : "s", seconds);
  std::printf("%-24s %10s %10s %8s %8s %5s %-5s %-12s %-12s\n", "CHANNEL", "OUT rec/s", "IN rec/s",
              "BP ms/s", "IDLE/s", "USE", "LEVEL", "PRODUCER", "CONSUMER");
  for (const auto& sample : samples) {
    const st::ChannelRates& r = sample.view.rates;
    std::printf("%-24s %10.0f %10.0f %8.0f %8.0f %4.0f%% %-5s %-12s %-12s\n",
                sample.view.name.c_str(), r.records_out_per_sec, r.records_in_per_sec,
                r.backpressured_ms_per_sec, r.idle_ms_per_sec, 100.0 * r.out_pool_usage,
                std::string(st::to_string(r.level)).c_str(),
                endpoint_text(sample.view.snapshot.producer).c_str(),
                endpoint_text(sample.view.snapshot.consumer).c_str());
  }
  if (samples.empty()) {
    std::printf("(no channels)\n");
  }
  std::printf("\n");
  for (const std::string& line : pipeline_text_lines(report)) {
    std::printf("%s\n", line.c_str());
  }
}

}  // namespace

int run_stat_pipeline(const std::vector<std::string>& names, double interval_seconds,
                      StatFormat format) {
  ChannelSampler sampler(names);
  sampler.sample();
  std::this_thread::sleep_for(std::chrono::duration<double>(interval_seconds));
  const auto samples = sampler.sample();
  const std::vector<ChannelView> views = views_of(samples);
  const PipelineReport report = analyse_pipeline(views);
  switch (format) {
    case StatFormat::kPrometheus: std::fputs(prometheus_text(views, report).c_str(), stdout); break;
    case StatFormat::kJson: print_json(samples, report); break;
    case StatFormat::kText: print_text(samples, report); break;
  }
  return 0;
}

}  // namespace sluice::tools
