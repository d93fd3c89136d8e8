// Pipelines built from the demo programs and relay stages: every record
// reaches the sink through several stages; a fan-in stage merges streams;
// a relay killed again and again mid-stream and resumed loses nothing.

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <array>
#include <atomic>
#include <random>
#include <vector>

#include "sluice/transport/consumer.hpp"
#include "sluice/transport/input_gate.hpp"
#include "sluice/transport/ownership_check.hpp"
#include "sluice/transport/partition_writer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/sequence_pattern.hpp"
#include "sluice/transport/stage.hpp"
#include "test_support.hpp"
#include "tool_run.hpp"

namespace st = sluice::transport;
using namespace std::chrono_literals;
using sluice::test::ChannelGuard;
using sluice::test::ChildProcess;
using sluice::test::eventually;
using sluice::test::read_file;
using sluice::test::tool;
using sluice::test::unique_channel;

namespace {

// A demo program or relay in a child process, its output kept in a file.
int exec_tool(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const auto& arg : args) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);
  if (std::freopen(log.c_str(), "a", stdout) == nullptr ||
      std::freopen(log.c_str(), "a", stderr) == nullptr) {
    return 90;
  }
  execv(argv[0], argv.data());
  return 91;
}

std::string log_path(const std::string& label) {
  return "/tmp/" + unique_channel(label) + ".log";
}

}  // namespace

// The README's stage example, word for word but for the channel names.
int run_stage(const std::string& raw_a, const std::string& raw_b, const std::string& clean) {
  auto output = st::Producer::create(clean);
  st::RecordWriter writer(output);
  st::GateOptions options;
  options.open.wait_for_channel = std::chrono::seconds(10);
  options.reader.before_release = st::flush_before_release(writer);
  // Declared after the writer, so destroyed before it: its last release still flushes.
  auto gate = st::InputGate::open(std::vector<std::string>{raw_a, raw_b}, options);
  std::span<const std::byte> record;
  st::Status status;
  while ((status = gate.next(record)) == st::Status::kOk) {
    if (writer.write(record) != st::Status::kOk) return 1;  // blocks while downstream is behind
  }
  if (status != st::Status::kClosed) return 1;  // an input's producer died, or one was corrupt
  return writer.close() == st::Status::kOk ? 0 : 1;
}

TEST(Pipeline, TheReadmeStageMergesTwoStreamsIntoOne) {
  ChannelGuard raw_a(unique_channel("raw-a"));
  ChannelGuard raw_b(unique_channel("raw-b"));
  ChannelGuard clean(unique_channel("clean"));
  constexpr std::uint64_t kPerInput = 200'000;
  ChildProcess stage([&] { return run_stage(raw_a.name(), raw_b.name(), clean.name()); });
  std::vector<std::unique_ptr<ChildProcess>> sources;
  for (std::uint64_t input = 0; input < 2; ++input) {
    const std::string name = input == 0 ? raw_a.name() : raw_b.name();
    sources.push_back(std::make_unique<ChildProcess>([name, input] {
      auto producer = st::Producer::create(name);
      st::RecordWriter writer(producer);
      std::array<std::byte, 16> record{};
      // Input 0 sends even sequence numbers, input 1 odd ones: the merge covers 0..2N-1.
      for (std::uint64_t i = 0; i < kPerInput; ++i) {
        st::pattern::fill(record, 2 * i + input);
        if (writer.write(record) != st::Status::kOk) {
          return 1;
        }
      }
      return writer.close() == st::Status::kOk ? 0 : 1;
    }));
  }
  auto consumer = st::Consumer::open(clean.name(), {.wait_for_channel = 60s});
  st::RecordReader reader(consumer);
  std::vector<std::uint64_t> next_of(2, 0);  // per input, the next sequence number expected
  std::uint64_t errors = 0;
  std::span<const std::byte> record;
  st::Status status;
  while ((status = reader.next(record)) == st::Status::kOk) {
    const std::uint64_t seq = st::pattern::sequence_of(record);
    if (record.size() != 16 || !st::pattern::body_matches(record, seq) ||
        seq / 2 != next_of[seq % 2]) {
      ++errors;
      continue;
    }
    ++next_of[seq % 2];
  }
  EXPECT_EQ(status, st::Status::kClosed);
  EXPECT_EQ(errors, 0U);
  EXPECT_EQ(next_of[0], kPerInput);
  EXPECT_EQ(next_of[1], kPerInput);
  EXPECT_EQ(stage.wait(), 0);
  for (auto& source : sources) {
    EXPECT_EQ(source->wait(), 0);
  }
}

