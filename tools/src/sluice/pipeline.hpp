#pragma once

// Channels seen as a pipeline: the processes at their ends are stages, the
// channels are links between stages, and the bottleneck is found the way
// Flink's web UI finds it.
//
// A stage is one living process, identified by pid and start time so that a
// reused pid is never taken for the same stage. Its ratios come from the
// per-channel counters of the channels it uses:
//   backpressured = sum of the blocked time of the channels it writes,
//   idle          = sum of the idle time of the channels it reads,
//   busy          = 1000 ms/s - backpressured - idle (not below 0),
// each clamped to [0, 1000] ms/s. A stage is a process loop that waits on one
// channel at a time, so its waits on different channels do not overlap and
// add up to the time it waited. A stage that waits on several channels from
// several threads at once overlaps its waits: the sum then overstates its
// waiting (the clamp keeps it a ratio), and for inputs the true "all inputs
// empty" time lies between the largest single idle time and the sum.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/transport/channel_metrics.hpp"

namespace sluice::tools {

// A channel's state and its rates over the last interval.
struct ChannelView {
  std::string name;
  sluice::transport::ChannelSnapshot snapshot;  // the later one
  sluice::transport::ChannelRates rates;
};

struct StageId {
  std::int32_t pid = 0;
  std::uint64_t start_ticks = 0;
  bool operator==(const StageId&) const = default;
  bool operator<(const StageId& other) const {
    return pid != other.pid ? pid < other.pid : start_ticks < other.start_ticks;
  }
};

struct Stage {
  StageId id;
  std::string command;               // /proc/PID/comm, "" if unreadable
  std::vector<std::string> outputs;  // channels it writes (producer role)
  std::vector<std::string> inputs;   // channels it reads (consumer role)
  double backpressured_ms_per_sec = 0;
  double idle_ms_per_sec = 0;
  double busy_ms_per_sec = 0;
  sluice::transport::BackpressureLevel level = sluice::transport::BackpressureLevel::kOk;
  std::size_t pipeline = 0;  // index of the connected set of stages it belongs to
  bool bottleneck = false;
};

// A channel from the stage writing it to the stage reading it; an end with
// no living process is empty.
struct Link {
  std::string channel;
  std::optional<StageId> from;
  std::optional<StageId> to;
  double records_per_sec = 0;  // read by the consumer
};

struct PipelineReport {
  std::vector<Stage> stages;         // by pipeline, then downstream order, then pid
  std::vector<Link> links;           // in channel order
  std::vector<StageId> bottlenecks;  // at most one per pipeline
};

// Flink's reading: idle most of the time means waiting for input, not a bottleneck.
constexpr double kIdleMostOfTheTimeMsPerSec = 500.0;

PipelineReport analyse_pipeline(const std::vector<ChannelView>& channels);

// Opens channels read-only and derives their rates between successive calls
// to sample(). With no names it follows every channel on the host (new ones
// join, removed or unreadable ones are skipped); named channels must exist.
class ChannelSampler {
 public:
  explicit ChannelSampler(std::vector<std::string> names);  // throws for a named channel missing

  struct Sample {
    const sluice::transport::ChannelObserver* observer = nullptr;  // owned by the sampler
    ChannelView view;
  };
  // Snapshots every channel and derives rates against the baseline: the
  // previous snapshot, kept until it is at least `min_window_seconds` old so
  // that frequent callers still get rates over a useful window.
  std::vector<Sample> sample(double min_window_seconds = 0.0);

 private:
  struct Watched {
    std::unique_ptr<sluice::transport::ChannelObserver> observer;
    // One per subpartition: a fan-out is sampled as K views "NAME:s", each
    // linking the producer to that subpartition's consumer.
    std::vector<std::optional<sluice::transport::ChannelSnapshot>> baselines;
  };
  std::vector<std::string> names_;
  std::map<std::string, Watched> watched_;
};

std::vector<ChannelView> views_of(const std::vector<ChannelSampler::Sample>& samples);

// "1234 (sluice-consumer)"
std::string stage_label(const Stage& stage);

// Text lines for `sluice top` and `sluice stat`: a stages section with the
// bottleneck marked, then the links.
std::vector<std::string> pipeline_text_lines(const PipelineReport& report);

// JSON values (not objects with braces around the keys) for the keys
// "stages", "links" and "bottleneck".
std::string stages_json(const PipelineReport& report);
std::string links_json(const PipelineReport& report);
std::string bottleneck_json(const PipelineReport& report);

}  // namespace sluice::tools
