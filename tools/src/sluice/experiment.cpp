// sluice experiment: Flink's 2015 backpressure experiment, across processes.
// A producer process and a consumer process exchange records through one
// channel while each is throttled by a schedule; this process samples both
// sides' counters in fixed windows, writes a CSV and an SVG chart (PNG too
// when rsvg-convert is installed), checks that no record was lost, and
// prints the phase table.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../../common/json_line.hpp"
#include "../../common/pacer.hpp"
#include "../../common/sequence_check.hpp"
#include "../../common/svg_chart.hpp"
#include "commands.hpp"
#include "sluice/transport/channel_metrics.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/record_writer.hpp"

namespace st = sluice::transport;
using Clock = std::chrono::steady_clock;

namespace sluice::tools {

namespace {

constexpr const char* kUsage =
    "usage: sluice experiment [options]\n"
    "\n"
    "Runs Flink's backpressure experiment between two processes: first the top\n"
    "speed is measured (the fastest window of several runs), then five phases: producer at P% (the "
    "consumer follows);\n"
    "consumer at C% (the producer must drop to it); no throttle (both at 100%);\n"
    "consumer at C% again; no throttle again. Writes experiment.csv, experiment.svg\n"
    "(and experiment.png when rsvg-convert is installed) and summary.json. The\n"
    "chart shows throughput in % of the top speed and in records/s, and below it\n"
    "the time the producer was blocked and the consumer idle: the side that is\n"
    "neither blocked nor idle is the one that limits. The unthrottled phases are\n"
    "compared with the calibration, with a warning outside 80-125% of it.\n"
    "\n"
    "options:\n"
    "  --phase-seconds S       length of each phase (default 4)\n"
    "  --producer-percent P    producer throttle in phases 1-2 (default 60)\n"
    "  --consumer-percent C    consumer throttle in phases 2 and 4 (default 30)\n"
    "  --window S              sampling window (default 1)\n"
    "  --calibrate-seconds S   length of each top-speed run (default 3)\n"
    "  --calibrate-runs N      top-speed runs; the fastest window counts (default 3)\n"
    "  --size BYTES            record size (default 64)\n"
    "  --buffers N             pool buffers (default 64)\n"
    "  --buffer-size BYTES     pool buffer size (default 32K)\n"
    "  --out DIR               output directory (default sluice-experiment)\n"
    "  --pipeline              the experiment across a four-process pipeline instead\n"
    "                          (sluice experiment --pipeline --help)\n"
    "\n"
    "exit status: 0 every record arrived intact; 1 loss, corruption or a failed\n"
    "process; 2 bad arguments\n";

struct Phase {
  std::string label;
  double producer_percent = 0;  // 0 = unthrottled
  double consumer_percent = 0;
};

struct Settings {
  double phase_seconds = 4;
  double producer_percent = 60;
  double consumer_percent = 30;
  double window = 1;
  double calibrate_seconds = 3;
  std::uint64_t calibrate_runs = 3;
  std::uint64_t size = 64;
  st::ChannelConfig config;
  std::filesystem::path out = "sluice-experiment";
};

// What a child reports through its pipe when it is done.
struct ChildReport {
  std::uint64_t records = 0;
  std::uint64_t lost = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t corrupt = 0;
  std::uint64_t last_seq = 0;
  std::int32_t status = -1;  // 0 = clean end
};

struct Window {
  double start = 0;
  double end = 0;
  std::size_t phase = 0;
  double producer_rate = 0;
  double consumer_rate = 0;
  double backpressured_ms = 0;
  double idle_ms = 0;
};

struct Transfer {
  std::vector<Window> windows;
  ChildReport producer;
  ChildReport consumer;
  bool ok = false;
  std::string problem;
};

std::vector<RatePhase> schedule_for(const std::vector<Phase>& phases, double seconds, double top,
                                    bool producer_side) {
  std::vector<RatePhase> schedule;
  for (const Phase& phase : phases) {
    const double percent = producer_side ? phase.producer_percent : phase.consumer_percent;
    schedule.push_back({seconds, percent > 0 ? top * percent / 100.0 : 0.0});
  }
  return schedule;
}

void send_report(int fd, const ChildReport& report) {
  (void)!write(fd, &report, sizeof(report));
}

[[noreturn]] void producer_child(const std::string& channel, const Settings& s,
                                 std::vector<RatePhase> schedule, Clock::time_point start,
                                 Clock::time_point stop, int report_fd) {
  ChildReport report;
  try {
    auto producer = st::Producer::create(channel, s.config, {});
    st::RecordWriter writer(producer);
    Pacer pacer(std::move(schedule));
    std::vector<std::byte> record(s.size);
    std::this_thread::sleep_until(start);
    pacer.start(start);
    st::Status status = st::Status::kOk;
    std::uint64_t seq = 0;
    for (;; ++seq) {
      if ((seq & 255U) == 0 && Clock::now() >= stop) {
        break;
      }
      pacer.pace([&writer] { (void)writer.flush_if_due(); });
      st::pattern::fill(record, seq);
      if ((status = writer.write(record)) != st::Status::kOk) {
        break;
      }
    }
    if (status == st::Status::kOk) {
      status = writer.close();
    }
    report.records = seq;
    report.last_seq = seq > 0 ? seq - 1 : 0;
    report.status = status == st::Status::kOk ? 0 : static_cast<std::int32_t>(status);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice experiment: producer: %s\n", e.what());
    report.status = 100;
  }
  send_report(report_fd, report);
  _exit(report.status == 0 ? 0 : 1);
}

[[noreturn]] void consumer_child(const std::string& channel, const Settings& s,
                                 std::vector<RatePhase> schedule, Clock::time_point start,
                                 int report_fd) {
  ChildReport report;
  try {
    st::OpenOptions open;
    open.wait_for_channel = std::chrono::seconds(30);
    auto consumer = st::Consumer::open(channel, open);
    st::Status status;
    SequenceCheck check;
    check.record_bytes = s.size;
    {
      st::RecordReader reader(consumer);
      Pacer pacer(std::move(schedule));
      std::this_thread::sleep_until(start);
      pacer.start(start);
      std::span<const std::byte> record;
      for (;;) {
        pacer.pace([] {});
        if ((status = reader.next(record)) != st::Status::kOk) {
          break;
        }
        (void)check.observe(record);
      }
    }
    report.records = check.received;
    report.lost = check.lost;
    report.duplicated = check.duplicated;
    report.corrupt = check.corrupt;
    report.last_seq = check.last_seq.value_or(0);
    report.status = status == st::Status::kClosed ? 0 : static_cast<std::int32_t>(status);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice experiment: consumer: %s\n", e.what());
    report.status = 100;
  }
  send_report(report_fd, report);
  _exit(report.status == 0 && report.lost == 0 && report.corrupt == 0 ? 0 : 1);
}

struct Child {
  pid_t pid = -1;
  int report_fd = -1;
};

template <class Body>
Child spawn(Body body) {
  int fds[2];
  if (pipe(fds) != 0) {
    throw std::runtime_error("cannot create a pipe");
  }
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) {
    throw std::runtime_error("cannot fork");
  }
  if (pid == 0) {
    close(fds[0]);
    body(fds[1]);  // never returns
  }
  close(fds[1]);
  return {pid, fds[0]};
}

ChildReport collect(Child& child, Clock::time_point deadline, bool& ok) {
  ChildReport report;
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(child.pid, &status, WNOHANG);
    if (done == child.pid) {
      break;
    }
    if (Clock::now() > deadline) {
      kill(child.pid, SIGKILL);
      waitpid(child.pid, &status, 0);
      ok = false;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (read(child.report_fd, &report, sizeof(report)) != static_cast<ssize_t>(sizeof(report))) {
    report.status = 101;
    ok = false;
  }
  close(child.report_fd);
  return report;
}

// Runs one producer and one consumer process through `phases` and samples
// both sides every window.
Transfer run_transfer(const Settings& s, const std::vector<Phase>& phases, double phase_seconds,
                      double top) {
  Transfer result;
  const std::string channel = "experiment-" + std::to_string(getpid());
  st::remove_channel(channel);
  const double total = phase_seconds * static_cast<double>(phases.size());
  const auto start = Clock::now() + std::chrono::milliseconds(500);
  const auto stop =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(total));
  Child producer = spawn([&](int fd) {
    producer_child(channel, s, schedule_for(phases, phase_seconds, top, true), start, stop, fd);
  });
  Child consumer = spawn([&](int fd) {
    consumer_child(channel, s, schedule_for(phases, phase_seconds, top, false), start, fd);
  });

  try {
    std::optional<st::ChannelObserver> observer;
    const auto give_up = Clock::now() + std::chrono::seconds(30);
    while (!observer && Clock::now() < give_up) {
      try {
        observer.emplace(channel);
      } catch (const std::exception&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    if (observer) {
      std::this_thread::sleep_until(start);
      st::ChannelSnapshot before = observer->snapshot();
      const auto window =
          std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s.window));
      for (auto next = start + window; next <= stop + window / 2; next += window) {
        std::this_thread::sleep_until(next);
        const st::ChannelSnapshot after = observer->snapshot();
        const st::ChannelRates rates = st::derive_rates(before, after, observer->config());
        Window w;
        w.start = std::chrono::duration<double>(next - window - start).count();
        w.end = std::chrono::duration<double>(next - start).count();
        w.phase =
            std::min(phases.size() - 1, static_cast<std::size_t>((w.start + 1e-9) / phase_seconds));
        w.producer_rate = rates.records_out_per_sec;
        w.consumer_rate = rates.records_in_per_sec;
        w.backpressured_ms = rates.backpressured_ms_per_sec;
        w.idle_ms = rates.idle_ms_per_sec;
        result.windows.push_back(w);
        before = after;
      }
    } else {
      result.problem = "the producer never created the channel";
    }
  } catch (const std::exception& e) {
    result.problem = e.what();
  }
  bool ok = true;
  const auto deadline = stop + std::chrono::seconds(60);
  result.producer = collect(producer, deadline, ok);
  result.consumer = collect(consumer, deadline, ok);
  st::remove_channel(channel);
  result.ok = ok && result.problem.empty() && result.producer.status == 0 &&
              result.consumer.status == 0 && result.consumer.lost == 0 &&
              result.consumer.duplicated == 0 && result.consumer.corrupt == 0 &&
              result.consumer.records == result.producer.records;
  if (result.problem.empty() && !result.ok) {
    result.problem = "producer sent " + std::to_string(result.producer.records) + " (status " +
                     std::to_string(result.producer.status) + "), consumer received " +
                     std::to_string(result.consumer.records) + " (status " +
                     std::to_string(result.consumer.status) + "; lost " +
                     std::to_string(result.consumer.lost) + ", duplicated " +
                     std::to_string(result.consumer.duplicated) + ", corrupt " +
                     std::to_string(result.consumer.corrupt) + ")";
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

std::string percent_text(double percent) {
  return percent > 0 ? std::to_string(static_cast<int>(std::lround(percent))) + "%" : "-";
}

Settings parse(int argc, char** argv) {
  const Arguments args(
      argc, argv, 2,
      {"--phase-seconds", "--producer-percent", "--consumer-percent", "--window",
       "--calibrate-seconds", "--calibrate-runs", "--size", "--buffers", "--buffer-size", "--out"},
      {"--help"});
  if (args.has("--help")) {
    std::fputs(kUsage, stdout);
    std::exit(0);  // NOLINT(concurrency-mt-unsafe): single-threaded, before any work
  }
  if (!args.positional().empty()) {
    throw UsageError("experiment takes no names");
  }
  Settings s;
  if (args.has("--phase-seconds")) s.phase_seconds = args.real_number("--phase-seconds", 0.5, 3600);
  if (args.has("--producer-percent"))
    s.producer_percent = args.real_number("--producer-percent", 1, 100);
  if (args.has("--consumer-percent"))
    s.consumer_percent = args.real_number("--consumer-percent", 1, 100);
  if (args.has("--window")) s.window = args.real_number("--window", 0.05, 60);
  if (args.has("--calibrate-seconds"))
    s.calibrate_seconds = args.real_number("--calibrate-seconds", 0.5, 600);
  if (auto runs = args.optional_unsigned("--calibrate-runs", 1, 20)) s.calibrate_runs = *runs;
  if (auto size = args.optional_unsigned("--size", st::pattern::kMinRecordBytes, 1ULL << 20))
    s.size = *size;
  if (auto count = args.optional_unsigned("--buffers", st::ChannelConfig::kMinBufferCount,
                                          st::ChannelConfig::kMaxBufferCount)) {
    s.config.buffer_count = static_cast<std::uint32_t>(*count);
  }
  if (auto bytes = args.optional_unsigned("--buffer-size", st::ChannelConfig::kMinBufferBytes,
                                          st::ChannelConfig::kMaxBufferBytes)) {
    s.config.buffer_bytes = static_cast<std::uint32_t>(*bytes);
  }
  if (auto out = args.optional_text("--out")) s.out = *out;
  if (s.window > s.phase_seconds) {
    throw UsageError("--window must not be longer than --phase-seconds");
  }
  return s;
}

}  // namespace

int run_experiment(int argc, char** argv) {
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "--pipeline") {
      return run_pipeline_experiment(argc, argv);
    }
  }
  const Settings s = parse(argc, argv);
  std::filesystem::create_directories(s.out);

