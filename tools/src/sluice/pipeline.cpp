#include "pipeline.hpp"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <fstream>
#include <set>

#include "../../common/json_line.hpp"
#include "sluice/shm/segment.hpp"

namespace st = sluice::transport;

namespace sluice::tools {

namespace {

std::string command_of(std::int32_t pid) {
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(comm, name);
  // A process may set any bytes as its name; keep terminals and parsers safe.
  for (char& c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      c = '?';
    }
  }
  return name;
}

std::optional<StageId> living_stage(const st::EndpointInfo& endpoint) {
  if (!endpoint.alive || endpoint.pid <= 0) {
    return std::nullopt;
  }
  return StageId{endpoint.pid, endpoint.start_ticks};
}

// Connected sets of stages, numbered by their smallest stage id.
std::map<StageId, std::size_t> number_pipelines(const std::map<StageId, Stage>& stages,
                                                const std::vector<Link>& links) {
  std::map<StageId, std::set<StageId>> neighbours;
  for (const Link& link : links) {
    if (link.from && link.to) {
      neighbours[*link.from].insert(*link.to);
      neighbours[*link.to].insert(*link.from);
    }
  }
  std::map<StageId, std::size_t> pipeline_of;
  std::size_t next = 0;
  for (const auto& [id, stage] : stages) {  // ascending ids: numbering follows them
    if (pipeline_of.count(id) != 0) {
      continue;
    }
    std::deque<StageId> pending{id};
    pipeline_of[id] = next;
    while (!pending.empty()) {
      const StageId at = pending.front();
      pending.pop_front();
      for (const StageId& other : neighbours[at]) {
        if (pipeline_of.emplace(other, next).second) {
          pending.push_back(other);
        }
      }
    }
    ++next;
  }
  return pipeline_of;
}

// Breadth-first from the sources (stages no other stage feeds). Stages no
// source reaches (a cycle, or fed only by one) start a second round at depth 0.
std::map<StageId, std::size_t> downstream_depths(const std::map<StageId, Stage>& stages,
                                                 const std::vector<Link>& links) {
  std::map<StageId, std::vector<StageId>> downstream;
  std::set<StageId> fed;
  for (const Link& link : links) {
    if (link.from && link.to && *link.from != *link.to) {
      downstream[*link.from].push_back(*link.to);
      fed.insert(*link.to);
    }
  }
  std::map<StageId, std::size_t> depth;
  auto walk = [&](std::deque<StageId> pending) {
    while (!pending.empty()) {
      const StageId at = pending.front();
      pending.pop_front();
      for (const StageId& next : downstream[at]) {
        if (depth.emplace(next, depth[at] + 1).second) {
          pending.push_back(next);
        }
      }
    }
  };
  for (const bool sources_only : {true, false}) {
    std::deque<StageId> seeds;
    for (const auto& [id, stage] : stages) {
      if ((!sources_only || fed.count(id) == 0) && depth.emplace(id, 0).second) {
        seeds.push_back(id);
      }
    }
    walk(std::move(seeds));
  }
  return depth;
}

std::string json_text(const std::string& text) {
  // JsonLine escapes; take the value back out of a one-key object.
  const std::string object = JsonLine().add("v", text).str();
  return object.substr(5, object.size() - 6);
}

std::string stage_id_json(const StageId& id) {
  return "\"pid\":" + std::to_string(id.pid) + ",\"start_ticks\":" + std::to_string(id.start_ticks);
}

std::string names_json(const std::vector<std::string>& names) {
  std::string out = "[";
  for (const std::string& name : names) {
    out += (out.size() > 1 ? "," : "") + json_text(name);
  }
  return out + "]";
}

std::string number(double value) {
  const std::string object = JsonLine().add("v", value).str();
  return object.substr(5, object.size() - 6);
}

}  // namespace

