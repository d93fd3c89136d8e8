#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "sluice/transport/buffers.hpp"
#include "sluice/transport/deadline.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_frame.hpp"
#include "sluice/transport/status.hpp"

namespace sluice::transport {

// Packs length-prefixed records into the producer's buffers and hands a
// buffer over when the next record does not fit, on flush(), or once its
// oldest record has waited longer than the flush timeout (Flink's buffer
// timeout). The timeout is checked inside write() every few records and by
// flush_if_due(), which a producer that pauses between records should call;
// nothing flushes in the background.
class RecordWriter {
 public:
  // Uses the channel's configured flush timeout.
  explicit RecordWriter(Producer& producer) noexcept;
  RecordWriter(Producer& producer, std::chrono::nanoseconds flush_timeout) noexcept;
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;
  // Flushes what is buffered (without blocking forever: gives up if the
  // consumer is gone); call flush() or close() to know it arrived.
  ~RecordWriter();

  // Appends one record, blocking while no buffer is free. A record larger
  // than a buffer is split over several. kOk, kPeerDied, kClosed, kCorrupt.
  Status write(std::span<const std::byte> record) noexcept {
    const std::size_t needed = frame::kHeaderBytes + record.size();
    if (needed <= room_) [[likely]] {
      append_whole(record);
      return after_append();
    }
    return write_slow(record, Deadline::never());
  }
  // Writes a record in place: reserves `bytes` for the next record in the
  // current buffer (blocking for a buffer when needed) and returns them in
  // `out` to be filled, without the copy write() makes. The record counts
  // once finish_record() is called, before any other call on this writer.
  // Only for records that fit in one buffer (kInvalidArgument otherwise).
  Status begin_record(std::size_t bytes, std::span<std::byte>& out) noexcept {
    const std::size_t needed = frame::kHeaderBytes + bytes;
    if (needed > room_) [[unlikely]] {
      if (const Status status = make_room(needed); status != Status::kOk) {
        return status;
      }
    }
    std::byte* at = current_.data().data() + used_;
    frame::write_header(at, static_cast<std::uint32_t>(bytes));
    out = std::span<std::byte>(at + frame::kHeaderBytes, bytes);
    used_ += needed;
    room_ -= needed;
    return Status::kOk;
  }
  Status finish_record() noexcept {
    ++records_in_buffer_;
    ++records_total_;
    return after_append();
  }

  // As write(), but gives up with kTimeout if no buffer is free by the
  // deadline before the record's first byte is placed. Once part of a
  // spanning record is handed over, the rest is waited for without deadline
  // (until peer death), so the consumer never sees half a record.
  Status write_for(std::span<const std::byte> record, std::chrono::nanoseconds timeout) noexcept;

  // Hands over the current buffer if it holds anything.
  Status flush() noexcept;
  // Hands over the current buffer if its oldest record is older than the timeout.
  Status flush_if_due() noexcept;
  // Flushes and closes the stream.
  Status close() noexcept;

  [[nodiscard]] std::uint64_t records_written() const noexcept { return records_total_; }

 private:
  void append_whole(std::span<const std::byte> record) noexcept {
    std::byte* at = current_.data().data() + used_;
    frame::write_header(at, static_cast<std::uint32_t>(record.size()));
    frame::copy_payload(at + frame::kHeaderBytes, record.data(), record.size());
    const std::size_t needed = frame::kHeaderBytes + record.size();
    used_ += needed;
    room_ -= needed;
    ++records_in_buffer_;
    ++records_total_;
  }
  Status after_append() noexcept {
    if (flush_timeout_.count() == 0) {
      return flush();
    }
    if ((++writes_since_clock_check_ & kClockCheckMask) == 0) [[unlikely]] {
      return flush_if_due();
    }
    return Status::kOk;
  }
  Status write_slow(std::span<const std::byte> record, const Deadline& deadline) noexcept;
  Status make_room(std::size_t needed) noexcept;
  Status start_buffer(const Deadline& deadline) noexcept;

  static constexpr std::uint32_t kClockCheckMask = 63;  // read the clock every 64 writes

  Producer* producer_;
  WritableBuffer current_;
  std::size_t used_ = 0;
  std::size_t room_ = 0;  // bytes left in current_ (0 when there is none)
  std::uint64_t records_in_buffer_ = 0;
  std::uint64_t records_total_ = 0;
  Clock::time_point buffer_started_{};
  std::chrono::nanoseconds flush_timeout_;
  std::uint32_t writes_since_clock_check_ = 0;
  bool discard_pending_ = false;  // the first buffer starts with a discard frame
};

}  // namespace sluice::transport