  std::printf("measuring the top speed (%llu runs of %.1f s, %llu-byte records)...\n",
              static_cast<unsigned long long>(s.calibrate_runs), s.calibrate_seconds,
              static_cast<unsigned long long>(s.size));
  std::fflush(stdout);
  // The best window of several runs: on a shared machine interference only
  // ever slows a window down, and one short run can fall entirely into a
  // slow spell, leaving a top speed the unthrottled phases then beat by far.
  double top = 0;
  for (std::uint64_t run = 0; run < s.calibrate_runs; ++run) {
    const Transfer calibration = run_transfer(s, {{"top speed", 0, 0}}, s.calibrate_seconds, 0);
    if (!calibration.ok || calibration.windows.empty()) {
      std::fprintf(stderr, "sluice experiment: calibration failed: %s\n",
                   calibration.problem.c_str());
      return 1;
    }
    // The first window holds the start-up; it counts only if it is the only one.
    const std::size_t first = calibration.windows.size() > 1 ? 1 : 0;
    for (std::size_t i = first; i < calibration.windows.size(); ++i) {
      top = std::max(top, calibration.windows[i].consumer_rate);
    }
  }
  if (!(top > 0)) {
    std::fprintf(stderr, "sluice experiment: calibration moved no records\n");
    return 1;
  }
  std::printf("top speed: %.0f records/s\n", top);