PipelineReport analyse_pipeline(const std::vector<ChannelView>& channels) {
  std::map<StageId, Stage> stages;
  PipelineReport report;
  // A fan-out producer's wait for a buffer is one wait, counted in every
  // subpartition's block: per channel it is the largest, not the sum.
  std::map<std::pair<StageId, std::string>, double> producer_waits;
  for (const ChannelView& channel : channels) {
    Link link;
    link.channel = channel.name;
    link.from = living_stage(channel.snapshot.producer);
    link.to = living_stage(channel.snapshot.consumer);
    link.records_per_sec = channel.rates.records_in_per_sec;
    if (link.from) {
      Stage& stage = stages[*link.from];
      stage.id = *link.from;
      stage.outputs.push_back(channel.name);
      double& wait = producer_waits[{*link.from, channel.name.substr(0, channel.name.find(':'))}];
      wait = std::max(wait, channel.rates.backpressured_ms_per_sec);
    }
    if (link.to) {
      Stage& stage = stages[*link.to];
      stage.id = *link.to;
      stage.inputs.push_back(channel.name);
      stage.idle_ms_per_sec += channel.rates.idle_ms_per_sec;
    }
    report.links.push_back(std::move(link));
  }
  for (const auto& [key, wait] : producer_waits) {
    stages[key.first].backpressured_ms_per_sec += wait;
  }
  for (auto& [id, stage] : stages) {
    stage.command = command_of(id.pid);
    stage.backpressured_ms_per_sec = std::clamp(stage.backpressured_ms_per_sec, 0.0, 1000.0);
    stage.idle_ms_per_sec = std::clamp(stage.idle_ms_per_sec, 0.0, 1000.0);
    stage.busy_ms_per_sec =
        std::max(0.0, 1000.0 - stage.backpressured_ms_per_sec - stage.idle_ms_per_sec);
    stage.level = st::backpressure_level(stage.backpressured_ms_per_sec);
  }
  const auto pipeline_of = number_pipelines(stages, report.links);
  const auto depth = downstream_depths(stages, report.links);
  for (auto& [id, stage] : stages) {
    stage.pipeline = pipeline_of.at(id);
    report.stages.push_back(stage);
  }
  std::stable_sort(report.stages.begin(), report.stages.end(), [&](const Stage& a, const Stage& b) {
    return std::pair(a.pipeline, depth.at(a.id)) < std::pair(b.pipeline, depth.at(b.id));
  });
  // Flink's rule: downstream from the sources, the first stage that is
  // busy (not idle most of the time) and not itself backpressured (OK).
  std::set<std::size_t> named;
  for (Stage& stage : report.stages) {
    if (named.count(stage.pipeline) == 0 && stage.idle_ms_per_sec < kIdleMostOfTheTimeMsPerSec &&
        stage.level == st::BackpressureLevel::kOk) {
      stage.bottleneck = true;
      named.insert(stage.pipeline);
      report.bottlenecks.push_back(stage.id);
    }
  }
  return report;
}

ChannelSampler::ChannelSampler(std::vector<std::string> names) : names_(std::move(names)) {
  for (const std::string& name : names_) {
    watched_[name].observer = std::make_unique<st::ChannelObserver>(name);
  }
}

std::vector<ChannelSampler::Sample> ChannelSampler::sample(double min_window_seconds) {
  if (names_.empty()) {
    std::map<std::string, Watched> next;
    for (const std::string& name : sluice::shm::Segment::list()) {
      auto found = watched_.find(name);
      if (found != watched_.end()) {
        next.emplace(name, std::move(found->second));
        continue;
      }
      try {
        next[name].observer = std::make_unique<st::ChannelObserver>(name);
      } catch (const std::exception&) {
        next.erase(name);  // not (yet) a readable channel
      }
    }
    watched_ = std::move(next);
  }
  std::vector<Sample> samples;
  for (auto& [name, watched] : watched_) {
    const std::uint32_t subpartitions = watched.observer->mapping().subpartitions();
    watched.baselines.resize(subpartitions);
    for (std::uint32_t s = 0; s < subpartitions; ++s) {
      std::optional<st::ChannelSnapshot>& baseline = watched.baselines[s];
      const st::ChannelSnapshot now = watched.observer->snapshot(s);
      const st::ChannelSnapshot& before = baseline ? *baseline : now;
      Sample sample{watched.observer.get(),
                    {subpartitions > 1 ? name + ":" + std::to_string(s) : name, now,
                     st::derive_rates(before, now, watched.observer->config())}};
      if (!baseline || sample.view.rates.seconds >= min_window_seconds) {
        baseline = now;
      }
      samples.push_back(std::move(sample));
    }
  }
  return samples;
}

std::vector<ChannelView> views_of(const std::vector<ChannelSampler::Sample>& samples) {
  std::vector<ChannelView> views;
  views.reserve(samples.size());
  for (const auto& sample : samples) {
    views.push_back(sample.view);
  }
  return views;
}

