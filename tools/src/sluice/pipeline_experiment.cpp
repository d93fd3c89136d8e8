// sluice experiment --pipeline: Flink's backpressure experiment across a
// four-process pipeline built from the demo programs: a fan-out source, two
// relay workers and a union-checking sink. Throttles one stage at a time by
// schedule, samples every stage's counters from the segments in fixed
// windows, and writes a CSV, a chart and summary JSON per run.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../common/json_line.hpp"
#include "../../common/svg_chart.hpp"
#include "commands.hpp"
#include "sluice/shm/setup_error.hpp"
#include "sluice/transport/channel.hpp"
#include "sluice/transport/channel_metrics.hpp"
#include "sluice/transport/sequence_pattern.hpp"

namespace st = sluice::transport;
using Clock = std::chrono::steady_clock;

namespace sluice::tools {

namespace {

constexpr const char* kPipelineUsage =
    "usage: sluice experiment --pipeline [options]\n"
    "\n"
    "Runs the backpressure experiment across a pipeline of four processes:\n"
    "  source: sluice-producer --consumers 2 (a fan-out channel S)\n"
    "  worker i (i = 0, 1): sluice-relay --from S:i --to Wi\n"
    "  sink: sluice-consumer --channel W0,W1 --union\n"
    "First the top speed of the unthrottled pipeline is measured, then three runs of\n"
    "five phases each:\n"
    "  sink: source at P%; source P% and sink at C%; none; sink C%; none\n"
    "  worker-rr, worker-ll: none; worker 1 at W% of the top speed per worker; none;\n"
    "    worker 1 at W%; none (partition round-robin, then least-loaded)\n"
    "Each run writes pipeline-RUN.csv and pipeline-RUN.svg (and .png when\n"
    "rsvg-convert is installed), and pipeline-RUN-trace.csv: every stage's record\n"
    "count each millisecond, from which the reaction to a throttle change is measured\n"
    "(from the throttled stage reaching its new rate to the source reaching its own,\n"
    "rates over trailing 10 ms); pipeline-summary.json holds every run's phases.\n"
    "\n"
    "options:\n"
    "  --phase-seconds S       length of each phase (default 4)\n"
    "  --source-percent P      source throttle in phases 1-2 of run sink (default 60)\n"
    "  --sink-percent C        sink throttle in phases 2 and 4 of run sink (default 30)\n"
    "  --worker-percent W      worker 1 throttle, % of top speed / 2 (default 20)\n"
    "  --window S              sampling window (default 0.5)\n"
    "  --calibrate-seconds S   length of each top-speed run (default 3)\n"
    "  --calibrate-runs N      top-speed runs; the fastest window counts (default 2)\n"
    "  --size BYTES            record size (default 64)\n"
    "  --out DIR               output directory (default sluice-experiment)\n"
    "  --buffers N             pool buffers of every channel of the pipeline (default 16)\n"
    "  --buffer-size BYTES     size of each (default 8K; K/M suffixes allowed). A throttle\n"
    "                          reaches the source once the buffers between fill up, so\n"
    "                          the reaction takes about (records they hold) / (rate change)\n"
    "\n"
    "The backpressure judgement is printed and in the JSON; it is not the exit status.\n"
    "exit status: 0 every process exited 0 and the sink received 0..N-1 exactly once;\n"
    "1 a process failed or records were lost; 2 bad arguments\n";

struct Phase {
  std::string label;
  double source_percent = 0;   // 0 = unthrottled; % of the top speed
  double worker1_percent = 0;  // % of the top speed per worker (top / 2)
  double sink_percent = 0;
};

struct RunPlan {
  std::string name;  // file names: pipeline-NAME.*
  std::string title;
  std::string partition;  // round-robin or least-loaded
  std::vector<Phase> phases;
};

struct Settings {
  double phase_seconds = 4;
  double source_percent = 60;
  double sink_percent = 30;
  double worker_percent = 20;
  double window = 0.5;
  double calibrate_seconds = 3;
  std::uint64_t calibrate_runs = 2;
  std::uint64_t size = 64;
  std::filesystem::path out = "sluice-experiment";
  // Every channel of the pipeline: what may be in flight between two stages,
  // which sets how long a throttle takes to reach the source.
  std::uint64_t buffers = 16;
  std::string buffer_size = "8K";
};

// One window's rates, records/s, and waits, ms per second.
struct Window {
  double start = 0;
  double end = 0;
  std::size_t phase = 0;
  double source = 0;
  std::array<double, 2> worker_in{};
  std::array<double, 2> worker_out{};
  double sink = 0;
  double source_blocked = 0;
  std::array<double, 2> worker_idle{};
  std::array<double, 2> worker_blocked{};
  double sink_idle = 0;
};

// Cumulative record counts at one moment, taken every millisecond, from
// which the reaction to a throttle change is measured (the windows above are
// too coarse for it).
struct Trace {
  double at = 0;  // seconds since the source started
  std::uint64_t source = 0;
  std::uint64_t worker1 = 0;  // records worker 1 wrote
  std::uint64_t sink = 0;
};

struct Outcome {
  std::vector<Window> windows;
  std::vector<Trace> trace;
  std::uint64_t records = 0;  // N, what the source was told to send
  bool children_ok = true;    // every process exited 0
  bool sink_ok = false;       // the sink's --union summary said ok
  std::uint64_t received = 0;
  std::uint64_t lost = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t corrupt = 0;
  double seconds = 0;               // from the source's start to the sink's end
  double sink_records_per_sec = 0;  // the sink's own measure, first record to last
  std::string problem;
};

std::filesystem::path programs_dir() {
  std::error_code error;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) {
    throw std::runtime_error("cannot find this program's directory (/proc/self/exe)");
  }
  return self.parent_path();
}

// Starts `argv` with stdout and stderr to `log`; the parent's stdio is untouched.
pid_t start_program(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& arg : argv) {
    args.push_back(const_cast<char*>(arg.c_str()));  // execv does not write them
  }
  args.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    throw std::runtime_error("cannot fork");
  }
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

