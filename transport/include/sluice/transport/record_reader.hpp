#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "sluice/transport/buffers.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/deadline.hpp"
#include "sluice/transport/record_frame.hpp"
#include "sluice/transport/status.hpp"

namespace sluice::transport {

// A function called with its context; plain pointers, so that the hot path
// neither allocates nor throws.
struct ReleaseHook {
  void (*call)(void* context) noexcept = nullptr;
  void* context = nullptr;
};

struct RecordReaderOptions {
  // Largest record assembled from several buffers; a longer one (only
  // possible from a broken, hostile or mismatched producer) is reported as
  // kCorrupt instead of growing memory without bound. A record within one
  // buffer is a view into it, bounded by the buffer size, and not limited.
  std::size_t max_record_bytes = std::size_t{1} << 30;
  // Called just before the reader gives buffers back to the producer (when
  // it moves past them, and on destruction). A stage that writes what it
  // reads into another channel flushes its writer here, so that no input
  // buffer is released before its records are committed downstream: if the
  // stage dies, the input's next consumer receives every unreleased buffer
  // again and nothing is lost. Must stay callable for the reader's lifetime.
  ReleaseHook before_release;
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
  // returned in part. Each form tries the inline fast path first and makes
  // its deadline only when it has to wait: next_for reads the clock then,
  // not per record, and no deadline is stored to memory per record.
  [[gnu::always_inline]] Status try_next(std::span<const std::byte>& record) noexcept {
    if (next_in_buffer(record)) [[likely]] {
      return Status::kOk;
    }
    return take_slow(next_in_place_or_slow(Deadline::immediate()), record);
  }
  [[gnu::always_inline]] Status next(std::span<const std::byte>& record) noexcept {
    if (next_in_buffer(record)) [[likely]] {
      return Status::kOk;
    }
    return take_slow(next_in_place_or_slow(Deadline::never()), record);
  }
  [[gnu::always_inline]] Status next_for(std::span<const std::byte>& record,
                                         std::chrono::nanoseconds timeout) noexcept {
    if (next_in_buffer(record)) [[likely]] {
      return Status::kOk;
    }
    return take_slow(next_in_place_or_slow(Deadline::after(timeout)), record);
  }
  [[gnu::always_inline]] Status next_until(std::span<const std::byte>& record,
                                           const Deadline& deadline) noexcept {
    if (next_in_buffer(record)) [[likely]] {
      return Status::kOk;
    }
    return take_slow(next_in_place_or_slow(deadline), record);
  }

