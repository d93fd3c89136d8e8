#include "sluice/transport/partition_writer.hpp"

namespace sluice::transport {

PartitionWriter::PartitionWriter(Producer& producer)
    : producer_(&producer),
      partitioner_(static_cast<Partitioner>(producer.config().partitioner)),
      subpartitions_(producer.config().subpartitions) {
  if (partitioner_ == Partitioner::kLeastLoaded || partitioner_ == Partitioner::kBroadcast) {
    writers_.push_back(std::make_unique<RecordWriter>(producer));
  }
  if (partitioner_ == Partitioner::kBroadcast) {
    return;  // every buffer goes to every subpartition: nothing to pin
  }
  if (partitioner_ == Partitioner::kRoundRobin) {
    scratch_.resize(producer.config().buffer_bytes);
  }
  // Key writes are pinned even under least-loaded; those writers come after it.
  for (std::uint32_t s = 0; s < subpartitions_; ++s) {
    writers_.push_back(std::make_unique<RecordWriter>(producer, TargetSubpartition{s}));
  }
}

Status PartitionWriter::write(std::span<const std::byte> record) noexcept {
  switch (partitioner_) {
    case Partitioner::kLeastLoaded:
    case Partitioner::kBroadcast: return writers_.front()->write(record);
    case Partitioner::kRoundRobin: {
      const std::uint32_t s = next_;
      const Status status = writers_[s]->write(record);
      if (status == Status::kOk) {
        next_ = s + 1 == subpartitions_ ? 0 : s + 1;
      }
      return status;
    }
    default: return Status::kInvalidArgument;
  }
}

Status PartitionWriter::write(std::uint64_t key, std::span<const std::byte> record) noexcept {
  if (partitioner_ == Partitioner::kBroadcast) {
    return writers_.front()->write(record);
  }
  const std::uint32_t first = partitioner_ == Partitioner::kLeastLoaded ? 1 : 0;
  return writers_[first + subpartition_for_key(key, subpartitions_)]->write(record);
}

Status PartitionWriter::write_records(std::span<const std::byte> records,
                                      std::uint64_t count) noexcept {
  if (partitioner_ == Partitioner::kLeastLoaded || partitioner_ == Partitioner::kBroadcast) {
    return writers_.front()->write_records(records, count);
  }
  if (count == 0) {
    return records.empty() ? Status::kOk : Status::kInvalidArgument;
  }
  const std::size_t bytes = records.size() / count;
  if (bytes * count != records.size()) {
    return Status::kInvalidArgument;
  }
  for (std::uint64_t i = 0; i < count; ++i) {
    if (const Status status = write(records.subspan(i * bytes, bytes)); status != Status::kOk) {
      return status;
    }
  }
  return Status::kOk;
}

Status PartitionWriter::flush() noexcept {
  Status result = Status::kOk;
  for (const auto& writer : writers_) {
    const Status status = writer->flush();
    if (result == Status::kOk) {
      result = status;
    }
  }
  return result;
}

Status PartitionWriter::flush_if_due() noexcept {
  Status result = Status::kOk;
  for (const auto& writer : writers_) {
    const Status status = writer->flush_if_due();
    if (result == Status::kOk) {
      result = status;
    }
  }
  return result;
}

Status PartitionWriter::close() noexcept {
  const Status flushed = flush();
  producer_->close();
  return flushed;
}

std::uint64_t PartitionWriter::records_written() const noexcept {
  std::uint64_t total = 0;
  for (const auto& writer : writers_) {
    total += writer->records_written();
  }
  return total;
}

}  // namespace sluice::transport
