#pragma once

// Writes records into a partitioned channel (fan-out) the way its
// partitioner promises, as Flink's record writers do: round-robin sends
// record n to subpartition n % K (Flink's rebalance); key sends a record to
// subpartition_for_key(key, K), so the records of one key keep their order;
// least-loaded lets the producer choose per buffer; broadcast sends every
// record to every subpartition (one shared buffer). One RecordWriter per
// subpartition for round-robin and key, one unpinned writer for
// least-loaded, and only one unpinned writer for broadcast.

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/status.hpp"

namespace sluice::transport {

// The subpartition of `key` among `subpartitions`: the splitmix64 finaliser
// of the key (a fixed, documented 64-bit mix, the same on every build and
// host), modulo the count.
constexpr std::uint32_t subpartition_for_key(std::uint64_t key, std::uint32_t subpartitions) {
  std::uint64_t z = key + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<std::uint32_t>(z % subpartitions);
}

class PartitionWriter {
 public:
  // The producer must outlive the writer. Uses the channel's flush timeout.
  explicit PartitionWriter(Producer& producer);
  PartitionWriter(const PartitionWriter&) = delete;
  PartitionWriter& operator=(const PartitionWriter&) = delete;

  // Routes by the channel's partitioner: round-robin per record, least-loaded
  // per buffer. A key partition needs a key: kInvalidArgument.
  Status write(std::span<const std::byte> record) noexcept;
  // Routes by key, whatever the partitioner: subpartition_for_key(key, K).
  // Under broadcast the key changes nothing: the record goes to all.
  Status write(std::uint64_t key, std::span<const std::byte> record) noexcept;

  // `count` records of `bytes` bytes each, filled by fill(std::span<std::byte>)
  // as RecordWriter::write_batch fills them, routed as write() routes each:
  // least-loaded and broadcast in place, in runs (one writer); a round-robin
  // stream record by record, each filled in a scratch record and written
  // (a write() that joins a run costs less than a batch of one in place).
  // kInvalidArgument for a key stream, or records larger than a buffer.
  // records_written() counts those that went in.
  template <class Fill>
  Status write_batch(std::size_t bytes, std::uint64_t count, Fill&& fill) noexcept {
    if (partitioner_ == Partitioner::kLeastLoaded || partitioner_ == Partitioner::kBroadcast) {
      return writers_.front()->write_batch(bytes, count, fill);
    }
    if (partitioner_ != Partitioner::kRoundRobin) {
      return Status::kInvalidArgument;
    }
    if (bytes > scratch_.size()) {
      return Status::kInvalidArgument;
    }
    const std::span<std::byte> record(scratch_.data(), bytes);
    for (; count > 0; --count) {
      fill(record);
      if (const Status status = writers_[next_]->write(record); status != Status::kOk) {
        return status;
      }
      next_ = next_ + 1 == subpartitions_ ? 0 : next_ + 1;
    }
    return Status::kOk;
  }
  // `count` records of records.size() / count bytes each, back to back (as
  // RecordReader::read_runs_until hands them over), routed as write() routes
  // each: least-loaded and broadcast copy a run in one go (one writer), a
  // round-robin stream record by record. kInvalidArgument for a key stream.
  Status write_records(std::span<const std::byte> records, std::uint64_t count) noexcept;

  // Hands over every subpartition's current buffer; the first error, if any.
  Status flush() noexcept;
  // Hands over each buffer whose oldest record is older than the flush
  // timeout (see RecordWriter::flush_if_due); the first error, if any.
  Status flush_if_due() noexcept;
  // Flushes every writer and closes the stream.
  Status close() noexcept;

  [[nodiscard]] std::uint32_t subpartitions() const noexcept { return subpartitions_; }
  [[nodiscard]] std::uint64_t records_written() const noexcept;

 private:
  Producer* producer_;
  Partitioner partitioner_;
  std::uint32_t subpartitions_;
  std::uint32_t next_ = 0;  // round-robin: the next record's subpartition
  // One per subpartition (round-robin, key), one unpinned (least-loaded,
  // where the pinned ones follow it, for keys), or one unpinned alone (broadcast).
  std::vector<std::unique_ptr<RecordWriter>> writers_;
  // Round-robin write_batch: a record of up to a buffer, filled, then written.
  std::vector<std::byte> scratch_;
};

}  // namespace sluice::transport
