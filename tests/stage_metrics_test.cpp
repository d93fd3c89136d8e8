// Stages, links and the bottleneck across a pipeline of real processes, and
// the Prometheus text of `sluice stat --prometheus` and `sluice export`.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sluice/transport/channel_metrics.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/record_writer.hpp"
#include "test_support.hpp"
#include "tool_run.hpp"

namespace st = sluice::transport;
using namespace std::chrono_literals;
using sluice::test::ChannelGuard;
using sluice::test::ChildProcess;
using sluice::test::Signal;
using sluice::test::unique_channel;

namespace {

using sluice::test::ToolRun;

ToolRun run(const std::string& command) {  // stderr goes to the test log
  return sluice::test::run_tool(command, sluice::test::Stderr::kLeftAlone);
}

std::string sluice_tool() {
  return std::string(SLUICE_TOOLS_DIR) + "/sluice";
}

st::ChannelConfig small_channel() {
  st::ChannelConfig config;
  config.buffer_bytes = 4096;
  config.buffer_count = 4;
  return config;
}

st::OpenOptions waiting() {
  st::OpenOptions options;
  options.wait_for_channel = 30s;
  return options;
}

// source -> A -> middle -> B -> sink. The sink pauses after every 64
// records, so it is the slowest stage: the middle and the source spend
// their time blocked on full channels. Each child runs until it is killed
// or its neighbour goes away.
class ThreeStagePipeline {
 public:
  ThreeStagePipeline()
      : a_(unique_channel("stage-a")),
        b_(unique_channel("stage-b")),
        source_([this] { return run_source(); }),
        middle_([this] { return run_middle(); }),
        sink_([this] { return run_sink(); }) {}

  // Every stage attached and records through to the sink.
  [[nodiscard]] bool flowing() const {
    if (!sink_attached_.wait(60s)) {
      return false;
    }
    const st::ChannelObserver b(b_.name());
    return sluice::test::eventually([&] { return b.snapshot().consumed.records > 0; }, 60s);
  }
  [[nodiscard]] const std::string& a() const { return a_.name(); }
  [[nodiscard]] const std::string& b() const { return b_.name(); }
  [[nodiscard]] pid_t source() const { return source_.pid(); }
  [[nodiscard]] pid_t middle() const { return middle_.pid(); }
  [[nodiscard]] pid_t sink() const { return sink_.pid(); }

 private:
  int run_source() {
    auto producer = st::Producer::create(a_.name(), small_channel());
    st::RecordWriter writer(producer);
    const std::array<std::byte, 64> record{};
    while (writer.write(record) == st::Status::kOk) {
    }
    return 0;
  }
  int run_middle() {
    auto consumer = st::Consumer::open(a_.name(), waiting());
    auto producer = st::Producer::create(b_.name(), small_channel());
    st::RecordReader reader(consumer);
    st::RecordWriter writer(producer);
    std::span<const std::byte> record;
    while (reader.next_for(record, 60s) == st::Status::kOk &&
           writer.write(record) == st::Status::kOk) {
    }
    return 0;
  }
  int run_sink() {
    auto consumer = st::Consumer::open(b_.name(), waiting());
    sink_attached_.notify();
    st::RecordReader reader(consumer);
    std::span<const std::byte> record;
    std::uint64_t count = 0;
    while (reader.next_for(record, 60s) == st::Status::kOk) {
      if (++count % 64 == 0) {
        std::this_thread::sleep_for(1ms);  // the work of a slow stage
      }
    }
    return 0;
  }

  // Declared before the children: the children are killed before the channels go.
  ChannelGuard a_;
  ChannelGuard b_;
  Signal sink_attached_;
  ChildProcess source_;
  ChildProcess middle_;
  ChildProcess sink_;
};

// The text of a JSON array value that follows `"key":[`, brackets balanced.
std::string json_array(const std::string& json, const std::string& key) {
  const auto start = json.find("\"" + key + "\":[");
  if (start == std::string::npos) {
    return "";
  }
  const auto open = json.find('[', start);
  int depth = 0;
  bool in_string = false;
  for (auto i = open; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if ((c == ']' || c == '}') && --depth == 0) {
      return json.substr(open, i - open + 1);
    }
  }
  return "";
}

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t count = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
    ++count;
  }
  return count;
}

std::string pid_key(pid_t pid) {
  return "\"pid\":" + std::to_string(pid) + ",";
}

