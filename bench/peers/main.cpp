// sluice_compare: runs the standard work on Sluice and its peers, measures
// the machine's limits in the same run, prints markdown tables and writes the
// same as JSON. See bench/README.md; bench/compare builds and runs it.

#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"

namespace cmp {
namespace {

// ---------------------------------------------------------------------------
// Options

struct Options {
  bool quick = false;
  std::string json_path = "bench-results.json";
  int runs = 0;  // 0: 5 in a full run, 3 in a quick one
  std::vector<std::string> systems = {"sluice",       "iceoryx",      "boost-mq",
                                      "pipe",         "unix-socket",  "zeromq",
                                      "no-transport", "sluice-plain", "sluice-demo"};
  std::vector<std::size_t> sizes = {8, 64, 1024, 65536, 1048576};
  std::uint64_t bytes_per_run = 0;  // 0: by mode
  std::uint64_t min_records = 0;
  std::uint64_t max_records = 0;
  std::uint64_t rounds = 0;
  bool latency = true;
  bool limits = true;
  bool throughput = true;
  bool pin_throughput = false;
  bool pin_latency = true;
  bool huge_pages = false;  // Sluice's segments ask for 2 MiB pages (and must get them)
  int timeout_s = 0;
  double min_run_seconds = -1;  // < 0: by mode
  std::string commit;
};

[[noreturn]] void usage(const std::string& problem) {
  if (!problem.empty()) {
    std::cerr << "sluice_compare: " << problem << "\n";
  }
  std::cerr << R"(usage: sluice_compare [options]
  --quick              short run (32 MiB per run, 5000 round trips)
  --json PATH          where to write the results (default bench-results.json)
  --runs N             runs per system and size; the median is reported (default 5, quick 3)
  --systems LIST       comma-separated: sluice,iceoryx,boost-mq,pipe,unix-socket,zeromq,
                       no-transport (the work through bare shared buffers, no
                       transport: a reference row, never a peer), sluice-plain
                       (Sluice's write()/next() per record: never a peer),
                       sluice-demo (the sluice-producer/sluice-consumer programs,
                       started per run: never a peer);
                       default: all of them
  --sizes LIST         record sizes in bytes (default 8,64,1024,65536,1048576)
  --mib N              payload per run in MiB (default 256, quick 32)
  --min-records N      at least this many records per run (default 256, quick 64)
  --max-records N      at most this many records per run (default 4M, quick 256k)
  --rounds N           measured ping-pong round trips per run (default 50000, quick 5000)
  --no-latency --no-limits --no-throughput   skip a part
  --pin                pin throughput producer/consumer to cpu 0/1 (default: unpinned)
  --no-pin-latency     do not pin the ping-pong client/server to cpu 0/1
  --huge-pages         create Sluice's segments in 2 MiB pages (HugePages::kRequired:
                       a run fails if /dev/shm does not give them; see bench/README.md)
  --timeout S          kill a run after S seconds (default 120, quick 30)
  --min-seconds S      a first, unmeasured run per system and size; where it took
                       less than S seconds the measured runs get more records (up
                       to 16x the payload per run), so they time steady state
                       rather than start-up (default 0.25, quick too)
  --commit TEXT        recorded in the JSON
)";
  std::exit(2);
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (!part.empty()) {
      parts.push_back(part);
    }
  }
  return parts;
}

std::uint64_t parse_count(const std::string& text) {
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  std::uint64_t scale = 1;
  if (end != nullptr && (*end == 'k' || *end == 'K')) {
    scale = 1024;
    ++end;
  } else if (end != nullptr && (*end == 'm' || *end == 'M')) {
    scale = 1024 * 1024;
    ++end;
  }
  if (end == text.c_str() || *end != '\0') {
    usage("not a number: " + text);
  }
  return value * scale;
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage(arg + " needs a value");
      }
      return argv[++i];
    };
    if (arg == "--quick") {
      options.quick = true;
    } else if (arg == "--json") {
      options.json_path = value();
    } else if (arg == "--runs") {
      options.runs = static_cast<int>(parse_count(value()));
      if (options.runs < 1) {
        usage("--runs must be at least 1");
      }
    } else if (arg == "--systems") {
      options.systems = split(value());
    } else if (arg == "--sizes") {
      options.sizes.clear();
      for (const std::string& size : split(value())) {
        options.sizes.push_back(parse_count(size));
      }
    } else if (arg == "--mib") {
      options.bytes_per_run = parse_count(value()) << 20;
    } else if (arg == "--min-records") {
      options.min_records = parse_count(value());
    } else if (arg == "--max-records") {
      options.max_records = parse_count(value());
    } else if (arg == "--rounds") {
      options.rounds = parse_count(value());
    } else if (arg == "--no-latency") {
      options.latency = false;
    } else if (arg == "--no-limits") {
      options.limits = false;
    } else if (arg == "--no-throughput") {
      options.throughput = false;
    } else if (arg == "--pin") {
      options.pin_throughput = true;
    } else if (arg == "--no-pin-latency") {
      options.pin_latency = false;
    } else if (arg == "--huge-pages") {
      options.huge_pages = true;
    } else if (arg == "--timeout") {
      options.timeout_s = static_cast<int>(parse_count(value()));
    } else if (arg == "--min-seconds") {
      options.min_run_seconds = std::stod(value());
    } else if (arg == "--commit") {
      options.commit = value();
    } else if (arg == "-h" || arg == "--help") {
      usage("");
    } else {
      usage("unknown option " + arg);
    }
  }
  if (options.bytes_per_run == 0) {
    options.bytes_per_run = std::uint64_t{options.quick ? 32U : 256U} << 20;
  }
  if (options.min_records == 0) {
    options.min_records = options.quick ? 64 : 256;
  }
  if (options.max_records == 0) {
    options.max_records = options.quick ? (256U << 10) : (4U << 20);
  }
  if (options.rounds == 0) {
    options.rounds = options.quick ? 5000 : 50000;
  }
  if (options.min_run_seconds < 0) {
    // The same in both modes: quick's 256 Ki small records take about a
    // millisecond, which timed start-up (8 B: 0.90x the socket in one quick
    // run, 2.4x-3.1x with 0.05 s runs, 1.7x in the full run), and 0.05 s
    // runs still put 8 B at 1.28x the socket in one quick run where the full
    // runs of the day read 1.56x-1.59x. 0.25 s costs the quick run ~10 s.
    options.min_run_seconds = 0.25;
  }
  if (options.timeout_s == 0) {
    options.timeout_s = options.quick ? 30 : 120;
  }
  if (options.runs == 0) {
    // Five: on a shared VM the host moves the two vCPUs (the bare cache-line
    // round trip alone moves between 0.13 and 0.43 us), which moves a run
    // by up to 2x; a median of five survives two runs on the slow side.
    options.runs = options.quick ? 3 : 5;
  }
  if (options.runs < 1) {
    usage("--runs must be at least 1");
  }
  for (const std::size_t size : options.sizes) {
    if (size < pattern::kMinRecordBytes || size > (64U << 20)) {
      usage("record sizes must be between 8 bytes and 64 MiB");
    }
  }
  return options;
}

