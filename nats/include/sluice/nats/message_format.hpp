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
// Body: the records, each a 4-byte little-endian length and its bytes, no
// padding (the frame format of a local buffer whose frames carry no flags).

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

// Calls on_record(offset, length) for each record of a checked body.
template <class OnRecord>
void for_each_record(std::span<const std::byte> body, OnRecord&& on_record) {
  std::size_t at = 0;
  while (at + 4 <= body.size()) {
    std::uint32_t length = 0;
    for (int i = 3; i >= 0; --i) {
      length = (length << 8) | static_cast<std::uint32_t>(body[at + static_cast<std::size_t>(i)]);
    }
    on_record(at, static_cast<std::size_t>(length));
    at += 4 + length;
  }
}

}  // namespace sluice::nats