TEST(StageMetrics, StatNamesTheThrottledSinkAsTheBottleneckOfThreeStages) {
  ThreeStagePipeline pipeline;
  ASSERT_TRUE(pipeline.flowing());
  const std::string command =
      sluice_tool() + " stat " + pipeline.a() + " " + pipeline.b() + " --json --interval 0.5";
  std::string json;
  // The first interval may catch the pipeline filling up; the sink becomes
  // the bottleneck once the channels are full.
  const bool found = sluice::test::eventually(
      [&] {
        const ToolRun stat = run(command);
        json = stat.out;
        return stat.status == 0 &&
               json_array(json, "bottleneck").find(pid_key(pipeline.sink())) != std::string::npos;
      },
      120s);
  ASSERT_TRUE(found) << json;
  const std::string stages = json_array(json, "stages");
  const std::string links = json_array(json, "links");
  EXPECT_EQ(count_of(stages, "{\"pid\":"), 3U) << stages;
  for (const pid_t pid : {pipeline.source(), pipeline.middle(), pipeline.sink()}) {
    EXPECT_NE(stages.find(pid_key(pid)), std::string::npos) << pid << " missing in " << stages;
  }
  EXPECT_EQ(count_of(links, "{\"channel\":"), 2U) << links;
  EXPECT_NE(links.find("{\"channel\":\"" + pipeline.a() +
                       "\",\"from_pid\":" + std::to_string(pipeline.source()) +
                       ",\"to_pid\":" + std::to_string(pipeline.middle()) + ","),
            std::string::npos)
      << links;
  EXPECT_NE(links.find("{\"channel\":\"" + pipeline.b() +
                       "\",\"from_pid\":" + std::to_string(pipeline.middle()) +
                       ",\"to_pid\":" + std::to_string(pipeline.sink()) + ","),
            std::string::npos)
      << links;
  EXPECT_EQ(count_of(json_array(json, "bottleneck"), "\"pid\":"), 1U) << json;
  // The middle stage reads A and writes B.
  const auto middle = stages.find(pid_key(pipeline.middle()));
  const std::string middle_stage = stages.substr(middle, stages.find('}', middle) - middle);
  EXPECT_NE(middle_stage.find("\"writes\":[\"" + pipeline.b() + "\"]"), std::string::npos)
      << middle_stage;
  EXPECT_NE(middle_stage.find("\"reads\":[\"" + pipeline.a() + "\"]"), std::string::npos)
      << middle_stage;
  EXPECT_NE(middle_stage.find("\"bottleneck\":false"), std::string::npos) << middle_stage;
  // Every existing key of each channel stays.
  EXPECT_EQ(count_of(json_array(json, "channels"), "\"records_sent\":"), 2U) << json;
}

