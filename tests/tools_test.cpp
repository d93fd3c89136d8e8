// The demo programs and the `sluice` command, run as real processes.

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "sluice/shm/segment.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/sequence_pattern.hpp"
#include "test_support.hpp"
#include "tool_run.hpp"

using sluice::test::ChannelGuard;
using sluice::test::unique_channel;

namespace {

using sluice::test::read_file;
using sluice::test::tool;
using sluice::test::ToolRun;

ToolRun run(const std::string& command) {  // stdout and stderr together
  return sluice::test::run_tool(command);
}

// The consumer command started first, in the background (it waits for the
// channel to appear), then the producer command run to its end; then the
// consumer's output to its end. Output includes stderr for both.
struct PairRun {
  ToolRun producer;
  ToolRun consumer;
};
PairRun run_consumer_then_producer(const std::string& consumer_command,
                                   const std::string& producer_command) {
  PairRun pair;
  FILE* consumer = popen((consumer_command + " 2>&1").c_str(), "r");
  if (consumer == nullptr) {
    pair.consumer.out = "popen failed";
    return pair;
  }
  pair.producer = run(producer_command);
  std::array<char, 4096> chunk{};
  while (std::fgets(chunk.data(), chunk.size(), consumer) != nullptr) {
    pair.consumer.out += chunk.data();
  }
  const int status = pclose(consumer);
  pair.consumer.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return pair;
}

std::string last_line(const std::string& text) {
  const auto end = text.find_last_not_of('\n');
  const auto start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1,
                     end - (start == std::string::npos ? 0 : start + 1) + 1);
}

TEST(Tools, ProducerAndConsumerMoveEveryRecordAndReportJson) {
  ChannelGuard guard(unique_channel("demo"));
  const std::string channel = " --channel " + guard.name();
  const std::string common = channel + " --records 200000 --size 64 --json";
  const PairRun pair = run_consumer_then_producer(tool("sluice-consumer") + common,
                                                  tool("sluice-producer") + common);
  const ToolRun& producer = pair.producer;
  const std::string& consumer_out = pair.consumer.out;
  EXPECT_EQ(producer.status, 0) << producer.out;
  EXPECT_EQ(pair.consumer.status, 0) << consumer_out;
  const std::string summary = last_line(consumer_out);
  for (const char* key :
       {"\"role\":\"consumer\"", "\"records\":200000", "\"bytes\":12800000", "\"lost\":0",
        "\"duplicated\":0", "\"corrupt\":0", "\"first_seq\":0", "\"last_seq\":199999",
        "\"idle_seconds\":", "\"records_per_sec\":", "\"bytes_per_sec\":", "\"seconds\":"}) {
    EXPECT_NE(summary.find(key), std::string::npos) << key << " missing in " << summary;
  }
  const std::string producer_summary = last_line(producer.out);
  EXPECT_NE(producer_summary.find("\"blocked_seconds\":"), std::string::npos) << producer_summary;
  EXPECT_NE(producer_summary.find("\"role\":\"producer\""), std::string::npos) << producer_summary;
  // Every line is one JSON object.
  std::size_t start = 0;
  while (start < consumer_out.size()) {
    const auto end = consumer_out.find('\n', start);
    const std::string line = consumer_out.substr(start, end - start);
    EXPECT_TRUE(line.front() == '{' && line.back() == '}') << line;
    start = end == std::string::npos ? consumer_out.size() : end + 1;
  }
  EXPECT_FALSE(sluice::shm::Segment::exists(guard.name()));  // the consumer cleaned up
}

// With a zero flush timeout every record is published in place, which needs
// a few bytes more of a buffer than a record in a whole one: records that
// fit a buffer only the second way (and larger ones) must still all go.
TEST(Tools, ProducerWithZeroFlushTimeoutSendsRecordsOfEverySizeAroundABuffer) {
  for (const int size : {8, 32756, 32760, 32764, 40000}) {
    SCOPED_TRACE("size " + std::to_string(size));
    ChannelGuard guard(unique_channel("inplace"));
    const std::string common =
        " --channel " + guard.name() + " --records 20 --size " + std::to_string(size);
    // The consumer first, so that the producer sees it (then it fills runs).
    const PairRun pair = run_consumer_then_producer(
        tool("sluice-consumer") + common + " --json --wait 30",
        tool("sluice-producer") + common + " --flush-timeout-us 0 --wait 30");
    EXPECT_EQ(pair.producer.status, 0) << pair.producer.out;
    EXPECT_EQ(pair.consumer.status, 0) << pair.consumer.out;
    EXPECT_NE(pair.consumer.out.find("\"records\":20,"), std::string::npos) << pair.consumer.out;
    EXPECT_NE(pair.consumer.out.find("\"lost\":0"), std::string::npos) << pair.consumer.out;
  }
}

