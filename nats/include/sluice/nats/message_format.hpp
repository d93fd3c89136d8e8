#pragma once

// The NATS message format of the bridge, version 1. One NATS message carries
// the records of one local buffer (sluice-bridge out), so a bridge that
// resumes republishes exactly the same messages with the same ids.
//
// Headers:
//   Sluice-Format   "1"; a reader refuses any other value (or none)
//   Sluice-Origin   <channel>:<subpartition>:<incarnation>, the channel's
//                   creation time in ns: unique per channel creation, so a
//                   recreated channel never reuses an id inside the stream's
//                   duplicate window
//   Sluice-First    position of the first record in its channel's stream
//   Sluice-Records  how many records the body holds
//   Sluice-End      "1" on the end-of-stream marker (body empty, Records 0)
//   Nats-Msg-Id     <origin>:<commit sequence of the buffer>, or <origin>:end
// Body: the records in the framing of a committed local buffer without its
// spanning and discard frames, no padding: a 4-byte little-endian word, then
//   - if its top four bits are 0: a record of that many bytes;
//   - if they are 0x9 (kRun): a run, `length` = the low 28 bits (>= 1),
//     then a 4-byte little-endian count (>= 1) and `count` records of
//     `length` bytes back to back.
// Anything else is refused. A buffer goes out as it is (no copy), unless it
// starts with a discard frame.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::nats {

inline constexpr const char* kFormatHeader = "Sluice-Format";
inline constexpr const char* kFormatVersion = "1";
inline constexpr const char* kOriginHeader = "Sluice-Origin";
inline constexpr const char* kFirstHeader = "Sluice-First";
inline constexpr const char* kRecordsHeader = "Sluice-Records";
inline constexpr const char* kEndHeader = "Sluice-End";
inline constexpr std::uint32_t kLengthMask = (1U << 28) - 1;

// The origin of a channel's records: the same for every message a bridge
// (or its successor) publishes from one subpartition of one channel.
std::string origin_of(std::string_view channel, std::uint32_t subpartition,
                      std::uint64_t incarnation_ns);
std::string message_id(std::string_view origin, std::uint64_t commit_sequence);
std::string end_message_id(std::string_view origin);

// A committed local buffer turned into a message body. `body` views either
// the buffer itself or `scratch` (when a discard frame had to be left out).
struct BufferBody {
  std::span<const std::byte> body;
  std::uint64_t records = 0;
};

// Checks a committed buffer's frames and makes the body. Returns an empty
// string on success, else why the buffer cannot be sent: a record that
// spans buffers (the bridge refuses those: use buffers larger than the
// largest record), or a frame that runs past the buffer (corruption).
std::string body_from_buffer(std::span<const std::byte> buffer, std::vector<std::byte>& scratch,
                             BufferBody& out);

// The headers of a received message, checked.
struct MessageHeaders {
  bool end = false;
  std::string origin;
  std::uint64_t first = 0;
  std::uint64_t records = 0;
};

// Parses the headers' values (null when absent). Empty string on success,
// else why the message is not one this bridge understands.
std::string parse_headers(const char* format, const char* origin, const char* first,
                          const char* records, const char* end, MessageHeaders& out);

// Checks a body against its record count: every length within the body,
// exactly `records` records, nothing left over. Empty string on success.
std::string check_body(std::span<const std::byte> body, std::uint64_t records);

// One frame of a checked body: `count` records of `length` bytes each, back
// to back from byte `records_at` (a plain record: count 1, run false).
struct BodyFrame {
  std::size_t records_at = 0;
  std::size_t length = 0;
  std::uint64_t count = 0;
  bool run = false;
};

// Calls on_frame(BodyFrame) for each frame of a body check_body accepted.
template <class OnFrame>
void for_each_frame(std::span<const std::byte> body, OnFrame&& on_frame) {
  const auto word_at = [&](std::size_t at) {
    std::uint32_t word = 0;
    for (int i = 3; i >= 0; --i) {
      word = (word << 8) | static_cast<std::uint32_t>(body[at + static_cast<std::size_t>(i)]);
    }
    return word;
  };
  std::size_t at = 0;
  while (at + 4 <= body.size()) {
    const std::uint32_t word = word_at(at);
    BodyFrame frame;
    frame.length = word & kLengthMask;
    frame.run = (word & ~kLengthMask) != 0;
    frame.count = frame.run ? word_at(at + 4) : 1;
    frame.records_at = at + (frame.run ? 8 : 4);
    on_frame(frame);
    at = frame.records_at + frame.length * frame.count;
  }
}

}  // namespace sluice::nats
