#pragma once

// How a test writes a fan-out's stream of 8-byte sequence numbers 0..n-1:
// record by record (write), filled in place in batches (write_batch), or
// copied as runs lying back to back (write_records, as a relay writes).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "sluice/transport/partition_writer.hpp"

namespace sluice::test {

enum class Writing { kRecordByRecord, kBatch, kRuns };
inline constexpr Writing kEveryWriting[] = {Writing::kRecordByRecord, Writing::kBatch,
                                            Writing::kRuns};

inline const char* to_string(Writing how) {
  switch (how) {
    case Writing::kRecordByRecord: return "record by record";
    case Writing::kBatch: return "write_batch";
    case Writing::kRuns: return "write_records";
  }
  return "?";
}

// Writes 0..n-1, keyed by themselves if `keyed` (record by record), in
// groups of `group` for the other two ways, then closes. The first error.
inline transport::Status write_numbers(transport::PartitionWriter& writer, std::uint64_t n,
                                       Writing how, bool keyed = false, std::uint64_t group = 100) {
  using transport::Status;
  for (std::uint64_t seq = 0; seq < n;) {
    const std::uint64_t count = how == Writing::kRecordByRecord ? 1 : std::min(group, n - seq);
    Status status = Status::kOk;
    if (how == Writing::kRecordByRecord) {
      const auto bytes = std::as_bytes(std::span(&seq, 1));
      status = keyed ? writer.write(seq, bytes) : writer.write(bytes);
    } else if (how == Writing::kBatch) {
      std::uint64_t next = seq;
      status = writer.write_batch(sizeof(next), count, [&next](std::span<std::byte> out) noexcept {
        std::memcpy(out.data(), &next, sizeof(next));
        ++next;
      });
    } else {
      std::vector<std::uint64_t> numbers(count);
      for (std::uint64_t i = 0; i < count; ++i) {
        numbers[i] = seq + i;
      }
      status = writer.write_records(std::as_bytes(std::span(numbers)), count);
    }
    if (status != Status::kOk) {
      return status;
    }
    seq += count;
  }
  return writer.close();
}

}  // namespace sluice::test