  const std::vector<Phase> phases = {
      {"producer " + percent_text(s.producer_percent), s.producer_percent, 0},
      {"consumer " + percent_text(s.consumer_percent), s.producer_percent, s.consumer_percent},
      {"no throttle", 0, 0},
      {"consumer " + percent_text(s.consumer_percent), 0, s.consumer_percent},
      {"no throttle", 0, 0},
  };
  std::printf("running %zu phases of %.1f s...\n", phases.size(), s.phase_seconds);
  std::fflush(stdout);
  const Transfer run = run_transfer(s, phases, s.phase_seconds, top);

  // CSV, one row per window.
  const std::filesystem::path csv_path = s.out / "experiment.csv";
  std::ofstream csv(csv_path);
  csv << "window_start_s,window_end_s,phase,phase_label,producer_target_percent,"
         "consumer_target_percent,producer_records_per_sec,consumer_records_per_sec,"
         "producer_percent,consumer_percent,backpressured_ms_per_sec,idle_ms_per_sec\n";
  for (const Window& w : run.windows) {
    const Phase& p = phases[w.phase];
    char row[512];
    std::snprintf(row, sizeof(row), "%.3f,%.3f,%zu,%s,%.0f,%.0f,%.0f,%.0f,%.2f,%.2f,%.1f,%.1f\n",
                  w.start, w.end, w.phase + 1, p.label.c_str(), p.producer_percent,
                  p.consumer_percent, w.producer_rate, w.consumer_rate,
                  100.0 * w.producer_rate / top, 100.0 * w.consumer_rate / top, w.backpressured_ms,
                  w.idle_ms);
    csv << row;
  }
  csv.close();

