#include "sluice/nats/message_format.hpp"

#include <charconv>
#include <cstring>

#include "sluice/transport/record_frame.hpp"

namespace sluice::nats {

namespace frame = sluice::transport::frame;

std::string origin_of(std::string_view channel, std::uint32_t subpartition,
                      std::uint64_t incarnation_ns) {
  return std::string(channel) + ":" + std::to_string(subpartition) + ":" +
         std::to_string(incarnation_ns);
}

std::string message_id(std::string_view origin, std::uint64_t commit_sequence) {
  return std::string(origin) + ":" + std::to_string(commit_sequence);
}

std::string end_message_id(std::string_view origin) {
  return std::string(origin) + ":end";
}

namespace {

// The frame at `at` of a committed buffer or a body: how many bytes it takes
// and how many records it holds, or why it is refused. Shared by the two
// checks below so that what out sends and what in accepts are the same.
struct FrameCheck {
  std::size_t bytes = 0;
  std::uint64_t records = 0;
  bool discard = false;
  const char* problem = nullptr;
};

FrameCheck check_frame(std::span<const std::byte> data, std::size_t at) {
  FrameCheck check;
  const std::size_t left = data.size() - at;
  if (left < frame::kHeaderBytes) {
    check.problem = "a frame header runs past the end";
    return check;
  }
  const std::uint32_t word = frame::read_header(data.data() + at);
  const std::size_t length = word & frame::kLengthMask;
  const std::uint32_t flags = word & ~frame::kLengthMask;
  if (flags == frame::kRun) {
    if (left < frame::kRunHeaderBytes) {
      check.problem = "a run's count runs past the end";
      return check;
    }
    const std::uint32_t count = frame::read_header(data.data() + at + frame::kHeaderBytes);
    // Division, not multiplication: count * length could overflow.
    if (length == 0 || count == 0 || count > (left - frame::kRunHeaderBytes) / length) {
      check.problem = "a run of records is empty or runs past the end";
      return check;
    }
    check.bytes = frame::kRunHeaderBytes + length * count;
    check.records = count;
    return check;
  }
  if (length > left - frame::kHeaderBytes) {
    check.problem = "a record's length runs past the end";
    return check;
  }
  check.bytes = frame::kHeaderBytes + length;
  if (flags == frame::kDiscard && length == 0) {
    check.discard = true;  // a producer that took over starts with this; nothing to carry
  } else if ((flags & (frame::kMoreFollows | frame::kContinuation)) != 0) {
    check.problem =
        "a record spans buffers (larger than a buffer): sluice-bridge carries whole "
        "records only; give the channel buffers larger than its largest record";
  } else if (flags != 0) {
    check.problem = "unexpected frame flags";
  } else {
    check.records = 1;
  }
  return check;
}

}  // namespace

std::string body_from_buffer(std::span<const std::byte> buffer, std::vector<std::byte>& scratch,
                             BufferBody& out) {
  std::size_t at = 0;
  std::uint64_t records = 0;
  bool discarded = false;
  while (at < buffer.size()) {
    const FrameCheck check = check_frame(buffer, at);
    if (check.problem != nullptr) {
      return std::string(check.problem) + " of the buffer";
    }
    discarded = discarded || check.discard;
    records += check.records;
    at += check.bytes;
  }
  out.records = records;
  if (!discarded) {
    out.body = buffer;
    return {};
  }
  // Copy every record and run, leaving the discard frames out.
  scratch.clear();
  at = 0;
  while (at < buffer.size()) {
    const FrameCheck check = check_frame(buffer, at);
    if (!check.discard) {
      scratch.insert(scratch.end(), buffer.begin() + static_cast<std::ptrdiff_t>(at),
                     buffer.begin() + static_cast<std::ptrdiff_t>(at + check.bytes));
    }
    at += check.bytes;
  }
  out.body = scratch;
  return {};
}

namespace {

bool parse_number(const char* text, std::uint64_t& value) {
  if (text == nullptr) {
    return false;
  }
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, value);
  return ec == std::errc() && ptr == end && ptr != text;
}

}  // namespace

std::string parse_headers(const char* format, const char* origin, const char* first,
                          const char* records, const char* end, MessageHeaders& out) {
  if (format == nullptr) {
    return "the message has no Sluice-Format header: it was not published by sluice-bridge out";
  }
  if (std::strcmp(format, kFormatVersion) != 0) {
    return std::string("the message has Sluice-Format \"") + format +
           "\", this bridge reads format " + kFormatVersion + " only";
  }
  if (origin == nullptr || *origin == '\0') {
    return "the message has no Sluice-Origin header";
  }
  out.origin = origin;
  out.end = end != nullptr && std::strcmp(end, "1") == 0;
  if (!parse_number(first, out.first)) {
    return "the message's Sluice-First header is missing or not a number";
  }
  if (!parse_number(records, out.records)) {
    return "the message's Sluice-Records header is missing or not a number";
  }
  if (out.first > UINT64_MAX - out.records) {
    return "the message's Sluice-First plus Sluice-Records overflows";
  }
  return {};
}

std::string check_body(std::span<const std::byte> body, std::uint64_t records) {
  std::size_t at = 0;
  std::uint64_t seen = 0;
  while (at < body.size()) {
    const FrameCheck check = check_frame(body, at);
    if (check.problem != nullptr) {
      return std::string(check.problem) + " of the message";
    }
    if (check.discard) {
      return "a discard frame in the message";
    }
    seen += check.records;
    at += check.bytes;
  }
  if (seen != records) {
    return "the message holds " + std::to_string(seen) + " records, its header says " +
           std::to_string(records);
  }
  return {};
}

}  // namespace sluice::nats