TEST(Pipeline, FourStagesOfDemoProgramsMoveEveryRecord) {
  // source -> relay -> relay -> sink, each a separate process.
  ChannelGuard a(unique_channel("pipe-a"));
  ChannelGuard b(unique_channel("pipe-b"));
  ChannelGuard c(unique_channel("pipe-c"));
  const std::string records = "300000";
  const std::string sink_log = log_path("sink");
  const std::string relay1_log = log_path("relay1");
  const std::string relay2_log = log_path("relay2");
  const std::string source_log = log_path("source");
  ChildProcess sink([&] {
    return exec_tool({tool("sluice-consumer"), "--channel", c.name(), "--records", records,
                      "--size", "40", "--json", "--wait", "60"},
                     sink_log);
  });
  ChildProcess relay2([&] {
    return exec_tool({tool("sluice-relay"), "--from", b.name(), "--to", c.name(), "--json",
                      "--wait", "60", "--buffers", "4"},
                     relay2_log);
  });
  ChildProcess relay1([&] {
    return exec_tool({tool("sluice-relay"), "--from", a.name(), "--to", b.name(), "--json",
                      "--wait", "60", "--buffer-size", "4K"},
                     relay1_log);
  });
  ChildProcess source([&] {
    return exec_tool({tool("sluice-producer"), "--channel", a.name(), "--records", records,
                      "--size", "40", "--json"},
                     source_log);
  });
  EXPECT_EQ(source.wait(), 0) << read_file(source_log);
  EXPECT_EQ(relay1.wait(), 0) << read_file(relay1_log);
  EXPECT_EQ(relay2.wait(), 0) << read_file(relay2_log);
  EXPECT_EQ(sink.wait(), 0) << read_file(sink_log);
  const std::string sink_out = read_file(sink_log);
  EXPECT_NE(sink_out.find("\"ok\":true"), std::string::npos) << sink_out;
  EXPECT_NE(sink_out.find("\"records\":300000,"), std::string::npos) << sink_out;
  EXPECT_NE(read_file(relay1_log).find("\"records\":300000,"), std::string::npos);
  for (const auto& log : {sink_log, relay1_log, relay2_log, source_log}) {
    std::remove(log.c_str());
  }
}

TEST(Pipeline, AThrottledRelayPassesEveryRecordAtNoMoreThanItsRate) {
  // A throttled relay copies runs too, a call at most what its pacer allows
  // before the next look at the clock: the rate must still hold.
  ChannelGuard a(unique_channel("slow-a"));
  ChannelGuard b(unique_channel("slow-b"));
  const std::string sink_log = log_path("slow-sink");
  const std::string relay_log = log_path("slow-relay");
  ChildProcess sink([&] {
    return exec_tool({tool("sluice-consumer"), "--channel", b.name(), "--records", "100000",
                      "--size", "40", "--json", "--wait", "60"},
                     sink_log);
  });
  ChildProcess relay([&] {
    return exec_tool({tool("sluice-relay"), "--from", a.name(), "--to", b.name(), "--json",
                      "--wait", "60", "--rate", "200000"},
                     relay_log);
  });
  ChildProcess source([&] {
    return exec_tool(
        {tool("sluice-producer"), "--channel", a.name(), "--records", "100000", "--size", "40"},
        "/dev/null");
  });
  EXPECT_EQ(source.wait(), 0);
  EXPECT_EQ(relay.wait(), 0) << read_file(relay_log);
  EXPECT_EQ(sink.wait(), 0) << read_file(sink_log);
  EXPECT_NE(read_file(sink_log).find("\"ok\":true"), std::string::npos) << read_file(sink_log);
  const std::string relay_out = read_file(relay_log);
  EXPECT_NE(relay_out.find("\"records\":100000,"), std::string::npos) << relay_out;
  const std::size_t at = relay_out.rfind("\"records_per_sec\":");
  ASSERT_NE(at, std::string::npos) << relay_out;
  // Unthrottled it moves these in a few milliseconds (millions a second).
  EXPECT_LE(std::stod(relay_out.substr(at + 18)), 200000 * 1.1) << relay_out;
  for (const auto& log : {sink_log, relay_log}) {
    std::remove(log.c_str());
  }
}