TEST(StageMetrics, StatWithoutNamesCoversEveryChannelAndOneNameKeepsItsKeys) {
  ThreeStagePipeline pipeline;
  ASSERT_TRUE(pipeline.flowing());
  const ToolRun all = run(sluice_tool() + " stat --json --interval 0.1");
  ASSERT_EQ(all.status, 0) << all.out;
  const std::string stages = json_array(all.out, "stages");
  for (const pid_t pid : {pipeline.source(), pipeline.middle(), pipeline.sink()}) {
    EXPECT_NE(stages.find(pid_key(pid)), std::string::npos) << pid << " missing in " << stages;
  }
  for (const std::string& name : {pipeline.a(), pipeline.b()}) {
    EXPECT_NE(json_array(all.out, "links").find("\"channel\":\"" + name + "\""), std::string::npos)
        << all.out;
  }

  const ToolRun one = run(sluice_tool() + " stat " + pipeline.a() + " --json --interval 0.1");
  ASSERT_EQ(one.status, 0) << one.out;
  EXPECT_EQ(one.out.rfind("{\"name\":\"" + pipeline.a() + "\",", 0), 0U) << one.out;
  for (const char* key : {"\"records_sent\":", "\"backpressure_level\":", "\"corruption_seen\":",
                          "\"stages\":[", "\"links\":[", "\"bottleneck\":["}) {
    EXPECT_NE(one.out.find(key), std::string::npos) << key << " missing in " << one.out;
  }
  EXPECT_EQ(count_of(json_array(one.out, "stages"), "{\"pid\":"), 2U) << one.out;

  const ToolRun text =
      run(sluice_tool() + " stat " + pipeline.a() + " " + pipeline.b() + " --interval 0.1");
  ASSERT_EQ(text.status, 0) << text.out;
  EXPECT_NE(text.out.find("STAGE"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("link " + pipeline.a()), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("bottleneck: "), std::string::npos) << text.out;

  const ToolRun top = run(sluice_tool() + " top --iterations 1 --interval 0.1 < /dev/null");
  ASSERT_EQ(top.status, 0) << top.out;
  EXPECT_NE(top.out.find("STAGE"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find(std::to_string(pipeline.middle()) + " ("), std::string::npos) << top.out;

  const ToolRun missing =
      run(sluice_tool() + " stat " + pipeline.a() + " no-such-channel-here 2>&1");
  EXPECT_EQ(missing.status, 1) << missing.out;
  EXPECT_NE(missing.out.find("does not exist"), std::string::npos) << missing.out;
  const ToolRun both = run(sluice_tool() + " stat --json --prometheus 2>&1");
  EXPECT_EQ(both.status, 2) << both.out;
}

// Two sources feed one sink that reads both channels in turn, pausing as it
// goes: one stage with two inputs, and it is the bottleneck.
TEST(StageMetrics, AFanInSinkIsOneStageReadingBothChannels) {
  ChannelGuard a(unique_channel("fan-a"));
  ChannelGuard b(unique_channel("fan-b"));
  Signal sink_attached;
  auto source = [](const std::string& name) {
    auto producer = st::Producer::create(name, small_channel());
    st::RecordWriter writer(producer);
    const std::array<std::byte, 64> record{};
    while (writer.write(record) == st::Status::kOk) {
    }
    return 0;
  };
  ChildProcess source_a([&] { return source(a.name()); });
  ChildProcess source_b([&] { return source(b.name()); });
  ChildProcess sink([&] {
    auto from_a = st::Consumer::open(a.name(), waiting());
    auto from_b = st::Consumer::open(b.name(), waiting());
    sink_attached.notify();
    st::RecordReader reader_a(from_a);
    st::RecordReader reader_b(from_b);
    std::span<const std::byte> record;
    for (std::uint64_t count = 1;; ++count) {
      if (reader_a.next_for(record, 60s) != st::Status::kOk ||
          reader_b.next_for(record, 60s) != st::Status::kOk) {
        return 0;
      }
      if (count % 32 == 0) {
        std::this_thread::sleep_for(1ms);  // the work of a slow stage
      }
    }
  });
  ASSERT_TRUE(sink_attached.wait(60s));
  const std::string command =
      sluice_tool() + " stat " + a.name() + " " + b.name() + " --json --interval 0.5";
  std::string json;
  ASSERT_TRUE(sluice::test::eventually(
      [&] {
        const ToolRun stat = run(command);
        json = stat.out;
        return stat.status == 0 &&
               json_array(json, "bottleneck").find(pid_key(sink.pid())) != std::string::npos;
      },
      120s))
      << json;
  const std::string stages = json_array(json, "stages");
  EXPECT_EQ(count_of(stages, "{\"pid\":"), 3U) << stages;
  EXPECT_EQ(count_of(json_array(json, "links"), "{\"channel\":"), 2U) << json;
  const auto at = stages.find(pid_key(sink.pid()));
  ASSERT_NE(at, std::string::npos) << stages;
  const std::string sink_stage = stages.substr(at, stages.find('}', at) - at);
  EXPECT_NE(sink_stage.find("\"reads\":[\"" + a.name() + "\",\"" + b.name() + "\"]"),
            std::string::npos)
      << sink_stage;
  EXPECT_NE(sink_stage.find("\"writes\":[]"), std::string::npos) << sink_stage;
}

// C1 and C2 pass records round a cycle, and C2 also feeds Y, which reads a
// source S too: C1 and C2 are downstream of no source, yet have a place.
TEST(StageMetrics, StagesThatNoSourceReachesAreStillListed) {
  ChannelGuard s_to_y(unique_channel("cyc-a"));
  ChannelGuard c1_to_c2(unique_channel("cyc-b"));
  ChannelGuard c2_to_c1(unique_channel("cyc-c"));
  ChannelGuard c2_to_y(unique_channel("cyc-d"));
  Signal y_attached;
  const std::array<std::byte, 64> one{};
  std::span<const std::byte> record;
  ChildProcess s([&] {
    auto producer = st::Producer::create(s_to_y.name(), small_channel());
    st::RecordWriter writer(producer);
    while (writer.write(one) == st::Status::kOk) {
    }
    return 0;
  });
  ChildProcess c1([&] {
    auto out = st::Producer::create(c1_to_c2.name(), small_channel());
    auto in = st::Consumer::open(c2_to_c1.name(), waiting());
    st::RecordWriter writer(out);
    st::RecordReader reader(in);
    while (writer.write(one) == st::Status::kOk && writer.flush() == st::Status::kOk &&
           reader.next_for(record, 60s) == st::Status::kOk) {
    }
    return 0;
  });
  ChildProcess c2([&] {
    auto in = st::Consumer::open(c1_to_c2.name(), waiting());
    auto back = st::Producer::create(c2_to_c1.name(), small_channel());
    auto onward = st::Producer::create(c2_to_y.name(), small_channel());
    st::RecordReader reader(in);
    st::RecordWriter back_writer(back);
    st::RecordWriter onward_writer(onward);
    while (reader.next_for(record, 60s) == st::Status::kOk &&
           back_writer.write(record) == st::Status::kOk && back_writer.flush() == st::Status::kOk &&
           onward_writer.write(record) == st::Status::kOk) {
    }
    return 0;
  });
  ChildProcess y([&] {
    auto from_s = st::Consumer::open(s_to_y.name(), waiting());
    auto from_c2 = st::Consumer::open(c2_to_y.name(), waiting());
    y_attached.notify();
    st::RecordReader reader_s(from_s);
    st::RecordReader reader_c2(from_c2);
    while (reader_s.next_for(record, 60s) == st::Status::kOk &&
           reader_c2.next_for(record, 60s) == st::Status::kOk) {
    }
    return 0;
  });
  ASSERT_TRUE(y_attached.wait(60s));
  // C1 attaches to its input after creating its output: wait for every end.
  const std::string command = sluice_tool() + " stat " + s_to_y.name() + " " + c1_to_c2.name() +
                              " " + c2_to_c1.name() + " " + c2_to_y.name() +
                              " --json --interval 0.05";
  std::string json;
  ASSERT_TRUE(sluice::test::eventually(
      [&] {
        const ToolRun stat = run(command);
        json = stat.out;
        return stat.status == 0 && count_of(json_array(json, "links"), "_pid\":null") == 0;
      },
      60s))
      << json;
  const std::string stages = json_array(json, "stages");
  EXPECT_EQ(count_of(stages, "{\"pid\":"), 4U) << stages;
  for (const pid_t pid : {s.pid(), c1.pid(), c2.pid(), y.pid()}) {
    EXPECT_NE(stages.find(pid_key(pid)), std::string::npos) << pid << " missing in " << stages;
  }
  EXPECT_EQ(count_of(json_array(json, "links"), "{\"channel\":"), 4U) << json;
  EXPECT_LE(count_of(json_array(json, "bottleneck"), "\"pid\":"), 1U) << json;
}

// A producer that wrote and left is no stage: its end of the link is null.
TEST(StageMetrics, AnEndpointWhoseProcessIsGoneBelongsToNoStage) {
  ChannelGuard channel(unique_channel("gone"));
  ChildProcess producer([&] {
    auto p = st::Producer::create(channel.name(), small_channel());
    st::RecordWriter writer(p);
    const std::array<std::byte, 16> record{};
    if (writer.write(record) != st::Status::kOk) {
      return 1;
    }
    if (writer.flush() != st::Status::kOk) {
      return 2;
    }
    p.close();
    return 0;
  });
  ASSERT_EQ(producer.wait(60s), 0);
  auto consumer = st::Consumer::open(channel.name());  // this test process is the other end
  const ToolRun stat = run(sluice_tool() + " stat " + channel.name() + " --json --interval 0.05");
  ASSERT_EQ(stat.status, 0) << stat.out;
  EXPECT_NE(json_array(stat.out, "links")
                .find("{\"channel\":\"" + channel.name() +
                      "\",\"from_pid\":null,\"to_pid\":" + std::to_string(getpid()) + ","),
            std::string::npos)
      << stat.out;
  const std::string stages = json_array(stat.out, "stages");
  EXPECT_EQ(count_of(stages, "{\"pid\":"), 1U) << stages;
  EXPECT_EQ(stages.find(pid_key(producer.pid())), std::string::npos) << stages;
}

// Checks the text exposition format: HELP and TYPE before a family's
// samples, every sample `name{labels} value`, counters named *_total.
// Returns the samples, "name{labels}" -> value.
std::map<std::string, double> parse_exposition(const std::string& text) {
  static const std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\}) (\S+)$)");
  static const std::regex type(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$)");
  static const std::regex help(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$)");
  std::map<std::string, std::string> types;
  std::set<std::string> helped;
  std::map<std::string, double> samples;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch match;
    if (std::regex_match(line, match, help)) {
      EXPECT_TRUE(helped.insert(match[1]).second) << "second HELP: " << line;
    } else if (std::regex_match(line, match, type)) {
      EXPECT_TRUE(types.emplace(match[1], match[2]).second) << "second TYPE: " << line;
      EXPECT_EQ(match[2] == "counter", std::string(match[1]).ends_with("_total")) << line;
    } else if (std::regex_match(line, match, sample)) {
      EXPECT_EQ(types.count(match[1]), 1U) << "sample before its TYPE: " << line;
      char* end = nullptr;
      const std::string value = match[3];
      const double number = std::strtod(value.c_str(), &end);
      EXPECT_EQ(*end, '\0') << "not a number: " << line;
      samples[std::string(match[1]) + std::string(match[2])] = number;
    } else {
      ADD_FAILURE() << "not an exposition line: \"" << line << "\"";
    }
  }
  return samples;
}

