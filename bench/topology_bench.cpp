// Fan-in, fan-out and broadcast against the 1:1 channel, on the standard
// work (records of S bytes, the producer fills every byte, the consumer
// checks every byte):
//   fan-in     M producer processes, each on its own channel, one consumer
//              process reading all M through one input gate
//   one        one producer process, one consumer process, one channel
//   separate   M producer processes and M consumer processes, M channels
//   fan-out    one producer process writing one partitioned channel of M
//              subpartitions, round-robin per record (record n to n mod M),
//              and M consumer processes, one per subpartition, each checking
//              its share (n = i, i+M, ...)
//   broadcast  one producer process writing one partitioned channel of M
//              subpartitions with the broadcast partitioner (one shared copy
//              of each buffer), and M consumer processes, each checking
//              every record 0..N-1
//   iceoryx 1 -> M  one publisher process and M subscriber processes on one
//              service, every subscriber checking every sample (iceoryx's
//              own fan-out: compare with broadcast)
//   iceoryx M -> 1  M publisher processes on one service, one subscriber
//              process checking each publisher's sequence (compare with fan-in)
// Records/s and GB/s are aggregate: records checked by all consumers
// together. Every configuration delivers the same aggregate number of
// records per run (where a record reaches M consumers, the producer writes
// 1/M as many), except that the iceoryx rows are capped at 4 Mi records per
// run (times --scale below 1, at least 40,000) as the comparison caps them
// (iceoryx moves a few hundred thousand small records per second). Time
// runs from the moment every process is set up and told to go until the
// last consumer has checked its last record; CPU s / GB is the CPU of all
// the row's processes over that time and their teardown, per aggregate GB.
// Each configuration runs --runs times (interleaved) and the median is
// reported, with its ratio to one; the targets are judged under the table.
//
//   sluice_bench_topology [--inputs M] [--runs N] [--scale X] [--sizes 64,65536] [--pin]
//                         [--no-iceoryx] [--json PATH]
//
// --pin puts every producer on cpu 0 and every consumer on cpu 1 (default:
// the scheduler places them; with more processes than cores a consumer then
// shares its core with producers). Exit status: 0, 1 if a run failed, 2 for
// bad arguments.

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/transport/consumer.hpp"
#include "sluice/transport/input_gate.hpp"
#include "sluice/transport/partition_writer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/sequence_pattern.hpp"
#include "topology_iceoryx.hpp"
#include "topology_run.hpp"