  // Batch form: calls on_record(std::span<const std::byte>) for the next
  // record (waiting for it per the deadline, as next_until) and then for
  // every further record already complete in the same buffer, in order;
  // on_record returns false to stop after the record it was given. Returns
  // what next_until returns for the first record (kOk if any was delivered).
  // Views are valid during the call. A record given to on_record counts as
  // read even if on_record throws. Faster than next() for small records: the
  // position lives in registers for the whole buffer instead of in the reader.
  template <class OnRecord>
  Status read_batch_until(OnRecord&& on_record, const Deadline& deadline) {
    std::span<const std::byte> first;
    const Status status = next_until(first, deadline);
    if (status != Status::kOk) {
      return status;
    }
    if (!on_record(first)) {
      return Status::kOk;
    }
    walk_frames([&](const std::byte* at, std::size_t record_bytes, std::uint64_t count,
                    std::uint64_t& taken) __attribute__((always_inline)) {
      // A pointer and its end are all the loop keeps, not a position, an
      // index and a count: 26 instructions per 8-byte record of the
      // benchmark's read-and-check loop instead of 30 (cachegrind), and
      // the registers go to the caller's check. How many were taken is
      // worked out from the pointer where the loop stops, also when
      // on_record throws: a record given to it counts as read.
      const std::byte* const end = at + count * record_bytes;
      const std::byte* record = at;
      try {
        for (; record != end; record += record_bytes) {
          if (!on_record(std::span<const std::byte>(record, record_bytes))) {
            taken = static_cast<std::size_t>(record - at) / record_bytes + 1;
            return false;
          }
        }
      } catch (...) {
        taken = static_cast<std::size_t>(record - at) / record_bytes + 1;
        throw;
      }
      taken = count;
      return true;
    });
    return Status::kOk;
  }
  // Run form, for a stage that passes records on unchanged (a relay): as
  // read_batch_until, but hands over records that lie back to back in the
  // buffer together, on_run(std::span<const std::byte> records,
  // std::uint64_t count): `count` >= 1 records of records.size() / count
  // bytes each. A run of equal-size records comes in one call (a writer's
  // write_records copies it in one go); any other record comes alone, as
  // does the first. At most `most` records per call (at least one). Every
  // record handed over counts as read, also when on_run throws.
  template <class OnRun>
  Status read_runs_until(OnRun&& on_run, const Deadline& deadline,
                         std::uint64_t most = UINT64_MAX) {
    std::span<const std::byte> first;
    const Status status = next_until(first, deadline);
    if (status != Status::kOk) {
      return status;
    }
    if (!on_run(first, std::uint64_t{1}) || most <= 1) {
      return Status::kOk;
    }
    std::uint64_t left = most - 1;
    walk_frames([&](const std::byte* at, std::size_t record_bytes, std::uint64_t count,
                    std::uint64_t& taken) __attribute__((always_inline)) {
      taken = std::min(count, left);
      left -= taken;
      return on_run(std::span<const std::byte>(at, taken * record_bytes), taken) && left != 0;
    });
    return Status::kOk;
  }
  template <class OnRecord>
  Status read_batch(OnRecord&& on_record) {
    return read_batch_until(std::forward<OnRecord>(on_record), Deadline::never());
  }
  template <class OnRecord>
  Status try_read_batch(OnRecord&& on_record) {
    return read_batch_until(std::forward<OnRecord>(on_record), Deadline::immediate());
  }

  [[nodiscard]] std::uint64_t records_read() const noexcept {
    return records_before_buffer_ + records_in_buffer_ - run_left_;
  }
  // Why the last kCorrupt was returned, when the stream's framing was at fault.
  [[nodiscard]] const char* framing_error() const noexcept { return framing_error_; }

