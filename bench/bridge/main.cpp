// sluice_bench_bridge: records/s across NATS JetStream, for the bridge and
// for what it is judged against, at several record sizes. Starts its own
// nats-server; prints a markdown table and the targets' verdicts, and writes
// the same as JSON. See bench/README.md ("Across hosts").

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "nats_server.hpp"
#include "rows.hpp"

namespace bridge_bench {
namespace {

const std::vector<std::string> kRows = {"nats-per-record", "jetstream-raw", "zeromq-tcp", "bridge"};

struct Options {
  std::uint64_t records = 0;  // 0: by record size (records_for)
  std::uint64_t per_record_records = 200'000;
  int runs = 3;
  std::vector<std::size_t> sizes = {8, 64, 1024};
  std::size_t batch_bytes = 64 * 1024;
  std::string json_path;
  std::string bin_dir = SLUICE_TOOLS_DIR;
  bool bin_dir_given = false;
  std::string nats_server = "nats-server";
  std::vector<std::string> rows = kRows;
  bool require_bridge = false;
  int timeout_s = 300;
};

constexpr const char* kUsage = R"(usage: sluice_bench_bridge [options]

Starts its own nats-server (JetStream, file storage, a temporary store, a free
loopback port; stopped at exit) and measures records/s, median of --runs, for:
  nats-per-record  one JetStream message per record: asynchronous publishes
                   (bounded in flight), a pull consumer fetching batches
  jetstream-raw    the same, each message a batch of --batch-bytes of records
  zeromq-tcp       ZeroMQ PUSH/PULL over TCP loopback, the same batches
  bridge           sluice-producer -> sluice-bridge out -> nats-server ->
                   sluice-bridge in -> sluice-consumer, as processes
Every consumer checks each record's sequence number and bytes. Each run uses a
fresh stream, deleted afterwards.

options:
  --records N             records per run (default: 128 MiB of records, at least
                          262144 and at most 8388608: the batched rows move a
                          few hundred messages at least, so set-up does not dominate)
  --per-record-records N  records per run of nats-per-record (default 200000; its
                          rate does not depend on the count, its time does)
  --runs N                runs per row and size; the median is reported (default 3)
  --sizes LIST            record sizes in bytes (default 8,64,1024)
  --batch-bytes N         bytes of records per message in the batched rows: the
                          bridge's limit (default 65536)
  --rows LIST             which of nats-per-record,jetstream-raw,zeromq-tcp,bridge
                          (default: all)
  --bin-dir DIR           where sluice-bridge, sluice-producer, sluice-consumer are
                          (default: this build tree's tools; sluice-bridge also
                          in its nats/ when not among the tools)
  --require-bridge        exit 1 if the bridge row cannot run (not built)
  --nats-server PATH      the server program (default nats-server, from PATH)
  --timeout S             give up on a run after S seconds (default 300)
  --json PATH             also write the results as JSON

exit status: 0 every row that could run ran and checked out; 1 a run failed, or
--require-bridge and the bridge row did not run; 2 bad arguments or no server
)";

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "sluice_bench_bridge: " << problem << "\n\n" << kUsage;
  std::exit(2);
}

std::uint64_t number(const std::string& flag, const std::string& text, std::uint64_t min) {
  char* end = nullptr;
  const std::uint64_t value = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || text[0] == '-' || value < min) {
    usage(flag + " expects a whole number >= " + std::to_string(min) + ", got \"" + text + "\"");
  }
  return value;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, ',')) {
    parts.push_back(part);
  }
  return parts;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage(arg + " needs a value");
      }
      return argv[++i];
    };
    if (arg == "--records") {
      o.records = number(arg, value(), 1);
    } else if (arg == "--per-record-records") {
      o.per_record_records = number(arg, value(), 1);
    } else if (arg == "--runs") {
      o.runs = static_cast<int>(std::min<std::uint64_t>(number(arg, value(), 1), 1000));
    } else if (arg == "--sizes") {
      o.sizes.clear();
      for (const std::string& s : split(value())) {
        o.sizes.push_back(number("--sizes", s, 8));
        if (o.sizes.back() > (1U << 20)) {
          usage("--sizes: at most 1048576 bytes a record");
        }
      }
      if (o.sizes.empty()) {
        usage("--sizes is empty");
      }
    } else if (arg == "--batch-bytes") {
      o.batch_bytes = number(arg, value(), 8);
      if (o.batch_bytes > (std::size_t{64} << 20)) {
        usage("--batch-bytes: at most 64 MiB");
      }
    } else if (arg == "--rows") {
      o.rows = split(value());
      for (const std::string& row : o.rows) {
        if (std::find(kRows.begin(), kRows.end(), row) == kRows.end()) {
          usage("unknown row \"" + row + "\"");
        }
      }
    } else if (arg == "--bin-dir") {
      o.bin_dir = value();
      o.bin_dir_given = true;
    } else if (arg == "--require-bridge") {
      o.require_bridge = true;
    } else if (arg == "--nats-server") {
      o.nats_server = value();
    } else if (arg == "--timeout") {
      o.timeout_s = static_cast<int>(std::min<std::uint64_t>(number(arg, value(), 1), 86400));
    } else if (arg == "--json") {
      o.json_path = value();
    } else if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      std::exit(0);
    } else {
      usage("unknown option " + arg);
    }
  }
  return o;
}