void expect_pipeline_metrics(const std::map<std::string, double>& samples,
                             const ThreeStagePipeline& pipeline) {
  const std::string a_producer = "{channel=\"" + pipeline.a() + "\",role=\"producer\",pid=\"" +
                                 std::to_string(pipeline.source()) + "\"}";
  const std::string b_consumer = "{channel=\"" + pipeline.b() + "\",role=\"consumer\",pid=\"" +
                                 std::to_string(pipeline.sink()) + "\"}";
  for (const char* name : {"sluice_records_total", "sluice_bytes_total", "sluice_buffers_total"}) {
    const std::string family = name;
    ASSERT_EQ(samples.count(family + a_producer), 1U) << family + a_producer;
    EXPECT_GT(samples.at(family + a_producer), 0) << family + a_producer;
    ASSERT_EQ(samples.count(family + b_consumer), 1U) << family + b_consumer;
  }
  EXPECT_EQ(samples.count("sluice_blocked_seconds_total" + a_producer), 1U);
  EXPECT_EQ(samples.count("sluice_idle_seconds_total" + b_consumer), 1U);
  ASSERT_EQ(samples.count("sluice_endpoint_alive" + a_producer), 1U);
  EXPECT_EQ(samples.at("sluice_endpoint_alive" + a_producer), 1.0);
  ASSERT_EQ(samples.count("sluice_pool_usage_ratio{channel=\"" + pipeline.a() + "\"}"), 1U);
  std::size_t stage_ratios = 0;
  const std::string middle_pid = "{pid=\"" + std::to_string(pipeline.middle()) + "\"";
  for (const auto& [key, value] : samples) {
    if (key.find(middle_pid) != std::string::npos &&
        (key.starts_with("sluice_stage_backpressured_ratio") ||
         key.starts_with("sluice_stage_idle_ratio") ||
         key.starts_with("sluice_stage_busy_ratio"))) {
      EXPECT_GE(value, 0.0) << key;
      EXPECT_LE(value, 1.0) << key;
      ++stage_ratios;
    }
  }
  EXPECT_EQ(stage_ratios, 3U);
}