TEST(Pipeline, FanInConsumerChecksEachProducersStream) {
  ChannelGuard a(unique_channel("fanin-a"));
  ChannelGuard b(unique_channel("fanin-b"));
  ChannelGuard c(unique_channel("fanin-c"));
  const std::string sink_log = log_path("fanin-sink");
  ChildProcess sink([&] {
    return exec_tool(
        {tool("sluice-consumer"), "--channel", a.name() + "," + b.name() + "," + c.name(),
         "--records", "100000", "--size", "64", "--json", "--wait", "60"},
        sink_log);
  });
  std::vector<std::unique_ptr<ChildProcess>> sources;
  for (const auto* name : {&a.name(), &b.name(), &c.name()}) {
    sources.push_back(std::make_unique<ChildProcess>([name] {
      return exec_tool(
          {tool("sluice-producer"), "--channel", *name, "--records", "100000", "--size", "64"},
          "/dev/null");
    }));
  }
  for (auto& source : sources) {
    EXPECT_EQ(source->wait(), 0);
  }
  EXPECT_EQ(sink.wait(), 0) << read_file(sink_log);
  const std::string out = read_file(sink_log);
  EXPECT_NE(out.find("\"records\":300000,"), std::string::npos) << out;
  // One entry per input, each with its own full stream.
  for (const auto* name : {&a.name(), &b.name(), &c.name()}) {
    EXPECT_NE(out.find("{\"channel\":\"" + *name + "\",\"ok\":true,\"state\":"), std::string::npos)
        << out;
  }
  EXPECT_NE(out.find("\"first_seq\":0,\"last_seq\":99999}"), std::string::npos) << out;
  std::remove(sink_log.c_str());
}

TEST(Pipeline, ADiamondThroughAFanOutTwoWorkersAndAGate) {
  // source -> (round-robin) -> worker 0, worker 1 -> sink reading both.
  ChannelGuard src(unique_channel("dia-src"));
  ChannelGuard w0(unique_channel("dia-w0"));
  ChannelGuard w1(unique_channel("dia-w1"));
  const std::string records = "400000";
  const std::string sink_log = log_path("dia-sink");
  const std::string worker_log = log_path("dia-workers");
  ChildProcess sink([&] {
    return exec_tool({tool("sluice-consumer"), "--channel", w0.name() + "," + w1.name(), "--union",
                      "--records", records, "--size", "48", "--json", "--wait", "60"},
                     sink_log);
  });
  ChildProcess worker0([&] {
    return exec_tool(
        {tool("sluice-relay"), "--from", src.name() + ":0", "--to", w0.name(), "--wait", "60"},
        worker_log);
  });
  ChildProcess worker1([&] {
    return exec_tool(
        {tool("sluice-relay"), "--from", src.name() + ":1", "--to", w1.name(), "--wait", "60"},
        worker_log);
  });
  ChildProcess source([&] {
    return exec_tool({tool("sluice-producer"), "--channel", src.name(), "--records", records,
                      "--size", "48", "--consumers", "2", "--partition", "round-robin"},
                     worker_log);
  });
  EXPECT_EQ(source.wait(), 0) << read_file(worker_log);
  EXPECT_EQ(worker0.wait(), 0) << read_file(worker_log);
  EXPECT_EQ(worker1.wait(), 0) << read_file(worker_log);
  EXPECT_EQ(sink.wait(), 0) << read_file(sink_log);
  const std::string out = read_file(sink_log);
  EXPECT_NE(out.find("\"ok\":true,\"records\":400000,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"lost\":0,\"duplicated\":0,\"corrupt\":0,\"out_of_order\":0"),
            std::string::npos)
      << out;
  // Round-robin: worker 0 carried the even sequence numbers, worker 1 the odd ones.
  EXPECT_NE(out.find("\"records\":200000,\"out_of_order\":0,\"first_seq\":0,"), std::string::npos)
      << out;
  EXPECT_NE(out.find("\"records\":200000,\"out_of_order\":0,\"first_seq\":1,"), std::string::npos)
      << out;
  std::remove(sink_log.c_str());
  std::remove(worker_log.c_str());
}

