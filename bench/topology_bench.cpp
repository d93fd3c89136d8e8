// Fan-in against the 1:1 channel, on the standard work (records of S bytes,
// the producer fills every byte, the consumer checks every byte):
//   fan-in    M producer processes, each on its own channel, one consumer
//             process reading all M through one input gate
//   one       one producer process, one consumer process, one channel
//   separate  M producer processes and M consumer processes, M channels
//   fan-out   one producer process writing one partitioned channel of M
//             subpartitions, round-robin per record (record n to n mod M),
//             and M consumer processes, one per subpartition, each checking
//             its share (n = i, i+M, ...)
// All move the same total number of records. Records/s and GB/s run from
// the moment every process is set up and told to go until the last consumer
// has checked its last record. Each configuration runs --runs times
// (interleaved) and the median is reported, with the ratio fan-in / one.
//
//   sluice_bench_topology [--inputs M] [--runs N] [--scale X] [--sizes 64,65536] [--pin]
//
// --pin puts every producer on cpu 0 and every consumer on cpu 1 (default:
// the scheduler places them; with more processes than cores a consumer then
// shares its core with producers).

#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

namespace {

namespace st = sluice::transport;
namespace pattern = sluice::transport::pattern;
using Clock = std::chrono::steady_clock;

// Shared by the parent and every child of one run (MAP_SHARED | MAP_ANONYMOUS).
struct RunControl {
  std::atomic<std::uint32_t> ready;        // children set up
  std::atomic<std::uint32_t> go;           // 1: start
  std::atomic<std::int64_t> go_ns;         // when go was given
  std::atomic<std::int64_t> last_done_ns;  // latest consumer finish
  std::atomic<std::uint32_t> failures;
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

void wait_for_go(RunControl& control) {
  control.ready.fetch_add(1);
  while (control.go.load(std::memory_order_acquire) == 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void finished(RunControl& control) {
  const std::int64_t done = now_ns();
  std::int64_t seen = control.last_done_ns.load();
  while (done > seen && !control.last_done_ns.compare_exchange_weak(seen, done)) {
  }
}

st::ChannelConfig config_for(std::size_t size) {
  st::ChannelConfig config;
  if (size > 1024) {  // one record per buffer, 2 MiB in flight, as the comparison does
    config.buffer_bytes = static_cast<std::uint32_t>(size + 64);
    config.buffer_count = std::max<std::uint32_t>(8, static_cast<std::uint32_t>((2U << 20) / size));
  }
  return config;
}

int produce(const std::string& name, std::size_t size, std::uint64_t records, RunControl& control) {
  auto producer = st::Producer::create(name, config_for(size));
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

bool intact(std::span<const std::byte> record, std::size_t size, std::uint64_t sequence) {
  return record.size() == size && pattern::sequence_of(record) == sequence &&
         pattern::body_matches(record, sequence);
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
  std::vector<std::byte> record(size);
  wait_for_go(control);
  for (std::uint64_t sequence = 0; sequence < records; ++sequence) {
    pattern::fill(record, sequence);
    if (writer.write(record) != st::Status::kOk) {
      return 1;
    }
  }
  return writer.close() == st::Status::kOk ? 0 : 1;
}

int consume_subpartition(const std::string& name, std::uint32_t subpartition,
                         std::uint32_t subpartitions, std::size_t size, std::uint64_t records,
                         RunControl& control) {
  st::OpenOptions open;
  open.wait_for_channel = std::chrono::seconds(30);
  open.subpartition = subpartition;
  auto consumer = st::Consumer::open(name, open);
  st::RecordReader reader(consumer);
  wait_for_go(control);
  std::uint64_t sequence = subpartition;
  std::uint64_t received = 0;
  bool good = true;
  while (received < records) {
    const st::Status status = reader.read_batch([&](std::span<const std::byte> record) {
      good = good && intact(record, size, sequence);
      sequence += subpartitions;
      return ++received < records;
    });
    if (status != st::Status::kOk) {
      return 1;
    }
  }
  finished(control);
  return good ? 0 : 1;
}

enum class Shape { kFanIn, kOne, kSeparate, kFanOut };

const char* shape_name(Shape shape) {
  switch (shape) {
    case Shape::kFanIn: return "fan-in";
    case Shape::kOne: return "one";
    case Shape::kSeparate: return "separate";
    case Shape::kFanOut: return "fan-out";
  }
  return "?";
}

bool g_pin = false;

template <class Body>
pid_t spawn(int cpu, Body body) {
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
    _exit(status);
  }
  return pid;
}

// Records per second of one run, or a negative value if it failed.
double run(Shape shape, std::size_t size, std::uint64_t total, std::uint32_t inputs, int serial) {
  void* memory =
      mmap(nullptr, sizeof(RunControl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    return -1;
  }
  auto* control = new (memory) RunControl{};
  const std::uint32_t channels = shape == Shape::kOne ? 1 : inputs;
  const std::uint64_t each = total / channels;
  std::vector<std::string> names;
  for (std::uint32_t i = 0; i < channels; ++i) {
    names.push_back("bench-topo-" + std::to_string(getpid()) + "-" + std::to_string(serial) + "-" +
                    std::to_string(i));
  }
  std::vector<pid_t> children;
  if (shape == Shape::kFanOut) {
    children.push_back(spawn(0, [&] {
      return produce_partitioned(names.front(), size, each * channels, channels, *control);
    }));
    for (std::uint32_t s = 0; s < channels; ++s) {
      children.push_back(spawn(1, [&, s] {
        return consume_subpartition(names.front(), s, channels, size, each, *control);
      }));
    }
  }
  for (const auto& name : names) {
    if (shape != Shape::kFanOut) {
      children.push_back(spawn(0, [&] { return produce(name, size, each, *control); }));
    }
  }
  if (shape == Shape::kFanOut) {
    // Producer and consumers are spawned above.
  } else if (shape == Shape::kFanIn) {
    children.push_back(spawn(1, [&] { return consume_gate(names, size, each, *control); }));
  } else {
    for (const auto& name : names) {
      children.push_back(spawn(1, [&] { return consume_one(name, size, each, *control); }));
    }
  }
  while (control->ready.load() < children.size()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  control->go_ns.store(now_ns());
  control->go.store(1, std::memory_order_release);
  bool ok = true;
  for (const pid_t child : children) {
    int status = 0;
    waitpid(child, &status, 0);
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  for (const auto& name : names) {
    st::remove_channel(name);
  }
  const double seconds =
      static_cast<double>(control->last_done_ns.load() - control->go_ns.load()) / 1e9;
  munmap(memory, sizeof(RunControl));
  return ok && seconds > 0 ? static_cast<double>(each * channels) / seconds : -1;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::uint32_t inputs = 4;
  int runs = 5;
  double scale = 1;
  std::vector<std::size_t> sizes = {64, 65536};
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--pin") {
      g_pin = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", flag.c_str());
      return 2;
    }
    const std::string value = argv[i + 1];
    if (flag == "--inputs") {
      inputs = static_cast<std::uint32_t>(std::stoul(value));
    } else if (flag == "--runs") {
      runs = std::stoi(value);
    } else if (flag == "--scale") {
      scale = std::stod(value);
    } else if (flag == "--sizes") {
      sizes.clear();
      for (std::size_t at = 0; at <= value.size();) {
        const std::size_t comma = std::min(value.find(',', at), value.size());
        sizes.push_back(std::stoul(value.substr(at, comma - at)));
        at = comma + 1;
      }
    } else {
      std::fprintf(stderr, "usage: %s [--inputs M] [--runs N] [--scale X] [--sizes A,B] [--pin]\n",
                   argv[0]);
      return 2;
    }
  }
  if (inputs < 1 || inputs > st::InputGate::kMaxInputs || runs < 1 || scale <= 0) {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }
  std::printf("| shape | processes | record | records/s | GB/s | ÷ one |\n");
  std::printf("|---|---|---:|---:|---:|---:|\n");
  int serial = 0;
  bool failed = false;
  for (const std::size_t size : sizes) {
    // About 2.5 GB of payload per run, at least 40,000 records.
    const auto total = std::max<std::uint64_t>(
        static_cast<std::uint64_t>(scale * (2.5e9 / static_cast<double>(size))) / inputs * inputs,
        40'000);
    std::vector<double> results[4];
    for (int r = 0; r < runs; ++r) {
      for (const Shape shape : {Shape::kFanIn, Shape::kOne, Shape::kSeparate, Shape::kFanOut}) {
        const double rate = run(shape, size, total, inputs, serial++);
        if (rate < 0) {
          std::fprintf(stderr, "%s at %zu B failed\n", shape_name(shape), size);
          failed = true;
          continue;
        }
        results[static_cast<int>(shape)].push_back(rate);
      }
    }
    const double one = median(results[static_cast<int>(Shape::kOne)]);
    for (const Shape shape : {Shape::kFanIn, Shape::kOne, Shape::kSeparate, Shape::kFanOut}) {
      const double rate = median(results[static_cast<int>(shape)]);
      const std::string processes = shape == Shape::kFanIn ? std::to_string(inputs) + " -> 1"
                                    : shape == Shape::kOne ? "1 -> 1"
                                    : shape == Shape::kFanOut
                                        ? "1 -> " + std::to_string(inputs)
                                        : std::to_string(inputs) + " x (1 -> 1)";
      std::printf("| %s | %s | %zu B | %.2f M | %.3f | %.2fx |\n", shape_name(shape),
                  processes.c_str(), size, rate / 1e6, rate * static_cast<double>(size) / 1e9,
                  one > 0 ? rate / one : 0.0);
    }
  }
  std::printf("\n(median of %d runs each, interleaved; %u inputs; %s)\n", runs, inputs,
              g_pin ? "producers on cpu 0, consumers on cpu 1" : "unpinned");
  return failed ? 1 : 0;
}