// How far the calibration may grow a run past the payload per run: zero-copy
// systems move 256 MiB of large records in about 10 ms, too short to time
// anything but start-up; 4 GiB at 20-30 GB/s is still well under a second.
constexpr std::uint64_t kCalibratedPayloadFactor = 16;

std::uint64_t records_for(const Options& options, std::size_t size) {
  const std::uint64_t by_bytes = options.bytes_per_run / size;
  return std::max(options.min_records, std::min(options.max_records, by_bytes));
}

// ---------------------------------------------------------------------------
// Results

struct RunResult {
  bool ok = false;
  std::string problem;
  double seconds = 0;
  double records_per_sec = 0;
  double gb_per_sec = 0;
  double cpu_seconds = 0;  // both processes, from go to exit (getrusage)
  double cpu_per_million = 0;
  double cpu_total_seconds = 0;  // both processes, whole life (wait4)
  double daemon_cpu_seconds = -1;
  std::uint64_t extra = 0;
};

struct Row {
  std::string system;
  std::size_t system_index = 0;
  std::size_t size = 0;
  std::uint64_t records = 0;
  bool reference = false;  // the no-transport reference: shown, never judged as a peer
  std::string unavailable;
  std::vector<RunResult> runs;
  // Medians of the successful runs.
  int ok_runs = 0;
  double records_per_sec = 0;
  double gb_per_sec = 0;
  double cpu_per_million = 0;
  double daemon_cpu_per_million = -1;
  double ratio = 0;  // Sluice's records/s / this row's
  std::string first_problem;
};

struct LatencyRow {
  std::string system;
  bool busy_poll = false;
  std::string unavailable;
  std::string problem;
  bool ok = false;
  double p50 = 0, p99 = 0, p999 = 0, mean = 0, min = 0, max = 0;  // ns
  std::uint64_t samples = 0;
  int runs_ok = 0;
  int runs_total = 0;
  std::vector<double> p50_runs;
};

double median(std::vector<double> values) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// ---------------------------------------------------------------------------
// Machine facts

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const std::size_t colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown";
}

struct CpuTimes {
  double busy = 0;   // seconds, all cpus: user nice system irq softirq
  double steal = 0;  // seconds taken by the hypervisor
  double total = 0;
};

CpuTimes machine_cpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  CpuTimes times;
  times.busy = (user + nice + system + irq + softirq) / tick;
  times.steal = steal / tick;
  times.total = (user + nice + system + idle + iowait + irq + softirq + steal) / tick;
  return times;
}