TEST(Pipeline, StatSeesTheDiamondsStagesAndNamesTheThrottledSinkAsBottleneck) {
  ChannelGuard src(unique_channel("sd-src"));
  ChannelGuard w0(unique_channel("sd-w0"));
  ChannelGuard w1(unique_channel("sd-w1"));
  const std::string log = log_path("sd");
  ChildProcess sink([&] {
    return exec_tool({tool("sluice-consumer"), "--channel", w0.name() + "," + w1.name(), "--union",
                      "--records", "100000000", "--size", "32", "--rate", "200000", "--wait", "60"},
                     log);
  });
  std::vector<std::unique_ptr<ChildProcess>> others;
  for (int i = 0; i < 2; ++i) {
    others.push_back(std::make_unique<ChildProcess>([&, i] {
      return exec_tool({tool("sluice-relay"), "--from", src.name() + ":" + std::to_string(i),
                        "--to", i == 0 ? w0.name() : w1.name(), "--wait", "60"},
                       log);
    }));
  }
  others.push_back(std::make_unique<ChildProcess>([&] {
    return exec_tool({tool("sluice-producer"), "--channel", src.name(), "--records", "100000000",
                      "--size", "32", "--consumers", "2"},
                     log);
  }));
  const std::string stat = tool("sluice") + " stat " + src.name() + " " + w0.name() + " " +
                           w1.name() + " --json --interval 0.2";
  const std::string sink_pid = "{\"pid\":" + std::to_string(sink.pid()) + ",";
  std::string out;
  // Every stage attached and the pools full upstream of the throttled sink.
  ASSERT_TRUE(eventually(
      [&] {
        out = sluice::test::run_tool(stat).out;
        return out.find("\"bottleneck\":[" + sink_pid) != std::string::npos;
      },
      60s))
      << out << read_file(log);
  for (const auto& link : {src.name() + ":0", src.name() + ":1", w0.name(), w1.name()}) {
    EXPECT_NE(out.find("\"channel\":\"" + link + "\""), std::string::npos) << link << "\n" << out;
  }
  sink.kill_now();
  for (auto& other : others) {
    other->kill_now();
  }
  std::remove(log.c_str());
}

TEST(Pipeline, ARelayWritesAFanOutThatItsConsumersCheck) {
  ChannelGuard in(unique_channel("rfo-in"));
  ChannelGuard out(unique_channel("rfo-out"));
  const std::string log = log_path("rfo");
  ChildProcess relay([&] {
    return exec_tool({tool("sluice-relay"), "--from", in.name(), "--to", out.name(), "--consumers",
                      "3", "--partition", "round-robin", "--wait", "60"},
                     log);
  });
  std::vector<std::unique_ptr<ChildProcess>> consumers;
  std::vector<std::string> logs;
  for (int i = 0; i < 3; ++i) {
    logs.push_back(log_path("rfo-consumer"));
    consumers.push_back(std::make_unique<ChildProcess>([&, i] {
      return exec_tool(
          {tool("sluice-consumer"), "--channel", out.name(), "--subpartition", std::to_string(i),
           "--records", "90000", "--size", "16", "--json", "--wait", "60"},
          logs[static_cast<std::size_t>(i)]);
    }));
  }
  ChildProcess source([&] {
    return exec_tool(
        {tool("sluice-producer"), "--channel", in.name(), "--records", "90000", "--size", "16"},
        log);
  });
  EXPECT_EQ(source.wait(), 0) << read_file(log);
  EXPECT_EQ(relay.wait(), 0) << read_file(log);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(consumers[i]->wait(), 0) << read_file(logs[i]);
    EXPECT_NE(read_file(logs[i]).find("\"records\":30000,"), std::string::npos)
        << read_file(logs[i]);
    std::remove(logs[i].c_str());
  }
  std::remove(log.c_str());
}

TEST(Pipeline, TheUnionCheckFailsWhenAWorkerLosesRecords) {
  ChannelGuard a(unique_channel("union-a"));
  ChannelGuard b(unique_channel("union-b"));
  const std::string sink_log = log_path("union-sink");
  ChildProcess sink([&] {
    return exec_tool({tool("sluice-consumer"), "--channel", a.name() + "," + b.name(), "--union",
                      "--records", "3000", "--size", "16", "--json", "--wait", "60"},
                     sink_log);
  });
  // Both send 0..1499: together 1500..2999 are missing and 0..1499 come twice.
  for (const auto* name : {&a.name(), &b.name()}) {
    ChildProcess producer([name] {
      return exec_tool({tool("sluice-producer"), "--channel", *name, "--records", "1500", "--size",
                        "16", "--no-wait-for-consumer"},
                       "/dev/null");
    });
    EXPECT_EQ(producer.wait(), 0);
  }
  EXPECT_EQ(sink.wait(), 1);
  const std::string out = read_file(sink_log);
  EXPECT_NE(out.find("\"lost\":1500,\"duplicated\":1500,"), std::string::npos) << out;
  std::remove(sink_log.c_str());
}