TEST(Tools, ConsumerReportsAStreamThatEndsEarly) {
  ChannelGuard guard(unique_channel("short"));
  const std::string channel = " --channel " + guard.name();
  ASSERT_EQ(
      run(tool("sluice-producer") + channel + " --records 10 --size 16 --no-wait-for-consumer")
          .status,
      0);
  const ToolRun consumer =
      run(tool("sluice-consumer") + channel + " --records 11 --size 16 --json");
  EXPECT_EQ(consumer.status, 1) << consumer.out;
  EXPECT_NE(consumer.out.find("\"lost\":1"), std::string::npos) << consumer.out;
  EXPECT_NE(consumer.out.find("ended early"), std::string::npos) << consumer.out;
}

TEST(Tools, ConsumerCountsRecordsOfTheWrongSizeAsCorrupt) {
  ChannelGuard guard(unique_channel("wrongsize"));
  const std::string channel = " --channel " + guard.name();
  ASSERT_EQ(run(tool("sluice-producer") + channel + " --records 5 --size 16 --no-wait-for-consumer")
                .status,
            0);
  const ToolRun consumer = run(tool("sluice-consumer") + channel + " --records 5 --size 24 --json");
  EXPECT_EQ(consumer.status, 1) << consumer.out;
  EXPECT_NE(consumer.out.find("\"corrupt\":5"), std::string::npos) << consumer.out;
}

TEST(Tools, ConsumerCountsEachGapDuplicateAndDamagedRecordOnceAndKeepsChecking) {
  // Past the first record the consumer takes expected records on a fast path
  // and everything else through its full tally; each kind of fault must be
  // counted once there and the records after it checked again.
  namespace st = sluice::transport;
  ChannelGuard guard(unique_channel("faults"));
  {
    st::Producer producer = st::Producer::create(guard.name(), st::ChannelConfig{});
    st::RecordWriter writer(producer);
    std::array<std::byte, 16> record{};
    const auto write = [&](std::uint64_t sequence, bool damaged) {
      st::pattern::fill(record, sequence);
      if (damaged) {
        record[12] ^= std::byte{0x40};
      }
      ASSERT_EQ(writer.write(record), st::Status::kOk);
    };
    // 0 alone in the first buffer (the first record goes through the tally),
    // then in the next: 1 2, 2 again, 3 and 4 missing, 5, 6 damaged, 7 8 9.
    write(0, false);
    ASSERT_EQ(writer.flush(), st::Status::kOk);
    for (const std::uint64_t sequence : {1, 2, 2, 5}) {
      write(sequence, false);
    }
    write(6, true);
    for (const std::uint64_t sequence : {7, 8, 9}) {
      write(sequence, false);
    }
    ASSERT_EQ(writer.close(), st::Status::kOk);
  }
  const ToolRun consumer = run(tool("sluice-consumer") + " --channel " + guard.name() +
                               " --records 10 --size 16 --json");
  EXPECT_EQ(consumer.status, 1) << consumer.out;
  const std::string summary = last_line(consumer.out);
  for (const char* expected : {"\"records\":9,", "\"duplicated\":1,", "\"corrupt\":1,",
                               "\"lost\":3,", "\"last_seq\":9"}) {
    EXPECT_NE(summary.find(expected), std::string::npos) << expected << " not in " << summary;
  }
}

TEST(Tools, ConsumerGivesUpWaitingForAMissingChannel) {
  const ToolRun consumer =
      run(tool("sluice-consumer") + " --channel never-created --records 1 --size 8 --wait 0.1");
  EXPECT_EQ(consumer.status, 2);
  EXPECT_NE(consumer.out.find("does not exist"), std::string::npos) << consumer.out;
  EXPECT_NE(consumer.out.find("never-created"), std::string::npos) << consumer.out;
}

