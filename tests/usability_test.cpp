// What a new user meets first: help for every command, JSON errors, exit
// statuses that match the help, the producer's idea of success, and the
// library's channel lifetime. Programs run as real processes.

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sluice/shm/segment.hpp"
#include "sluice/shm/setup_error.hpp"
#include "sluice/transport/channel.hpp"
#include "sluice/transport/channel_remover.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"
#include "test_support.hpp"
#include "tool_run.hpp"

using sluice::test::ChannelGuard;
using sluice::test::unique_channel;

namespace {

using ToolResult = sluice::test::ToolRun;
using sluice::test::read_file;
using sluice::test::tool;

// Runs a shell command with stdout and stderr kept apart.
ToolResult run(const std::string& command) {
  return sluice::test::run_tool(command, sluice::test::Stderr::kApart);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A producer that writes `flags` (records, size, ...) into channel `name`
// and exits without waiting for a consumer: a stale channel holding them.
int leave_records(const std::string& name, const std::string& flags) {
  return run(tool("sluice-producer") + " --channel " + name + " " + flags +
             " --no-wait-for-consumer")
      .status;
}

TEST(Usability, EverySubcommandHasItsOwnHelp) {
  for (const std::string command : {"ls", "stat", "top", "check", "rm", "experiment"}) {
    for (const std::string form : {" --help", " -h"}) {
      const ToolResult help = run(tool("sluice") + " " + command + form);
      EXPECT_EQ(help.status, 0) << command << form << "\n" << help.out << help.err;
      EXPECT_TRUE(has(help.out, "usage: sluice " + command)) << command << "\n" << help.out;
      EXPECT_FALSE(has(help.err, "unknown option")) << command << "\n" << help.err;
    }
    const ToolResult via_help = run(tool("sluice") + " help " + command);
    EXPECT_EQ(via_help.status, 0) << command << "\n" << via_help.err;
    EXPECT_TRUE(has(via_help.out, "usage: sluice " + command)) << via_help.out;
  }
  // Help wins over a command line that would otherwise be wrong.
  const ToolResult with_name = run(tool("sluice") + " stat some-name --help");
  EXPECT_EQ(with_name.status, 0) << with_name.err;
  EXPECT_TRUE(has(with_name.out, "--interval")) << with_name.out;
}

TEST(Usability, HelpStatesTheNameAndPoolLimits) {
  for (const std::string command : {"stat", "check", "rm"}) {
    const ToolResult help = run(tool("sluice") + " " + command + " --help");
    EXPECT_TRUE(has(help.out, "200")) << help.out;
    EXPECT_TRUE(has(help.out, "not starting with '.'")) << help.out;
  }
  const ToolResult producer = run(tool("sluice-producer") + " --help");
  EXPECT_TRUE(has(producer.out, "200")) << producer.out;
  EXPECT_TRUE(has(producer.out, "64 GiB")) << producer.out;
}

// Every stdout line is one JSON object, and one of them is the error.
void expect_one_json_error(const ToolResult& r, const std::string& says,
                           const std::string& context) {
  ASSERT_FALSE(r.out.empty()) << context << "\nstderr: " << r.err;
  int errors = 0;
  for (const std::string& line : lines_of(r.out)) {
    EXPECT_TRUE(!line.empty() && line.front() == '{' && line.back() == '}')
        << context << ": " << line;
    if (has(line, "\"type\":\"error\"")) {
      ++errors;
      EXPECT_TRUE(has(line, says)) << context << ": " << line;
      EXPECT_TRUE(has(line, "\"error\":")) << line;
    }
  }
  EXPECT_EQ(errors, 1) << context << "\n" << r.out;
  EXPECT_TRUE(has(r.err, says)) << context << ": the message belongs on stderr too\n" << r.err;
}

TEST(Usability, ArgumentErrorsWithJsonPrintAJsonErrorLine) {
  const struct {
    std::string command;
    int status;
    std::string says;
  } cases[] = {
      {tool("sluice-producer") + " --channel x --records 1 --size 7 --json", 2, "--size"},
      {tool("sluice-producer") + " --json --frobnicate", 2, "unknown option --frobnicate"},
      {tool("sluice-consumer") + " --channel x --records ten --size 8 --json", 2, "--records"},
      {tool("sluice-consumer") + " --json --records 1 --size 8", 2, "--channel is required"},
      {tool("sluice") + " ls --json --frobnicate", 2, "unknown option --frobnicate"},
      {tool("sluice") + " stat --json --prometheus", 2, "not both"},
      {tool("sluice-relay") + " --from a --json", 2, "--to is required"},
      {tool("sluice") + " stat ../x --json", 2, "invalid channel name"},
      {tool("sluice") + " stat x --json --interval 0", 2, "--interval"},
      {tool("sluice") + " stat no-such-channel-usability --json --interval 0.01", 1,
       "does not exist"},
  };
  for (const auto& c : cases) {
    const ToolResult r = run(c.command);
    EXPECT_EQ(r.status, c.status) << c.command << "\n" << r.out << r.err;
    expect_one_json_error(r, c.says, c.command);
  }
}

TEST(Usability, InvalidNamesAreBadArgumentsAndNothingIsRemoved) {
  ChannelGuard guard(unique_channel("badname"));
  ASSERT_EQ(leave_records(guard.name(), "--records 1 --size 8"), 0);
  for (const std::string& bad :
       std::vector<std::string>{"../x", ".hidden", std::string(201, 'a')}) {
    for (const std::string command : {"stat", "check", "rm"}) {
      const ToolResult r = run(tool("sluice") + " " + command + " '" + bad + "'");
      EXPECT_EQ(r.status, 2) << command << " " << bad << "\n" << r.err;
      EXPECT_TRUE(has(r.err, "invalid channel name")) << r.err;
    }
  }
  // One bad name among good ones: refused before anything is removed.
  const ToolResult mixed = run(tool("sluice") + " rm " + guard.name() + " ../x");
  EXPECT_EQ(mixed.status, 2) << mixed.err;
  EXPECT_TRUE(sluice::shm::Segment::exists(guard.name()));
  // A valid name that does not exist is still status 1.
  const ToolResult missing =
      run(tool("sluice") + " stat no-such-channel-usability --interval 0.01");
  EXPECT_EQ(missing.status, 1) << missing.err;
}

std::string json_line_naming(const std::string& out, const std::string& name) {
  for (const std::string& line : lines_of(out)) {
    if (has(line, "\"name\":\"" + name + "\"")) return line;
  }
  return {};
}

TEST(Usability, LsCountsBuffersAndBytesOfTheBufferApi) {
  ChannelGuard guard(unique_channel("bufapi"));
  {
    auto producer = sluice::transport::Producer::create(guard.name(),
                                                        {.buffer_bytes = 4096, .buffer_count = 4});
    for (int i = 0; i < 3; ++i) {
      sluice::transport::WritableBuffer buffer;
      ASSERT_EQ(producer.acquire(buffer), sluice::transport::Status::kOk);
      ASSERT_EQ(producer.commit(std::move(buffer), 100), sluice::transport::Status::kOk);
    }
    producer.close();
  }
  const ToolResult json = run(tool("sluice") + " ls --json");
  ASSERT_EQ(json.status, 0) << json.err;
  const std::string line = json_line_naming(json.out, guard.name());
  ASSERT_FALSE(line.empty()) << json.out;
  EXPECT_TRUE(has(line, "\"records_sent\":0")) << line;  // commit() was told no records
  EXPECT_TRUE(has(line, "\"buffers_sent\":3")) << line;
  EXPECT_TRUE(has(line, "\"bytes_sent\":300")) << line;
  EXPECT_TRUE(has(line, "\"buffers_received\":0")) << line;
  const ToolResult text = run(tool("sluice") + " ls");
  EXPECT_TRUE(has(text.out, "BUFS_SENT")) << text.out;
  EXPECT_TRUE(has(text.out, "MB_SENT")) << text.out;
}

TEST(Usability, RmStaleKeepsAChannelWithUnreadRecordsAndSaysHowMany) {
  ChannelGuard guard(unique_channel("unread"));
  ASSERT_EQ(leave_records(guard.name(), "--records 100 --size 8"), 0);
  // Only this test's channel: other stale channels on the host are not ours.
  const ToolResult kept = run(tool("sluice") + " rm --stale " + guard.name());
  EXPECT_EQ(kept.status, 1) << kept.out << kept.err;
  EXPECT_TRUE(sluice::shm::Segment::exists(guard.name()));
  EXPECT_TRUE(has(kept.err, "kept " + guard.name())) << kept.err;
  EXPECT_TRUE(has(kept.err, "100 unread records")) << kept.err;
  EXPECT_TRUE(has(kept.err, "--force")) << kept.err;
  // Named explicitly, it goes, with the count on stderr.
  const ToolResult named = run(tool("sluice") + " rm " + guard.name());
  EXPECT_EQ(named.status, 0) << named.err;
  EXPECT_TRUE(has(named.err, "100 unread records")) << named.err;
  EXPECT_FALSE(sluice::shm::Segment::exists(guard.name()));
  const ToolResult force_without_stale = run(tool("sluice") + " rm --force " + guard.name());
  EXPECT_EQ(force_without_stale.status, 2) << force_without_stale.err;
  // With --force it goes, and says what was discarded.
  ASSERT_EQ(leave_records(guard.name(), "--records 7 --size 8"), 0);
  const ToolResult forced = run(tool("sluice") + " rm --stale --force " + guard.name());
  EXPECT_EQ(forced.status, 0) << forced.err;
  EXPECT_TRUE(has(forced.out, "removed " + guard.name())) << forced.out;
  EXPECT_TRUE(has(forced.out, "discarded 7 unread records")) << forced.out;
  EXPECT_FALSE(sluice::shm::Segment::exists(guard.name()));
  // A stale channel with nothing unread goes without a word of warning.
  ASSERT_EQ(leave_records(guard.name(), "--records 3 --size 8"), 0);
  ASSERT_EQ(
      run(tool("sluice-consumer") + " --channel " + guard.name() + " --records 3 --size 8 --keep")
          .status,
      0);
  const ToolResult drained = run(tool("sluice") + " rm --stale " + guard.name());
  EXPECT_EQ(drained.status, 0) << drained.err;
  EXPECT_TRUE(drained.err.empty()) << drained.err;
  EXPECT_FALSE(sluice::shm::Segment::exists(guard.name()));
}

TEST(Usability, RmRemovesWhatBridgesKeptBesideTheChannel) {
  // sluice-bridge keeps a resume state and status files beside a channel,
  // hidden in /dev/shm; they must not outlive it.
  const auto touch = [](const std::string& path) {
    std::FILE* file = std::fopen(path.c_str(), "w");
    ASSERT_NE(file, nullptr) << path;
    std::fclose(file);
  };
  const auto exists = [](const std::string& path) { return access(path.c_str(), F_OK) == 0; };
  ChannelGuard guard(unique_channel("bridged"));
  ASSERT_EQ(leave_records(guard.name(), "--records 3 --size 8"), 0);
  const std::string shm = "/dev/shm/.sluice-bridge-";
  const std::string state = shm + "in." + guard.name();
  const std::string in_status = shm + "in." + guard.name() + ".status";
  const std::string out_status = shm + "out." + guard.name() + ".status";
  touch(state);
  touch(in_status);
  touch(out_status);
  ASSERT_EQ(run(tool("sluice") + " rm " + guard.name()).status, 0);
  EXPECT_FALSE(exists(state));
  EXPECT_FALSE(exists(in_status));
  EXPECT_FALSE(exists(out_status));

  // The same when a stale channel goes through rm --stale (named: other
  // stale channels on the host are not ours).
  ASSERT_EQ(leave_records(guard.name(), "--records 3 --size 8"), 0);
  touch(state);
  touch(out_status + ".tmp12345");  // a replacement cut short by a kill
  const ToolResult stale = run(tool("sluice") + " rm --stale --force " + guard.name());
  EXPECT_EQ(stale.status, 0) << stale.err;
  EXPECT_FALSE(exists(state));
  EXPECT_FALSE(exists(out_status + ".tmp12345"));
  std::remove((out_status + ".tmp12345").c_str());
}

TEST(Usability, TheDemoProducerSizesBuffersToHoldARecordLargerThanTheDefault) {
  // A 100000-byte record would be split over four 32 KiB buffers and copied
  // piecewise at both ends; by default the producer gives each buffer room
  // for one record instead (1 MiB of them, at least 2), unless told a size.
  ChannelGuard guard(unique_channel("big-records"));
  ASSERT_EQ(leave_records(guard.name(), "--records 2 --size 100000"), 0);
  {
    const auto consumer = sluice::transport::Consumer::open(guard.name());
    EXPECT_EQ(consumer.config().buffer_bytes, 100004U);
    EXPECT_EQ(consumer.config().buffer_count, 11U);  // 1 MiB / 100004, rounded up
  }
  ASSERT_EQ(run(tool("sluice") + " rm --force --stale " + guard.name()).status, 0);
  ASSERT_EQ(leave_records(guard.name(), "--records 2 --size 100000 --buffer-size 32K"), 0);
  const auto consumer = sluice::transport::Consumer::open(guard.name());
  EXPECT_EQ(consumer.config().buffer_bytes, 32U * 1024);
  EXPECT_EQ(consumer.config().buffer_count, 64U);
}

// A command started in the background; its stdout and stderr are collected
// when it is waited for.
class Background {
 public:
  explicit Background(const std::string& command)
      : pipe_(popen((command + " 2>&1").c_str(), "r")) {}
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  ~Background() {
    if (pipe_ != nullptr) finish();
  }
  ToolResult finish() {
    ToolResult result;
    std::array<char, 4096> chunk{};
    while (std::fgets(chunk.data(), chunk.size(), pipe_) != nullptr) {
      result.out += chunk.data();
    }
    const int status = pclose(pipe_);
    pipe_ = nullptr;
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
  }

 private:
  FILE* pipe_;
};

TEST(Usability, ProducerWithoutAConsumerGivesUpAfterWait) {
  ChannelGuard guard(unique_channel("noconsumer"));
  // The stream fits in the pool: everything is sent, nobody reads it.
  const ToolResult fits = run(tool("sluice-producer") + " --channel " + guard.name() +
                              " --records 100 --size 8 --wait 0.2 --json");
  EXPECT_EQ(fits.status, 3) << fits.out << fits.err;
  expect_one_json_error(fits, "no consumer attached", "records fit in the pool");
  EXPECT_TRUE(has(fits.err, "100 of 100 records are in the channel")) << fits.err;
  EXPECT_TRUE(has(fits.out, "\"ok\":false")) << fits.out;
  EXPECT_TRUE(sluice::shm::Segment::exists(guard.name()));  // kept for a late consumer
  sluice::transport::remove_channel(guard.name());
  // The pool fills and nobody empties it: blocked no longer than --wait, also
  // when fire and forget was asked for.
  for (const std::string mode : {"", " --no-wait-for-consumer"}) {
    const ToolResult blocked =
        run(tool("sluice-producer") + " --channel " + guard.name() +
            " --records 100000 --size 64 --buffers 2 --buffer-size 4K --wait 0.2" + mode);
    EXPECT_EQ(blocked.status, 3) << mode << "\n" << blocked.out << blocked.err;
    EXPECT_TRUE(has(blocked.err, "no consumer attached")) << blocked.err;
    sluice::transport::remove_channel(guard.name());
  }
}

TEST(Usability, ProducerSucceedsWhenAConsumerThatComesLaterReadsEverything) {
  ChannelGuard guard(unique_channel("latecomer"));
  const std::string common = " --channel " + guard.name() + " --records 1000 --size 16";
  Background producer(tool("sluice-producer") + common + " --wait 60");
  ASSERT_TRUE(sluice::test::eventually([&] { return sluice::shm::Segment::exists(guard.name()); }));
  const ToolResult consumer = run(tool("sluice-consumer") + common);
  EXPECT_EQ(consumer.status, 0) << consumer.out << consumer.err;
  const ToolResult produced = producer.finish();
  EXPECT_EQ(produced.status, 0) << produced.out;
}

TEST(Usability, ProducerFailsWhenTheConsumerLeavesWithRecordsUnread) {
  ChannelGuard guard(unique_channel("leaves"));
  const std::string channel = " --channel " + guard.name();
  Background producer(tool("sluice-producer") + channel + " --records 10 --size 16 --wait 60");
  const ToolResult consumer =
      run(tool("sluice-consumer") + channel + " --records 5 --size 16 --keep");
  EXPECT_EQ(consumer.status, 0) << consumer.out << consumer.err;
  const ToolResult produced = producer.finish();
  EXPECT_EQ(produced.status, 1) << produced.out;
  EXPECT_TRUE(has(produced.out, "the consumer went away after reading 5 of them")) << produced.out;
}

TEST(Usability, AFinishedLeftoverChannelDoesNotSwallowTheNextRun) {
  ChannelGuard guard(unique_channel("leftover"));
  const std::string common = " --channel " + guard.name() + " --records 10 --size 16";
  ASSERT_EQ(run(tool("sluice-producer") + common + " --no-wait-for-consumer").status, 0);
  ASSERT_EQ(run(tool("sluice-consumer") + common + " --keep").status, 0);
  ASSERT_TRUE(sluice::shm::Segment::exists(guard.name()));  // closed, read, kept
  // The next run starts with its consumer.
  Background consumer(tool("sluice-consumer") + common + " --wait 60 --json");
  ASSERT_TRUE(
      sluice::test::eventually([&] { return !sluice::shm::Segment::exists(guard.name()); }));
  const ToolResult producer = run(tool("sluice-producer") + common + " --wait 60");
  EXPECT_EQ(producer.status, 0) << producer.out << producer.err;
  const ToolResult consumed = consumer.finish();
  EXPECT_EQ(consumed.status, 0) << consumed.out;
  EXPECT_TRUE(has(consumed.out, "\"records\":10")) << consumed.out;
  EXPECT_TRUE(has(consumed.out, "fully read by an earlier run")) << consumed.out;
}

TEST(Usability, AConsumerStillReadsALeftoverThatHoldsUnreadRecords) {
  ChannelGuard guard(unique_channel("unreadleft"));
  const std::string common = " --channel " + guard.name() + " --records 10 --size 16";
  ASSERT_EQ(run(tool("sluice-producer") + common + " --no-wait-for-consumer").status, 0);
  const ToolResult consumer = run(tool("sluice-consumer") + common + " --json");
  EXPECT_EQ(consumer.status, 0) << consumer.out << consumer.err;
  EXPECT_TRUE(has(consumer.out, "\"records\":10")) << consumer.out;
}

TEST(Usability, AChannelRemoverRemovesItsChannelAtTheEndOfItsScope) {
  ChannelGuard guard(unique_channel("remover"));
  {
    auto producer = sluice::transport::Producer::create(guard.name());
    const sluice::transport::ChannelRemover remover(producer.mapping());
    EXPECT_TRUE(sluice::shm::Segment::exists(guard.name()));
  }
  EXPECT_FALSE(sluice::shm::Segment::exists(guard.name()));
  // Created twice in a row: the second create finds the name free.
  for (int run = 0; run < 2; ++run) {
    auto producer = sluice::transport::Producer::create(guard.name());
    auto consumer = sluice::transport::Consumer::open(guard.name());
    const sluice::transport::ChannelRemover remover(consumer.mapping());
  }
  EXPECT_FALSE(sluice::shm::Segment::exists(guard.name()));
}

TEST(Usability, AChannelRemoverLeavesASuccessorsChannelAndCanBeReleased) {
  ChannelGuard guard(unique_channel("remover2"));
  {
    auto old_producer = sluice::transport::Producer::create(guard.name());
    const sluice::transport::ChannelRemover remover(old_producer.mapping());
    sluice::transport::remove_channel(guard.name());
    auto successor = sluice::transport::Producer::create(guard.name());
  }
  EXPECT_TRUE(sluice::shm::Segment::exists(guard.name())) << "a successor's channel was removed";
  sluice::transport::remove_channel(guard.name());
  {
    auto producer = sluice::transport::Producer::create(guard.name());
    sluice::transport::ChannelRemover remover(producer.mapping());
    remover.release();
  }
  EXPECT_TRUE(sluice::shm::Segment::exists(guard.name()));
}

TEST(Usability, CreatingATakenNameThrowsASetupErrorThatSaysHowToRemoveIt) {
  ChannelGuard guard(unique_channel("taken"));
  auto first = sluice::transport::Producer::create(guard.name());
  try {
    auto second = sluice::transport::Producer::create(guard.name());
    ADD_FAILURE() << "a second create of one name succeeded";
  } catch (const sluice::shm::SetupError& e) {
    EXPECT_TRUE(has(e.what(), "already exists")) << e.what();
    EXPECT_TRUE(has(e.what(), "sluice rm " + guard.name())) << e.what();
  }
}

TEST(Usability, ExperimentChartShowsRecordsPerSecondAndWhichSideWaits) {
  const std::string out = "/tmp/" + unique_channel("experiment-chart");
  const ToolResult experiment =
      run(tool("sluice") + " experiment --phase-seconds 1 --window 0.5 --calibrate-seconds 0.5" +
          " --calibrate-runs 2 --out " + out);
  ASSERT_EQ(experiment.status, 0) << experiment.out << experiment.err;
  EXPECT_TRUE(has(experiment.out, "2 runs of 0.5 s")) << experiment.out;
  EXPECT_TRUE(has(experiment.out, "unthrottled phases: ")) << experiment.out;
  const std::string svg = read_file(out + "/experiment.svg");
  EXPECT_TRUE(has(svg, ">records/s<")) << "no records/s scale";
  EXPECT_TRUE(has(svg, ">producer blocked<")) << "no waiting panel";
  EXPECT_TRUE(has(svg, ">consumer idle<")) << "no waiting panel";
  EXPECT_TRUE(has(svg, ">ms per second<"));
  const std::string summary = read_file(out + "/summary.json");
  EXPECT_TRUE(has(summary, "\"unthrottled_records_per_sec\":")) << summary;
  EXPECT_TRUE(has(summary, "\"unthrottled_percent_of_top\":")) << summary;
  std::system(("rm -rf " + out).c_str());
}

}  // namespace
