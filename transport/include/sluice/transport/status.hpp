#pragma once

#include <cstdint>
#include <string_view>

namespace sluice::transport {

// Result of every hot-path call. Nothing on the hot path throws.
enum class Status : std::uint8_t {
  kOk,
  kWouldBlock,       // a try_ call found nothing to do
  kTimeout,          // a timed call's deadline passed
  kClosed,           // the producer closed the stream and everything sent was received
  kPeerDied,         // the other endpoint went away without closing
  kCorrupt,          // shared memory held an impossible value; the channel is unusable
  kInvalidArgument,  // the caller passed something out of range (e.g. commit too many bytes)
};

constexpr std::string_view to_string(Status status) noexcept {
  switch (status) {
    case Status::kOk: return "ok";
    case Status::kWouldBlock: return "would block";
    case Status::kTimeout: return "timed out";
    case Status::kClosed: return "closed";
    case Status::kPeerDied: return "peer died";
    case Status::kCorrupt: return "corrupt";
    case Status::kInvalidArgument: return "invalid argument";
  }
  return "unknown";
}

}  // namespace sluice::transport