TEST(StageMetrics, PrometheusTextParsesAndHoldsTheCounters) {
  ThreeStagePipeline pipeline;
  ASSERT_TRUE(pipeline.flowing());
  const ToolRun stat = run(sluice_tool() + " stat " + pipeline.a() + " " + pipeline.b() +
                           " --prometheus --interval 0.1");
  ASSERT_EQ(stat.status, 0) << stat.out;
  const auto samples = parse_exposition(stat.out);
  expect_pipeline_metrics(samples, pipeline);
}

// A child running `sluice export ...` with its stdout on a pipe.
class Exporter {
 public:
  explicit Exporter(const std::vector<std::string>& args)
      : pipe_(make_pipe()), child_([this, args] {
          dup2(pipe_[1], STDOUT_FILENO);
          close(pipe_[0]);
          std::vector<char*> argv;
          const std::string tool = sluice_tool();
          argv.push_back(const_cast<char*>(tool.c_str()));
          for (const std::string& arg : args) {
            argv.push_back(const_cast<char*>(arg.c_str()));
          }
          argv.push_back(nullptr);
          execv(tool.c_str(), argv.data());
          return 127;
        }) {
    close(pipe_[1]);
  }
  ~Exporter() { close(pipe_[0]); }
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // The port from "serving http://127.0.0.1:PORT/metrics", or 0.
  int port() {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd ready{pipe_[0], POLLIN, 0};
      if (poll(&ready, 1, 1000) == 1) {
        char c = 0;
        if (read(pipe_[0], &c, 1) != 1) {
          break;
        }
        line += c;
      }
    }
    const auto at = line.find("127.0.0.1:");
    return at == std::string::npos ? 0 : std::atoi(line.c_str() + at + 10);
  }
  ChildProcess& child() { return child_; }

 private:
  static std::array<int, 2> make_pipe() {
    std::array<int, 2> fds{};
    if (pipe(fds.data()) != 0) {
      std::abort();
    }
    return fds;
  }
  std::array<int, 2> pipe_;
  ChildProcess child_;
};