TEST(Tools, BadArgumentsExitWithStatusTwoAndSayWhy) {
  const struct {
    std::string args;
    const char* says;
  } cases[] = {
      {" --channel x --records 1 --size 7", "--size must be between 8"},
      {" --channel x --records ten --size 8", "--records expects a whole number"},
      {" --records 1 --size 8", "--channel is required"},
      {" --channel x --records 1 --size 8 --frobnicate", "unknown option --frobnicate"},
      {" --channel a/b --records 1 --size 8", "invalid channel name"},
      {" --channel x --records 1 --size 8 --buffers 0", "--buffers must be between"},
      {" --channel x --records 1 --size 8 --rate-schedule 1:2:3", "--rate-schedule"},
  };
  for (const auto& c : cases) {
    const ToolRun result = run(tool("sluice-producer") + c.args);
    EXPECT_EQ(result.status, 2) << c.args << "\n" << result.out;
    EXPECT_NE(result.out.find(c.says), std::string::npos) << c.args << "\n" << result.out;
  }
}

TEST(Tools, ProducerRefusesAnExistingChannel) {
  ChannelGuard guard(unique_channel("exists"));
  const std::string channel = " --channel " + guard.name();
  ASSERT_EQ(run(tool("sluice-producer") + channel + " --records 1 --size 8 --no-wait-for-consumer")
                .status,
            0);
  const ToolRun second =
      run(tool("sluice-producer") + channel + " --records 1 --size 8 --no-wait-for-consumer");
  EXPECT_EQ(second.status, 2) << second.out;
  EXPECT_NE(second.out.find("already exists"), std::string::npos) << second.out;
  const ToolRun replaced = run(tool("sluice-producer") + channel +
                               " --records 1 --size 8 --replace-stale --no-wait-for-consumer");
  EXPECT_EQ(replaced.status, 0) << replaced.out;
}

TEST(Tools, ProducerWithHugePagesRunsOrSaysWhatTheMountLacks) {
  ChannelGuard guard(unique_channel("hugetool"));
  const ToolRun producer = run(tool("sluice-producer") + " --channel " + guard.name() +
                               " --records 10 --size 16 --buffer-size 1M --buffers 4 --huge-pages" +
                               " --no-wait-for-consumer");
  if (sluice::test::mount_gives_huge_pages()) {
    // Or the kernel found no free 2 MiB of memory, and says so.
    EXPECT_TRUE(producer.status == 0 || producer.out.find("no free 2 MiB") != std::string::npos)
        << producer.out;
  } else {
    EXPECT_EQ(producer.status, 2) << producer.out;
    EXPECT_NE(producer.out.find("huge pages were required"), std::string::npos) << producer.out;
    if (sluice::shm::Segment::huge_page_mount_option() == "never") {
      EXPECT_NE(producer.out.find("mount -o remount,huge=advise /dev/shm"), std::string::npos)
          << producer.out;
    }
  }
}

TEST(Tools, LsShowsChannelsAndRmRemovesThem) {
  ChannelGuard guard(unique_channel("ls"));
  ASSERT_EQ(run(tool("sluice-producer") + " --channel " + guard.name() +
                " --records 3 --size 8 --buffers 7 --buffer-size 4K --no-wait-for-consumer")
                .status,
            0);
  const ToolRun ls = run(tool("sluice") + " ls --json");
  EXPECT_EQ(ls.status, 0) << ls.out;
  const auto line_start = ls.out.find("\"name\":\"" + guard.name() + "\"");
  ASSERT_NE(line_start, std::string::npos) << ls.out;
  const std::string line = ls.out.substr(line_start, ls.out.find('\n', line_start) - line_start);
  EXPECT_NE(line.find("\"buffers\":7"), std::string::npos) << line;
  EXPECT_NE(line.find("\"buffer_bytes\":4096"), std::string::npos) << line;
  EXPECT_NE(line.find("\"state\":\"stale\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"producer_alive\":false"), std::string::npos) << line;

  const ToolRun text = run(tool("sluice") + " ls");
  EXPECT_NE(text.out.find(guard.name()), std::string::npos) << text.out;

  const ToolRun rm = run(tool("sluice") + " rm " + guard.name());
  EXPECT_EQ(rm.status, 0) << rm.out;
  EXPECT_FALSE(sluice::shm::Segment::exists(guard.name()));
  const ToolRun again = run(tool("sluice") + " rm " + guard.name());
  EXPECT_EQ(again.status, 1) << again.out;
  EXPECT_NE(again.out.find("does not exist"), std::string::npos) << again.out;
}