TEST(Pipeline, FanInConsumerFailsWhenOneStreamIsShort) {
  ChannelGuard a(unique_channel("short-a"));
  ChannelGuard b(unique_channel("short-b"));
  const std::string sink_log = log_path("short-sink");
  ChildProcess sink([&] {
    return exec_tool({tool("sluice-consumer"), "--channel", a.name() + "," + b.name(), "--records",
                      "5000", "--size", "16", "--json", "--wait", "60"},
                     sink_log);
  });
  ChildProcess full([&] {
    return exec_tool(
        {tool("sluice-producer"), "--channel", a.name(), "--records", "5000", "--size", "16"},
        "/dev/null");
  });
  ChildProcess short_one([&] {
    return exec_tool(
        {tool("sluice-producer"), "--channel", b.name(), "--records", "4000", "--size", "16"},
        "/dev/null");
  });
  EXPECT_EQ(full.wait(), 0);
  EXPECT_EQ(short_one.wait(), 0);
  EXPECT_EQ(sink.wait(), 1);
  const std::string out = read_file(sink_log);
  EXPECT_NE(out.find("\"channel\":\"" + b.name() + "\",\"ok\":false"), std::string::npos) << out;
  EXPECT_NE(out.find("\"lost\":1000"), std::string::npos) << out;
  std::remove(sink_log.c_str());
}

namespace {

// What the sink saw, in memory shared with the test.
struct SinkLog {
  std::atomic<std::uint64_t> distinct;    // records seen for the first time
  std::atomic<std::uint64_t> duplicates;  // records seen again (redelivered)
  std::atomic<std::uint64_t> errors;      // bad bytes, a gap or the wrong subpartition
  std::atomic<std::uint32_t> closed;      // sinks whose stream ended closed
  std::atomic<std::uint32_t> other_end;   // sinks whose stream ended otherwise
};

}  // namespace