  // Chart.
  LineChart chart;
  chart.title = "Sluice backpressure experiment: " + std::to_string(s.size) +
                "-byte records, top speed " + std::to_string(static_cast<long long>(top)) +
                " records/s";
  chart.x_label = "time (s)";
  chart.y_label = "throughput (% of top speed)";
  chart.right_scale = top / 100.0;
  chart.right_label = "records/s";
  // The producer wide and pale underneath, the consumer narrow on top: where
  // the producer follows, both stay visible.
  ChartSeries producer_line{"producer", "#7fb2e5", 6.0, "", {}, {}};
  ChartSeries consumer_line{"consumer", "#d62728", 2.0, "", {}, {}};
  for (const Window& w : run.windows) {
    const double mid = (w.start + w.end) / 2;
    producer_line.x.push_back(mid);
    producer_line.y.push_back(100.0 * w.producer_rate / top);
    consumer_line.x.push_back(mid);
    consumer_line.y.push_back(100.0 * w.consumer_rate / top);
  }
  chart.series = {producer_line, consumer_line};
  for (const ChartSeries& line : chart.series) {  // a noisy machine can beat its measured top speed
    for (double y : line.y) {
      chart.y_max = std::max(chart.y_max, std::ceil((y + 10) / 20) * 20);
    }
  }
  for (std::size_t i = 0; i < phases.size(); ++i) {
    chart.markers.push_back({s.phase_seconds * static_cast<double>(i), phases[i].label});
  }
  // Which side limits: the one that is neither blocked nor idle.
  LineChart waits;
  waits.title = "Waiting: producer blocked on a full pool (backpressured), consumer idle for data";
  waits.x_label = "time (s)";
  waits.y_label = "ms per second";
  waits.y_max = 1000;
  waits.y_step = 200;
  waits.right_scale = 0.1;  // also keeps the plot as wide as the one above
  waits.right_label = "% of the time";
  ChartSeries blocked_line{"producer blocked", "#7fb2e5", 6.0, "", {}, {}};
  ChartSeries idle_line{"consumer idle", "#d62728", 2.0, "", {}, {}};
  for (const Window& w : run.windows) {
    const double mid = (w.start + w.end) / 2;
    blocked_line.x.push_back(mid);
    blocked_line.y.push_back(w.backpressured_ms);
    idle_line.x.push_back(mid);
    idle_line.y.push_back(w.idle_ms);
  }
  waits.series = {blocked_line, idle_line};
  for (std::size_t i = 0; i < phases.size(); ++i) {
    waits.markers.push_back({s.phase_seconds * static_cast<double>(i), ""});
  }
  const std::filesystem::path svg_path = s.out / "experiment.svg";
  std::ofstream(svg_path) << stacked_svg({{chart, 440}, {waits, 300}});
  const std::filesystem::path png_path = s.out / "experiment.png";
  std::filesystem::remove(png_path);
  bool png = false;
  if (std::system("command -v rsvg-convert >/dev/null 2>&1") ==
      0) {  // NOLINT(concurrency-mt-unsafe)
    const std::string command =
        "rsvg-convert -o '" + png_path.string() + "' '" + svg_path.string() + "'";
    png = std::system(command.c_str()) == 0;  // NOLINT(concurrency-mt-unsafe)
  }

