#pragma once

// Checks what one subpartition of a partitioned channel received against
// what its partitioner promises, for standard test records (see
// sequence_pattern.hpp) whose key is their sequence number:
// - round-robin: exactly I, I+K, I+2K, ...
// - key: exactly the numbers whose subpartition_for_key(seq, K) == I, in order
// - least-loaded: increasing and unique (which numbers is the producer's choice)
// - broadcast: every number, in order
// Every byte is checked too.

#include <cstdint>
#include <optional>
#include <span>

#include "sluice/transport/channel_config.hpp"
#include "sluice/transport/partition_writer.hpp"
#include "sluice/transport/sequence_pattern.hpp"

namespace sluice::tools {

struct PartitionCheck {
  sluice::transport::Partitioner partitioner = sluice::transport::Partitioner::kRoundRobin;
  std::uint32_t subpartitions = 1;
  std::uint32_t subpartition = 0;
  std::uint64_t record_bytes = 0;  // 0: any size of at least 8 bytes
  // false: the subpartition's first number is expected first; true: checked
  // from the first record seen (a consumer that took over).
  bool from_first_seen = false;
  std::uint64_t received = 0;
  std::uint64_t lost = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t corrupt = 0;
  std::uint64_t misrouted = 0;  // intact, but promised to another subpartition
  std::uint64_t cursor = 0;     // every number below it is accounted for
  std::optional<std::uint64_t> first_seq;
  std::optional<std::uint64_t> last_seq;

  [[nodiscard]] bool exact() const noexcept {
    return partitioner != sluice::transport::Partitioner::kLeastLoaded;
  }
  [[nodiscard]] bool mine(std::uint64_t seq) const noexcept {
    switch (partitioner) {
      case sluice::transport::Partitioner::kRoundRobin: return seq % subpartitions == subpartition;
      case sluice::transport::Partitioner::kKey:
        return sluice::transport::subpartition_for_key(seq, subpartitions) == subpartition;
      default: return true;
    }
  }
  // This subpartition's numbers in [from, to), the ones it should have had.
  [[nodiscard]] std::uint64_t mine_between(std::uint64_t from, std::uint64_t to) const noexcept {
    if (partitioner == sluice::transport::Partitioner::kBroadcast) {
      return to > from ? to - from : 0;
    }
    if (partitioner == sluice::transport::Partitioner::kRoundRobin) {
      auto upto = [this](std::uint64_t n) {  // numbers below n that are mine
        return n / subpartitions + (n % subpartitions > subpartition ? 1 : 0);
      };
      return to > from ? upto(to) - upto(from) : 0;
    }
    std::uint64_t count = 0;
    for (std::uint64_t seq = from; seq < to; ++seq) {
      count += mine(seq) ? 1 : 0;
    }
    return count;
  }

  // Returns the record's sequence number when it is intact, new and its own.
  std::optional<std::uint64_t> observe(std::span<const std::byte> record) noexcept {
    ++received;
    if (record.size() < sluice::transport::pattern::kMinRecordBytes ||
        (record_bytes != 0 && record.size() != record_bytes)) {
      ++corrupt;
      return std::nullopt;
    }
    const std::uint64_t seq = sluice::transport::pattern::sequence_of(record);
    if (!sluice::transport::pattern::body_matches(record, seq)) {
      ++corrupt;
      return std::nullopt;
    }
    if (!mine(seq)) {
      ++misrouted;
      return std::nullopt;
    }
    if (!first_seq) {
      first_seq = seq;
      if (from_first_seen) {
        cursor = seq;
      }
    }
    if (seq < cursor) {
      ++duplicated;
      return std::nullopt;
    }
    if (exact()) {
      lost += mine_between(cursor, seq);
    }
    cursor = seq + 1;
    last_seq = seq;
    return seq;
  }

  // The stream held `total` records (0..total-1): count what never came.
  void finish(std::optional<std::uint64_t> total) noexcept {
    if (total && exact() && *total > cursor) {
      lost += mine_between(cursor, *total);
    }
  }

  [[nodiscard]] bool clean() const noexcept {
    return lost == 0 && duplicated == 0 && corrupt == 0 && misrouted == 0;
  }
};

}  // namespace sluice::tools