TEST(Tools, UnknownCommandExitsTwo) {
  const ToolRun result = run(tool("sluice") + " frobnicate");
  EXPECT_EQ(result.status, 2);
  EXPECT_NE(result.out.find("unknown command"), std::string::npos) << result.out;
}

}  // namespace

namespace {

TEST(Tools, StatReportsConfigurationCountersAndRates) {
  ChannelGuard guard(unique_channel("stat"));
  ASSERT_EQ(run(tool("sluice-producer") + " --channel " + guard.name() +
                " --records 1000 --size 32 --buffers 5 --no-wait-for-consumer")
                .status,
            0);
  const ToolRun json = run(tool("sluice") + " stat " + guard.name() + " --json --interval 0.05");
  EXPECT_EQ(json.status, 0) << json.out;
  for (const char* key :
       {"\"buffers\":5", "\"records_sent\":1000", "\"records_received\":0",
        "\"backpressured_ms_per_sec\":", "\"idle_ms_per_sec\":", "\"consumer_busy_ms_per_sec\":",
        "\"out_pool_usage\":", "\"backpressure_level\":\"OK\"", "\"closed\":true"}) {
    EXPECT_NE(json.out.find(key), std::string::npos) << key << " missing in " << json.out;
  }
  const ToolRun text = run(tool("sluice") + " stat " + guard.name() + " --interval 0.05");
  EXPECT_EQ(text.status, 0) << text.out;
  EXPECT_NE(text.out.find("backpressured ms/s"), std::string::npos) << text.out;
  const ToolRun missing = run(tool("sluice") + " stat no-such-channel-here");
  EXPECT_EQ(missing.status, 1) << missing.out;
  EXPECT_NE(missing.out.find("does not exist"), std::string::npos) << missing.out;
}

TEST(Tools, TopPrintsPlainLinesWhenNotATerminal) {
  ChannelGuard guard(unique_channel("top"));
  ASSERT_EQ(run(tool("sluice-producer") + " --channel " + guard.name() + " --records 10 --size 8" +
                " --no-wait-for-consumer")
                .status,
            0);
  const ToolRun top = run(tool("sluice") + " top --iterations 2 --interval 0.05 < /dev/null");
  EXPECT_EQ(top.status, 0) << top.out;
  EXPECT_NE(top.out.find("CHANNEL"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find(guard.name().substr(0, 20)), std::string::npos) << top.out;
  EXPECT_EQ(top.out.find("\x1b["), std::string::npos) << "escape codes in plain output";
}

TEST(Tools, CheckSaysWhetherAChannelIsSound) {
  ChannelGuard guard(unique_channel("check"));
  ASSERT_EQ(run(tool("sluice-producer") + " --channel " + guard.name() + " --records 10 --size 8" +
                " --no-wait-for-consumer")
                .status,
            0);
  const ToolRun sound = run(tool("sluice") + " check " + guard.name());
  EXPECT_EQ(sound.status, 0) << sound.out;
  EXPECT_NE(sound.out.find("sound"), std::string::npos) << sound.out;
  EXPECT_NE(sound.out.find("1 queued"), std::string::npos) << sound.out;
}

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) return rows;
  std::array<char, 1024> line{};
  while (std::fgets(line.data(), line.size(), file) != nullptr) {
    std::vector<std::string> fields;
    std::string field;
    for (const char* c = line.data(); *c != '\0' && *c != '\n'; ++c) {
      if (*c == ',') {
        fields.push_back(field);
        field.clear();
      } else {
        field += *c;
      }
    }
    fields.push_back(field);
    rows.push_back(fields);
  }
  std::fclose(file);
  return rows;
}

