// sluice experiment --pipeline end to end: four real processes per run,
// short phases; checks the outputs' shape and that nothing was lost, not
// how fast anything ran.

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "tool_run.hpp"

namespace {

using sluice::test::read_file;
using sluice::test::run_tool;
using sluice::test::tool;
using sluice::test::unique_channel;

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t count = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) {
    ++count;
  }
  return count;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

TEST(ExperimentAcrossPipeline, ShortRunWritesEveryOutputAndLosesNothing) {
  const std::string out = "/tmp/" + unique_channel("pipeline-experiment");
  const auto run =
      run_tool(tool("sluice") + " experiment --pipeline --phase-seconds 1 --window 0.25 " +
               "--calibrate-seconds 0.5 --out " + out);
  ASSERT_EQ(run.status, 0) << run.out;
  // One line per run: the sink's --union check held and counted every record.
  EXPECT_EQ(count_of(run.out, " 0 lost, 0 duplicated, 0 corrupt (sink's --union check ok)"), 3U)
      << run.out;
  EXPECT_NE(run.out.find("| phase | throttle | source % |"), std::string::npos) << run.out;

  for (const std::string name : {"sink", "worker-rr", "worker-ll"}) {
    const auto csv = lines_of(read_file(out + "/pipeline-" + name + ".csv"));
    ASSERT_GE(csv.size(), 2U) << name;
    EXPECT_EQ(csv[0],
              "window_start_s,window_end_s,phase,phase_label,source_records_per_sec,"
              "worker0_in_records_per_sec,worker0_out_records_per_sec,worker1_in_records_per_sec,"
              "worker1_out_records_per_sec,sink_records_per_sec,source_blocked_ms_per_sec,"
              "worker0_idle_ms_per_sec,worker0_blocked_ms_per_sec,worker1_idle_ms_per_sec,"
              "worker1_blocked_ms_per_sec,sink_idle_ms_per_sec,following");
    for (std::size_t i = 1; i < csv.size(); ++i) {
      EXPECT_EQ(count_of(csv[i], ","), 16U) << name << ": " << csv[i];
    }
    // The millisecond trace: cumulative counts, so never decreasing.
    const auto trace = lines_of(read_file(out + "/pipeline-" + name + "-trace.csv"));
    ASSERT_GT(trace.size(), 100U) << name;
    EXPECT_EQ(trace[0], "seconds,source_records,worker1_out_records,sink_records");
    std::uint64_t last_sink = 0;
    for (std::size_t i = 1; i < trace.size(); ++i) {
      const std::uint64_t sink = std::stoull(trace[i].substr(trace[i].rfind(',') + 1));
      EXPECT_GE(sink, last_sink) << name << " line " << i;
      last_sink = sink;
    }
    EXPECT_GT(last_sink, 0U) << name;
    const std::string svg = read_file(out + "/pipeline-" + name + ".svg");
    EXPECT_NE(svg.find("<svg"), std::string::npos) << name;
    EXPECT_NE(svg.find("worker 1 (out)"), std::string::npos) << name;
  }

  const std::string summary = read_file(out + "/pipeline-summary.json");
  for (const char* key :
       {"\"top_records_per_sec\":", "\"reaction_resolution_seconds\":", "\"runs\":[",
        "\"run\":\"sink\"", "\"run\":\"worker-rr\"", "\"run\":\"worker-ll\"",
        "\"partition\":\"least-loaded\"",
        "\"every_stage_followed\":", "\"source_records_per_sec\":", "\"worker0_records_per_sec\":",
        "\"worker1_records_per_sec\":", "\"sink_records_per_sec\":",
        "\"every_stage_within_10_percent_of_sink\":", "\"reaction_seconds\":", "\"reaction_ms\":",
        "\"reaction_under_10_ms\":", "\"reaction_ms_resolution\":"}) {
    EXPECT_NE(summary.find(key), std::string::npos) << key << " in " << summary;
  }
  EXPECT_EQ(count_of(summary, "\"lost\":0,"), 3U) << summary;
  EXPECT_EQ(count_of(summary, "\"phase\":"), 15U) << summary;
  EXPECT_NE(summary.find("\"ok\":true,\"runs\""), std::string::npos) << summary;
  std::system(("rm -rf " + out).c_str());
}

TEST(ExperimentAcrossPipeline, BadArgumentsExit2AndThePlainExperimentIsUnchanged) {
  const auto bad = run_tool(tool("sluice") + " experiment --pipeline --worker-percent 0");
  EXPECT_EQ(bad.status, 2) << bad.out;
  const auto help = run_tool(tool("sluice") + " experiment --pipeline --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("usage: sluice experiment --pipeline [options]"), std::string::npos)
      << help.out;
  const auto plain = run_tool(tool("sluice") + " experiment --help");
  EXPECT_EQ(plain.status, 0);
  EXPECT_NE(plain.out.find("usage: sluice experiment [options]"), std::string::npos) << plain.out;
}

}  // namespace
