#include "sluice/transport/record_writer.hpp"

#include <algorithm>

namespace sluice::transport {

RecordWriter::RecordWriter(Producer& producer) noexcept
    : RecordWriter(producer, std::chrono::nanoseconds(producer.config().flush_timeout_ns)) {}

RecordWriter::RecordWriter(Producer& producer, std::chrono::nanoseconds flush_timeout) noexcept
    : producer_(&producer),
      flush_timeout_(flush_timeout),
      discard_pending_(producer.resumed_stream()) {}

RecordWriter::~RecordWriter() {
  (void)flush();
}

Status RecordWriter::start_buffer(const Deadline& deadline) noexcept {
  const Status status = producer_->acquire_until(current_, deadline);
  if (status != Status::kOk) {
    return status;
  }
  used_ = 0;
  room_ = current_.capacity();
  records_in_buffer_ = 0;
  if (discard_pending_) {
    // A stream taken over from a dead producer may end in half a record:
    // tell the reader to drop it before anything of ours.
    frame::write_header(current_.data().data(), frame::kDiscard);
    used_ = frame::kHeaderBytes;
    room_ -= frame::kHeaderBytes;
    discard_pending_ = false;
  }
  if (flush_timeout_.count() > 0) {
    buffer_started_ = Clock::now();
  }
  return Status::kOk;
}

Status RecordWriter::write_for(std::span<const std::byte> record,
                               std::chrono::nanoseconds timeout) noexcept {
  const std::size_t needed = frame::kHeaderBytes + record.size();
  if (needed <= room_) {
    append_whole(record);
    return after_append();
  }
  return write_slow(record, Deadline::after(timeout));
}

Status RecordWriter::write_slow(std::span<const std::byte> record,
                                const Deadline& deadline) noexcept {
  const std::size_t buffer_bytes = producer_->config().buffer_bytes;
  if (frame::kHeaderBytes + record.size() <= buffer_bytes) {
    // Fits in an empty buffer: never split a record that does not have to be.
    if (Status status = flush(); status != Status::kOk) {
      return status;
    }
    if (Status status = start_buffer(deadline); status != Status::kOk) {
      return status;
    }
    if (frame::kHeaderBytes + record.size() <= room_) {
      append_whole(record);
      return after_append();
    }
    // Only after a discard frame took the first bytes: split it after all.
  }

  // Larger than a buffer: fill the current one, then continue in fresh ones.
  if (room_ <= frame::kHeaderBytes) {
    if (Status status = flush(); status != Status::kOk) {
      return status;
    }
    if (Status status = start_buffer(deadline); status != Status::kOk) {
      return status;
    }
  }
  std::span<const std::byte> rest = record;
  std::uint32_t continuation = 0;
  for (;;) {
    const std::size_t chunk = std::min(rest.size(), room_ - frame::kHeaderBytes);
    const bool more = chunk < rest.size();
    std::byte* at = current_.data().data() + used_;
    frame::write_header(
        at, static_cast<std::uint32_t>(chunk) | continuation | (more ? frame::kMoreFollows : 0U));
    std::memcpy(at + frame::kHeaderBytes, rest.data(), chunk);
    used_ += frame::kHeaderBytes + chunk;
    room_ -= frame::kHeaderBytes + chunk;
    rest = rest.subspan(chunk);
    if (!more) {
      ++records_in_buffer_;  // counted in the buffer where it ends
      ++records_total_;
      return after_append();
    }
    if (Status status = flush(); status != Status::kOk) {
      return status;
    }
    // Part of the record is out: finish it whatever the deadline.
    if (Status status = start_buffer(Deadline::never()); status != Status::kOk) {
      return status;
    }
    continuation = frame::kContinuation;
  }
}

Status RecordWriter::make_room(std::size_t needed) noexcept {
  if (needed > producer_->config().buffer_bytes) {
    return Status::kInvalidArgument;
  }
  if (const Status status = flush(); status != Status::kOk) {
    return status;
  }
  if (const Status status = start_buffer(Deadline::never()); status != Status::kOk) {
    return status;
  }
  if (needed > room_) {  // the discard frame of a resumed stream took the first bytes
    if (const Status status = flush(); status != Status::kOk) {
      return status;
    }
    return start_buffer(Deadline::never());
  }
  return Status::kOk;
}

Status RecordWriter::flush() noexcept {
  if (!current_.valid() || used_ == 0) {
    return Status::kOk;
  }
  const Status status = producer_->commit(std::move(current_), used_, records_in_buffer_);
  room_ = 0;
  if (status == Status::kOk) {
    used_ = 0;
    records_in_buffer_ = 0;
  }
  return status;
}

Status RecordWriter::flush_if_due() noexcept {
  if (!current_.valid() || used_ == 0 || flush_timeout_.count() < 0) {
    return Status::kOk;
  }
  if (Clock::now() - buffer_started_ >= flush_timeout_) {
    return flush();
  }
  return Status::kOk;
}

Status RecordWriter::close() noexcept {
  const Status status = flush();
  producer_->close();
  return status;
}

}  // namespace sluice::transport