TEST(Tools, ExperimentShowsTheProducerFollowingTheThrottledSide) {
  const std::string out = "/tmp/" + unique_channel("experiment");
  // A small pool (8 x 4 KiB, about 480 records): the two rates of a window
  // differ by at most what the pool gained or lost in it, which is then far
  // under a tenth of a window even in the sanitizer builds' slow code. With
  // the default pool (about 30 000 records) a stall of tens of ms at a
  // window's edge could take a tenth there; a producer that did not follow
  // would still run at several times the consumer's rate.
  const ToolRun experiment = run(tool("sluice") + " experiment --phase-seconds 2 --window 0.5 " +
                                 "--calibrate-seconds 1 --buffers 8 --buffer-size 4K --out " + out);
  ASSERT_EQ(experiment.status, 0) << experiment.out;
  EXPECT_NE(experiment.out.find("0 lost, 0 duplicated, 0 corrupt"), std::string::npos)
      << experiment.out;
  const auto rows = read_csv(out + "/experiment.csv");
  ASSERT_GT(rows.size(), 10U) << experiment.out;
  ASSERT_EQ(rows[0][2], "phase");
  ASSERT_EQ(rows[0][6], "producer_records_per_sec");
  ASSERT_EQ(rows[0][7], "consumer_records_per_sec");
  std::string previous_phase;
  int checked = 0;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const std::string& phase = rows[i][2];
    const bool first_window = phase != previous_phase;
    previous_phase = phase;
    const bool throttled = phase == "1" || phase == "2" || phase == "4";
    if (!throttled || first_window) continue;
    const double producer = std::stod(rows[i][6]);
    const double consumer = std::stod(rows[i][7]);
    EXPECT_LE(std::abs(producer - consumer), 0.10 * consumer)
        << "window " << rows[i][0] << " of phase " << phase << ": producer " << producer
        << ", consumer " << consumer;
    ++checked;
  }
  EXPECT_GE(checked, 6);
  std::FILE* svg = std::fopen((out + "/experiment.svg").c_str(), "r");
  EXPECT_NE(svg, nullptr);
  if (svg != nullptr) std::fclose(svg);
  std::system(("rm -rf " + out).c_str());
}

}  // namespace