std::string stage_label(const Stage& stage) {
  return std::to_string(stage.id.pid) + (stage.command.empty() ? "" : " (" + stage.command + ")");
}

std::vector<std::string> pipeline_text_lines(const PipelineReport& report) {
  std::vector<std::string> lines;
  std::map<StageId, std::string> label;
  for (const Stage& stage : report.stages) {
    label[stage.id] = stage_label(stage);
  }
  char line[512];
  std::snprintf(line, sizeof(line), "%-28s %8s %7s %7s %-5s %-24s %-24s", "STAGE", "BP ms/s",
                "IDLE/s", "BUSY/s", "LEVEL", "WRITES", "READS");
  lines.emplace_back(line);
  auto joined = [](const std::vector<std::string>& names) {
    std::string text;
    for (const std::string& name : names) {
      text += (text.empty() ? "" : ",") + name;
    }
    return text.empty() ? std::string("-") : text;
  };
  for (const Stage& stage : report.stages) {
    std::snprintf(line, sizeof(line), "%-28.28s %8.0f %7.0f %7.0f %-5s %-24s %-24s%s",
                  label[stage.id].c_str(), stage.backpressured_ms_per_sec, stage.idle_ms_per_sec,
                  stage.busy_ms_per_sec, std::string(st::to_string(stage.level)).c_str(),
                  joined(stage.outputs).c_str(), joined(stage.inputs).c_str(),
                  stage.bottleneck ? "  <- bottleneck" : "");
    lines.emplace_back(line);
  }
  if (report.stages.empty()) {
    lines.emplace_back("(no living stages)");
  }
  for (const Link& link : report.links) {
    std::snprintf(line, sizeof(line), "link %-20s %s -> %s", link.channel.c_str(),
                  link.from ? label[*link.from].c_str() : "(none)",
                  link.to ? label[*link.to].c_str() : "(none)");
    lines.emplace_back(line);
  }
  if (report.bottlenecks.empty()) {
    lines.emplace_back(report.stages.empty()
                           ? "bottleneck: none"
                           : "bottleneck: none (every stage idle or backpressured)");
  } else {
    for (const StageId& id : report.bottlenecks) {
      lines.emplace_back("bottleneck: " + label[id]);
    }
  }
  return lines;
}

std::string stages_json(const PipelineReport& report) {
  std::string out = "[";
  for (const Stage& stage : report.stages) {
    JsonLine object;
    object.add("pid", static_cast<std::int64_t>(stage.id.pid))
        .add("start_ticks", stage.id.start_ticks)
        .add("command", stage.command)
        .add("pipeline", static_cast<std::uint64_t>(stage.pipeline))
        .add("backpressured_ms_per_sec", stage.backpressured_ms_per_sec)
        .add("idle_ms_per_sec", stage.idle_ms_per_sec)
        .add("busy_ms_per_sec", stage.busy_ms_per_sec)
        .add("backpressure_level", st::to_string(stage.level))
        .add("bottleneck", stage.bottleneck);
    std::string text = object.str();
    text.pop_back();
    text +=
        ",\"writes\":" + names_json(stage.outputs) + ",\"reads\":" + names_json(stage.inputs) + "}";
    out += (out.size() > 1 ? "," : "") + text;
  }
  return out + "]";
}

std::string links_json(const PipelineReport& report) {
  std::string out = "[";
  for (const Link& link : report.links) {
    std::string text = "{\"channel\":" + json_text(link.channel);
    text += ",\"from_pid\":" + (link.from ? std::to_string(link.from->pid) : std::string("null"));
    text += ",\"to_pid\":" + (link.to ? std::to_string(link.to->pid) : std::string("null"));
    text += ",\"records_per_sec\":" + number(link.records_per_sec) + "}";
    out += (out.size() > 1 ? "," : "") + text;
  }
  return out + "]";
}

std::string bottleneck_json(const PipelineReport& report) {
  std::map<StageId, const Stage*> by_id;
  for (const Stage& stage : report.stages) {
    by_id[stage.id] = &stage;
  }
  std::string out = "[";
  for (const StageId& id : report.bottlenecks) {
    out += (out.size() > 1 ? ",{" : "{") + stage_id_json(id) +
           ",\"command\":" + json_text(by_id.at(id)->command) + "}";
  }
  return out + "]";
}

}  // namespace sluice::tools
