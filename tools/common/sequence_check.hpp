#pragma once

// Checks a stream of standard test records (see sequence_pattern.hpp): every
// byte, contiguity of sequence numbers, and counts of what went wrong.

#include <cstdint>
#include <optional>
#include <span>

#include "sluice/transport/sequence_pattern.hpp"

namespace sluice::tools {

struct SequenceCheck {
  std::uint64_t record_bytes = 0;
  // false: the stream must start at sequence 0; true: it is checked for
  // contiguity from the first record seen (a consumer that took over).
  bool from_first_seen = false;
  std::uint64_t received = 0;
  std::uint64_t expected_next = 0;  // next sequence number wanted
  std::uint64_t lost = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t corrupt = 0;
  std::optional<std::uint64_t> first_seq;
  std::optional<std::uint64_t> last_seq;

  // Returns the record's sequence number when it is intact and new.
  std::optional<std::uint64_t> observe(std::span<const std::byte> record) noexcept {
    ++received;
    if (record.size() != record_bytes) {
      ++corrupt;
      return std::nullopt;
    }
    const std::uint64_t seq = sluice::transport::pattern::sequence_of(record);
    if (!sluice::transport::pattern::body_matches(record, seq)) {
      ++corrupt;
      return std::nullopt;
    }
    if (!first_seq) {
      first_seq = seq;
      if (from_first_seen) {
        expected_next = seq;
      }
    }
    if (seq < expected_next) {
      ++duplicated;
      return std::nullopt;
    }
    lost += seq - expected_next;
    expected_next = seq + 1;
    last_seq = seq;
    return seq;
  }

  [[nodiscard]] bool clean() const noexcept { return lost == 0 && duplicated == 0 && corrupt == 0; }
};

}  // namespace sluice::tools