std::string schedule_text(const std::vector<Phase>& phases, double seconds, double Phase::*percent,
                          double full) {
  std::string text;
  for (const Phase& phase : phases) {
    const double rate = phase.*percent > 0 ? full * phase.*percent / 100.0 : 0.0;
    char part[64];
    std::snprintf(part, sizeof(part), "%s%g:%.0f", text.empty() ? "" : ",", seconds, rate);
    text += part;
  }
  return text;
}

bool has_throttle(const std::vector<Phase>& phases, double Phase::*percent) {
  return std::any_of(phases.begin(), phases.end(), [&](const Phase& p) { return p.*percent > 0; });
}

std::optional<double> json_number(const std::string& line, const std::string& key) {
  const std::string pattern = "\"" + key + "\":";
  const auto at = line.find(pattern);
  if (at == std::string::npos) {
    return std::nullopt;
  }
  return std::strtod(line.c_str() + at + pattern.size(), nullptr);
}

// The last summary line of the sink's log.
std::string sink_summary(const std::filesystem::path& log) {
  std::ifstream in(log);
  std::string line;
  std::string summary;
  while (std::getline(in, line)) {
    if (line.find("\"type\":\"summary\"") != std::string::npos) {
      summary = line;
    }
  }
  return summary;
}

std::optional<st::ChannelObserver> observe(const std::string& name, Clock::time_point give_up) {
  while (Clock::now() < give_up) {
    try {
      return st::ChannelObserver(name);
    } catch (const std::exception&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return std::nullopt;
}

double per_second(std::uint64_t before, std::uint64_t after, double seconds) {
  return after >= before && seconds > 0 ? static_cast<double>(after - before) / seconds : 0.0;
}

double ms_per_second(std::uint64_t before_ns, std::uint64_t after_ns, double seconds) {
  return std::clamp(per_second(before_ns, after_ns, seconds) / 1e6, 0.0, 1000.0);
}

// The counters of every stage at one moment: S's two subpartitions, W0, W1.
struct Sample {
  std::array<st::ChannelSnapshot, 2> source;
  std::array<st::ChannelSnapshot, 2> output;
};

Sample take(const st::ChannelObserver& s, const st::ChannelObserver& w0,
            const st::ChannelObserver& w1) {
  return {{s.snapshot(0), s.snapshot(1)}, {w0.snapshot(0), w1.snapshot(0)}};
}

Window window_between(const Sample& a, const Sample& b) {
  Window w;
  const double seconds = static_cast<double>(b.source[0].taken_ns -
                                             std::min(b.source[0].taken_ns, a.source[0].taken_ns)) /
                         1e9;
  double source_blocked = 0;
  double sink_idle = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    w.source += per_second(a.source[i].produced.records, b.source[i].produced.records, seconds);
    // A fan-out producer counts each wait in every subpartition's block: the
    // largest is its blocked time (they differ only by a wait in progress).
    source_blocked = std::max(
        source_blocked,
        ms_per_second(a.source[i].produced.waited_ns, b.source[i].produced.waited_ns, seconds));
    w.worker_in[i] =
        per_second(a.source[i].consumed.records, b.source[i].consumed.records, seconds);
    w.worker_idle[i] =
        ms_per_second(a.source[i].consumed.waited_ns, b.source[i].consumed.waited_ns, seconds);
    w.worker_out[i] =
        per_second(a.output[i].produced.records, b.output[i].produced.records, seconds);
    w.worker_blocked[i] =
        ms_per_second(a.output[i].produced.waited_ns, b.output[i].produced.waited_ns, seconds);
    w.sink += per_second(a.output[i].consumed.records, b.output[i].consumed.records, seconds);
    // The gate waits on both inputs at once and counts the wait in each: the
    // larger is the time both were empty (a lower bound, see "Stages").
    sink_idle = std::max(sink_idle, ms_per_second(a.output[i].consumed.waited_ns,
                                                  b.output[i].consumed.waited_ns, seconds));
  }
  w.source_blocked = source_blocked;
  w.sink_idle = sink_idle;
  return w;
}

// Runs the pipeline through `phases` with the source told to send `records`.
Outcome run_pipeline(const Settings& s, const std::string& tag, const std::string& partition,
                     const std::vector<Phase>& phases, double phase_seconds, double top,
                     std::uint64_t records) {
  Outcome result;
  result.records = records;
  const std::string base = "pipex-" + std::to_string(getpid()) + "-" + tag;
  const std::string source = base + "-s";
  const std::array<std::string, 2> outputs = {base + "-w0", base + "-w1"};
  for (const std::string& name : {source, outputs[0], outputs[1]}) {
    st::remove_channel(name);
  }
  const std::filesystem::path dir = programs_dir();
  const std::string n = std::to_string(records);
  const std::string size = std::to_string(s.size);
  const auto log = [&](const char* stage) {
    return s.out / ("pipeline-" + tag + "-" + stage + ".log");
  };

  std::vector<std::string> sink = {(dir / "sluice-consumer").string(),
                                   "--channel",
                                   outputs[0] + "," + outputs[1],
                                   "--union",
                                   "--records",
                                   n,
                                   "--size",
                                   size,
                                   "--json",
                                   "--wait",
                                   "30"};
  if (has_throttle(phases, &Phase::sink_percent)) {
    sink.push_back("--rate-schedule");
    sink.push_back(schedule_text(phases, phase_seconds, &Phase::sink_percent, top));
  }
  std::array<std::vector<std::string>, 2> workers;
  for (std::size_t i = 0; i < 2; ++i) {
    workers[i] = {(dir / "sluice-relay").string(),
                  "--from",
                  source + ":" + std::to_string(i),
                  "--to",
                  outputs[i],
                  "--json",
                  "--wait",
                  "30"};
  }
  if (has_throttle(phases, &Phase::worker1_percent)) {
    workers[1].push_back("--rate-schedule");
    workers[1].push_back(schedule_text(phases, phase_seconds, &Phase::worker1_percent, top / 2));
  }
  std::vector<std::string> producer = {(dir / "sluice-producer").string(),
                                       "--channel",
                                       source,
                                       "--consumers",
                                       "2",
                                       "--partition",
                                       partition,
                                       "--records",
                                       n,
                                       "--size",
                                       size,
                                       "--json",
                                       "--wait",
                                       "30"};
  const std::vector<std::string> pool = {"--buffers", std::to_string(s.buffers), "--buffer-size",
                                         s.buffer_size};
  producer.insert(producer.end(), pool.begin(), pool.end());
  for (auto& worker : workers) {
    worker.insert(worker.end(), pool.begin(), pool.end());
  }
  if (has_throttle(phases, &Phase::source_percent)) {
    producer.push_back("--rate-schedule");
    producer.push_back(schedule_text(phases, phase_seconds, &Phase::source_percent, top));
  }

  // Readers first, so that each is waiting when its input appears.
  std::vector<pid_t> pids;
  pids.push_back(start_program(sink, log("sink")));
  pids.push_back(start_program(workers[0], log("worker0")));
  pids.push_back(start_program(workers[1], log("worker1")));
  const auto start = Clock::now();
  pids.push_back(start_program(producer, log("source")));
  std::vector<int> statuses(pids.size(), -1);
  std::vector<bool> done(pids.size(), false);
  const auto reap = [&] {
    for (std::size_t i = 0; i < pids.size(); ++i) {
      int status = 0;
      if (!done[i] && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        done[i] = true;
        statuses[i] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
    }
  };
  const auto all_done = [&] {
    return std::all_of(done.begin(), done.end(), [](bool d) { return d; });
  };

  const double planned = phase_seconds * static_cast<double>(phases.size());
  const auto give_up = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(std::max(60.0, 3 * planned + 30)));
  const auto open_give_up = Clock::now() + std::chrono::seconds(30);
  auto s_obs = observe(source, open_give_up);
  auto w0_obs = observe(outputs[0], open_give_up);
  auto w1_obs = observe(outputs[1], open_give_up);
  if (s_obs && w0_obs && w1_obs) {
    Sample before = take(*s_obs, *w0_obs, *w1_obs);
    bool flowing = false;  // windows before the first record are start-up, not the run
    const auto step =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s.window));
    const double start_ns = static_cast<double>(start.time_since_epoch().count());
    const auto trace_step = std::chrono::milliseconds(1);
    const auto trace = [&] {
      const Sample now = take(*s_obs, *w0_obs, *w1_obs);
      result.trace.push_back({(static_cast<double>(now.source[0].taken_ns) - start_ns) / 1e9,
                              now.source[0].produced.records + now.source[1].produced.records,
                              now.output[1].produced.records,
                              now.output[0].consumed.records + now.output[1].consumed.records});
    };
    for (auto next = Clock::now() + step; Clock::now() < give_up; next += step) {
      for (auto at = Clock::now() + trace_step; at < next; at += trace_step) {
        std::this_thread::sleep_until(at);
        trace();
      }
      std::this_thread::sleep_until(next);
      reap();
      const Sample after = take(*s_obs, *w0_obs, *w1_obs);
      Window w = window_between(before, after);
      w.start = (static_cast<double>(before.source[0].taken_ns) - start_ns) / 1e9;
      w.end = (static_cast<double>(after.source[0].taken_ns) - start_ns) / 1e9;
      w.phase = std::min(phases.size() - 1,
                         static_cast<std::size_t>(std::max(0.0, w.start + 1e-9) / phase_seconds));
      flowing = flowing || w.source > 0 || w.sink > 0;
      if (flowing) {
        result.windows.push_back(w);
      }
      before = after;
      if (all_done()) {
        break;
      }
    }
    // The last window holds the end of the stream, for part of which nothing
    // flowed: it would read as a slowdown nobody caused.
    if (result.windows.size() > 1) {
      result.windows.pop_back();
    }
  } else {
    result.problem = "a channel of the pipeline never appeared";
  }
  // Whatever still runs past the deadline (or after a failure) is stopped.
  const auto reap_until = Clock::now() + std::chrono::seconds(result.problem.empty() ? 30 : 5);
  while (!all_done() && Clock::now() < reap_until) {
    reap();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (std::size_t i = 0; i < pids.size(); ++i) {
    if (!done[i]) {
      kill(pids[i], SIGKILL);
      int status = 0;
      waitpid(pids[i], &status, 0);
      statuses[i] = -1;
      result.problem = "a stage did not finish in time and was killed";
    }
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const std::array<const char*, 4> names = {"sink", "worker 0", "worker 1", "source"};
  for (std::size_t i = 0; i < pids.size(); ++i) {
    if (statuses[i] != 0) {
      result.children_ok = false;
      if (result.problem.empty()) {
        result.problem = std::string(names[i]) + " exited with status " +
                         std::to_string(statuses[i]) + " (see " +
                         log(i == 0   ? "sink"
                             : i == 1 ? "worker0"
                             : i == 2 ? "worker1"
                                      : "source")
                             .string() +
                         ")";
      }
    }
  }
  const std::string summary = sink_summary(log("sink"));
  result.sink_ok = summary.find("\"ok\":true") != std::string::npos;
  result.received = static_cast<std::uint64_t>(json_number(summary, "records").value_or(0));
  result.lost = static_cast<std::uint64_t>(
      json_number(summary, "lost").value_or(static_cast<double>(records)));
  result.duplicated = static_cast<std::uint64_t>(json_number(summary, "duplicated").value_or(0));
  result.corrupt = static_cast<std::uint64_t>(json_number(summary, "corrupt").value_or(0));
  result.sink_records_per_sec = json_number(summary, "records_per_sec").value_or(0);
  if (result.problem.empty() && !result.sink_ok) {
    result.problem =
        "the sink's union check failed: " + (summary.empty() ? std::string("no summary") : summary);
  }
  for (const std::string& name : {source, outputs[0], outputs[1]}) {
    st::remove_channel(name);
  }
  if (result.problem.empty()) {  // the logs are kept only to explain a failure
    for (const char* stage : {"sink", "worker0", "worker1", "source"}) {
      std::filesystem::remove(log(stage));
    }
  }
  return result;
}

double median(std::vector<double> values) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

bool within(double value, double reference, double share) {
  return std::abs(value - reference) <= share * reference;
}

// The workers are two parallel instances of one stage (Flink's subtasks):
// the stage's rate is their sum, each carries the share its partition gives it.
bool following(const Window& w) {
  return within(w.source, w.sink, 0.10) && within(w.worker_in[0] + w.worker_in[1], w.sink, 0.10) &&
         within(w.worker_out[0] + w.worker_out[1], w.sink, 0.10);
}

std::string percent_text(double percent) {
  return percent > 0 ? std::to_string(static_cast<int>(std::lround(percent))) + "%" : "-";
}

std::string throttle_text(const Phase& p) {
  std::string text;
  const auto add = [&](const char* who, double percent) {
    if (percent > 0) {
      text += (text.empty() ? "" : " + ") + std::string(who) + " " + percent_text(percent);
    }
  };
  add("source", p.source_percent);
  add("worker 1", p.worker1_percent);
  add("sink", p.sink_percent);
  return text.empty() ? "no throttle" : text;
}

// A phase's mark on the chart: only the throttles that changed (as the 1:1
// chart does), so that the labels of short phases do not run into each other.
std::string marker_text(const std::vector<Phase>& phases, std::size_t i) {
  if (i == 0) {
    return throttle_text(phases[0]);
  }
  Phase changed;
  const Phase& now = phases[i];
  const Phase& before = phases[i - 1];
  changed.source_percent = now.source_percent != before.source_percent ? now.source_percent : 0;
  changed.worker1_percent = now.worker1_percent != before.worker1_percent ? now.worker1_percent : 0;
  changed.sink_percent = now.sink_percent != before.sink_percent ? now.sink_percent : 0;
  const std::string text = throttle_text(changed);
  return text == "no throttle" ? throttle_text(now) : text;
}

// The millisecond samples the reactions are measured from.
void write_trace_csv(const std::filesystem::path& path, const Outcome& run) {
  std::ofstream csv(path);
  csv << "seconds,source_records,worker1_out_records,sink_records\n";
  for (const Trace& t : run.trace) {
    csv << std::fixed << std::setprecision(4) << t.at << ',' << t.source << ',' << t.worker1 << ','
        << t.sink << '\n';
  }
}

void write_csv(const std::filesystem::path& path, const Outcome& run,
               const std::vector<Phase>& phases) {
  std::ofstream csv(path);
  csv << "window_start_s,window_end_s,phase,phase_label,source_records_per_sec,"
         "worker0_in_records_per_sec,worker0_out_records_per_sec,worker1_in_records_per_sec,"
         "worker1_out_records_per_sec,sink_records_per_sec,source_blocked_ms_per_sec,"
         "worker0_idle_ms_per_sec,worker0_blocked_ms_per_sec,worker1_idle_ms_per_sec,"
         "worker1_blocked_ms_per_sec,sink_idle_ms_per_sec,following\n";
  for (const Window& w : run.windows) {
    char row[768];
    std::snprintf(
        row, sizeof(row),
        "%.3f,%.3f,%zu,%s,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%d\n",
        w.start, w.end, w.phase + 1, throttle_text(phases[w.phase]).c_str(), w.source,
        w.worker_in[0], w.worker_out[0], w.worker_in[1], w.worker_out[1], w.sink, w.source_blocked,
        w.worker_idle[0], w.worker_blocked[0], w.worker_idle[1], w.worker_blocked[1], w.sink_idle,
        following(w) ? 1 : 0);
    csv << row;
  }
}

bool write_chart(const std::filesystem::path& svg_path, const std::filesystem::path& png_path,
                 const RunPlan& plan, const Outcome& run, double phase_seconds, double top,
                 std::uint64_t size) {
  LineChart chart;
  chart.title = "Pipeline, " + plan.title + ": " + std::to_string(size) +
                "-byte records, top speed " + std::to_string(static_cast<long long>(top)) +
                " records/s";
  chart.x_label = "time (s)";
  chart.y_label = "throughput (% of top speed)";
  chart.right_scale = top / 100.0;
  chart.right_label = "records/s";
  ChartSeries source{"source", "#7fb2e5", 7.0, "", {}, {}};
  ChartSeries w0{"worker 0 (out)", "#2ca02c", 2.0, "6 3", {}, {}};
  ChartSeries w1{"worker 1 (out)", "#9467bd", 2.0, "2 2", {}, {}};
  ChartSeries sink{"sink", "#d62728", 2.0, "", {}, {}};
  LineChart waits;
  waits.title = "Waiting: blocked on a full pool (backpressured) or idle for data";
  waits.x_label = "time (s)";
  waits.y_label = "ms per second";
  waits.y_max = 1000;
  waits.y_step = 200;
  waits.right_scale = 0.1;
  waits.right_label = "% of the time";
  ChartSeries source_blocked{"source blocked", "#7fb2e5", 7.0, "", {}, {}};
  ChartSeries w0_blocked{"worker 0 blocked", "#2ca02c", 2.0, "6 3", {}, {}};
  ChartSeries w1_blocked{"worker 1 blocked", "#9467bd", 2.0, "2 2", {}, {}};
  // Idle workers mark a stage starved by a slow sibling (round-robin); blocked
  // ones, backpressure passing through them.
  ChartSeries w0_idle{"worker 0 idle", "#98df8a", 1.5, "", {}, {}};
  ChartSeries w1_idle{"worker 1 idle", "#c5b0d5", 1.5, "", {}, {}};
  ChartSeries sink_idle{"sink idle", "#d62728", 2.0, "", {}, {}};
  for (const Window& w : run.windows) {
    const double mid = (w.start + w.end) / 2;
    for (ChartSeries* line : {&source, &w0, &w1, &sink, &source_blocked, &w0_idle, &w1_idle,
                              &w0_blocked, &w1_blocked, &sink_idle}) {
      line->x.push_back(mid);
    }
    source.y.push_back(100.0 * w.source / top);
    w0.y.push_back(100.0 * w.worker_out[0] / top);
    w1.y.push_back(100.0 * w.worker_out[1] / top);
    sink.y.push_back(100.0 * w.sink / top);
    source_blocked.y.push_back(w.source_blocked);
    w0_idle.y.push_back(w.worker_idle[0]);
    w1_idle.y.push_back(w.worker_idle[1]);
    w0_blocked.y.push_back(w.worker_blocked[0]);
    w1_blocked.y.push_back(w.worker_blocked[1]);
    sink_idle.y.push_back(w.sink_idle);
  }
  chart.series = {source, w0, w1, sink};
  for (const ChartSeries& line : chart.series) {
    for (double y : line.y) {
      chart.y_max = std::max(chart.y_max, std::ceil((y + 10) / 20) * 20);
    }
  }
  waits.series = {source_blocked, w0_idle, w1_idle, w0_blocked, w1_blocked, sink_idle};
  for (std::size_t i = 0; i < plan.phases.size(); ++i) {
    chart.markers.push_back({phase_seconds * static_cast<double>(i), marker_text(plan.phases, i)});
    waits.markers.push_back({phase_seconds * static_cast<double>(i), ""});
  }
  std::ofstream(svg_path) << stacked_svg({{chart, 440}, {waits, 300}});
  std::filesystem::remove(png_path);
  // NOLINTNEXTLINE(concurrency-mt-unsafe): no other thread runs
  if (std::system("command -v rsvg-convert >/dev/null 2>&1") != 0) {
    return false;
  }
  const std::string command =
      "rsvg-convert -o '" + png_path.string() + "' '" + svg_path.string() + "'";
  return std::system(command.c_str()) == 0;  // NOLINT(concurrency-mt-unsafe)
}

// Seconds from `boundary` to the end of the first window from which the
// source stays within 10% of `level` for the rest of the phase: an upper
// bound at the window's resolution. Negative when it never settles.
double settled_after(const std::vector<Window>& windows, std::size_t phase, double boundary,
                     double level) {
  double settled = -1;
  for (const Window& w : windows) {
    if (w.phase != phase || w.end <= boundary) {
      continue;
    }
    if (!within(w.source, level, 0.10)) {
      settled = -1;
    } else if (settled < 0) {
      settled = w.end - boundary;
    }
  }
  return settled;
}

// The moment, in seconds, at or after `from` when the rate of `count` over
// the trailing 10 ms first comes within 10% of `level`; nothing if it does
// not before `until`. Both ends of a reaction are found this way, so the
// trailing window delays both alike.
std::optional<double> reached(const std::vector<Trace>& trace, std::uint64_t Trace::*count,
                              double from, double until, double level) {
  constexpr double kSpan = 0.010;
  std::size_t tail = 0;
  for (std::size_t k = 0; k < trace.size(); ++k) {
    const Trace& now = trace[k];
    while (tail + 1 < k && trace[tail + 1].at <= now.at - kSpan) {
      ++tail;
    }
    if (now.at < from || tail == k || now.at - trace[tail].at < kSpan) {
      continue;
    }
    if (now.at > until) {
      break;
    }
    const double rate = per_second(trace[tail].*count, now.*count, now.at - trace[tail].at);
    if (within(rate, level, 0.10)) {
      return now.at;
    }
  }
  return std::nullopt;
}

// Milliseconds from the moment the throttled stage reached its new rate to
// the moment the source reached its own (0 when the source was there first):
// how long backpressure took to carry the change upstream. Nothing for a
// change the source made itself, one that changed the source's rate by less
// than a quarter (least-loaded routing around a slow worker: nothing to
// follow), or where either never settled within a second of the boundary.
std::optional<double> reaction_ms(const Outcome& run, const Phase& before, const Phase& now,
                                  double boundary, double stage_level, double source_level,
                                  double source_level_before) {
  if (std::abs(source_level - source_level_before) <
      0.25 * std::max(source_level, source_level_before)) {
    return std::nullopt;
  }
  std::uint64_t Trace::*stage = nullptr;
  if (now.sink_percent != before.sink_percent) {
    stage = &Trace::sink;
  } else if (now.worker1_percent != before.worker1_percent) {
    stage = &Trace::worker1;
  } else {
    return std::nullopt;
  }
  const auto changed = reached(run.trace, stage, boundary - 0.25, boundary + 1.0, stage_level);
  if (!changed) {
    return std::nullopt;
  }
  const auto followed = reached(run.trace, &Trace::source, *changed, *changed + 1.0, source_level);
  if (!followed) {
    return std::nullopt;
  }
  return 1000 * (*followed - *changed);
}

// The phase table, the verdicts and the run's JSON object.
std::string report(const RunPlan& plan, const Outcome& run, double phase_seconds, double top) {
  std::printf("\nrun %s (%s):\n", plan.name.c_str(), plan.title.c_str());
  std::printf(
      "| phase | throttle | source %% | worker 0 %% | worker 1 %% | sink %% | windows where every "
      "stage is within 10%% of the sink | settled (s) | reaction (ms) |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  std::string phases_json = "[";
  bool all_following = true;
  double slowest_reaction_ms = 0;
  bool reactions_found = true;
  double source_before = 0;  // the previous phase's source rate
  for (std::size_t i = 0; i < plan.phases.size(); ++i) {
    std::vector<double> source, w0, w1, sink;
    int windows = 0;
    int follow = 0;
    bool first = true;
    for (const Window& w : run.windows) {
      if (w.phase != i) {
        continue;
      }
      if (first) {  // the hand-over window mixes two phases
        first = false;
        continue;
      }
      source.push_back(w.source);
      w0.push_back(w.worker_out[0]);
      w1.push_back(w.worker_out[1]);
      sink.push_back(w.sink);
      ++windows;
      follow += following(w) ? 1 : 0;
    }
    const bool judged = windows > 0 && follow == windows;  // a phase the run never reached fails
    all_following = all_following && judged;
    const double boundary = phase_seconds * static_cast<double>(i);
    const bool changed =
        i > 0 && throttle_text(plan.phases[i]) != throttle_text(plan.phases[i - 1]);
    const double react =
        changed && !source.empty() ? settled_after(run.windows, i, boundary, median(source)) : -1;
    char react_text[32] = "-";
    if (changed) {
      std::snprintf(react_text, sizeof(react_text), react >= 0 ? "%.2f" : "not settled", react);
    }
    const std::optional<double> react_ms =
        changed && !source.empty()
            ? reaction_ms(run, plan.phases[i - 1], plan.phases[i], boundary,
                          plan.phases[i].sink_percent != plan.phases[i - 1].sink_percent
                              ? median(sink)
                              : median(w1),
                          median(source), source_before)
            : std::nullopt;
    char react_ms_text[32] = "-";
    if (react_ms) {
      std::snprintf(react_ms_text, sizeof(react_ms_text), "%.1f", *react_ms);
      slowest_reaction_ms = std::max(slowest_reaction_ms, *react_ms);
    } else if (changed && !source.empty() &&
               std::abs(median(source) - source_before) >=
                   0.25 * std::max(median(source), source_before) &&
               (plan.phases[i].sink_percent != plan.phases[i - 1].sink_percent ||
                plan.phases[i].worker1_percent != plan.phases[i - 1].worker1_percent)) {
      std::snprintf(react_ms_text, sizeof(react_ms_text), "not found");
      reactions_found = false;
    }
    source_before = source.empty() ? source_before : median(source);
    std::printf("| %zu | %s | %.0f | %.0f | %.0f | %.0f | %d of %d | %s | %s |\n", i + 1,
                throttle_text(plan.phases[i]).c_str(), 100 * median(source) / top,
                100 * median(w0) / top, 100 * median(w1) / top, 100 * median(sink) / top, follow,
                windows, react_text, react_ms_text);
    JsonLine phase;
    phase.add("phase", static_cast<std::uint64_t>(i + 1))
        .add("throttle", throttle_text(plan.phases[i]))
        .add("source_records_per_sec", median(source))
        .add("worker0_records_per_sec", median(w0))
        .add("worker1_records_per_sec", median(w1))
        .add("sink_records_per_sec", median(sink))
        .add("windows", static_cast<std::uint64_t>(windows))
        .add("windows_following", static_cast<std::uint64_t>(follow))
        .add("every_stage_within_10_percent_of_sink", judged);
    if (react >= 0) {
      phase.add("reaction_seconds", react);
    } else {
      phase.add_null("reaction_seconds");
    }
    if (react_ms) {
      phase.add("reaction_ms", *react_ms);
    } else {
      phase.add_null("reaction_ms");
    }
    phases_json += (i > 0 ? "," : "") + phase.str();
  }
  phases_json += "]";
  std::printf(
      "records: %llu sent, %llu received, %llu lost, %llu duplicated, %llu corrupt (sink's --union "
      "check %s)\n",
      static_cast<unsigned long long>(run.records), static_cast<unsigned long long>(run.received),
      static_cast<unsigned long long>(run.lost), static_cast<unsigned long long>(run.duplicated),
      static_cast<unsigned long long>(run.corrupt), run.sink_ok ? "ok" : "FAILED");
  std::printf("backpressure: %s\n",
              all_following
                  ? "every stage followed the sink in every window after each phase's first"
                  : "not every stage followed the sink in every window (see the table)");
  std::printf("reaction: %s\n", !reactions_found
                                    ? "not found for every throttle change (see the table)"
                                : slowest_reaction_ms < 10
                                    ? "the source followed every throttle change within 10 ms"
                                    : "the source took 10 ms or more to follow a throttle change");
  JsonLine out;
  out.add("run", plan.name)
      .add("partition", plan.partition)
      .add("ok", run.children_ok && run.sink_ok && run.lost == 0)
      .add("records", run.records)
      .add("received", run.received)
      .add("lost", run.lost)
      .add("duplicated", run.duplicated)
      .add("corrupt", run.corrupt)
      .add("every_stage_followed", all_following)
      .add("reaction_under_10_ms", reactions_found && slowest_reaction_ms < 10)
      .add("window_seconds",
           run.windows.empty() ? 0.0 : run.windows.back().end - run.windows.back().start)
      .add_raw("phases", phases_json);
  return out.str();
}

// Records for a run to last at least its phases. A throttled phase moves a
// known number; one at the machine's speed gets room for a machine running
// faster than during the calibration (a shared machine often does). The last
// phase's rate continues, so a slower machine, or the room, only makes the
// last phase longer.
std::uint64_t records_for(const RunPlan& plan, double seconds, double top) {
  double records = 0;
  for (const Phase& p : plan.phases) {
    double rate = 0;
    if (p.source_percent > 0) {
      rate = top * p.source_percent / 100;
    }
    if (p.sink_percent > 0) {
      rate = rate > 0 ? std::min(rate, top * p.sink_percent / 100) : top * p.sink_percent / 100;
    }
    // Round-robin gives the slow worker every other record: 2 x (top / 2 x W%).
    // Least-loaded routes around it and may keep the machine's speed.
    if (p.worker1_percent > 0 && plan.partition == "round-robin") {
      rate = top * p.worker1_percent / 100;
    }
    records += (rate > 0 ? 1.05 * rate : 1.6 * top) * seconds;
  }
  return std::max<std::uint64_t>(1000, static_cast<std::uint64_t>(records));
}

Settings parse(int argc, char** argv) {
  const Arguments args(
      argc, argv, 2,
      {"--phase-seconds", "--source-percent", "--sink-percent", "--worker-percent", "--window",
       "--calibrate-seconds", "--calibrate-runs", "--size", "--out", "--buffers", "--buffer-size"},
      {"--pipeline", "--help"});
  if (args.has("--help")) {
    std::fputs(kPipelineUsage, stdout);
    std::exit(0);  // NOLINT(concurrency-mt-unsafe): single-threaded, before any work
  }
  if (!args.positional().empty()) {
    throw UsageError("experiment takes no names");
  }
  Settings s;
  if (args.has("--phase-seconds")) {
    s.phase_seconds = args.real_number("--phase-seconds", 0.5, 3600);
  }
  if (args.has("--source-percent")) {
    s.source_percent = args.real_number("--source-percent", 1, 100);
  }
  if (args.has("--sink-percent")) {
    s.sink_percent = args.real_number("--sink-percent", 1, 100);
  }
  if (args.has("--worker-percent")) {
    s.worker_percent = args.real_number("--worker-percent", 1, 100);
  }
  if (args.has("--window")) {
    s.window = args.real_number("--window", 0.05, 60);
  }
  if (args.has("--calibrate-seconds")) {
    s.calibrate_seconds = args.real_number("--calibrate-seconds", 0.5, 600);
  }
  if (auto runs = args.optional_unsigned("--calibrate-runs", 1, 20)) {
    s.calibrate_runs = *runs;
  }
  if (auto size = args.optional_unsigned("--size", st::pattern::kMinRecordBytes, 1ULL << 20)) {
    s.size = *size;
  }
  if (auto out = args.optional_text("--out")) {
    s.out = *out;
  }
  // Checked by the programs the pipeline runs (a bad value stops the run
  // with their message in its log).
  if (auto buffers = args.optional_unsigned("--buffers", 3, 1U << 20)) {
    s.buffers = *buffers;
  }
  if (auto buffer_size = args.optional_text("--buffer-size")) {
    s.buffer_size = *buffer_size;
  }
  if (s.window > s.phase_seconds) {
    throw UsageError("--window must not be longer than --phase-seconds");
  }
  return s;
}

}  // namespace

int run_pipeline_experiment(int argc, char** argv) {
  const Settings s = parse(argc, argv);
  std::filesystem::create_directories(s.out);

  // Top speed: a first run sizes the runs of about --calibrate-seconds.
  std::printf("measuring the pipeline's top speed (%llu-byte records)...\n",
              static_cast<unsigned long long>(s.size));
  std::fflush(stdout);
  const std::vector<Phase> unthrottled = {{"top speed", 0, 0, 0}};
  const Outcome probe = run_pipeline(s, "probe", "round-robin", unthrottled, 1, 0, 2'000'000);
  if (!probe.children_ok || !probe.sink_ok) {
    std::fprintf(stderr, "sluice experiment: calibration failed: %s\n", probe.problem.c_str());
    return 1;
  }
  const double probe_rate = std::max(probe.sink_records_per_sec, 1e5);
  // The fastest window of several runs: interference only ever slows a
  // window down, and one short run can fall entirely into a slow spell.
  double top = 0;
  for (std::uint64_t run = 0; run < s.calibrate_runs; ++run) {
    const Outcome calibration =
        run_pipeline(s, "calibration", "round-robin", unthrottled, s.calibrate_seconds, 0,
                     std::max<std::uint64_t>(
                         1000, static_cast<std::uint64_t>(probe_rate * s.calibrate_seconds)));
    if (!calibration.children_ok || !calibration.sink_ok) {
      std::fprintf(stderr, "sluice experiment: calibration failed: %s\n",
                   calibration.problem.c_str());
      return 1;
    }
    // The first window holds the start-up.
    for (std::size_t i = calibration.windows.size() > 1 ? 1 : 0; i < calibration.windows.size();
         ++i) {
      top = std::max(top, calibration.windows[i].sink);
    }
    top = std::max(top, calibration.sink_records_per_sec);
  }
  std::printf("top speed: %.0f records/s through source, 2 workers and sink\n", top);

  const std::vector<Phase> sink_phases = {{"", s.source_percent, 0, 0},
                                          {"", s.source_percent, 0, s.sink_percent},
                                          {"", 0, 0, 0},
                                          {"", 0, 0, s.sink_percent},
                                          {"", 0, 0, 0}};
  const std::vector<Phase> worker_phases = {{"", 0, 0, 0},
                                            {"", 0, s.worker_percent, 0},
                                            {"", 0, 0, 0},
                                            {"", 0, s.worker_percent, 0},
                                            {"", 0, 0, 0}};
  const std::vector<RunPlan> plans = {
      {"sink", "sink throttled", "round-robin", sink_phases},
      {"worker-rr", "worker 1 throttled, round-robin", "round-robin", worker_phases},
      {"worker-ll", "worker 1 throttled, least-loaded", "least-loaded", worker_phases},
  };
  bool ok = true;
  std::string runs_json = "[";
  for (const RunPlan& plan : plans) {
    std::printf("\nrunning %s: %zu phases of %.1f s...\n", plan.title.c_str(), plan.phases.size(),
                s.phase_seconds);
    std::fflush(stdout);
    const Outcome run = run_pipeline(s, plan.name, plan.partition, plan.phases, s.phase_seconds,
                                     top, records_for(plan, s.phase_seconds, top));
    const auto csv = s.out / ("pipeline-" + plan.name + ".csv");
    const auto svg = s.out / ("pipeline-" + plan.name + ".svg");
    const auto png = s.out / ("pipeline-" + plan.name + ".png");
    write_csv(csv, run, plan.phases);
    write_trace_csv(s.out / ("pipeline-" + plan.name + "-trace.csv"), run);
    const bool drew_png = write_chart(svg, png, plan, run, s.phase_seconds, top, s.size);
    runs_json += (runs_json.size() > 1 ? "," : "") + report(plan, run, s.phase_seconds, top);
    std::printf("csv:   %s\nchart: %s%s%s\n", csv.c_str(), svg.c_str(), drew_png ? "\n       " : "",
                drew_png ? png.c_str() : "");
    if (!run.children_ok || !run.sink_ok || run.lost != 0 || !run.problem.empty()) {
      std::fprintf(stderr, "sluice experiment: run %s: %s\n", plan.name.c_str(),
                   run.problem.c_str());
      ok = false;
    }
  }
  runs_json += "]";
  JsonLine summary;
  summary.add("top_records_per_sec", top)
      .add("record_bytes", s.size)
      .add("phase_seconds", s.phase_seconds)
      .add("window_seconds", s.window)
      .add("reaction_resolution_seconds", s.window)
      .add("reaction_ms_resolution", 1.0)
      .add("ok", ok)
      .add_raw("runs", runs_json);
  const auto summary_path = s.out / "pipeline-summary.json";
  std::ofstream(summary_path) << summary.str() << "\n";
  std::printf(
      "\nsummary: %s\nsettled times are upper bounds at the window's resolution (%.2f s); "
      "reactions (ms) are measured from 1 ms samples over trailing 10 ms rates\n",
      summary_path.c_str(), s.window);
  return ok ? 0 : 1;
}

}  // namespace sluice::tools