 private:
  // The fast path, inline: the next record of a run, checked when the run's
  // header was read; or the next frame is a whole record in the current
  // buffer. fast_bytes_left_ is 0 whenever anything needs the slow path (no
  // buffer, a record being assembled, fragments still held, an error).
  [[gnu::always_inline]] bool next_in_buffer(std::span<const std::byte>& record) noexcept {
    if (run_left_ != 0) [[likely]] {
      // Two updates per record: the run's records were counted and its
      // bytes set aside from fast_bytes_left_ at its header.
      record = std::span<const std::byte>(cursor_, run_bytes_);
      cursor_ += run_bytes_;
      --run_left_;
      return true;
    }
    if (fast_bytes_left_ >= frame::kHeaderBytes) [[likely]] {
      const std::uint32_t word = frame::read_header(cursor_);
      if ((word & ~frame::kLengthMask) == 0 && word <= fast_bytes_left_ - frame::kHeaderBytes)
          [[likely]] {
        record = std::span<const std::byte>(cursor_ + frame::kHeaderBytes, word);
        cursor_ += frame::kHeaderBytes + word;
        fast_bytes_left_ -= frame::kHeaderBytes + word;
        ++records_in_buffer_;
        return true;
      }
    }
    return false;
  }
  // The rest of the current buffer's whole frames after the fast path's
  // position, checked as next() checks them: take(at, record_bytes, count,
  // taken) gets each run's unread records (a plain frame as a run of one),
  // sets how many of them it took (from the front; those count as read) and
  // returns whether to go on. Stops at anything next() must look at. The
  // position lives in locals and is written back once, or in the handler if
  // take throws: a destructor holding references to it would take its
  // address and keep it in memory, a store and a reload per record.
  template <class Take>
  [[gnu::always_inline]] void walk_frames(Take&& take) {
    std::uint64_t run_left = run_left_;
    std::size_t run_bytes = run_bytes_;
    const std::byte* at = cursor_;
    const std::byte* const end = cursor_ + run_left * run_bytes + fast_bytes_left_;
    std::uint64_t counted = 0;  // plain records delivered and runs' records begun
    std::uint64_t taken = 0;    // set by take, before any call that may throw
    try {
      for (;;) {
        if (run_left != 0) {
          // The rest of a run: its length and count were checked at its header.
          const bool go_on = take(at, run_bytes, run_left, taken);
          at += taken * run_bytes;
          run_left -= taken;
          if (!go_on) {
            end_batch(at, end, counted, run_left, run_bytes);
            return;
          }
          continue;
        }
        if (static_cast<std::size_t>(end - at) < frame::kHeaderBytes) {
          break;
        }
        const std::uint32_t word = frame::read_header(at);
        const std::size_t left = static_cast<std::size_t>(end - at);
        if ((word & ~frame::kLengthMask) == frame::kRun && left >= frame::kRunHeaderBytes) {
          const std::size_t length = word & frame::kLengthMask;
          const std::uint32_t count = frame::read_header(at + frame::kHeaderBytes);
          if (length == 0 || count == 0 || count > (left - frame::kRunHeaderBytes) / length) {
            break;  // next() reports it
          }
          at += frame::kRunHeaderBytes;
          run_bytes = length;
          run_left = count;
          counted += count;
          continue;
        }
        if ((word & ~frame::kLengthMask) != 0 || word > left - frame::kHeaderBytes) {
          break;  // not a plain whole record: next() decides what it is
        }
        const std::byte* const record = at + frame::kHeaderBytes;
        at += frame::kHeaderBytes + word;
        ++counted;
        if (!take(record, std::size_t{word}, std::uint64_t{1}, taken)) {
          break;
        }
      }
    } catch (...) {
      // What take had counted as taken when it threw is read: of a run the
      // records up to `taken` (run_left is not yet lowered), a plain record
      // (`at` is already past it) itself.
      if (run_left != 0) {
        at += taken * run_bytes;
        run_left -= taken;
      }
      end_batch(at, end, counted, run_left, run_bytes);
      throw;
    }
    end_batch(at, end, counted, 0, run_bytes);
  }
  void end_batch(const std::byte* at, const std::byte* end, std::uint64_t counted,
                 std::uint64_t run_left, std::size_t run_bytes) noexcept {
    cursor_ = at;
    fast_bytes_left_ = static_cast<std::size_t>(end - at) - run_left * run_bytes;
    records_in_buffer_ += counted;
    run_left_ = run_left;
    run_bytes_ = run_bytes;
  }
  // What the out-of-line part of next() gives back: the record's view and
  // the status in two words, returned in registers. Were the caller's span
  // passed to it by reference instead, the span would have to live in
  // memory, and every record of the fast path would store it there and
  // load it back for the caller (8-byte records went through next() at
  // 0.6-0.7x the rate of read_batch, a fifth of the consumer's time on
  // that reload).
  struct SlowNext {
    const std::byte* data;
    std::uint64_t size_and_status;  // size << 8 | status; a record is far below 2^56 bytes