// One HTTP/1.1 request on a fresh connection; the whole response.
std::string http_request(int port, const std::string& method, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) {
    const std::string request =
        method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n";
    (void)!send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    timeval timeout{60, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    char chunk[4096];
    ssize_t got = 0;
    while ((got = recv(fd, chunk, sizeof(chunk), 0)) > 0) {
      response.append(chunk, static_cast<std::size_t>(got));
    }
  }
  close(fd);
  return response;
}

TEST(StageMetrics, ExportServesMetricsAndNotFoundElsewhere) {
  ThreeStagePipeline pipeline;
  ASSERT_TRUE(pipeline.flowing());
  Exporter exporter({"export", "--listen", "127.0.0.1:0", "--max-requests", "3"});
  const int port = exporter.port();
  ASSERT_GT(port, 0);
  const std::string metrics = http_request(port, "GET", "/metrics");
  ASSERT_EQ(metrics.rfind("HTTP/1.1 200 OK\r\n", 0), 0U) << metrics;
  EXPECT_NE(metrics.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << metrics;
  const auto body_at = metrics.find("\r\n\r\n");
  ASSERT_NE(body_at, std::string::npos);
  const std::string body = metrics.substr(body_at + 4);
  EXPECT_NE(metrics.find("Content-Length: " + std::to_string(body.size()) + "\r\n"),
            std::string::npos)
      << metrics.substr(0, body_at);
  expect_pipeline_metrics(parse_exposition(body), pipeline);

  const std::string elsewhere = http_request(port, "GET", "/");
  EXPECT_EQ(elsewhere.rfind("HTTP/1.1 404 ", 0), 0U) << elsewhere;
  const std::string posted = http_request(port, "POST", "/metrics");
  EXPECT_EQ(posted.rfind("HTTP/1.1 405 ", 0), 0U) << posted;
  EXPECT_EQ(exporter.child().wait(60s), 0);  // --max-requests 3 served
}

TEST(StageMetrics, ExportEndsCleanlyOnSigterm) {
  Exporter exporter({"export", "--listen", "0"});
  ASSERT_GT(exporter.port(), 0);
  kill(exporter.child().pid(), SIGTERM);
  EXPECT_EQ(exporter.child().wait(60s), 0);
}

TEST(StageMetrics, ExportRefusesABadAddressAndATakenPort) {
  const int taken = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(taken, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(taken, 1), 0);
  socklen_t size = sizeof(address);
  ASSERT_EQ(getsockname(taken, reinterpret_cast<sockaddr*>(&address), &size), 0);
  const std::string port = std::to_string(ntohs(address.sin_port));

  const ToolRun busy = run(sluice_tool() + " export --listen 127.0.0.1:" + port + " 2>&1");
  EXPECT_EQ(busy.status, 2) << busy.out;
  EXPECT_NE(busy.out.find("in use"), std::string::npos) << busy.out;
  close(taken);

  for (const char* bad : {"nowhere:80", "127.0.0.1:70000", "127.0.0.1:", "12ab", "1.2.3:9464"}) {
    const ToolRun refused = run(sluice_tool() + " export --listen '" + bad + "' 2>&1");
    EXPECT_EQ(refused.status, 2) << bad << "\n" << refused.out;
    EXPECT_NE(refused.out.find("--listen"), std::string::npos) << bad << "\n" << refused.out;
  }
}

}  // namespace
