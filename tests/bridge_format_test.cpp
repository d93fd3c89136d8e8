// The bridge's message format and status lines, without a server: what a
// buffer becomes, and what a reader refuses.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "../tools/common/bridge_status.hpp"
#include "sluice/nats/message_format.hpp"
#include "sluice/transport/record_frame.hpp"

namespace {

namespace sn = sluice::nats;
namespace frame = sluice::transport::frame;

void append_frame(std::vector<std::byte>& out, std::uint32_t word, const std::string& body) {
  const std::size_t at = out.size();
  out.resize(at + 4 + body.size());
  frame::write_header(out.data() + at, word);
  std::memcpy(out.data() + at + 4, body.data(), body.size());
}

TEST(BridgeFormat, ABufferOfWholeRecordsIsItsOwnBody) {
  std::vector<std::byte> buffer;
  append_frame(buffer, 3, "abc");
  append_frame(buffer, 0, "");
  append_frame(buffer, 5, "hello");
  std::vector<std::byte> scratch;
  sn::BufferBody body;
  ASSERT_EQ(sn::body_from_buffer(buffer, scratch, body), "");
  EXPECT_EQ(body.records, 3U);
  EXPECT_EQ(body.body.data(), buffer.data());
  EXPECT_EQ(body.body.size(), buffer.size());
  EXPECT_EQ(sn::check_body(body.body, 3), "");
  std::vector<std::size_t> lengths;
  sn::for_each_frame(body.body, [&](const sn::BodyFrame& f) {
    EXPECT_FALSE(f.run);
    EXPECT_EQ(f.count, 1U);
    lengths.push_back(f.length);
  });
  EXPECT_EQ(lengths, (std::vector<std::size_t>{3, 0, 5}));
}

// A run frame: kRun | length, a count, then count records of length bytes.
void append_run(std::vector<std::byte>& to, std::uint32_t length, std::uint32_t count,
                const std::string& bytes) {
  const std::uint32_t words[2] = {frame::kRun | length, count};
  const auto* raw = reinterpret_cast<const std::byte*>(words);
  to.insert(to.end(), raw, raw + sizeof(words));
  const auto* data = reinterpret_cast<const std::byte*>(bytes.data());
  to.insert(to.end(), data, data + bytes.size());
}

TEST(BridgeFormat, RunsGoAsTheyAreAndCountEachRecord) {
  std::vector<std::byte> buffer;
  append_frame(buffer, 1, "z");
  append_run(buffer, 2, 3, "aabbcc");
  append_frame(buffer, 4, "wxyz");
  std::vector<std::byte> scratch;
  sn::BufferBody body;
  ASSERT_EQ(sn::body_from_buffer(buffer, scratch, body), "");
  EXPECT_EQ(body.records, 5U);
  EXPECT_EQ(body.body.data(), buffer.data());
  EXPECT_EQ(sn::check_body(body.body, 5), "");
  EXPECT_NE(sn::check_body(body.body, 3), "");
  std::vector<std::string> frames;
  sn::for_each_frame(body.body, [&](const sn::BodyFrame& f) {
    frames.push_back(std::to_string(f.run) + ":" + std::to_string(f.length) + "x" +
                     std::to_string(f.count) + "@" + std::to_string(f.records_at));
  });
  EXPECT_EQ(frames, (std::vector<std::string>{"0:1x1@4", "1:2x3@13", "0:4x1@23"}));
  // With a discard frame first, the run is copied whole.
  std::vector<std::byte> resumed;
  append_frame(resumed, frame::kDiscard, "");
  append_run(resumed, 2, 2, "ppqq");
  ASSERT_EQ(sn::body_from_buffer(resumed, scratch, body), "");
  EXPECT_EQ(body.records, 2U);
  EXPECT_EQ(body.body.size(), 12U);
  EXPECT_EQ(sn::check_body(body.body, 2), "");
}

TEST(BridgeFormat, EmptyOrOverlongRunsAreRefused) {
  std::vector<std::byte> scratch;
  sn::BufferBody body;
  for (const auto& [length, count, bytes] :
       std::vector<std::tuple<std::uint32_t, std::uint32_t, std::string>>{
           {2, 3, "aabbc"}, {0, 3, ""}, {2, 0, ""}, {2, 0xFFFFFFFFU, "aa"}}) {
    std::vector<std::byte> buffer;
    append_run(buffer, length, count, bytes);
    EXPECT_NE(sn::body_from_buffer(buffer, scratch, body), "") << length << "x" << count;
    EXPECT_NE(sn::check_body(buffer, count), "") << length << "x" << count;
  }
}

TEST(BridgeFormat, ADiscardFrameIsLeftOut) {
  std::vector<std::byte> buffer;
  append_frame(buffer, frame::kDiscard, "");
  append_frame(buffer, 2, "xy");
  std::vector<std::byte> scratch;
  sn::BufferBody body;
  ASSERT_EQ(sn::body_from_buffer(buffer, scratch, body), "");
  EXPECT_EQ(body.records, 1U);
  ASSERT_EQ(body.body.size(), 6U);
  EXPECT_EQ(frame::read_header(body.body.data()), 2U);
}

TEST(BridgeFormat, ASpanningRecordOrATruncatedFrameIsRefused) {
  std::vector<std::byte> spanning;
  append_frame(spanning, frame::kMoreFollows | 4, "abcd");
  std::vector<std::byte> scratch;
  sn::BufferBody body;
  EXPECT_NE(sn::body_from_buffer(spanning, scratch, body).find("spans buffers"), std::string::npos);
  std::vector<std::byte> truncated;
  append_frame(truncated, 100, "short");
  EXPECT_NE(sn::body_from_buffer(truncated, scratch, body).find("runs past"), std::string::npos);
}

TEST(BridgeFormat, ABodyMustMatchItsRecordCount) {
  std::vector<std::byte> body;
  append_frame(body, 1, "a");
  append_frame(body, 1, "b");
  EXPECT_EQ(sn::check_body(body, 2), "");
  EXPECT_NE(sn::check_body(body, 3), "");
  body.push_back(std::byte{0});  // a stray byte after the last record
  EXPECT_NE(sn::check_body(body, 2), "");
  std::vector<std::byte> flagged;
  append_frame(flagged, frame::kContinuation | 1, "a");
  EXPECT_NE(sn::check_body(flagged, 1), "");
}

TEST(BridgeFormat, HeadersOfAnotherFormatAreRefused) {
  sn::MessageHeaders headers;
  EXPECT_EQ(sn::parse_headers("1", "c:0:1", "10", "3", nullptr, headers), "");
  EXPECT_EQ(headers.first, 10U);
  EXPECT_EQ(headers.records, 3U);
  EXPECT_FALSE(headers.end);
  EXPECT_NE(sn::parse_headers(nullptr, "c:0:1", "10", "3", nullptr, headers), "");
  EXPECT_NE(sn::parse_headers("2", "c:0:1", "10", "3", nullptr, headers).find("\"2\""),
            std::string::npos);
  EXPECT_NE(sn::parse_headers("1", "c:0:1", "-1", "3", nullptr, headers), "");
  EXPECT_NE(sn::parse_headers("1", "c:0:1", "18446744073709551615", "3", nullptr, headers), "");
  EXPECT_EQ(sn::parse_headers("1", "c:0:1", "5", "0", "1", headers), "");
  EXPECT_TRUE(headers.end);
}

TEST(BridgeFormat, IdsNameTheChannelCreationAndTheCommit) {
  const std::string origin = sn::origin_of("orders", 2, 1234);
  EXPECT_EQ(origin, "orders:2:1234");
  EXPECT_EQ(sn::message_id(origin, 7), "orders:2:1234:7");
  EXPECT_EQ(sn::end_message_id(origin), "orders:2:1234:end");
}

TEST(BridgeFormat, StatusLinesRoundTripAndForeignOnesAreRefused) {
  const std::string line =
      sluice::tools::StatusLine().add("direction", "out").add("pid", std::uint64_t{42}).str();
  std::vector<std::pair<std::string, std::string>> pairs;
  ASSERT_TRUE(sluice::tools::parse_status(line + "\n", pairs));
  ASSERT_EQ(pairs.size(), 2U);
  EXPECT_EQ(pairs[0].second, "\"out\"");
  EXPECT_EQ(pairs[1].second, "42");
  for (const char* bad : {"", "{}", "{\"a\":}", "{\"a\":\"x}", "{\"A\":1}", "{\"a\":1,}",
                          "{\"a\":{\"b\":1}}", "{\"a\":-1}", "[1]"}) {
    EXPECT_FALSE(sluice::tools::parse_status(bad, pairs)) << bad;
  }
}

}  // namespace