namespace {

namespace st = sluice::transport;
namespace pattern = sluice::transport::pattern;
using sluice::bench::topology::count_cpu;
using sluice::bench::topology::finished;
using sluice::bench::topology::IceoryxRows;
using sluice::bench::topology::intact;
using sluice::bench::topology::now_ns;
using sluice::bench::topology::RunControl;
using sluice::bench::topology::wait_for_go;

// iceoryx's rows move at most this many records per run, as the comparison's
// runs do (bench/README.md: iceoryx moves a few hundred thousand small
// records per second, where Sluice moves tens of millions).
// --scale below 1 shrinks it as it shrinks the payload.
constexpr std::uint64_t kIceoryxMaxRecords = std::uint64_t{4} << 20;
std::uint64_t g_iceoryx_max_records = kIceoryxMaxRecords;
// A run whose processes have not all ended by then is killed and failed.
constexpr auto kRunTimeout = std::chrono::seconds(300);

// Above 1 KiB, one record per buffer and the pool sized for large records,
// as the comparison and the demo programs do.
st::ChannelConfig config_for(std::size_t size) {
  st::ChannelConfig config;
  if (size > 1024) {
    config.buffer_bytes = st::ChannelConfig::kMinBufferBytes;  // too small: sized for one record
    config = st::sized_for_records(config, size);
  }
  return config;
}

// One channel, or a broadcast one (every record to every subpartition):
// RecordWriter's batch path either way (under broadcast the writer is
// unpinned, as PartitionWriter's is).
int produce(const std::string& name, const st::ChannelConfig& config, std::size_t size,
            std::uint64_t records, RunControl& control) {
  auto producer = st::Producer::create(name, config);
  st::RecordWriter writer(producer);
  wait_for_go(control);
  std::uint64_t sequence = 0;
  const st::Status status = writer.write_batch(
      size, records,
      [&sequence](std::span<std::byte> record) noexcept { pattern::fill(record, sequence++); });
  if (status != st::Status::kOk || writer.close() != st::Status::kOk) {
    return 1;
  }
  return 0;
}

int consume_one(const std::string& name, std::size_t size, std::uint64_t records,
                RunControl& control) {
  auto consumer = st::Consumer::open(name, {.wait_for_channel = std::chrono::seconds(30)});
  st::remove_channel(name);
  st::RecordReader reader(consumer);
  wait_for_go(control);
  std::uint64_t sequence = 0;
  bool good = true;
  while (sequence < records) {
    const st::Status status = reader.read_batch([&](std::span<const std::byte> record) {
      good = good && intact(record, size, sequence);
      return ++sequence < records;
    });
    if (status != st::Status::kOk) {
      return 1;
    }
  }
  finished(control);
  return good ? 0 : 1;
}

int consume_gate(const std::vector<std::string>& names, std::size_t size,
                 std::uint64_t records_each, RunControl& control) {
  st::GateOptions options;
  options.open.wait_for_channel = std::chrono::seconds(30);
  auto gate = st::InputGate::open(names, options);
  for (const auto& name : names) {
    st::remove_channel(name);
  }
  wait_for_go(control);
  std::vector<std::uint64_t> next(names.size(), 0);
  const std::uint64_t total = records_each * names.size();
  std::uint64_t received = 0;
  bool good = true;
  while (received < total) {
    const st::Status status = gate.read_batch([&](std::span<const std::byte> record) {
      std::uint64_t& sequence = next[gate.last_input()];
      good = good && intact(record, size, sequence);
      ++sequence;
      return ++received < total;
    });
    if (status != st::Status::kOk) {
      return 1;
    }
  }
  finished(control);
  return good ? 0 : 1;
}

int produce_partitioned(const std::string& name, std::size_t size, std::uint64_t records,
                        std::uint32_t subpartitions, RunControl& control) {
  st::ChannelConfig config = config_for(size);
  config.subpartitions = subpartitions;
  config.partitioner = st::Partitioner::kRoundRobin;
  // The same pool per consumer as a 1:1 channel has.
  config.buffer_count *= subpartitions;
  config.max_queued_buffers = config.buffer_count / subpartitions;
  auto producer = st::Producer::create(name, config);
  st::PartitionWriter writer(producer);
  wait_for_go(control);
  // Filled in place, record by record in turn over the subpartitions (as
  // the broadcast row fills its one writer's runs).
  std::uint64_t sequence = 0;
  const st::Status status = writer.write_batch(
      size, records,
      [&sequence](std::span<std::byte> record) noexcept { pattern::fill(record, sequence++); });
  if (status != st::Status::kOk) {
    return 1;
  }
  return writer.close() == st::Status::kOk ? 0 : 1;
}

// One copy of each buffer, shared by all M consumers: the pool of one 1:1
// channel, and a cap of the whole pool (a broadcast buffer counts against
// every subpartition's cap until that subpartition's consumer releases it).
st::ChannelConfig broadcast_config(std::size_t size, std::uint32_t subpartitions) {
  st::ChannelConfig config = config_for(size);
  config.subpartitions = subpartitions;
  config.partitioner = st::Partitioner::kBroadcast;
  config.max_queued_buffers = config.buffer_count;
  return config;
}

// Reads one subpartition, expecting `records` records numbered first,
// first + stride, ... (round-robin: first = i, stride = M; broadcast:
// first = 0, stride = 1).
int consume_subpartition(const std::string& name, std::uint32_t subpartition, std::uint64_t first,
                         std::uint64_t stride, std::size_t size, std::uint64_t records,
                         RunControl& control) {
  st::OpenOptions open;
  open.wait_for_channel = std::chrono::seconds(30);
  open.subpartition = subpartition;
  auto consumer = st::Consumer::open(name, open);
  st::RecordReader reader(consumer);
  wait_for_go(control);
  std::uint64_t sequence = first;
  std::uint64_t received = 0;
  bool good = true;
  while (received < records) {
    const st::Status status = reader.read_batch([&](std::span<const std::byte> record) {
      good = good && intact(record, size, sequence);
      sequence += stride;
      return ++received < records;
    });
    if (status != st::Status::kOk) {
      return 1;
    }
  }
  finished(control);
  return good ? 0 : 1;
}

enum class Shape {
  kFanIn,
  kOne,
  kSeparate,
  kFanOut,
  kBroadcast,
  kIceoryxOneToMany,
  kIceoryxManyToOne
};
constexpr std::array<Shape, 7> kShapes = {Shape::kFanIn,           Shape::kOne,
                                          Shape::kSeparate,        Shape::kFanOut,
                                          Shape::kBroadcast,       Shape::kIceoryxOneToMany,
                                          Shape::kIceoryxManyToOne};

const char* shape_name(Shape shape) {
  switch (shape) {
    case Shape::kFanIn: return "fan-in";
    case Shape::kOne: return "one";
    case Shape::kSeparate: return "separate";
    case Shape::kFanOut: return "fan-out";
    case Shape::kBroadcast: return "broadcast";
    case Shape::kIceoryxOneToMany: return "iceoryx 1 -> M";
    case Shape::kIceoryxManyToOne: return "iceoryx M -> 1";
  }
  return "?";
}

bool is_iceoryx(Shape shape) {
  return shape == Shape::kIceoryxOneToMany || shape == Shape::kIceoryxManyToOne;
}

std::string processes_of(Shape shape, std::uint32_t inputs) {
  const std::string m = std::to_string(inputs);
  switch (shape) {
    case Shape::kFanIn:
    case Shape::kIceoryxManyToOne: return m + " -> 1";
    case Shape::kOne: return "1 -> 1";
    case Shape::kSeparate: return m + " x (1 -> 1)";
    case Shape::kFanOut:
    case Shape::kBroadcast:
    case Shape::kIceoryxOneToMany: return "1 -> " + m;
  }
  return "?";
}

// How a row's aggregate is counted, for the notes under the table.
bool every_consumer_gets_every_record(Shape shape) {
  return shape == Shape::kBroadcast || shape == Shape::kIceoryxOneToMany;
}

bool g_pin = false;

// The child ends with _exit, or with exit (static destructors run) where
// `deregister`: iceoryx's runtime leaves RouDi from its static destructor,
// and a client that vanishes without it is one RouDi later fails to stop.
template <class Body>
pid_t spawn(int cpu, RunControl& control, Body body, bool deregister = false) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    if (g_pin) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      (void)sched_setaffinity(0, sizeof(set), &set);
    }
    int status = 1;
    try {
      status = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
    }
    if (status != 0) {
      control.failures.fetch_add(1);
    }
    count_cpu(control);
    if (deregister) {
      std::exit(status);
    }
    _exit(status);
  }
  return pid;
}

