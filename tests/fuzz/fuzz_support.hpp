#pragma once

// Helpers shared by the fuzz targets: a reader that turns the fuzzer's bytes
// into values (running dry yields zeros, never fails), per-process channel
// names, and removal of the channel whatever happens.

#include <unistd.h>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "sluice/shm/segment.hpp"
#include "sluice/shm/setup_error.hpp"

namespace sluice::fuzz {

class FuzzInput {
 public:
  FuzzInput(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  [[nodiscard]] bool empty() const { return size_ == 0; }
  [[nodiscard]] std::size_t remaining() const { return size_; }

  std::uint8_t u8() {
    if (size_ == 0) {
      return 0;
    }
    --size_;
    return *data_++;
  }
  // Little-endian; missing bytes read as zero.
  std::uint64_t uint(unsigned bytes) {
    std::uint64_t value = 0;
    for (unsigned i = 0; i < bytes; ++i) {
      value |= static_cast<std::uint64_t>(u8()) << (8 * i);
    }
    return value;
  }
  std::uint16_t u16() { return static_cast<std::uint16_t>(uint(2)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(uint(4)); }
  std::uint64_t u64() { return uint(8); }
  // Up to `count` bytes (fewer when the input runs out).
  std::span<const std::uint8_t> bytes(std::size_t count) {
    const std::size_t n = count < size_ ? count : size_;
    std::span<const std::uint8_t> out(data_, n);
    data_ += n;
    size_ -= n;
    return out;
  }
  std::span<const std::uint8_t> rest() { return bytes(size_); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
};

// One name per fuzzing process (libFuzzer's -jobs/-fork run several), so
// parallel runs never collide. Only these names are ever created or removed.
inline std::string process_channel_name(const char* label) {
  return std::string("fuzz-") + label + "-" + std::to_string(::getpid());
}

// Removes the channel's name on scope exit (and on entry, in case an earlier
// process with the same pid crashed and left it behind).
class NameGuard {
 public:
  explicit NameGuard(std::string name) : name_(std::move(name)) {
    sluice::shm::Segment::remove(name_);
  }
  ~NameGuard() { sluice::shm::Segment::remove(name_); }
  NameGuard(const NameGuard&) = delete;
  NameGuard& operator=(const NameGuard&) = delete;
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// A property the library promises (rule 3) was broken without the sanitizers
// noticing, e.g. a view that points outside its buffer but still inside the
// mapping. Abort so libFuzzer records the input as a crash.
[[noreturn]] inline void violated(const char* what) {
  std::fprintf(stderr, "sluice fuzz: invariant violated: %s\n", what);
  std::abort();
}

}  // namespace sluice::fuzz