namespace {

// A source killed mid-stream and resumed with `sluice-producer --resume`:
// it continues at the first record its predecessor had not committed, so the
// resuming consumers (one per subpartition) see every record exactly once.
void producer_killed_and_resumed(std::uint32_t consumers, const char* partition) {
  ChannelGuard guard(unique_channel("presume"));
  const std::string producer_bin = tool("sluice-producer");
  const std::string consumer_bin = tool("sluice-consumer");
  const std::string channel = guard.name();
  const std::string records = "3000000";
  std::vector<std::unique_ptr<sluice::test::ChildProcess>> readers;
  std::vector<std::string> logs;
  for (std::uint32_t s = 0; s < consumers; ++s) {
    logs.push_back("/tmp/sluice-test-presume-" + std::to_string(getpid()) + "-" +
                   std::to_string(s));
    std::string command = consumer_bin + " --channel " + channel + " --records " + records +
                          " --size 64 --resume --wait 30 --json";
    if (consumers > 1) {
      command += " --subpartition " + std::to_string(s);
    }
    readers.push_back(std::make_unique<sluice::test::ChildProcess>(
        [command, log = logs.back()] { return run(command + " > " + log).status; }));
  }
  // Paced to 6 s of records, so that the kill comes before the first
  // producer is done also where each `sluice stat` below starts slowly (the
  // sanitizer builds); the resumed producer runs unthrottled.
  std::vector<std::string> args = {producer_bin, "--channel", channel,  "--records", records,
                                   "--size",     "64",        "--rate", "500000"};
  if (consumers > 1) {
    args.insert(args.end(), {"--consumers", std::to_string(consumers), "--partition", partition});
  }
  sluice::test::ChildProcess first([&]() -> int {
    std::vector<char*> argv;
    for (std::string& arg : args) {
      argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    return 127;
  });
  // Killed once the consumers are well into the stream.
  ASSERT_TRUE(sluice::test::eventually([&] {
    const ToolRun stat = run(tool("sluice") + " stat " + channel + " --json --interval 0.01");
    return stat.status == 0 && stat.out.find("\"records_received\":0,") == std::string::npos;
  }));
  first.kill_now();
  EXPECT_EQ(first.wait(), 128 + SIGKILL);
  const ToolRun resumed = run(producer_bin + " --channel " + channel + " --records " + records +
                              " --size 64 --resume --json");
  EXPECT_EQ(resumed.status, 0) << resumed.out;
  // Broadcast and 1:1: each consumer has every record; least-loaded: their
  // shares add up to the stream (each consumer checks its own increasing
  // and unique).
  const bool shares = std::string(partition) == "least-loaded";
  std::uint64_t total = 0;
  for (std::uint32_t s = 0; s < consumers; ++s) {
    EXPECT_EQ(readers[s]->wait(), 0) << read_file(logs[s]);
    const std::string summary = last_line(read_file(logs[s]));
    EXPECT_NE(summary.find("\"ok\":true"), std::string::npos) << summary;
    EXPECT_NE(summary.find("\"lost\":0,"), std::string::npos) << summary;
    EXPECT_NE(summary.find("\"duplicated\":0,"), std::string::npos) << summary;
    const std::size_t at = summary.find("\"records\":");
    ASSERT_NE(at, std::string::npos) << summary;
    const std::uint64_t received = std::stoull(summary.substr(at + 10));
    total += received;
    if (!shares) {
      EXPECT_EQ(received, std::stoull(records)) << summary;
    }
    std::remove(logs[s].c_str());
  }
  if (shares) {
    EXPECT_EQ(total, std::stoull(records));
  }
}

TEST(Tools, AResumedProducerContinuesAKilledOnesStreamExactly) {
  producer_killed_and_resumed(1, "");
}

TEST(Tools, AResumedBroadcastProducerContinuesAKilledOnesStreamExactly) {
  producer_killed_and_resumed(2, "broadcast");
}

TEST(Tools, AResumedLeastLoadedProducerContinuesAKilledOnesStreamExactly) {
  producer_killed_and_resumed(2, "least-loaded");
}

TEST(Tools, ResumingARoundRobinProducerIsRefusedWithAReason) {
  ChannelGuard guard(unique_channel("presume-rr"));
  const std::string producer_bin = tool("sluice-producer");
  {
    // A producer that leaves without closing, as a killed one would.
    auto producer = sluice::transport::Producer::create(guard.name(), [] {
      sluice::transport::ChannelConfig config;
      config.subpartitions = 2;
      return config;
    }());
  }
  const ToolRun resumed =
      run(producer_bin + " --channel " + guard.name() + " --records 10 --size 64 --resume");
  EXPECT_EQ(resumed.status, 2) << resumed.out;
  EXPECT_NE(resumed.out.find("round-robin fan-out; --resume is available for"), std::string::npos)
      << resumed.out;
  const ToolRun missing = run(producer_bin + " --channel " + guard.name() +
                              "-none --records 10 --size 64 --resume --wait 0");
  EXPECT_EQ(missing.status, 2) << missing.out;
  EXPECT_NE(missing.out.find("does not exist"), std::string::npos) << missing.out;
}

TEST(Tools, AResumingConsumerTakesOverFromAKilledOne) {
  ChannelGuard guard(unique_channel("resume"));
  const std::string producer_bin = tool("sluice-producer");
  const std::string consumer_bin = tool("sluice-consumer");
  const std::string channel = guard.name();
  sluice::test::ChildProcess producer([&]() -> int {
    execl(producer_bin.c_str(), producer_bin.c_str(), "--channel", channel.c_str(), "--records",
          "200000", "--size", "64", "--buffers", "4", "--buffer-size", "4K",
          "--wait-for-new-consumer", static_cast<char*>(nullptr));
    return 127;
  });
  sluice::test::ChildProcess first([&]() -> int {
    execl(consumer_bin.c_str(), consumer_bin.c_str(), "--channel", channel.c_str(), "--records",
          "200000", "--size", "64", "--rate", "50000", "--keep", static_cast<char*>(nullptr));
    return 127;
  });
  // Kill the slow first consumer once it is well into the stream.
  ASSERT_TRUE(sluice::test::eventually([&] {
    return run(tool("sluice") + " stat " + channel + " --json --interval 0.01")
                   .out.find("\"records_received\":0,") == std::string::npos &&
           run(tool("sluice") + " stat " + channel + " --json --interval 0.01").status == 0;
  }));
  first.kill_now();
  EXPECT_EQ(first.wait(), 128 + SIGKILL);
  const ToolRun second =
      run(consumer_bin + " --channel " + channel + " --records 200000 --size 64 --resume --json");
  EXPECT_EQ(second.status, 0) << second.out;
  const std::string summary = last_line(second.out);
  EXPECT_NE(summary.find("\"last_seq\":199999"), std::string::npos) << summary;
  EXPECT_NE(summary.find("\"lost\":0"), std::string::npos) << summary;
  EXPECT_EQ(summary.find("\"first_seq\":0,"), std::string::npos)
      << "expected a resumed stream: " << summary;
  EXPECT_EQ(producer.wait(), 0);
}

}  // namespace