struct Cell {
  std::string row;
  std::size_t size = 0;
  std::uint64_t records = 0;
  std::vector<double> rates;  // records/s of each successful run
  std::string problem;        // a failed run, or why the row did not run
  bool not_built = false;
  std::string note;
  [[nodiscard]] std::optional<double> median() const {
    if (rates.empty() || !problem.empty()) {
      return std::nullopt;
    }
    std::vector<double> sorted = rates;
    std::sort(sorted.begin(), sorted.end());
    const std::size_t n = sorted.size();
    return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  }
};

std::string human(double value) {
  char text[32];
  if (value >= 1e6) {
    std::snprintf(text, sizeof(text), "%.2f M", value / 1e6);
  } else if (value >= 1e3) {
    std::snprintf(text, sizeof(text), "%.1f k", value / 1e3);
  } else {
    std::snprintf(text, sizeof(text), "%.0f", value);
  }
  return text;
}

std::string size_text(std::size_t size) {
  return size >= 1024 && size % 1024 == 0 ? std::to_string(size / 1024) + " KiB"
                                          : std::to_string(size) + " B";
}

std::string ratio_text(double ratio) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2fx", ratio);
  return text;
}

std::string json_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) >= 0x20) {
      out += c;
    }
  }
  return out;
}

std::string run_tag() {
  static int counter = 0;
  return std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

// sluice-bridge: in --bin-dir, or by default among the tools or else in
// the build tree's nats/ directory.
std::string bridge_path(const Options& options) {
  const std::string among_tools = options.bin_dir + "/sluice-bridge";
  const std::string in_nats = std::string(SLUICE_BUILD_DIR) + "/nats/sluice-bridge";
  if (!options.bin_dir_given && ::access(among_tools.c_str(), X_OK) != 0 &&
      ::access(in_nats.c_str(), X_OK) == 0) {
    return in_nats;
  }
  return among_tools;
}

RowResult run_row(const std::string& row, const RowWork& work, const Options& options) {
  if (row == "nats-per-record") {
    return run_jetstream(work, false);
  }
  if (row == "jetstream-raw") {
    return run_jetstream(work, true);
  }
  if (row == "zeromq-tcp") {
    return run_zeromq_tcp(work);
  }
  return run_bridge_chain(work, options.bin_dir, bridge_path(options));
}

std::uint64_t records_for(const Options& options, std::size_t size) {
  if (options.records != 0) {
    return options.records;
  }
  return std::clamp<std::uint64_t>((std::uint64_t{128} << 20) / size, 262'144, 8'388'608);
}

struct Target {
  std::string text;
  std::optional<double> measured;
  double needed = 0;
  std::string against;
};

int run(const Options& options) {
  std::optional<NatsServer> server;
  try {
    server.emplace(options.nats_server);
  } catch (const std::exception& e) {
    std::cerr << "sluice_bench_bridge: " << e.what() << "\n";
    return 2;
  }
  const std::string missing = bridge_missing(options.bin_dir, bridge_path(options));
  std::vector<Cell> cells;
  for (const std::size_t size : options.sizes) {
    for (const std::string& row : options.rows) {
      Cell cell;
      cell.row = row;
      cell.size = size;
      cell.records =
          row == "nats-per-record" ? options.per_record_records : records_for(options, size);
      if (row == "bridge" && !missing.empty()) {
        cell.not_built = true;
        cell.problem = "not built (no " + missing + ")";
        cells.push_back(cell);
        continue;
      }
      for (int r = 0; r < options.runs && cell.problem.empty(); ++r) {
        const RowWork work{.size = size,
                           .records = cell.records,
                           .batch_bytes = options.batch_bytes,
                           .nats_url = server->url(),
                           .tag = run_tag(),
                           .timeout_s = options.timeout_s};
        const RowResult result = run_row(row, work, options);
        if (!result.ok) {
          cell.problem = result.problem.empty() ? "failed" : result.problem;
        } else {
          cell.rates.push_back(static_cast<double>(result.received) / result.seconds);
          cell.note = result.note;
        }
      }
      std::cerr << row << " " << size_text(size) << ": "
                << (cell.median() ? human(*cell.median()) + " records/s" : cell.problem) << "\n";
      cells.push_back(cell);
    }
  }
  server.reset();

  const auto find = [&](const std::string& row, std::size_t size) -> const Cell* {
    for (const Cell& c : cells) {
      if (c.row == row && c.size == size) {
        return &c;
      }
    }
    return nullptr;
  };
  const auto median_of = [&](const std::string& row, std::size_t size) -> std::optional<double> {
    const Cell* c = find(row, size);
    return c != nullptr ? c->median() : std::nullopt;
  };

  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  std::ostringstream md;
  md << "## The NATS bridge and what it is judged against\n\n"
     << "Run " << date << "; median of " << options.runs << " runs; records a run: "
     << (options.records != 0 ? std::to_string(options.records)
                              : std::string("128 MiB of them, 262144 to 8388608"))
     << " (" << options.per_record_records << " for nats-per-record); batched rows carry "
     << options.batch_bytes
     << " bytes of records a message; JetStream file storage, a fresh stream a run.\n\n"
     << "| system | record | records/s | MB/s | bridge ÷ row |\n|---|---:|---:|---:|---:|\n";
  for (const Cell& c : cells) {
    md << "| " << c.row << " | " << size_text(c.size) << " | ";
    if (const auto m = c.median()) {
      const auto bridge = median_of("bridge", c.size);
      char mb[32];
      std::snprintf(mb, sizeof(mb), "%.1f", *m * static_cast<double>(c.size) / 1e6);
      md << human(*m) << " | " << mb << " | " << (bridge ? ratio_text(*bridge / *m) : "") << " |\n";
    } else {
      md << (c.not_built ? "not built" : "failed") << " |  |  |\n";
    }
  }
  md << "\nRecords/s: records the consumer checked / time from the producer's start to the "
        "consumer's last record (the bridge: to sluice-consumer's exit).\n";
  for (const Cell& c : cells) {
    if (!c.problem.empty()) {
      md << "\n- " << c.row << " " << size_text(c.size) << ": " << c.problem;
    } else if (!c.note.empty()) {
      md << "\n- " << c.row << " " << size_text(c.size) << ": " << c.note;
    }
  }

  const auto bridge64 = median_of("bridge", 64);
  const auto per_record64 = median_of("nats-per-record", 64);
  const auto raw64 = median_of("jetstream-raw", 64);
  std::vector<Target> targets = {
      {"64 B records through the bridge >= 20x nats-per-record",
       bridge64 && per_record64 ? std::optional<double>(*bridge64 / *per_record64) : std::nullopt,
       20.0, "nats-per-record"},
      {"64 B records through the bridge >= 0.7x jetstream-raw (" +
           std::to_string(options.batch_bytes) + "-byte messages)",
       bridge64 && raw64 ? std::optional<double>(*bridge64 / *raw64) : std::nullopt, 0.7,
       "jetstream-raw"},
  };
  md << "\n\n| target (from the issue) | this run | verdict |\n|---|---|---|\n";
  for (const Target& t : targets) {
    md << "| " << t.text << " | " << (t.measured ? ratio_text(*t.measured) : "not measured")
       << " | " << (t.measured ? (*t.measured >= t.needed ? "holds" : "misses") : "not measured")
       << " |\n";
  }
  std::cout << "\n" << md.str() << std::flush;

  if (!options.json_path.empty()) {
    std::ofstream json(options.json_path);
    json << "{\"tool\":\"sluice_bench_bridge\",\"date\":\"" << date
         << "\",\"runs\":" << options.runs
         << ",\"per_record_records\":" << options.per_record_records
         << ",\"batch_bytes\":" << options.batch_bytes << ",\"rows\":[";
    for (std::size_t i = 0; i < cells.size(); ++i) {
      const Cell& c = cells[i];
      json << (i ? "," : "") << "{\"system\":\"" << c.row << "\",\"size\":" << c.size
           << ",\"records\":" << c.records << ",\"records_per_sec\":";
      if (const auto m = c.median()) {
        json << *m;
      } else {
        json << "null";
      }
      json << ",\"runs_records_per_sec\":[";
      for (std::size_t r = 0; r < c.rates.size(); ++r) {
        json << (r ? "," : "") << c.rates[r];
      }
      json << "],\"not_built\":" << (c.not_built ? "true" : "false") << ",\"problem\":\""
           << json_escape(c.problem) << "\",\"note\":\"" << json_escape(c.note) << "\"}";
    }
    json << "],\"targets\":[";
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const Target& t = targets[i];
      json << (i ? "," : "") << "{\"target\":\"" << json_escape(t.text) << "\",\"ratio\":";
      if (t.measured) {
        json << *t.measured;
      } else {
        json << "null";
      }
      json << ",\"needed\":" << t.needed
           << ",\"holds\":" << (t.measured ? (*t.measured >= t.needed ? "true" : "false") : "null")
           << "}";
    }
    json << "]}\n";
    if (!json) {
      std::cerr << "sluice_bench_bridge: cannot write " << options.json_path << "\n";
      return 1;
    }
  }

  bool failed = false;
  for (const Cell& c : cells) {
    failed = failed || (!c.problem.empty() && !c.not_built);
    failed = failed || (c.not_built && options.require_bridge);
  }
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace bridge_bench

int main(int argc, char** argv) {
  // The harness tells a child that already exited that its peer finished.
  std::signal(SIGPIPE, SIG_IGN);
  return bridge_bench::run(bridge_bench::parse(argc, argv));
}
