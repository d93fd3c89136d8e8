#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "sluice/transport/buffers.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/deadline.hpp"
#include "sluice/transport/record_frame.hpp"
#include "sluice/transport/status.hpp"

namespace sluice::transport {

struct RecordReaderOptions {
  // Largest record assembled from several buffers; a longer one (only
  // possible from a broken, hostile or mismatched producer) is reported as
  // kCorrupt instead of growing memory without bound. A record within one
  // buffer is a view into it, bounded by the buffer size, and not limited.
  std::size_t max_record_bytes = std::size_t{1} << 30;
};

// Yields the records of a stream in order. A record that lies in one buffer
// is returned as a view into shared memory without copying; one that spans
// buffers is assembled into a private buffer. Either view stays valid until
// the next call.
class RecordReader {
 public:
  explicit RecordReader(Consumer& consumer, RecordReaderOptions options = {});
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;
  ~RecordReader();

  // kOk with `record` set, or kWouldBlock / kTimeout / kClosed / kPeerDied /
  // kCorrupt. A record cut short by a producer's death is dropped, never
  // returned in part.
  Status try_next(std::span<const std::byte>& record) noexcept {
    return next_until(record, Deadline::immediate());
  }
  Status next(std::span<const std::byte>& record) noexcept {
    return next_until(record, Deadline::never());
  }
  Status next_for(std::span<const std::byte>& record, std::chrono::nanoseconds timeout) noexcept {
    return next_until(record, Deadline::after(timeout));
  }
  Status next_until(std::span<const std::byte>& record, const Deadline& deadline) noexcept {
    // Fast path, inline: the next frame is a whole record in the current buffer.
    if (current_.valid() && !assembling_ && fragments_.empty()) [[likely]] {
      const std::span<const std::byte> data = current_.data();
      if (offset_ + frame::kHeaderBytes <= data.size()) {
        const std::uint32_t word = frame::read_header(data.data() + offset_);
        const std::size_t left = data.size() - offset_ - frame::kHeaderBytes;
        if ((word & ~frame::kLengthMask) == 0 && word <= left) {
          record = data.subspan(offset_ + frame::kHeaderBytes, word);
          offset_ += frame::kHeaderBytes + word;
          seen_record_start_ = true;
          ++records_in_buffer_;
          ++records_total_;
          return Status::kOk;
        }
      }
    }
    return next_slow(record, deadline);
  }

  [[nodiscard]] std::uint64_t records_read() const noexcept { return records_total_; }
  // Why the last kCorrupt was returned, when the stream's framing was at fault.
  [[nodiscard]] const char* framing_error() const noexcept { return framing_error_; }

 private:
  Status next_slow(std::span<const std::byte>& record, const Deadline& deadline) noexcept;
  Status corrupt(const char* why) noexcept;
  void release_current() noexcept;
  void hold_fragment() noexcept;
  void release_fragments() noexcept;

  Consumer* consumer_;
  RecordReaderOptions options_;
  ReadableBuffer current_;
  std::size_t offset_ = 0;
  std::uint64_t records_in_buffer_ = 0;
  std::uint64_t records_total_ = 0;
  std::vector<std::byte> assembly_;
  std::vector<ReadableBuffer> fragments_;  // buffers of the record being assembled
  std::size_t fragment_limit_;
  bool assembling_ = false;
  bool seen_record_start_ = false;  // until then, leading continuation fragments are skipped
  const char* framing_error_ = nullptr;
};

}  // namespace sluice::transport