// Sources write record classes k = 0..inputs-1 (sequence numbers inputs*i + k)
// into their own channels; a relay reads them all and is SIGKILLed `kills`
// times at random points and resumed; the sink checks each class's order.
// With outputs > 1 the relay writes a key fan-out (the key is the sequence
// number) and a sink per subpartition checks that it gets exactly its keys,
// each class in order: the resumed relay takes the fan-out's producer over.
void kill_relay_again_and_again(std::uint32_t inputs, int kills, std::uint32_t outputs = 1) {
  std::vector<std::unique_ptr<ChannelGuard>> ins;
  std::string from;
  for (std::uint32_t k = 0; k < inputs; ++k) {
    ins.push_back(std::make_unique<ChannelGuard>(unique_channel("kill-in")));
    from += (k == 0 ? "" : ",") + ins.back()->name();
  }
  ChannelGuard out(unique_channel("kill-out"));
  constexpr std::uint64_t kRecordsEach = 1'500'000;
  constexpr std::size_t kRecordBytes = 32;
  const std::uint64_t total = kRecordsEach * inputs;
  void* shared =
      mmap(nullptr, sizeof(SinkLog), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  auto* log = new (shared) SinkLog{};

  std::vector<std::unique_ptr<ChildProcess>> sources;
  for (std::uint32_t k = 0; k < inputs; ++k) {
    sources.push_back(std::make_unique<ChildProcess>([&, k] {
      st::ChannelConfig config;
      config.buffer_bytes = 2048;
      config.buffer_count = 8;
      auto producer = st::Producer::create(ins[k]->name(), config);
      producer.set_consumer_loss(st::ConsumerLoss::kWaitForNewConsumer);
      st::RecordWriter writer(producer);
      std::array<std::byte, kRecordBytes> record{};
      for (std::uint64_t i = 0; i < kRecordsEach; ++i) {
        st::pattern::fill(record, i * inputs + k);
        if (writer.write(record) != st::Status::kOk) {
          return 1;
        }
      }
      return writer.close() == st::Status::kOk ? 0 : 1;
    }));
  }
  const std::string relay_log = log_path("kill-relay");
  auto start_relay = [&](bool resume) {
    std::vector<std::string> args = {
        tool("sluice-relay"), "--from", from,        "--to", out.name(), "--wait", "60",
        "--buffer-size",      "1K",     "--buffers", "8",    "--keep"};
    if (resume) {
      args.emplace_back("--resume");
    }
    if (outputs > 1) {
      args.insert(args.end(), {"--consumers", std::to_string(outputs), "--partition", "key"});
    }
    return std::make_unique<ChildProcess>(
        [args, &relay_log] { return exec_tool(args, relay_log); });
  };
  auto relay = start_relay(false);
  std::vector<std::unique_ptr<ChildProcess>> sinks;
  for (std::uint32_t s = 0; s < outputs; ++s) {
    sinks.push_back(std::make_unique<ChildProcess>([&, s] {
      st::OpenOptions open;
      open.wait_for_channel = 60s;
      open.subpartition = s;
      auto consumer = st::Consumer::open(out.name(), open);
      consumer.set_producer_loss(st::ProducerLoss::kWaitForNewProducer);
      st::RecordReader reader(consumer);
      auto ours = [&](std::uint64_t seq) {
        return outputs == 1 || st::subpartition_for_key(seq, outputs) == s;
      };
      // Per class, the lowest index not yet seen among this sink's own.
      std::vector<std::uint64_t> next(inputs, 0);
      auto skip_others = [&](std::uint64_t k) {
        while (!ours(next[k] * inputs + k)) {
          ++next[k];
        }
      };
      for (std::uint64_t k = 0; k < inputs; ++k) {
        skip_others(k);
      }
      std::span<const std::byte> record;
      st::Status status;
      while ((status = reader.next(record)) == st::Status::kOk) {
        const std::uint64_t seq = st::pattern::sequence_of(record);
        const std::uint64_t k = seq % inputs;
        const std::uint64_t i = seq / inputs;
        if (record.size() != kRecordBytes || !st::pattern::body_matches(record, seq) ||
            !ours(seq) || i > next[k]) {
          log->errors.fetch_add(1);
        } else if (i < next[k]) {
          log->duplicates.fetch_add(1);  // a resumed relay sends what it had not released again
        } else {
          ++next[k];
          skip_others(k);
          log->distinct.fetch_add(1);
        }
      }
      (status == st::Status::kClosed ? log->closed : log->other_end).fetch_add(1);
      return 0;
    }));
  }

  std::mt19937 random(12345 + inputs);
  for (int kill = 0; kill < kills; ++kill) {
    const std::uint64_t before = log->distinct.load();
    const std::uint64_t target =
        before + 1 + random() % (total / (static_cast<std::uint64_t>(kills) * 2));
    ASSERT_TRUE(eventually([&] { return log->distinct.load() >= target; }, 60s))
        << "kill " << kill << ": sink stuck at " << log->distinct.load() << "\n"
        << read_file(relay_log);
    relay->kill_now();
    EXPECT_EQ(relay->wait(), 128 + SIGKILL);
    relay = start_relay(true);
  }
  EXPECT_EQ(relay->wait(), 0) << read_file(relay_log);
  for (auto& source : sources) {
    EXPECT_EQ(source->wait(), 0);
  }
  for (auto& sink : sinks) {
    EXPECT_EQ(sink->wait(), 0);
  }
  // Every stream ended closed, none with a dead peer.
  EXPECT_EQ(log->closed.load(), outputs);
  EXPECT_EQ(log->other_end.load(), 0U);
  EXPECT_EQ(log->errors.load(), 0U);
  EXPECT_EQ(log->distinct.load(), total);
  // Redelivered at most what a relay held unreleased per kill: a few input
  // buffers of each input.
  EXPECT_LE(log->duplicates.load(),
            static_cast<std::uint64_t>(kills) * inputs * 8 * (2048 / 36 + 1));
  std::printf("%d kills, %u inputs, %u outputs: %llu duplicates downstream\n", kills, inputs,
              outputs, static_cast<unsigned long long>(log->duplicates.load()));
  // Every pool whole: every buffer in exactly one place.
  std::vector<std::string> names = {out.name()};
  for (const auto& in : ins) {
    names.push_back(in->name());
  }
  for (const auto& name : names) {
    const auto report = st::check_ownership(st::ChannelMapping::open(name, {}));
    std::string problems;
    for (const auto& problem : report.problems) {
      problems += problem + "; ";
    }
    EXPECT_TRUE(report.sound()) << name << ": " << problems;
  }
  std::remove(relay_log.c_str());
  munmap(shared, sizeof(SinkLog));
}

TEST(Pipeline, ARelayKilledMidStreamAndResumedLosesNothing) {
  kill_relay_again_and_again(1, 8);
}

TEST(Pipeline, AFanInRelayKilledMidStreamAndResumedLosesNothing) {
  kill_relay_again_and_again(3, 8);
}

TEST(Pipeline, AFanOutRelayKilledMidStreamAndResumedLosesNothing) {
  kill_relay_again_and_again(1, 8, 3);
}