    static SlowNext of(Status status, std::span<const std::byte> record = {}) noexcept {
      return {record.data(),
              static_cast<std::uint64_t>(record.size()) << 8U | static_cast<std::uint8_t>(status)};
    }
    [[nodiscard]] Status status() const noexcept {
      return static_cast<Status>(size_and_status & 0xFFU);
    }
  };
  [[gnu::always_inline]] static Status take_slow(SlowNext next,
                                                 std::span<const std::byte>& record) noexcept {
    const Status status = next.status();
    if (status == Status::kOk) {
      record = std::span<const std::byte>(next.data, next.size_and_status >> 8U);
    }
    return status;
  }
  // The rest of next_until, out of line so that the two fast paths above
  // stay small enough to be inlined into a caller's loop: the next frame of
  // an open buffer (published in place), else the slow path.
  [[gnu::noinline]] SlowNext next_in_place_or_slow(const Deadline& deadline) noexcept {
    // The same for an open buffer: the next frame, published in place.
    if (in_place_bytes_left_ >= frame::kHeaderBytes) {
      const std::uint32_t word = frame::load_in_place_word(cursor_);
      const std::uint32_t length = word & frame::kLengthMask;
      if ((word & ~frame::kLengthMask) == frame::kInPlace &&
          length <= in_place_bytes_left_ - frame::kHeaderBytes) {
        const std::byte* const at = cursor_;
        const std::size_t advance =
            std::min(frame::in_place_frame_bytes(length), in_place_bytes_left_);
        cursor_ += advance;
        in_place_bytes_left_ -= advance;
        ++records_in_buffer_;
        return SlowNext::of(Status::kOk,
                            std::span<const std::byte>(at + frame::kHeaderBytes, length));
      }
      // Not written yet: a poll answers at once, but every 1024th goes the
      // slow way, which also learns whether the producer is still there.
      if (word == 0 && deadline.is_immediate() && (++in_place_polls_ & 1023U) != 0) {
        // The line after the word, asked for while polling: a record longer
        // than the rest of this line then costs one transfer, not two.
        if (in_place_bytes_left_ > kCacheLine) {
          __builtin_prefetch(cursor_ + kCacheLine);
        }
        return SlowNext::of(Status::kWouldBlock);
      }
    }
    std::span<const std::byte> record;
    const Status status = next_slow(record, deadline);
    return SlowNext::of(status, record);
  }
  Status next_slow(std::span<const std::byte>& record, const Deadline& deadline) noexcept;
  Status next_frame(std::span<const std::byte>& record, const Deadline& deadline) noexcept;
  Status next_in_place(std::span<const std::byte>& record, const Deadline& deadline,
                       bool& end_of_buffer) noexcept;
  Status corrupt(const char* why) noexcept;
  void count_buffer_records() noexcept;
  void release_current() noexcept;
  void hold_fragment() noexcept;
  void release_fragments() noexcept;
  void run_release_hook() const noexcept {
    if (options_.before_release.call != nullptr) {
      options_.before_release.call(options_.before_release.context);
    }
  }
  [[nodiscard]] std::size_t offset() const noexcept {
    return static_cast<std::size_t>(cursor_ - current_.data().data());
  }

  Consumer* consumer_;
  RecordReaderOptions options_;
  ReadableBuffer current_;
  const std::byte* cursor_ = nullptr;    // next frame in current_
  std::size_t fast_bytes_left_ = 0;      // bytes after cursor_ (or its run) the fast path may read
  std::size_t in_place_bytes_left_ = 0;  // the same in an open buffer (frames polled)
  // Records of the current run after cursor_, each run_bytes_ long, checked
  // at the run's header. They are already in records_in_buffer_, and
  // fast_bytes_left_ counts the bytes after the run's end.
  std::uint64_t run_left_ = 0;
  std::size_t run_bytes_ = 0;
  std::uint32_t in_place_polls_ = 0;
  std::uint64_t records_in_buffer_ = 0;
  std::uint64_t records_before_buffer_ = 0;
  std::vector<std::byte> assembly_;
  std::vector<ReadableBuffer> fragments_;  // buffers of the record being assembled
  std::size_t fragment_limit_;
  bool assembling_ = false;
  bool seen_record_start_ = false;  // until then, leading continuation fragments are skipped
  const char* framing_error_ = nullptr;
};

}  // namespace sluice::transport