double own_cpu_seconds() {
  double total = 0;
  for (const int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage usage{};
    ::getrusage(who, &usage);
    total += static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
             static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
  }
  return total;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char text[64];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

// ---------------------------------------------------------------------------
// Formatting

std::string format(const char* spec, double value) {
  char text[64];
  std::snprintf(text, sizeof(text), spec, value);
  return text;
}

std::string rate(double per_sec) {
  if (per_sec >= 1e6) {
    return format("%.2f M", per_sec / 1e6);
  }
  if (per_sec >= 1e3) {
    return format("%.1f k", per_sec / 1e3);
  }
  return format("%.0f", per_sec);
}

std::string bytes_label(std::size_t size) {
  if (size >= (1U << 20) && size % (1U << 20) == 0) {
    return std::to_string(size >> 20) + " MiB";
  }
  if (size >= 1024 && size % 1024 == 0) {
    return std::to_string(size >> 10) + " KiB";
  }
  return std::to_string(size) + " B";
}

std::string micros(double ns) {
  return ns >= 100000 ? format("%.0f", ns / 1000) : format("%.2f", ns / 1000);
}

std::string cell(const std::string& text) {
  std::string out;
  for (const char c : text) {
    out += (c == '|') ? '/' : (c == '\n' ? ' ' : c);
  }
  return out;
}

std::string num(double value) {
  if (!std::isfinite(value)) {
    return "null";
  }
  char text[64];
  std::snprintf(text, sizeof(text), "%.6g", value);
  return text;
}

// A JSON array of numbers.
std::string num_array(const std::vector<double>& values) {
  std::string out = "[";
  for (std::size_t k = 0; k < values.size(); ++k) {
    out += (k == 0 ? "" : ", ") + num(values[k]);
  }
  return out + "]";
}

std::string json_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x",
                    static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Running

std::unique_ptr<System> make_system(const std::string& name, const Options& options) {
  if (name == "sluice") {
    return make_sluice(options.huge_pages);
  }
  if (name == "sluice-plain") {
    return make_sluice(options.huge_pages, true);
  }
  if (name == "sluice-demo") {
    return make_sluice_demo();
  }
  if (name == "iceoryx") {
    return make_iceoryx();
  }
  if (name == "boost-mq") {
    return make_boost_mq();
  }
  if (name == "pipe") {
    return make_pipe();
  }
  if (name == "unix-socket") {
    return make_socket();
  }
  if (name == "zeromq") {
    return make_zmq();
  }
  if (name == "no-transport") {
    return make_no_transport();
  }
  return nullptr;
}

std::string next_tag() {
  static unsigned counter = 0;
  return std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

RunResult run_throughput(System& system, const Options& options, std::size_t size,
                         std::uint64_t records) {
  Work work;
  work.size = size;
  work.records = records;
  work.tag = next_tag();
  RunResult result;
  try {
    system.prepare_throughput(work);
    const double daemon_before = system.daemon_cpu_seconds();
    ChildSpec producer{[&](Link& link) { system.produce(link, work); },
                       options.pin_throughput ? 0 : -1};
    ChildSpec consumer{[&](Link& link) { system.consume(link, work); },
                       options.pin_throughput ? 1 : -1};
    const PairOutcome outcome = run_pair(
        producer, consumer, std::chrono::seconds(options.timeout_s),
        [&](int role) { system.in_child(role); }, [&] { system.in_parent(); });
    const double daemon_after = system.daemon_cpu_seconds();
    system.cleanup();
    if (!outcome.problem.empty()) {
      result.problem = outcome.problem;
      return result;
    }
    result.ok = true;
    result.seconds = static_cast<double>(outcome.b.t_done_ns - outcome.a.t_go_ns) * 1e-9;
    if (result.seconds <= 0) {
      result.ok = false;
      result.problem = "non-positive duration";
      return result;
    }
    result.records_per_sec = static_cast<double>(records) / result.seconds;
    result.gb_per_sec =
        static_cast<double>(records) * static_cast<double>(size) / result.seconds / 1e9;
    result.cpu_seconds = static_cast<double>(outcome.a.cpu_ns + outcome.b.cpu_ns) * 1e-9;
    result.cpu_per_million = result.cpu_seconds / (static_cast<double>(records) / 1e6);
    result.cpu_total_seconds = outcome.cpu_total_a + outcome.cpu_total_b;
    if (daemon_before >= 0 && daemon_after >= 0) {
      result.daemon_cpu_seconds = daemon_after - daemon_before;
    }
    result.extra = outcome.a.extra + outcome.b.extra;
  } catch (const std::exception& error) {
    system.cleanup();
    result.problem = error.what();
  }
  return result;
}

LatencyRow run_latency(System& system, const Options& options, bool busy_poll,
                       bool no_spin = false) {
  LatencyRow row;
  row.system = system.name() + (no_spin ? " (futex only, no spin)" : "");
  row.busy_poll = busy_poll;
  PingWork work;
  work.rounds = options.rounds;
  work.warmup = std::max<std::uint64_t>(1000, options.rounds / 10);
  work.busy_poll = busy_poll;
  work.no_spin = no_spin;
  work.tag = next_tag();
  try {
    system.prepare(work.tag, true);
    ChildSpec client{[&](Link& link) { system.ping(link, work); }, options.pin_latency ? 0 : -1};
    ChildSpec server{[&](Link& link) { system.pong(link, work); }, options.pin_latency ? 1 : -1};
    const PairOutcome outcome = run_pair(
        client, server, std::chrono::seconds(options.timeout_s),
        [&](int role) { system.in_child(role); }, [&] { system.in_parent(); },
        {"client", "server"});
    system.cleanup();
    if (!outcome.problem.empty()) {
      row.problem = outcome.problem;
      return row;
    }
    row.ok = true;
    row.p50 = outcome.a.latency_ns[0];
    row.p99 = outcome.a.latency_ns[1];
    row.p999 = outcome.a.latency_ns[2];
    row.mean = outcome.a.latency_ns[3];
    row.min = outcome.a.latency_ns[4];
    row.max = outcome.a.latency_ns[5];
    row.samples = outcome.a.samples;
  } catch (const std::exception& error) {
    system.cleanup();
    row.problem = error.what();
  }
  return row;
}

void summarise(Row& row) {
  std::vector<double> rps;
  std::vector<double> gbps;
  std::vector<double> cpu;
  std::vector<double> daemon;
  for (const RunResult& run : row.runs) {
    if (run.ok) {
      rps.push_back(run.records_per_sec);
      gbps.push_back(run.gb_per_sec);
      cpu.push_back(run.cpu_per_million);
      if (run.daemon_cpu_seconds >= 0) {
        daemon.push_back(run.daemon_cpu_seconds / (static_cast<double>(row.records) / 1e6));
      }
    } else if (row.first_problem.empty()) {
      row.first_problem = run.problem;
    }
  }
  row.ok_runs = static_cast<int>(rps.size());
  row.records_per_sec = median(rps);
  row.gb_per_sec = median(gbps);
  row.cpu_per_million = median(cpu);
  row.daemon_cpu_per_million = daemon.empty() ? -1 : median(daemon);
}

// ---------------------------------------------------------------------------
// Targets (from the issue), judged on this run's numbers.

struct Target {
  std::string what;
  std::string measured;
  std::string verdict;  // "holds", "misses", "n/a"
  // Throughput targets against a peer: the same ratio for the no-transport
  // reference row, and whether that row meets the target. Empty where the
  // target has no such ratio (CPU, latency) or the row did not run.
  std::string reference_ratio{};
  std::optional<bool> reference_meets_target{};
};

const Row* find_row(const std::vector<Row>& rows, const std::string& system, std::size_t size) {
  for (const Row& row : rows) {
    if (row.system == system && row.size == size) {
      return &row;
    }
  }
  return nullptr;
}

const LatencyRow* find_latency(const std::vector<LatencyRow>& rows, const std::string& system,
                               bool busy) {
  for (const LatencyRow& row : rows) {
    if (row.system == system && row.busy_poll == busy) {
      return &row;
    }
  }
  return nullptr;
}

bool usable(const Row* row) {
  return row != nullptr && row->unavailable.empty() && row->ok_runs > 0;
}

std::vector<Target> judge(const std::vector<Row>& rows, const std::vector<LatencyRow>& latency,
                          const Limits* limits, const std::vector<std::size_t>& sizes) {
  std::vector<Target> targets;
  const auto verdict = [](bool ok) { return std::string(ok ? "holds" : "misses"); };
  for (const std::size_t size : sizes) {
    const Row* sluice = find_row(rows, "sluice", size);
    if (!usable(sluice)) {
      continue;
    }
    const Row* reference = nullptr;
    for (const Row& row : rows) {
      if (row.reference && row.size == size && usable(&row)) {
        reference = &row;
      }
    }
    // `subject`'s ratio (Sluice's, or its demo programs') against `peer`,
    // with the no-transport row's beside it.
    const auto judged_row = [&](const Row& subject, std::string what, const Row& peer,
                                double target, std::string measured) {
      const double ratio = subject.records_per_sec / peer.records_per_sec;
      Target judged_target{std::move(what), std::move(measured), verdict(ratio >= target)};
      if (reference != nullptr) {
        const double reached = reference->records_per_sec / peer.records_per_sec;
        judged_target.reference_ratio = format(reached >= 10 ? "%.1fx" : "%.2fx", reached);
        judged_target.reference_meets_target = reached >= target;
      }
      return judged_target;
    };
    const auto judged = [&](std::string what, const Row& peer, double target,
                            std::string measured) {
      return judged_row(*sluice, std::move(what), peer, target, std::move(measured));
    };
    const Row* best = nullptr;
    const Row* cheapest = nullptr;
    for (const Row& row : rows) {
      // Sluice's own rows (sluice-plain) are not peers.
      if (row.size == size && row.system.rfind("sluice", 0) != 0 && !row.reference &&
          usable(&row)) {
        if (best == nullptr || row.records_per_sec > best->records_per_sec) {
          best = &row;
        }
        if (cheapest == nullptr || row.cpu_per_million < cheapest->cpu_per_million) {
          cheapest = &row;
        }
      }
    }
    const bool record_api = size <= 1024;
    if (best != nullptr) {
      const double ratio = sluice->records_per_sec / best->records_per_sec;
      targets.push_back(
          judged((record_api ? "records/s " : "GB/s ") + bytes_label(size) + " >= 1.3x best peer",
                 *best, 1.3, format("%.2fx ", ratio) + "(best peer: " + best->system + ")"));
    }
    if (record_api) {
      const Row* ice = find_row(rows, "iceoryx", size);
      if (usable(ice)) {
        const double ratio = sluice->records_per_sec / ice->records_per_sec;
        targets.push_back(judged("records/s " + bytes_label(size) + " >= 100x iceoryx", *ice, 100,
                                 format("%.1fx", ratio)));
      }
    }
    // The ordinary path a user writes first against the batch path.
    const Row* plain = find_row(rows, "sluice-plain", size);
    if (record_api && usable(plain)) {
      const double ratio = plain->records_per_sec / sluice->records_per_sec;
      targets.push_back(
          {"records/s " + bytes_label(size) + " write()/next() >= 0.8x write_batch/read_batch",
           format("%.2fx", ratio), verdict(ratio >= 0.8)});
    }
    // The demo programs: what a user measures first.
    const Row* demo = find_row(rows, "sluice-demo", size);
    if (record_api && usable(demo)) {
      const double ratio = demo->records_per_sec / sluice->records_per_sec;
      targets.push_back(
          {"records/s " + bytes_label(size) + " demo programs >= 0.8x write_batch/read_batch",
           format("%.2fx", ratio), verdict(ratio >= 0.8)});
    }
    if (usable(demo) && best != nullptr) {
      const double ratio = demo->records_per_sec / best->records_per_sec;
      targets.push_back(judged_row(*demo,
                                   (record_api ? "records/s " : "GB/s ") + bytes_label(size) +
                                       " demo programs >= 1.3x best peer",
                                   *best, 1.3,
                                   format("%.2fx ", ratio) + "(best peer: " + best->system + ")"));
    }
    // The batch path against the work's own cost, where records are small
    // enough for the transport's per-record share to show.
    if (size <= 64 && reference != nullptr) {
      const double ratio = sluice->records_per_sec / reference->records_per_sec;
      targets.push_back(
          {"records/s " + bytes_label(size) + " write_batch/read_batch >= 0.8x no-transport",
           format("%.2fx", ratio), verdict(ratio >= 0.8)});
    }
    if (cheapest != nullptr) {
      const double ratio = sluice->cpu_per_million / cheapest->cpu_per_million;
      targets.push_back({"CPU s per M records " + bytes_label(size) + " lowest",
                         format("sluice %.4f", sluice->cpu_per_million) +
                             format(" vs %.4f", cheapest->cpu_per_million) + " (" +
                             cheapest->system + format(", %.2fx)", ratio),
                         verdict(sluice->cpu_per_million < cheapest->cpu_per_million)});
    }
  }
  const LatencyRow* busy = find_latency(latency, "sluice", true);
  if (busy != nullptr && busy->ok && limits != nullptr && limits->cacheline_rtt_p50_ns > 0) {
    const double ratio = busy->p50 / limits->cacheline_rtt_p50_ns;
    targets.push_back({"busy-poll p50 <= 1.2x cache-line round trip",
                       micros(busy->p50) + " us vs " + micros(limits->cacheline_rtt_p50_ns) +
                           " us (" + format("%.1fx)", ratio),
                       verdict(ratio <= 1.2)});
  }
  for (const char* variant : {"sluice", "sluice (futex only, no spin)"}) {
    const LatencyRow* blocking = find_latency(latency, variant, false);
    const std::string label = variant == std::string("sluice") ? "" : " [futex only, no spin]";
    if (blocking != nullptr && blocking->ok) {
      const LatencyRow* ice = find_latency(latency, "iceoryx", false);
      if (ice != nullptr && ice->ok) {
        targets.push_back({"blocking p50 <= 0.5x iceoryx" + label,
                           micros(blocking->p50) + " us vs " + micros(ice->p50) + " us (" +
                               format("%.2fx)", blocking->p50 / ice->p50),
                           verdict(blocking->p50 <= 0.5 * ice->p50)});
      }
      const LatencyRow* pipe = find_latency(latency, "pipe", false);
      if (pipe != nullptr && pipe->ok) {
        targets.push_back({"blocking p50 below the pipe" + label,
                           micros(blocking->p50) + " us vs " + micros(pipe->p50) + " us (" +
                               format("%.2fx)", blocking->p50 / pipe->p50),
                           verdict(blocking->p50 < pipe->p50)});
      }
    }
  }
  return targets;
}

// ---------------------------------------------------------------------------
// Output

struct Meta {
  std::string started;
  std::string host;
  std::string cpu;
  long cpus = 0;
  std::string load_before;
  std::string load_after;
  double elapsed = 0;
  double other_busy_cores = 0;  // CPU used by everything but this harness, in cores
  double steal_fraction = 0;
};

void print_tables(std::ostream& out, const Options& options, const Meta& meta,
                  const std::optional<Limits>& limits, const std::vector<Row>& rows,
                  const std::vector<LatencyRow>& latency, const std::vector<Target>& targets) {
  out << "## Sluice and its peers: the standard work\n\n";
  out << "Run " << meta.started << (options.commit.empty() ? "" : " at " + options.commit) << " on "
      << meta.host << " (" << meta.cpu << ", " << meta.cpus << " cpus); "
      << (options.quick ? "quick" : "full") << " mode, " << (options.bytes_per_run >> 20)
      << " MiB per run (" << options.min_records << " to " << options.max_records << " records"
      << (options.min_run_seconds > 0
              ? format(", more where a run took under %.2f s", options.min_run_seconds) +
                    ", up to " + std::to_string(kCalibratedPayloadFactor) + "x the payload"
              : std::string())
      << "), median of " << options.runs << " runs"
      << (options.pin_throughput ? ", producer/consumer pinned to cpu 0/1" : ", unpinned")
      << (options.huge_pages ? "; Sluice's segments in 2 MiB pages (--huge-pages)" : "") << ".\n";
  out << "Load average before: " << meta.load_before << "; after: " << meta.load_after
      << ". Other work on the machine during the run: " << format("%.2f", meta.other_busy_cores)
      << " cores busy on average" << format(", steal %.1f%%", meta.steal_fraction * 100)
      << "; took " << format("%.0f s", meta.elapsed) << ".\n\n";

  if (!rows.empty()) {
    out << "| system | record | records/s | GB/s | CPU s / M records | Sluice ÷ row (records/s) "
           "|\n";
    out << "|---|---:|---:|---:|---:|---:|\n";
    for (const Row& row : rows) {
      out << "| " << row.system << " | " << bytes_label(row.size) << " | ";
      if (!row.unavailable.empty()) {
        out << "unavailable: " << cell(row.unavailable) << " | | | |\n";
        continue;
      }
      if (row.ok_runs == 0) {
        out << "failed: " << cell(row.first_problem) << " | | | |\n";
        continue;
      }
      out << rate(row.records_per_sec) << " | " << format("%.3f", row.gb_per_sec) << " | "
          << format("%.4f", row.cpu_per_million);
      if (row.daemon_cpu_per_million >= 0) {
        out << format(" (+%.4f RouDi)", row.daemon_cpu_per_million);
      }
      out << " | " << (row.ratio > 0 ? format("%.2fx", row.ratio) : "") << "";
      if (row.ok_runs < static_cast<int>(row.runs.size())) {
        out << " (" << row.runs.size() - static_cast<std::size_t>(row.ok_runs) << " of "
            << row.runs.size() << " runs failed: " << cell(row.first_problem) << ")";
      }
      out << " |\n";
    }
    out << "\nRecords/s and GB/s (10^9 bytes of payload per second) from the producer's first "
           "write to the consumer's last verified record; CPU is both processes' user + system "
           "time from the start signal to exit (getrusage), per million records. Sluice: record "
           "API up to 1 KiB, buffer API (one record per buffer) above.\n\n";
  }

  if (!latency.empty()) {
    const LatencyRow* sluice_busy = find_latency(latency, "sluice", true);
    const LatencyRow* sluice_blocking = find_latency(latency, "sluice", false);
    out << "| system | mode | p50 us | p99 us | p99.9 us | row p50 ÷ Sluice p50 |\n";
    out << "|---|---|---:|---:|---:|---:|\n";
    for (const LatencyRow& row : latency) {
      out << "| " << row.system << " | " << (row.busy_poll ? "busy-poll" : "blocking") << " | ";
      if (!row.unavailable.empty()) {
        out << "unavailable: " << cell(row.unavailable) << " | | | |\n";
        continue;
      }
      if (!row.ok) {
        out << "failed: " << cell(row.problem) << " | | | |\n";
        continue;
      }
      const LatencyRow* sluice = row.busy_poll ? sluice_busy : sluice_blocking;
      out << micros(row.p50) << " | " << micros(row.p99) << " | " << micros(row.p999) << " | "
          << (sluice != nullptr && sluice->ok ? format("%.2fx", row.p50 / sluice->p50) : "")
          << " |\n";
    }
    out << "\n64-byte ping-pong round trips between two processes, " << options.rounds
        << " measured after a warm-up per run, median of each percentile over " << options.runs
        << " runs; " << (options.pin_latency ? "client on cpu 0, server on cpu 1" : "unpinned")
        << "; busy-poll spins on non-blocking receives, blocking uses each system's "
           "blocking receive.\n\n";
  }

  if (limits) {
    out << "| machine limit | value |\n|---|---:|\n";
    if (!limits->problem.empty()) {
      out << "| problem | " << cell(limits->problem) << " |\n";
    }
    out << "| memcpy one core, in cache (256 KiB) | "
        << format("%.1f GB/s", limits->memcpy_cache_gbps) << " |\n";
    out << "| memcpy one core, from memory (256 MiB) | "
        << format("%.1f GB/s", limits->memcpy_memory_gbps) << " |\n";
    out << "| cache-line round trip cpu 0 <-> 1, p50 timed like the ping-pong (median of runs) | "
        << micros(limits->cacheline_rtt_p50_ns) << " us |\n";
    out << "| cache-line round trip cpu 0 <-> 1, median over batches of 1000 | "
        << format("%.0f ns", limits->cacheline_rtt_mean_ns) << " |\n";
    out << "| futex round trip cpu 0 <-> 1, both sides asleep until woken, p50 (median of runs) | "
        << micros(limits->futex_rtt_p50_ns) << " us |\n";
    for (const Limits::FillCheck& row : limits->fill_check) {
      out << "| fill + check only, one core, " << bytes_label(row.size) << " | "
          << rate(row.fill_check_rps) << " records/s, "
          << format("%.2f GB/s", row.fill_check_rps * static_cast<double>(row.size) / 1e9) << ", "
          << format("%.4f CPU s / M", 1e6 / row.fill_check_rps) << " |\n";
    }
    out << "\nFill + check is about the least CPU any system can spend on the work; with producer "
           "and consumer on separate cores, the slower of fill (producer) and check (consumer), "
           "given in the JSON, is roughly the most records/s (measured in cache on one core, at "
           "another moment than the runs, so single runs can pass it). The futex round trip is "
           "the cost of two wake-ups with no transport around them; how often the waits really "
           "slept is in the JSON.\n\n";
  }

  if (!targets.empty()) {
    out << "| target (from the issue) | this run | no-transport row, same ratio | verdict |\n"
           "|---|---|---|---|\n";
    for (const Target& target : targets) {
      out << "| " << target.what << " | " << cell(target.measured) << " | "
          << target.reference_ratio << " | " << target.verdict
          << (target.verdict == "misses" && target.reference_meets_target == false
                  ? " (so does no-transport)"
                  : "")
          << " |\n";
    }
    out << "\nThe no-transport row runs the standard work through bare shared buffers (Sluice's "
           "geometry, one counter store per buffer, no framing, no wake-ups): filling, checking "
           "and moving the bytes between the cores, the part every system pays. It is a "
           "reference measured like the systems, not a strict bound (single runs of a system can "
           "exceed it); a row whose median is within a few percent of it is limited by that work, "
           "not by its transport. Where it misses a target against a peer too, the target asks "
           "for more than this work reaches here with no transport at all.\n\n";
  }
}

void write_json(const std::string& path, const Options& options, const Meta& meta,
                const std::optional<Limits>& limits, const std::vector<Row>& rows,
                const std::vector<LatencyRow>& latency, const std::vector<Target>& targets) {
  std::ofstream out(path);
  out << "{\n  \"meta\": {\"started\": \"" << json_escape(meta.started) << "\", \"host\": \""
      << json_escape(meta.host) << "\", \"cpu\": \"" << json_escape(meta.cpu)
      << "\", \"cpus\": " << meta.cpus << ", \"commit\": \"" << json_escape(options.commit)
      << "\", \"mode\": \"" << (options.quick ? "quick" : "full")
      << "\", \"bytes_per_run\": " << options.bytes_per_run
      << ", \"min_records\": " << options.min_records
      << ", \"max_records\": " << options.max_records
      << ", \"min_run_seconds\": " << num(options.min_run_seconds) << ", \"runs\": " << options.runs
      << ", \"rounds\": " << options.rounds
      << ", \"pin_throughput\": " << (options.pin_throughput ? "true" : "false")
      << ", \"pin_latency\": " << (options.pin_latency ? "true" : "false")
      << ", \"huge_pages\": " << (options.huge_pages ? "true" : "false") << ", \"load_before\": \""
      << json_escape(meta.load_before) << "\", \"load_after\": \"" << json_escape(meta.load_after)
      << "\", \"elapsed_s\": " << num(meta.elapsed)
      << ", \"other_busy_cores\": " << num(meta.other_busy_cores)
      << ", \"steal_fraction\": " << num(meta.steal_fraction) << "},\n";

  out << "  \"limits\": ";
  if (limits) {
    out << "{\"memcpy_cache_gbps\": " << num(limits->memcpy_cache_gbps)
        << ", \"memcpy_memory_gbps\": " << num(limits->memcpy_memory_gbps)
        << ", \"cacheline_rtt_p50_ns\": " << num(limits->cacheline_rtt_p50_ns)
        << ", \"cacheline_rtt_p99_ns\": " << num(limits->cacheline_rtt_p99_ns)
        << ", \"cacheline_rtt_mean_ns\": " << num(limits->cacheline_rtt_mean_ns)
        << ", \"cacheline_rtt_p50_ns_per_run\": " << num_array(limits->cacheline_p50_runs)
        << ", \"futex_rtt_p50_ns\": " << num(limits->futex_rtt_p50_ns)
        << ", \"futex_rtt_p99_ns\": " << num(limits->futex_rtt_p99_ns)
        << ", \"futex_rtt_p50_ns_per_run\": " << num_array(limits->futex_p50_runs)
        << ", \"futex_slept_fraction_per_run\": " << num_array(limits->futex_slept_fraction_runs)
        << ", \"problem\": \"" << json_escape(limits->problem) << "\", \"fill_check\": [";
    for (std::size_t i = 0; i < limits->fill_check.size(); ++i) {
      const Limits::FillCheck& row = limits->fill_check[i];
      out << (i == 0 ? "" : ", ") << "{\"size\": " << row.size
          << ", \"fill_check_records_per_sec\": " << num(row.fill_check_rps)
          << ", \"fill_records_per_sec\": " << num(row.fill_rps)
          << ", \"check_records_per_sec\": " << num(row.check_rps) << "}";
    }
    out << "]},\n";
  } else {
    out << "null,\n";
  }

  out << "  \"throughput\": [";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    out << (i == 0 ? "\n" : ",\n") << "    {\"system\": \"" << row.system
        << "\", \"reference\": " << (row.reference ? "true" : "false") << ", \"size\": " << row.size
        << ", \"records\": " << row.records;
    if (!row.unavailable.empty()) {
      out << ", \"unavailable\": \"" << json_escape(row.unavailable) << "\"}";
      continue;
    }
    out << ", \"ok_runs\": " << row.ok_runs << ", \"records_per_sec\": " << num(row.records_per_sec)
        << ", \"gb_per_sec\": " << num(row.gb_per_sec)
        << ", \"cpu_s_per_million\": " << num(row.cpu_per_million)
        << ", \"daemon_cpu_s_per_million\": "
        << (row.daemon_cpu_per_million >= 0 ? num(row.daemon_cpu_per_million) : "null")
        << ", \"sluice_ratio\": " << (row.ratio > 0 ? num(row.ratio) : "null")
        << ", \"problem\": \"" << json_escape(row.first_problem) << "\", \"runs\": [";
    for (std::size_t k = 0; k < row.runs.size(); ++k) {
      const RunResult& run = row.runs[k];
      out << (k == 0 ? "" : ", ") << "{\"ok\": " << (run.ok ? "true" : "false");
      if (run.ok) {
        out << ", \"seconds\": " << num(run.seconds)
            << ", \"records_per_sec\": " << num(run.records_per_sec)
            << ", \"gb_per_sec\": " << num(run.gb_per_sec)
            << ", \"cpu_s\": " << num(run.cpu_seconds)
            << ", \"cpu_s_per_million\": " << num(run.cpu_per_million)
            << ", \"cpu_total_s_wait4\": " << num(run.cpu_total_seconds) << ", \"daemon_cpu_s\": "
            << (run.daemon_cpu_seconds >= 0 ? num(run.daemon_cpu_seconds) : "null")
            << ", \"extra\": " << run.extra;
      } else {
        out << ", \"problem\": \"" << json_escape(run.problem) << "\"";
      }
      out << "}";
    }
    out << "]}";
  }
  out << "\n  ],\n";

  out << "  \"latency\": [";
  for (std::size_t i = 0; i < latency.size(); ++i) {
    const LatencyRow& row = latency[i];
    out << (i == 0 ? "\n" : ",\n") << "    {\"system\": \"" << row.system << "\", \"mode\": \""
        << (row.busy_poll ? "busy-poll" : "blocking") << "\"";
    if (!row.unavailable.empty()) {
      out << ", \"unavailable\": \"" << json_escape(row.unavailable) << "\"}";
      continue;
    }
    out << ", \"ok\": " << (row.ok ? "true" : "false");
    if (row.ok) {
      out << ", \"p50_ns\": " << num(row.p50) << ", \"p99_ns\": " << num(row.p99)
          << ", \"p999_ns\": " << num(row.p999) << ", \"mean_ns\": " << num(row.mean)
          << ", \"min_ns\": " << num(row.min) << ", \"max_ns\": " << num(row.max)
          << ", \"samples\": " << row.samples << ", \"runs_ok\": " << row.runs_ok
          << ", \"p50_ns_per_run\": " << num_array(row.p50_runs);
    } else {
      out << ", \"problem\": \"" << json_escape(row.problem) << "\"";
    }
    out << "}";
  }
  out << "\n  ],\n";

  out << "  \"targets\": [";
  for (std::size_t i = 0; i < targets.size(); ++i) {
    out << (i == 0 ? "\n" : ",\n") << "    {\"target\": \"" << json_escape(targets[i].what)
        << "\", \"measured\": \"" << json_escape(targets[i].measured) << "\", \"verdict\": \""
        << targets[i].verdict << "\", \"no_transport_ratio\": "
        << (targets[i].reference_ratio.empty()
                ? std::string("null")
                : "\"" + json_escape(targets[i].reference_ratio) + "\"")
        << ", \"no_transport_meets_target\": "
        << (!targets[i].reference_meets_target.has_value()
                ? "null"
                : (*targets[i].reference_meets_target ? "true" : "false"))
        << "}";
  }
  out << "\n  ]\n}\n";
  if (!out) {
    std::cerr << "sluice_compare: cannot write " << path << "\n";
  }
}

int main_impl(int argc, char** argv) {
  const Options options = parse(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);  // a dead peer shows as EPIPE, not as our death

  Meta meta;
  meta.started = utc_now();
  utsname names{};
  ::uname(&names);
  meta.host = names.nodename;
  meta.cpu = cpu_model();
  meta.cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  meta.load_before = read_first_line("/proc/loadavg");
  const CpuTimes machine_before = machine_cpu();
  const double own_before = own_cpu_seconds();
  const auto started = Clock::now();

  std::vector<std::unique_ptr<System>> systems;
  for (const std::string& name : options.systems) {
    std::unique_ptr<System> system = make_system(name, options);
    if (!system) {
      usage("unknown system " + name);
    }
    systems.push_back(std::move(system));
  }

  std::optional<Limits> limits;
  if (options.limits) {
    std::cerr << "limits: memcpy, cache-line round trip, fill + check ...\n";
    limits = measure_limits(options.sizes, options.quick ? 0.1 : 0.3);
  }

  for (const auto& system : systems) {
    if (system->unavailable().empty()) {
      system->start();
    }
    if (!system->unavailable().empty()) {
      std::cerr << system->name() << ": unavailable: " << system->unavailable() << "\n";
    }
  }

  std::vector<Row> rows;
  if (options.throughput) {
    for (const std::size_t size : options.sizes) {
      for (std::size_t index = 0; index < systems.size(); ++index) {
        const auto& system = systems[index];
        Row row;
        row.system = system->name();
        row.system_index = index;
        row.reference = system->is_reference();
        row.size = size;
        row.records = records_for(options, size);
        row.unavailable = system->unavailable();
        rows.push_back(row);
      }
    }
    // A system that moves the capped record count in a few milliseconds
    // would be timed mostly on start-up and scheduling noise: unmeasured
    // runs per row find how many records fill min_run_seconds, within the
    // payload per run. The same rule for every system. One probe is not
    // enough where start-up is a large part of it: scaled by its time, a
    // row with a 14 ms start (two programs started) that probed at 20 ms
    // got runs of 0.09 s, not 0.25 s. So it probes again at the new count,
    // up to kMostProbes times, until a probe fills the time or the cap.
    if (options.min_run_seconds > 0) {
      constexpr int kMostProbes = 3;
      for (Row& row : rows) {
        if (!row.unavailable.empty()) {
          continue;
        }
        const std::uint64_t by_bytes = kCalibratedPayloadFactor * options.bytes_per_run / row.size;
        for (int probe_round = 0; probe_round < kMostProbes; ++probe_round) {
          const RunResult probe =
              run_throughput(*systems[row.system_index], options, row.size, row.records);
          if (!probe.ok || probe.seconds <= 0 || probe.seconds >= options.min_run_seconds) {
            break;
          }
          const auto wanted = static_cast<std::uint64_t>(static_cast<double>(row.records) *
                                                         options.min_run_seconds / probe.seconds);
          const std::uint64_t records = std::max(row.records, std::min(by_bytes, wanted));
          std::cerr << "calibration: " << row.system << " " << bytes_label(row.size) << " took "
                    << format("%.3f s", probe.seconds) << " for " << row.records
                    << " records; next runs use " << records << " records\n";
          if (records == row.records) {
            break;  // at the cap
          }
          row.records = records;
        }
      }
    }
    // Interleaved (run, size, system) so that a change in the machine's other
    // load spreads over every system instead of hitting one.
    const std::size_t total = rows.size() * static_cast<std::size_t>(options.runs);
    std::size_t done = 0;
    for (int run = 0; run < options.runs; ++run) {
      for (Row& row : rows) {
        ++done;
        if (!row.unavailable.empty()) {
          continue;
        }
        System& system = *systems[row.system_index];
        const RunResult result = run_throughput(system, options, row.size, row.records);
        row.runs.push_back(result);
        std::cerr << "[" << done << "/" << total << "] " << row.system << " "
                  << bytes_label(row.size) << " run " << run + 1 << ": ";
        if (result.ok) {
          std::cerr << rate(result.records_per_sec) << " records/s, "
                    << format("%.3f GB/s, ", result.gb_per_sec)
                    << format("%.4f CPU s/M", result.cpu_per_million) << "\n";
        } else {
          std::cerr << "FAILED: " << result.problem << "\n";
        }
      }
    }
    for (Row& row : rows) {
      summarise(row);
    }
    for (Row& row : rows) {
      const Row* sluice = find_row(rows, "sluice", row.size);
      if (usable(sluice) && usable(&row)) {
        row.ratio = sluice->records_per_sec / row.records_per_sec;
      }
    }
  }

  // Latency: `runs` repetitions, each one the cache-line round trip and then
  // every system in both modes; per row the median of each percentile.
  std::vector<LatencyRow> latency;
  std::vector<CachelineRtt> cachelines;
  std::vector<FutexRtt> futexes;
  const std::uint64_t futex_rounds = options.quick ? 500 : 2000;
  if (options.latency) {
    std::vector<std::vector<LatencyRow>> reps;
    for (int rep = 0; rep < options.runs; ++rep) {
      cachelines.push_back(measure_cacheline(options.quick ? 50000 : 200000));
      std::cerr << "latency " << rep + 1 << "/" << options.runs << ": cache-line round trip p50 "
                << micros(cachelines.back().p50_ns) << " us\n";
      futexes.push_back(measure_futex(futex_rounds));
      std::cerr << "latency " << rep + 1 << "/" << options.runs
                << ": futex round trip (both sides asleep) p50 " << micros(futexes.back().p50_ns)
                << format(" us, %.0f%% of waits slept\n", futexes.back().slept_fraction * 100);
      std::vector<LatencyRow> rows_this_rep;
      for (const bool busy : {true, false}) {
        for (const auto& system : systems) {
          if (!system->has_ping()) {
            continue;
          }
          const bool futex_variant = !busy && system->name() == "sluice";
          for (const bool no_spin : {false, true}) {
            if (no_spin && !futex_variant) {
              continue;
            }
            // Sluice's default blocking wait spins ~10 us before it sleeps, so
            // its ping-pong never sleeps; the no-spin row shows the futex path.
            LatencyRow row;
            if (!system->unavailable().empty()) {
              row.system = system->name();
              row.busy_poll = busy;
              row.unavailable = system->unavailable();
            } else {
              row = run_latency(*system, options, busy, no_spin);
              std::cerr << "latency " << rep + 1 << "/" << options.runs << " " << row.system
                        << (busy ? " busy-poll: " : " blocking: ");
              if (row.ok) {
                std::cerr << "p50 " << micros(row.p50) << " us, p99 " << micros(row.p99)
                          << " us, p99.9 " << micros(row.p999) << " us\n";
              } else {
                std::cerr << "FAILED: " << row.problem << "\n";
              }
            }
            rows_this_rep.push_back(row);
          }
        }
      }
      reps.push_back(rows_this_rep);
    }
    for (std::size_t i = 0; i < reps.front().size(); ++i) {
      LatencyRow row = reps.front()[i];
      std::vector<double> p50, p99, p999, mean;
      row.samples = 0;
      row.min = 0;
      row.max = 0;
      for (const auto& rep : reps) {
        const LatencyRow& one = rep[i];
        if (one.ok) {
          p50.push_back(one.p50);
          p99.push_back(one.p99);
          p999.push_back(one.p999);
          mean.push_back(one.mean);
          row.samples += one.samples;
          row.min = row.min == 0 ? one.min : std::min(row.min, one.min);
          row.max = std::max(row.max, one.max);
          row.runs_ok++;
        } else if (row.problem.empty()) {
          row.problem = one.problem;
        }
        row.runs_total++;
      }
      row.ok = !p50.empty();
      row.p50 = median(p50);
      row.p99 = median(p99);
      row.p999 = median(p999);
      row.mean = median(mean);
      row.p50_runs = p50;
      latency.push_back(row);
    }
  }
  if (limits) {
    if (cachelines.empty()) {
      cachelines.push_back(measure_cacheline(options.quick ? 50000 : 200000));
    }
    std::vector<double> mean, p50, p99;
    for (const CachelineRtt& one : cachelines) {
      if (!one.problem.empty()) {
        limits->problem = one.problem;
        continue;
      }
      mean.push_back(one.mean_ns);
      p50.push_back(one.p50_ns);
      p99.push_back(one.p99_ns);
    }
    limits->cacheline_rtt_mean_ns = median(mean);
    limits->cacheline_rtt_p50_ns = median(p50);
    limits->cacheline_rtt_p99_ns = median(p99);
    limits->cacheline_p50_runs = p50;
    if (futexes.empty()) {
      futexes.push_back(measure_futex(futex_rounds));
    }
    std::vector<double> futex_p50, futex_p99;
    for (const FutexRtt& one : futexes) {
      if (!one.problem.empty()) {
        limits->problem = one.problem;
        continue;
      }
      futex_p50.push_back(one.p50_ns);
      limits->futex_slept_fraction_runs.push_back(one.slept_fraction);
      futex_p99.push_back(one.p99_ns);
    }
    limits->futex_rtt_p50_ns = median(futex_p50);
    limits->futex_rtt_p99_ns = median(futex_p99);
    limits->futex_p50_runs = futex_p50;
  }

  for (const auto& system : systems) {
    system->stop();
  }

  meta.load_after = read_first_line("/proc/loadavg");
  meta.elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  const CpuTimes machine_after = machine_cpu();
  const double own = own_cpu_seconds() - own_before;
  const double busy = machine_after.busy - machine_before.busy;
  meta.other_busy_cores = std::max(0.0, (busy - own) / meta.elapsed);
  const double all = machine_after.total - machine_before.total;
  meta.steal_fraction = all > 0 ? (machine_after.steal - machine_before.steal) / all : 0;

  const std::vector<Target> targets =
      judge(rows, latency, limits ? &*limits : nullptr, options.sizes);
  print_tables(std::cout, options, meta, limits, rows, latency, targets);
  write_json(options.json_path, options, meta, limits, rows, latency, targets);
  std::cout << "JSON: " << options.json_path << "\n";
  return 0;
}

}  // namespace
}  // namespace cmp

int main(int argc, char** argv) {
  try {
    return cmp::main_impl(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "sluice_compare: " << error.what() << "\n";
    return 1;
  }
}