  // Phase table: medians over each phase's windows after its first.
  std::printf(
      "\n| phase | throttle | producer %% | consumer %% | windows where producer is within 10%% of "
      "consumer |\n");
  std::printf("|---|---|---|---|---|\n");
  JsonLine summary;
  summary.add("top_records_per_sec", top).add("record_bytes", s.size).add("ok", run.ok);
  for (std::size_t i = 0; i < phases.size(); ++i) {
    std::vector<double> producer_pct;
    std::vector<double> consumer_pct;
    int windows = 0;
    int following = 0;
    bool first = true;
    for (const Window& w : run.windows) {
      if (w.phase != i) continue;
      if (first) {  // the hand-over window mixes two phases
        first = false;
        continue;
      }
      producer_pct.push_back(100.0 * w.producer_rate / top);
      consumer_pct.push_back(100.0 * w.consumer_rate / top);
      ++windows;
      following += std::abs(w.producer_rate - w.consumer_rate) <= 0.10 * w.consumer_rate ? 1 : 0;
    }
    const std::string throttle = phases[i].producer_percent > 0 && phases[i].consumer_percent > 0
                                     ? "producer " + percent_text(phases[i].producer_percent) +
                                           ", consumer " + percent_text(phases[i].consumer_percent)
                                     : phases[i].label;
    std::printf("| %zu | %s | %.0f | %.0f | %d of %d |\n", i + 1, throttle.c_str(),
                median(producer_pct), median(consumer_pct), following, windows);
    const std::string key = "phase" + std::to_string(i + 1);
    summary.add(key + "_producer_percent", median(producer_pct))
        .add(key + "_consumer_percent", median(consumer_pct));
  }
  // The calibration holds for the run when the unthrottled phases run near it.
  std::vector<double> unthrottled;
  for (std::size_t i = 0; i < phases.size(); ++i) {
    if (phases[i].producer_percent > 0 || phases[i].consumer_percent > 0) continue;
    bool first = true;
    for (const Window& w : run.windows) {
      if (w.phase != i) continue;
      if (first) {
        first = false;
        continue;
      }
      unthrottled.push_back(w.consumer_rate);
    }
  }
  const double unthrottled_rate = median(unthrottled);
  const double unthrottled_percent = 100.0 * unthrottled_rate / top;
  std::printf("\nunthrottled phases: %.0f records/s, %.0f%% of the calibrated top speed\n",
              unthrottled_rate, unthrottled_percent);
  if (!unthrottled.empty() && (unthrottled_percent < 80 || unthrottled_percent > 125)) {
    std::printf(
        "warning: the machine ran at a different speed during the run than during the "
        "calibration; the throttles were %.0f%% and %.0f%% of the calibrated speed, "
        "%.0f%% and %.0f%% of the unthrottled phases'\n",
        s.producer_percent, s.consumer_percent, s.producer_percent * 100.0 / unthrottled_percent,
        s.consumer_percent * 100.0 / unthrottled_percent);
  }
  summary.add("unthrottled_records_per_sec", unthrottled_rate)
      .add("unthrottled_percent_of_top", unthrottled_percent);
  summary.add("records", run.consumer.records)
      .add("lost", run.consumer.lost)
      .add("duplicated", run.consumer.duplicated)
      .add("corrupt", run.consumer.corrupt);
  std::ofstream(s.out / "summary.json") << summary.str() << "\n";

  std::printf("\nrecords: %llu sent, %llu received, %llu lost, %llu duplicated, %llu corrupt\n",
              static_cast<unsigned long long>(run.producer.records),
              static_cast<unsigned long long>(run.consumer.records),
              static_cast<unsigned long long>(run.consumer.lost),
              static_cast<unsigned long long>(run.consumer.duplicated),
              static_cast<unsigned long long>(run.consumer.corrupt));
  std::printf("csv:   %s\nchart: %s%s%s\n", csv_path.c_str(), svg_path.c_str(),
              png ? "\n       " : "", png ? png_path.c_str() : "");
  if (!run.ok) {
    std::fprintf(stderr, "sluice experiment: %s\n", run.problem.c_str());
    return 1;
  }
  return 0;
}

}  // namespace sluice::tools
