#include "sluice/transport/record_reader.hpp"

#include <algorithm>
#include <new>

#include "sluice/transport/record_frame.hpp"

namespace sluice::transport {

RecordReader::RecordReader(Consumer& consumer, RecordReaderOptions options)
    : consumer_(&consumer),
      options_(options),
      // A quarter of the pool at most: holding more keeps the producer from
      // writing ahead and halves the throughput of records near the pool size.
      fragment_limit_(consumer.config().buffer_count / 4 + 2) {
  fragments_.reserve(fragment_limit_);
}

RecordReader::~RecordReader() {
  release_fragments();
  release_current();
}

// Keeps the buffer of a fragment until its record is complete and returned,
// so that if this consumer dies, a successor receives the record's start
// again (at-least-once). The producer needs buffers to finish the record:
// at most a quarter of the pool is kept; past that the oldest goes back, and a crash
// in that record loses its start (the successor then skips the tail).
void RecordReader::count_buffer_records() noexcept {
  consumer_->count_records(records_in_buffer_);
  records_before_buffer_ += records_in_buffer_;
  records_in_buffer_ = 0;
}

void RecordReader::hold_fragment() noexcept {
  count_buffer_records();
  if (fragments_.size() + 2 >= fragment_limit_) {
    if (!fragments_.empty()) {
      run_release_hook();
      fragments_.erase(fragments_.begin());
    }
  }
  if (fragments_.size() + 2 < fragment_limit_) {
    fragments_.push_back(std::move(current_));  // capacity reserved: no allocation
  } else {
    run_release_hook();
    current_.reset();
  }
}

void RecordReader::release_fragments() noexcept {
  if (!fragments_.empty()) {
    run_release_hook();
    fragments_.clear();
  }
}

void RecordReader::release_current() noexcept {
  fast_bytes_left_ = 0;
  in_place_bytes_left_ = 0;
  records_in_buffer_ -= run_left_;  // counted at the run's header, never read
  run_left_ = 0;
  if (current_.valid()) {
    count_buffer_records();
    run_release_hook();
    current_.reset();
  }
}

Status RecordReader::corrupt(const char* why) noexcept {
  framing_error_ = why;
  release_current();  // also keeps the inline fast path from reading past the bad frame
  return Status::kCorrupt;
}

// One frame of an open buffer, waiting (per the deadline) for the producer
// to publish it. Sets end_of_buffer when the buffer is sealed, full, or its
// producer is gone without sealing it (closed or dead: nothing more will be
// written there; the next receive reports the stream's state).
Status RecordReader::next_in_place(std::span<const std::byte>& record, const Deadline& deadline,
                                   bool& end_of_buffer) noexcept {
  for (;;) {
    const std::size_t left = current_.size() - offset();
    if (left < frame::kHeaderBytes) {
      end_of_buffer = true;
      return Status::kOk;
    }
    std::uint32_t word = 0;
    // The next frame's bytes past this line: asked for while polling, so a
    // record longer than the rest of the line costs one transfer, not two.
    if (left > kCacheLine) {
      __builtin_prefetch(cursor_ + kCacheLine);
    }
    const Status waited = consumer_->wait_in_place(cursor_, deadline, word);
    if (waited == Status::kClosed || waited == Status::kPeerDied) {
      end_of_buffer = true;
      return Status::kOk;
    }
    if (waited != Status::kOk) {
      return waited;  // kWouldBlock, kTimeout, kCorrupt
    }
    if (word == frame::kSealed) {
      end_of_buffer = true;
      return Status::kOk;
    }
    const std::size_t length = word & frame::kLengthMask;
    const std::uint32_t flags = word & ~frame::kLengthMask;
    if (length > left - frame::kHeaderBytes) {
      return corrupt("an in-place record runs past the end of its buffer");
    }
    const std::size_t advance = std::min(frame::in_place_frame_bytes(length), left);
    if (flags == (frame::kInPlace | frame::kDiscard) && length == 0) {
      assembling_ = false;  // a producer took over from a dead one
      assembly_.clear();
      cursor_ += advance;
      continue;
    }
    if (flags != frame::kInPlace) {
      return corrupt("an in-place frame is neither a whole record nor a discard or seal");
    }
    if (assembling_) {
      return corrupt("a spanning record is not continued in the next buffer");
    }
    record = std::span<const std::byte>(cursor_ + frame::kHeaderBytes, length);
    cursor_ += advance;
    seen_record_start_ = true;
    ++records_in_buffer_;
    return Status::kOk;
  }
}

Status RecordReader::next_slow(std::span<const std::byte>& record,
                               const Deadline& deadline) noexcept {
  const Status status = next_frame(record, deadline);
  // Re-arm the inline fast path only where it is exact: a current buffer, no
  // record in assembly and no fragments held for the one just returned.
  fast_bytes_left_ = 0;
  in_place_bytes_left_ = 0;
  const bool plain = current_.valid() && !assembling_ && fragments_.empty();
  if (status == Status::kOk && plain) {
    (current_.open() ? in_place_bytes_left_ : fast_bytes_left_) =
        current_.size() - offset() - run_left_ * run_bytes_;
  } else if (status == Status::kWouldBlock && plain && current_.open()) {
    in_place_bytes_left_ = current_.size() - offset();  // polls stay inline
  }
  return status;
}

Status RecordReader::next_frame(std::span<const std::byte>& record,
                                const Deadline& deadline) noexcept {
  if (framing_error_ != nullptr) {
    return Status::kCorrupt;
  }
  if (!assembling_ && !fragments_.empty()) {
    release_fragments();  // the record they carried was returned by the last call
  }
  for (;;) {
    if (current_.valid() && current_.open()) {
      bool end_of_buffer = false;
      const Status status = next_in_place(record, deadline, end_of_buffer);
      if (!end_of_buffer) {
        return status;
      }
      consumer_->count_in_place_bytes(offset());
      release_current();
    }
    if (current_.valid() && offset() < current_.size()) {
      const std::span<const std::byte> data = current_.data();
      const std::size_t left = data.size() - offset();
      if (left < frame::kHeaderBytes) {
        return corrupt("a frame header is cut off by the end of its buffer");
      }
      const std::uint32_t word = frame::read_header(cursor_);
      const std::size_t length = word & frame::kLengthMask;
      if ((word & ~frame::kLengthMask) == frame::kRun) {
        if (assembling_) {
          return corrupt("a spanning record is not continued in the next buffer");
        }
        if (left < frame::kRunHeaderBytes) {
          return corrupt("a run's header is cut off by the end of its buffer");
        }
        const std::uint32_t count = frame::read_header(cursor_ + frame::kHeaderBytes);
        // Division, not multiplication: count * length could overflow.
        if (length == 0 || count == 0 || count > (left - frame::kRunHeaderBytes) / length) {
          return corrupt(
              "a run of records is empty or runs past the bytes committed to its buffer");
        }
        seen_record_start_ = true;
        record = std::span<const std::byte>(cursor_ + frame::kRunHeaderBytes, length);
        cursor_ += frame::kRunHeaderBytes + length;
        run_left_ = count - 1;
        run_bytes_ = length;
        records_in_buffer_ += count;
        return Status::kOk;
      }
      const bool more = (word & frame::kMoreFollows) != 0;
      const bool continuation = (word & frame::kContinuation) != 0;
      if (length > left - frame::kHeaderBytes) {
        return corrupt("a record length runs past the bytes committed to its buffer");
      }
      if ((word & frame::kDiscard) != 0) {
        // A producer took over from a dead one: drop its predecessor's half record.
        assembling_ = false;
        assembly_.clear();
        cursor_ += frame::kHeaderBytes + length;
        continue;
      }
      if (continuation && !assembling_ && !seen_record_start_ && records_read() == 0) {
        // The tail of a record whose start went to a predecessor (after a
        // takeover): not ours to return.
        cursor_ += frame::kHeaderBytes + length;
        continue;
      }
      seen_record_start_ = true;
      if (continuation != assembling_) {
        return corrupt(assembling_ ? "a spanning record is not continued in the next buffer"
                                   : "a continuation fragment has no record to continue");
      }
      if (continuation && offset() != 0) {
        return corrupt("a continuation fragment is not at the start of its buffer");
      }
      const std::span<const std::byte> body = data.subspan(offset() + frame::kHeaderBytes, length);
      cursor_ += frame::kHeaderBytes + length;
      if (more && offset() != data.size()) {
        return corrupt("a record continues into the next buffer but is not last in its buffer");
      }
      if (!more && !continuation) {
        ++records_in_buffer_;
        record = body;
        return Status::kOk;
      }
      if (!continuation) {
        assembly_.clear();
      }
      if (assembly_.size() + length > options_.max_record_bytes) {
        return corrupt("a spanning record is larger than the reader's maximum record size");
      }
      try {
        assembly_.insert(assembly_.end(), body.begin(), body.end());
      } catch (const std::bad_alloc&) {
        return corrupt("out of memory while assembling a spanning record");
      }
      assembling_ = more;
      if (!more) {
        ++records_in_buffer_;
        record = std::span<const std::byte>(assembly_);
        return Status::kOk;
      }
      continue;
    }
    if (assembling_ && current_.valid()) {
      hold_fragment();
    } else {
      release_current();
    }
    const Status status = consumer_->receive_until(current_, deadline);
    if (status != Status::kOk) {
      if (status == Status::kClosed || status == Status::kPeerDied) {
        // A record cut short by the producer's end is dropped whole.
        assembling_ = false;
        assembly_.clear();
      }
      return status;
    }
    cursor_ = current_.data().data();
  }
}

}  // namespace sluice::transport
