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

std::string body_from_buffer(std::span<const std::byte> buffer, std::vector<std::byte>& scratch,
                             BufferBody& out) {
  std::size_t at = 0;
  std::uint64_t records = 0;
  bool discarded = false;
  while (at < buffer.size()) {
    if (buffer.size() - at < frame::kHeaderBytes) {
      return "a frame header runs past the end of the buffer";
    }
    const std::uint32_t word = frame::read_header(buffer.data() + at);
    const std::uint32_t length = word & frame::kLengthMask;
    const std::uint32_t flags = word & ~frame::kLengthMask;
    if (length > buffer.size() - at - frame::kHeaderBytes) {
      return "a record's length runs past the end of the buffer";
    }
    if (flags == frame::kDiscard && length == 0) {
      discarded = true;  // a producer that took over starts with this; nothing to carry
    } else if ((flags & (frame::kMoreFollows | frame::kContinuation)) != 0) {
      return "a record spans buffers (larger than a buffer): sluice-bridge carries whole "
             "records only; give the channel buffers larger than its largest record";
    } else if (flags != 0) {
      return "unexpected frame flags in a committed buffer";
    } else {
      ++records;
    }
    at += frame::kHeaderBytes + length;
  }
  out.records = records;
  if (!discarded) {
    out.body = buffer;
    return {};
  }
  // Copy every plain frame, leaving the discard frames out.
  scratch.clear();
  at = 0;
  while (at < buffer.size()) {
    const std::uint32_t word = frame::read_header(buffer.data() + at);
    const std::size_t frame_bytes = frame::kHeaderBytes + (word & frame::kLengthMask);
    if ((word & ~frame::kLengthMask) == 0) {
      scratch.insert(scratch.end(), buffer.begin() + static_cast<std::ptrdiff_t>(at),
                     buffer.begin() + static_cast<std::ptrdiff_t>(at + frame_bytes));
    }
    at += frame_bytes;
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
    if (body.size() - at < frame::kHeaderBytes) {
      return "a record length runs past the end of the message";
    }
    const std::uint32_t length = frame::read_header(body.data() + at);
    if (length > frame::kLengthMask) {
      return "a record length in the message is larger than any record can be";
    }
    if (length > body.size() - at - frame::kHeaderBytes) {
      return "a record runs past the end of the message";
    }
    at += frame::kHeaderBytes + length;
    ++seen;
  }
  if (seen != records) {
    return "the message holds " + std::to_string(seen) + " records, its header says " +
           std::to_string(records);
  }
  return {};
}

}  // namespace sluice::nats