// Waits for every child; after `timeout` kills those still running. True
// when all exited with status 0 in time. A child killed by a signal never
// counted its own failure: counted here, so that publishers waiting for
// their consumers (wait_for_consumers) stop waiting.
bool reap(std::vector<pid_t> pending, std::chrono::seconds timeout, RunControl& control) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool ok = true;
  while (!pending.empty()) {
    for (auto it = pending.begin(); it != pending.end();) {
      int status = 0;
      if (waitpid(*it, &status, WNOHANG) == *it) {
        if (WIFSIGNALED(status)) {
          control.failures.fetch_add(1);
        }
        ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    if (!pending.empty() && std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "a run took longer than %lld s: its processes are killed\n",
                   static_cast<long long>(timeout.count()));
      for (const pid_t child : pending) {
        kill(child, SIGKILL);
        waitpid(child, nullptr, 0);
      }
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return ok;
}

struct Plan {
  std::uint64_t each = 0;       // records each producer writes
  std::uint64_t delivered = 0;  // records checked by all consumers together
};

Plan plan_for(Shape shape, std::uint64_t total, std::uint32_t inputs) {
  if (shape == Shape::kOne) {
    return {total, total};
  }
  const std::uint64_t capped =
      is_iceoryx(shape) ? std::min(total, g_iceoryx_max_records) / inputs * inputs : total;
  return {capped / inputs, capped / inputs * inputs};
}

struct Outcome {
  double records_per_sec = -1;  // aggregate; negative if the run failed
  double cpu_seconds = 0;       // all processes, from go until each ended
};

Outcome run(Shape shape, std::size_t size, std::uint64_t total, std::uint32_t inputs, int serial) {
  void* memory =
      mmap(nullptr, sizeof(RunControl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    return {};
  }
  auto* control = new (memory) RunControl{};
  const Plan plan = plan_for(shape, total, inputs);
  const std::uint64_t each = plan.each;
  // fan-in and separate: a channel per producer; the rest: one channel or service.
  const std::uint32_t channels = shape == Shape::kFanIn || shape == Shape::kSeparate ? inputs : 1;
  const std::string tag = std::to_string(getpid()) + "-" + std::to_string(serial);
  std::vector<std::string> names;
  for (std::uint32_t i = 0; i < channels; ++i) {
    names.push_back("bench-topo-" + tag + "-" + std::to_string(i));
  }
  std::vector<pid_t> children;
  switch (shape) {
    case Shape::kFanIn:
      for (const auto& name : names) {
        children.push_back(spawn(
            0, *control, [&] { return produce(name, config_for(size), size, each, *control); }));
      }
      children.push_back(
          spawn(1, *control, [&] { return consume_gate(names, size, each, *control); }));
      break;
    case Shape::kOne:
    case Shape::kSeparate:
      for (const auto& name : names) {
        children.push_back(spawn(
            0, *control, [&] { return produce(name, config_for(size), size, each, *control); }));
      }
      for (const auto& name : names) {
        children.push_back(
            spawn(1, *control, [&] { return consume_one(name, size, each, *control); }));
      }
      break;
    case Shape::kFanOut:
      children.push_back(spawn(0, *control, [&] {
        return produce_partitioned(names.front(), size, each * inputs, inputs, *control);
      }));
      for (std::uint32_t s = 0; s < inputs; ++s) {
        children.push_back(spawn(1, *control, [&, s] {
          return consume_subpartition(names.front(), s, s, inputs, size, each, *control);
        }));
      }
      break;
    case Shape::kBroadcast:
      children.push_back(spawn(0, *control, [&] {
        return produce(names.front(), broadcast_config(size, inputs), size, each, *control);
      }));
      for (std::uint32_t s = 0; s < inputs; ++s) {
        children.push_back(spawn(1, *control, [&, s] {
          return consume_subpartition(names.front(), s, 0, 1, size, each, *control);
        }));
      }
      break;
    case Shape::kIceoryxOneToMany:
      children.push_back(spawn(
          0, *control,
          [&] {
            return sluice::bench::topology::iceoryx_publish(tag, 0, size, each, inputs, *control);
          },
          true));
      for (std::uint32_t s = 0; s < inputs; ++s) {
        children.push_back(spawn(
            1, *control,
            [&, s] {
              return sluice::bench::topology::iceoryx_subscribe(tag, s, 1, size, each, *control);
            },
            true));
      }
      break;
    case Shape::kIceoryxManyToOne:
      for (std::uint32_t p = 0; p < inputs; ++p) {
        children.push_back(spawn(
            0, *control,
            [&, p] {
              return sluice::bench::topology::iceoryx_publish(tag, p, size, each, 1, *control);
            },
            true));
      }
      children.push_back(spawn(
          1, *control,
          [&] {
            return sluice::bench::topology::iceoryx_subscribe(tag, 0, inputs, size, each, *control);
          },
          true));
      break;
  }
  // A child that fails while setting up never says ready; it counts as a
  // failure instead, and the run still goes so that the others end.
  const auto setup_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (control->ready.load() + control->failures.load() < children.size() &&
         std::chrono::steady_clock::now() < setup_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  control->go_ns.store(now_ns());
  control->go.store(1, std::memory_order_release);
  const bool ok = reap(children, kRunTimeout, *control) && control->failures.load() == 0;
  for (const auto& name : names) {
    st::remove_channel(name);
  }
  if (is_iceoryx(shape)) {
    sluice::bench::topology::iceoryx_cleanup(tag, inputs);
  }
  const double seconds =
      static_cast<double>(control->last_done_ns.load() - control->go_ns.load()) / 1e9;
  const double cpu = static_cast<double>(control->cpu_ns.load()) / 1e9;
  munmap(memory, sizeof(RunControl));
  if (!ok || seconds <= 0) {
    return {};
  }
  return {static_cast<double>(plan.delivered) / seconds, cpu};
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

std::string size_label(std::size_t size) {
  if (size >= 1024 && size % 1024 == 0) {
    return size % (1024 * 1024) == 0 ? std::to_string(size >> 20) + " MiB"
                                     : std::to_string(size >> 10) + " KiB";
  }
  return std::to_string(size) + " B";
}

struct Row {
  Shape shape = Shape::kOne;
  std::size_t size = 0;
  std::uint64_t records_per_run = 0;  // aggregate, as counted for the rate
  std::vector<double> rates{};        // aggregate records/s of each good run
  std::vector<double> cpu_per_gb{};   // CPU s of all processes per aggregate GB, each good run
  int failed_runs = 0;
  std::string unavailable{};  // why the row did not run, or empty
  [[nodiscard]] double rate() const { return median(rates); }
  [[nodiscard]] double gbps() const { return rate() * static_cast<double>(size) / 1e9; }
  [[nodiscard]] double cpu() const { return median(cpu_per_gb); }
};

struct Target {
  std::string what;
  std::string measured;
  double ratio = 0;
  double target = 0;
  std::string verdict;  // holds, misses, n/a
};

const Row* find_row(const std::vector<Row>& rows, Shape shape, std::size_t size) {
  for (const Row& row : rows) {
    if (row.shape == shape && row.size == size) {
      return &row;
    }
  }
  return nullptr;
}

// `row` / `base` (records/s at one size, so also GB/s) against `target`.
Target judge(std::string what, const std::vector<Row>& rows, Shape row_shape, Shape base_shape,
             std::size_t size, double target, std::uint32_t inputs) {
  Target judged{std::move(what), "", 0, target, "n/a"};
  const Row* row = find_row(rows, row_shape, size);
  const Row* base = find_row(rows, base_shape, size);
  if (inputs != 4) {
    judged.measured = "judged only with --inputs 4";
  } else if (row == nullptr || base == nullptr) {
    judged.measured = "not run (" + size_label(size) + " not in --sizes)";
  } else if (!base->unavailable.empty()) {
    judged.measured = std::string(shape_name(base_shape)) + " unavailable: " + base->unavailable;
  } else if (row->rates.empty() || base->rates.empty()) {
    judged.measured = "a row has no successful run";
  } else {
    char text[160];
    judged.ratio = row->rate() / base->rate();
    if (size >= 1024) {
      std::snprintf(text, sizeof(text), "%.3f / %.3f GB/s = %.2fx", row->gbps(), base->gbps(),
                    judged.ratio);
    } else {
      std::snprintf(text, sizeof(text), "%.2f M / %.2f M records/s = %.2fx", row->rate() / 1e6,
                    base->rate() / 1e6, judged.ratio);
    }
    judged.measured = text;
    judged.verdict = judged.ratio >= target ? "holds" : "misses";
  }
  return judged;
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", static_cast<unsigned>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

bool write_json(const std::string& path, const std::vector<Row>& rows,
                const std::vector<Target>& targets, std::uint32_t inputs, int runs, double scale) {
  std::ofstream out(path);
  out << "{\n  \"benchmark\": \"sluice_bench_topology\",\n  \"inputs\": " << inputs
      << ",\n  \"runs\": " << runs << ",\n  \"scale\": " << scale
      << ",\n  \"pinned\": " << (g_pin ? "true" : "false") << ",\n  \"rows\": [";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    const Row* one = find_row(rows, Shape::kOne, row.size);
    out << (i == 0 ? "\n" : ",\n") << "    {\"shape\": " << json_string(shape_name(row.shape))
        << ", \"processes\": " << json_string(processes_of(row.shape, inputs))
        << ", \"size\": " << row.size << ", \"aggregate\": "
        << json_string(every_consumer_gets_every_record(row.shape)
                           ? "every consumer checks every record"
                           : "each record checked once")
        << ", \"records_per_run\": " << row.records_per_run
        << ", \"unavailable\": " << json_string(row.unavailable)
        << ", \"ok_runs\": " << row.rates.size() << ", \"failed_runs\": " << row.failed_runs
        << ", \"records_per_sec\": " << row.rate() << ", \"gb_per_sec\": " << row.gbps()
        << ", \"cpu_s_per_gb\": " << row.cpu() << ", \"ratio_to_one\": "
        << (one != nullptr && one->rate() > 0 ? row.rate() / one->rate() : 0.0)
        << ", \"runs_records_per_sec\": [";
    for (std::size_t r = 0; r < row.rates.size(); ++r) {
      out << (r == 0 ? "" : ", ") << row.rates[r];
    }
    out << "], \"runs_cpu_s_per_gb\": [";
    for (std::size_t r = 0; r < row.cpu_per_gb.size(); ++r) {
      out << (r == 0 ? "" : ", ") << row.cpu_per_gb[r];
    }
    out << "]}";
  }
  out << "\n  ],\n  \"targets\": [";
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const Target& target = targets[i];
    out << (i == 0 ? "\n" : ",\n") << "    {\"target\": " << json_string(target.what)
        << ", \"measured\": " << json_string(target.measured) << ", \"ratio\": " << target.ratio
        << ", \"at_least\": " << target.target << ", \"verdict\": " << json_string(target.verdict)
        << "}";
  }
  out << "\n  ]\n}\n";
  out.flush();
  return static_cast<bool>(out);
}

void print_usage(std::FILE* to, const char* program) {
  std::fprintf(to,
               "usage: %s [--inputs M] [--runs N] [--scale X] [--sizes A,B] [--pin] "
               "[--no-iceoryx] [--json PATH]\n"
               "  fan-in M -> 1, fan-out and broadcast 1 -> M, one 1 -> 1 channel, M separate\n"
               "  1 -> 1 channels and iceoryx 1 -> M and M -> 1, at each size (default 64,65536);\n"
               "  --inputs M (default 4), --runs N per row, median reported (default 5),\n"
               "  --scale X of the default payload per run, --pin producer/consumers to cpus,\n"
               "  --no-iceoryx skips its rows, --json PATH writes the results\n",
               program);
}

int usage(const char* program) {
  print_usage(stderr, program);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint32_t inputs = 4;
  int runs = 5;
  double scale = 1;
  bool iceoryx = true;
  std::string json_path;
  std::vector<std::size_t> sizes = {64, 65536};
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      print_usage(stdout, argv[0]);
      return 0;
    }
    if (flag == "--pin") {
      g_pin = true;
      --i;
      continue;
    }
    if (flag == "--no-iceoryx") {
      iceoryx = false;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", flag.c_str());
      return 2;
    }
    const std::string value = argv[i + 1];
    try {
      std::size_t used = 0;
      if (flag == "--inputs") {
        inputs = static_cast<std::uint32_t>(std::stoul(value, &used));
      } else if (flag == "--runs") {
        runs = std::stoi(value, &used);
      } else if (flag == "--scale") {
        scale = std::stod(value, &used);
      } else if (flag == "--json") {
        json_path = value;
        used = value.size();
      } else if (flag == "--sizes") {
        sizes.clear();
        for (std::size_t at = 0; at <= value.size();) {
          const std::size_t comma = std::min(value.find(',', at), value.size());
          const std::string item = value.substr(at, comma - at);
          std::size_t item_used = 0;
          sizes.push_back(std::stoul(item, &item_used));
          if (item_used != item.size() || sizes.back() == 0 ||
              sizes.back() > st::ChannelConfig::kMaxBufferBytes - 64) {
            throw std::invalid_argument(item);
          }
          at = comma + 1;
        }
        used = value.size();
      } else {
        return usage(argv[0]);
      }
      if (used != value.size()) {
        throw std::invalid_argument(value);
      }
    } catch (const std::exception&) {
      std::fprintf(stderr, "%s: bad value '%s'\n", flag.c_str(), value.c_str());
      return 2;
    }
  }
  if (inputs < 1 || inputs > st::InputGate::kMaxInputs ||
      inputs > st::ChannelConfig::kMaxSubpartitions || runs < 1 || !(scale > 0)) {
    std::fprintf(
        stderr, "bad arguments: --inputs 1..%u, --runs >= 1, --scale > 0\n",
        std::min<unsigned>(st::InputGate::kMaxInputs, st::ChannelConfig::kMaxSubpartitions));
    return 2;
  }
  g_iceoryx_max_records = std::max<std::uint64_t>(
      40'000,
      static_cast<std::uint64_t>(static_cast<double>(kIceoryxMaxRecords) * std::min(scale, 1.0)));
  IceoryxRows iceoryx_rows;
  const std::string iceoryx_problem = iceoryx ? iceoryx_rows.start() : "not run (--no-iceoryx)";

  std::vector<Row> rows;
  int serial = 0;
  bool failed = false;
  for (const std::size_t size : sizes) {
    // About 2.5 GB of payload per run, at least 40,000 records.
    const auto total = std::max<std::uint64_t>(
        static_cast<std::uint64_t>(scale * (2.5e9 / static_cast<double>(size))) / inputs * inputs,
        40'000);
    const std::size_t first = rows.size();
    for (const Shape shape : kShapes) {
      Row row{.shape = shape,
              .size = size,
              .records_per_run = plan_for(shape, total, inputs).delivered};
      if (is_iceoryx(shape)) {
        row.unavailable =
            iceoryx_problem.empty() ? IceoryxRows::size_problem(size) : iceoryx_problem;
      }
      rows.push_back(row);
    }
    for (int r = 0; r < runs; ++r) {
      for (std::size_t k = first; k < rows.size(); ++k) {
        Row& row = rows[k];
        if (!row.unavailable.empty()) {
          continue;
        }
        const Outcome outcome = run(row.shape, size, total, inputs, serial++);
        if (outcome.records_per_sec < 0) {
          std::fprintf(stderr, "%s at %zu B failed\n", shape_name(row.shape), size);
          failed = true;
          ++row.failed_runs;
          continue;
        }
        row.rates.push_back(outcome.records_per_sec);
        row.cpu_per_gb.push_back(outcome.cpu_seconds /
                                 (static_cast<double>(row.records_per_run * size) / 1e9));
      }
    }
  }
  iceoryx_rows.stop();

  std::printf("| shape | processes | record | records/s | GB/s | ÷ one | CPU s / GB |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|\n");
  for (const Row& row : rows) {
    const std::string shape =
        row.shape == Shape::kIceoryxOneToMany   ? "iceoryx 1 -> " + std::to_string(inputs)
        : row.shape == Shape::kIceoryxManyToOne ? "iceoryx " + std::to_string(inputs) + " -> 1"
                                                : shape_name(row.shape);
    const std::string processes = processes_of(row.shape, inputs);
    if (!row.unavailable.empty()) {
      std::printf("| %s | %s | %s | unavailable: %s | | | |\n", shape.c_str(), processes.c_str(),
                  size_label(row.size).c_str(), row.unavailable.c_str());
      continue;
    }
    if (row.rates.empty()) {
      std::printf("| %s | %s | %s | failed | | | |\n", shape.c_str(), processes.c_str(),
                  size_label(row.size).c_str());
      continue;
    }
    const Row* one = find_row(rows, Shape::kOne, row.size);
    const double base = one != nullptr ? one->rate() : 0;
    std::printf("| %s | %s | %s | %.2f M | %.3f | %.2fx | %.3f |\n", shape.c_str(),
                processes.c_str(), size_label(row.size).c_str(), row.rate() / 1e6, row.gbps(),
                base > 0 ? row.rate() / base : 0.0, row.cpu());
  }
  std::printf(
      "\n(median of %d runs each, interleaved; %u inputs; %s.)\n"
      "Records/s and GB/s are aggregate: records checked by all consumers together per second. "
      "fan-in, one, separate, fan-out and iceoryx %u -> 1 deliver each record to one consumer "
      "(aggregate = records written); broadcast and iceoryx 1 -> %u deliver every record to "
      "all %u consumers (aggregate = %u x records written). Every row delivers the same "
      "aggregate per run (about 2.5 GB x --scale), the iceoryx rows at most %llu records. "
      "CPU s / GB: user + system CPU of all the row's processes from the start until each "
      "ended (set-up excluded; RouDi's own not counted) per GB of aggregate payload.\n\n",
      runs, inputs, g_pin ? "producers on cpu 0, consumers on cpu 1" : "unpinned", inputs, inputs,
      inputs, inputs, static_cast<unsigned long long>(g_iceoryx_max_records));

  const std::vector<Target> targets = {
      judge("broadcast 1 -> 4 at 64 KiB: aggregate GB/s >= 1.3x iceoryx 1 -> 4", rows,
            Shape::kBroadcast, Shape::kIceoryxOneToMany, 65536, 1.3, inputs),
      judge("broadcast 1 -> 4 at 64 KiB: aggregate GB/s >= 0.8x separate 4 x (1 -> 1)", rows,
            Shape::kBroadcast, Shape::kSeparate, 65536, 0.8, inputs),
      judge("fan-in 4 -> 1 at 64 B: records/s >= 0.8x one 1 -> 1", rows, Shape::kFanIn, Shape::kOne,
            64, 0.8, inputs),
  };
  std::printf("| target | this run | verdict |\n|---|---|---|\n");
  for (const Target& target : targets) {
    std::printf("| %s | %s | %s |\n", target.what.c_str(), target.measured.c_str(),
                target.verdict.c_str());
  }
  if (!json_path.empty() && !write_json(json_path, rows, targets, inputs, runs, scale)) {
    std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
    return 1;
  }
  return failed ? 1 : 0;
}
