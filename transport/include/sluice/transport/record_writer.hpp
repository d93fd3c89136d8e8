#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include "sluice/transport/buffers.hpp"
#include "sluice/transport/deadline.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_frame.hpp"
#include "sluice/transport/status.hpp"
#include "sluice/transport/write_claim.hpp"
#include "sluice/transport/write_prefetch.hpp"

namespace sluice::transport {

// Packs length-prefixed records into the producer's buffers and hands a
// buffer over when the next record does not fit, on flush(), or once its
// oldest record has waited longer than the flush timeout (Flink's buffer
// timeout). The timeout is checked inside write() (about four times per
// timeout at the rate seen, at least every 1024 records) and by
// flush_if_due(), which a producer that pauses between records should call;
// nothing flushes in the background.
//
// Publication::kEachRecordInPlace is the low-latency mode: the writer hands
// the consumer an open buffer before writing it and publishes every record
// in it the moment it is complete (Flink's BufferBuilder/BufferConsumer), so
// a record costs one frame-word store to become visible instead of a buffer
// commit, and records still share buffers. No flush timeout applies.
enum class Publication : std::uint8_t {
  kWholeBuffers,       // a buffer goes over when full, flushed or timed out (default)
  kEachRecordInPlace,  // every record visible at once, in place in an open buffer
};

// The subpartition a RecordWriter writes to in a partitioned channel; by
// default any: the producer's partitioner chooses per buffer.
struct TargetSubpartition {
  std::uint32_t index = kAnySubpartition;
};

class RecordWriter {
 public:
  // Uses the channel's configured flush timeout.
  explicit RecordWriter(Producer& producer) noexcept;
  RecordWriter(Producer& producer, std::chrono::nanoseconds flush_timeout) noexcept;
  // kWholeBuffers: as RecordWriter(producer).
  RecordWriter(Producer& producer, Publication publication) noexcept;
  // Every buffer goes to subpartition `target` (an unknown one makes writes
  // fail with kInvalidArgument); the channel's flush timeout.
  RecordWriter(Producer& producer, TargetSubpartition target) noexcept;
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;
  // Flushes what is buffered (without blocking forever: gives up if the
  // consumer is gone); call flush() or close() to know it arrived.
  ~RecordWriter();

  // Appends one record, blocking while no buffer is free. A record larger
  // than a buffer is split over several. kOk, kPeerDied, kClosed, kCorrupt.
  // Always inlined: left to itself GCC makes it a call (its in-place branch
  // makes it look large), which cost small records a third of their time.
  [[gnu::always_inline]] Status write(std::span<const std::byte> record) noexcept {
    // Another record of the open run's length, before the run's fast end:
    // a copy and a cursor store. The run's end, its record count and the
    // flush policy's next look are brought up to date only when anything
    // else happens (settle_fast_run), and the fast end stops short of both
    // the buffer's end and the record at which the policy is due, so none
    // of them needs a look here. Each member stored per record is reloaded
    // by the next call (a byte store may alias the writer), so each one
    // costs a store-to-load trip: one is left.
    std::byte* const at = cursor_;
    const std::size_t size = record.size();
    if (size == run_bytes_ && reinterpret_cast<std::uintptr_t>(at) + size <=
                                  reinterpret_cast<std::uintptr_t>(run_fast_end_)) [[likely]] {
      prefetch_ahead_on_new_line(at, size, limit_);
      frame::copy_payload(at, record.data(), size);
      cursor_ = at + size;
      return Status::kOk;
    }
    settle_fast_run();
    Status status = Status::kOk;
    if (at == run_end_ && size == run_bytes_ && size <= static_cast<std::size_t>(limit_ - at)) {
      // The run, with the flush policy due at this record, or before the
      // fast end is set.
      frame::copy_payload(at, record.data(), size);
      cursor_ = run_end_ = at + size;
      status = after_append();
    } else if (const std::size_t needed = frame::kHeaderBytes + size; needed <= room()) [[likely]] {
      if (cursor_ == plain_end_ && size == plain_bytes_) {
        start_run(record);  // needs 4 bytes more than a frame: `needed` bytes
        status = after_append();
      } else {
        append_whole(record);
        return after_append();
      }
    } else if (fits_open_buffer_now(size)) {
      // In place, inline: a round trip pays for every instruction here.
      frame::copy_payload(place_cursor_ + frame::kHeaderBytes, record.data(), size);
      ++records_in_buffer_;
      return publish_frame(size);
    } else {
      return write_slow(record, Deadline::never());
    }
    if (status == Status::kOk) {
      set_run_fast_end();
    }
    return status;
  }
  // Writes a record in place: reserves `bytes` for the next record in the
  // current buffer (blocking for a buffer when needed) and returns them in
  // `out` to be filled, without the copy write() makes. The record counts
  // once finish_record() is called, before any other call on this writer.
  // Only for records that fit in one buffer (kInvalidArgument otherwise).
  Status begin_record(std::size_t bytes, std::span<std::byte>& out) noexcept {
    settle_fast_run();
    const std::size_t needed = frame::kHeaderBytes + bytes;
    if (needed > room()) [[unlikely]] {
      if (in_place_) {
        return reserve_in_place(bytes, out, Deadline::never());
      }
      if (const Status status = make_room(needed); status != Status::kOk) {
        return status;
      }
    }
    std::byte* const at = cursor_;
    frame::write_header(at, static_cast<std::uint32_t>(bytes));
    out = std::span<std::byte>(at + frame::kHeaderBytes, bytes);
    if (bytes >= kClaimForWriteFromBytes) {
      claim_for_write(out);
    }
    cursor_ = plain_end_ = at + needed;
    plain_bytes_ = bytes - 1 < frame::kRunMaxRecordBytes ? bytes : kNoRecords;
    return Status::kOk;
  }
  Status finish_record() noexcept { return after_append(); }
  // Whether begin_record(), begin_record_for() and write_batch() take
  // records of `bytes`: they fit one buffer of this channel as this writer
  // publishes (a record published in place needs a few bytes more). Larger
  // ones go through write(), which splits them over buffers.
  [[nodiscard]] bool accepts_begin_record(std::size_t bytes) const noexcept;
  // As begin_record(), but gives up with kTimeout if no buffer is free by
  // the deadline (the records before it were handed over; nothing of this
  // one is placed, so the call may simply be repeated). For a program that
  // fills in place and must not block forever on a pool that nobody empties;
  // write_for() is the same for a copied record.
  Status begin_record_for(std::size_t bytes, std::span<std::byte>& out,
                          std::chrono::nanoseconds timeout) noexcept;

  // Writes `count` records of `bytes` bytes each, filled in place: for each
  // one, fill(std::span<std::byte>) writes the record's bytes (and must not
  // throw). The same as `count` rounds of begin_record / fill /
  // finish_record (blocking for buffers, flush policy, in-place publication
  // record by record), but the write position stays in registers for the
  // records that fit the current buffer, instead of being stored and
  // reloaded around every record (every byte store may alias the writer).
  // kOk once all are written, else the first error; records_written()
  // counts those that went in.
  template <class Fill>
  Status write_batch(std::size_t bytes, std::uint64_t count, Fill&& fill) noexcept {
    static_assert(std::is_nothrow_invocable_v<Fill&, std::span<std::byte>>,
                  "fill must be callable as fill(std::span<std::byte>) and noexcept: a record "
                  "half filled when it throws could not be taken back");
    return place_records(bytes, count, fill,
                         [&fill, bytes](std::byte* at, std::uint64_t records) noexcept {
                           for (std::uint64_t i = 0; i < records; ++i) {
                             fill(std::span<std::byte>(at, bytes));
                             at += bytes;
                           }
                         });
  }

  // Copies `count` records of records.size() / count bytes each, lying back
  // to back in `records` (as RecordReader::read_runs_until hands them over),
  // for a stage that passes records on unchanged. The same as write() of
  // each, but the records of one run are copied in one go. kInvalidArgument
  // when records.size() is not a multiple of count; records too large for
  // this channel's buffers are written one by one (each spanning buffers).
  Status write_records(std::span<const std::byte> records, std::uint64_t count) noexcept;

 private:
  // write_batch's body: fill_one(std::span<std::byte>) fills a record of its
  // own frame, fill_run(std::byte* at, std::uint64_t n) n headerless records
  // of `bytes` back to back at `at`.
  template <class FillOne, class FillRun>
  Status place_records(std::size_t bytes, std::uint64_t count, FillOne& fill,
                       FillRun&& fill_run) noexcept {
    settle_fast_run();
    if (bytes > frame::kLengthMask) {
      return Status::kInvalidArgument;  // larger than any buffer
    }
    const std::size_t frame_bytes = frame::kHeaderBytes + bytes;
    const bool in_runs = !in_place_ && bytes >= 1 && bytes <= frame::kRunMaxRecordBytes;
    while (count > 0) {
      if (in_runs && cursor_ == plain_end_ && bytes == plain_bytes_ &&
          room() >= frame::kHeaderBytes + bytes) {
        // The record before is a plain one of this length: the two become
        // a run, which the next records join (as write() does). A writer
        // given one record per call, as a round-robin fan-out's are, would
        // otherwise never open a run.
        std::byte* const second = run_from_plain(bytes);
        fill(std::span<std::byte>(second, bytes));
        cursor_ = run_end_ = second + bytes;
        --count;
        if (const Status status = after_append(); status != Status::kOk) {
          return status;
        }
        continue;
      }
      // A run is opened for two records or more before the flush policy's
      // next look (a zero flush timeout hands over every record alone).
      if (in_runs && (cursor_ != run_end_ || bytes != run_bytes_) && count >= 2 &&
          next_policy_check_ > records_in_buffer_ + 1) {
        if (room() < frame_bytes &&
            frame::kRunHeaderBytes + bytes <= producer_->config().buffer_bytes) {
          // Not even a plain frame fits: the next buffer starts with a run.
          if (const Status status = make_room(frame::kRunHeaderBytes + bytes);
              status != Status::kOk) {
            return status;
          }
        }
        if (room() >= frame::kRunHeaderBytes + bytes) {
          open_run(bytes);
        }
      }
      if (in_runs && cursor_ == run_end_ && bytes == run_bytes_) {
        // Records of the open run: no header each, one count update.
        const std::uint64_t run = records_until_policy(bytes, count);
        if (run > 0) {
          std::byte* const cursor = cursor_;
          fill_run(cursor, run);
          cursor_ = run_end_ = cursor + run * bytes;
          count -= run;
          records_in_buffer_ += run;
          if (records_in_buffer_ >= next_policy_check_) {
            if (const Status status = apply_flush_policy(); status != Status::kOk) {
              return status;
            }
          }
          continue;
        }
      }
      const std::uint64_t run = in_place_ ? 0 : records_until_policy(frame_bytes, count);
      if (run == 0) {
        // A new buffer, a record published in place, or one that does not fit:
        // the general path, one record.
        std::span<std::byte> record;
        if (const Status status = begin_record(bytes, record); status != Status::kOk) {
          return status;
        }
        fill(record);
        if (const Status status = finish_record(); status != Status::kOk) {
          return status;
        }
        --count;
        continue;
      }
      std::byte* cursor = cursor_;
      for (std::uint64_t i = 0; i < run; ++i) {
        frame::write_header(cursor, static_cast<std::uint32_t>(bytes));
        const std::span<std::byte> record(cursor + frame::kHeaderBytes, bytes);
        if (bytes >= kClaimForWriteFromBytes) {
          claim_for_write(record);
        }
        fill(record);
        cursor += frame_bytes;
      }
      cursor_ = cursor;
      count -= run;
      records_in_buffer_ += run;
      if (records_in_buffer_ >= next_policy_check_) {
        if (const Status status = apply_flush_policy(); status != Status::kOk) {
          return status;
        }
      }
    }
    return Status::kOk;
  }

 public:
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

  [[nodiscard]] std::uint64_t records_written() const noexcept {
    return records_before_buffer_ + records_in_buffer_ + records_past_run_end();
  }

 private:
  // Bytes left in the current buffer; 0 when there is none.
  [[nodiscard]] std::size_t room() const noexcept {
    return static_cast<std::size_t>(limit_ - cursor_);
  }
  // How many frames of `frame_bytes` write_batch may place now without a
  // look at the flush policy in between: as many as fit, at most `wanted`,
  // ending with the record after which after_append() would apply it.
  [[nodiscard]] std::uint64_t records_until_policy(std::size_t frame_bytes,
                                                   std::uint64_t wanted) const noexcept {
    const std::uint64_t fit = room() / frame_bytes;
    const std::uint64_t until_check =
        next_policy_check_ > records_in_buffer_ ? next_policy_check_ - records_in_buffer_ : 1;
    return std::min({fit, wanted, until_check});
  }
  [[nodiscard]] std::size_t used() const noexcept {
    return static_cast<std::size_t>(cursor_ - current_.data().data());
  }
  // The position is read once into a local: every byte stored may alias the
  // writer's own fields, so using cursor_ throughout would reload it after
  // each store.
  void append_whole(std::span<const std::byte> record) noexcept {
    std::byte* const at = cursor_;
    frame::write_header(at, static_cast<std::uint32_t>(record.size()));
    frame::copy_payload(at + frame::kHeaderBytes, record.data(), record.size());
    cursor_ = plain_end_ = at + frame::kHeaderBytes + record.size();
    plain_bytes_ = record.size() - 1 < frame::kRunMaxRecordBytes ? record.size() : kNoRecords;
  }
  // The frame just before the cursor is a plain record of `record`'s length:
  // makes it the first record of a run and appends `record` as the second.
  void start_run(std::span<const std::byte> record) noexcept;
  // The same for a second record of `bytes` filled in place: moves the plain
  // record into a run and returns where the second goes (needs
  // kHeaderBytes + bytes of room); the caller moves the cursor past it.
  std::byte* run_from_plain(std::size_t bytes) noexcept;
  // Starts an empty run of `bytes`-byte records at the cursor; the caller
  // appends at least one before anything else happens to the buffer.
  void open_run(std::size_t bytes) noexcept {
    settle_run();
    frame::write_header(cursor_, frame::kRun | static_cast<std::uint32_t>(bytes));
    run_count_at_ = cursor_ + frame::kHeaderBytes;
    run_bytes_ = bytes;
    cursor_ = run_end_ = cursor_ + frame::kRunHeaderBytes;
  }
  // Writes the count word of the run last opened in this buffer, which ends
  // at run_end_ (the cursor may have moved past it since). Called before a
  // new run replaces it and before the buffer is committed; the run must not
  // be extended after it.
  void settle_run() noexcept {
    if (run_count_at_ != nullptr) {
      const auto count = static_cast<std::uint32_t>(
          static_cast<std::size_t>(run_end_ - (run_count_at_ + frame::kHeaderBytes)) / run_bytes_);
      frame::write_header(run_count_at_, count);
      run_count_at_ = nullptr;
    }
  }
  // A new buffer (or none): nothing before the cursor can be extended. Its
  // address may equal the old buffer's end, so the ends are cleared too.
  void forget_last_frame() noexcept {
    settle_fast_run();
    run_end_ = plain_end_ = run_count_at_ = nullptr;
    run_bytes_ = plain_bytes_ = kNoRecords;
  }
  // write()'s fast path: while run_fast_end_ is set, the cursor is at the
  // end of the open run, and the records write() appended since it was set
  // lie between run_end_ and the cursor, not yet counted.
  [[nodiscard]] std::uint64_t records_past_run_end() const noexcept {
    return run_fast_end_ != nullptr ? static_cast<std::size_t>(cursor_ - run_end_) / run_bytes_ : 0;
  }
  // Counts them and moves run_end_ to the cursor: every path but write()'s
  // fast one starts here, so the rest of the writer sees exact members.
  void settle_fast_run() noexcept {
    if (run_fast_end_ != nullptr) [[unlikely]] {
      records_in_buffer_ += records_past_run_end();
      run_end_ = cursor_;
      run_fast_end_ = nullptr;
    }
  }
  // With the cursor at the end of an open run (after write() appended to
  // it): lets write() append more records of its length, up to the
  // buffer's end and short of the record at which the flush policy is due.
  void set_run_fast_end() noexcept;

  // One counter and one comparison per record: the flush policy is looked at
  // only when records_in_buffer_ reaches next_policy_check_ (every record for
  // a zero timeout, every clock_check_interval_ records for a positive one).
  Status after_append() noexcept {
    if (++records_in_buffer_ >= next_policy_check_) [[unlikely]] {
      return apply_flush_policy();
    }
    return Status::kOk;
  }
  Status apply_flush_policy() noexcept;
  // In-place publication (Publication::kEachRecordInPlace). The open
  // buffer's unwritten part is [place_cursor_, place_limit_); the writer
  // keeps room for one word after every frame (the zero that marks the end,
  // or the seal).
  Status reserve_in_place(std::size_t bytes, std::span<std::byte>& out,
                          const Deadline& deadline) noexcept;
  Status publish_reserved() noexcept;
  // Whether a record of `bytes` goes into the current open buffer as it is.
  [[nodiscard]] bool fits_open_buffer_now(std::size_t bytes) const noexcept {
    return place_cursor_ != nullptr && bytes <= frame::kLengthMask &&
           static_cast<std::size_t>(place_limit_ - place_cursor_) >=
               frame::in_place_frame_bytes(bytes) + frame::kHeaderBytes;
  }
  // Publishes the frame whose `bytes` are written after place_cursor_: the
  // zero word where the next frame starts, then the frame word with release
  // (a reader that sees the word sees the bytes and the end marker, never a
  // stale word from the buffer's earlier use), then counts and wakes.
  Status publish_frame(std::size_t bytes) noexcept {
    std::byte* next = place_cursor_ + frame::in_place_frame_bytes(bytes);
    frame::store_in_place_word(next, 0, __ATOMIC_RELAXED);
    frame::store_in_place_word(place_cursor_, frame::kInPlace | static_cast<std::uint32_t>(bytes),
                               __ATOMIC_RELEASE);
    place_cursor_ = next;
    return producer_->published_in_place(frame::in_place_frame_bytes(bytes));
  }

  Status open_buffer(const Deadline& deadline) noexcept;
  void seal_in_place() noexcept;
  [[nodiscard]] bool fits_in_place(std::size_t bytes) const noexcept;
  void schedule_policy_check() noexcept;
  Status write_slow(std::span<const std::byte> record, const Deadline& deadline) noexcept;
  Status make_room(std::size_t needed, const Deadline& deadline = Deadline::never()) noexcept;
  Status start_buffer(const Deadline& deadline) noexcept;
  // A buffer for `subpartition` (kAnySubpartition: the producer chooses).
  Status start_buffer_for(const Deadline& deadline, std::uint32_t subpartition,
                          CapUse cap_use = CapUse::kWithinCap) noexcept;
  void drop_current_view() noexcept {
    cursor_ = limit_ = nullptr;
    forget_last_frame();
  }

  // Records between clock reads, at most. A read costs about 25 ns here; at
  // every 256 records it was a tenth of write_batch's time for 8-byte
  // records (batch row 703-737 -> 813-833 M records/s at 1024). The rate
  // seen sets the interval below this for any stream slower than about
  // four records per microsecond at the default timeout; this bounds how
  // late a stream that suddenly slows is handed over without flush_if_due.
  static constexpr std::uint64_t kMaxClockCheckInterval = 1024;

  Producer* producer_;
  std::uint32_t target_ = kAnySubpartition;
  WritableBuffer current_;
  // The unwritten part of current_: [cursor_, limit_); both null without a buffer.
  std::byte* cursor_ = nullptr;
  std::byte* limit_ = nullptr;
  // The frame last written, when it can take more records of its length:
  // a run while the cursor is at run_end_ (its count word at run_count_at_,
  // written by settle_run; null once written or before any run),
  // or a plain record (of 1..kRunMaxRecordBytes bytes) while the cursor is at
  // plain_end_. Any other frame moves the cursor past both; a new buffer
  // clears them (forget_last_frame).
  static constexpr std::size_t kNoRecords = ~std::size_t{0};  // no record has this length
  std::byte* run_end_ = nullptr;
  // Where write()'s fast path stops (set_run_fast_end); null when it is off.
  std::byte* run_fast_end_ = nullptr;
  std::byte* run_count_at_ = nullptr;
  std::size_t run_bytes_ = kNoRecords;
  std::byte* plain_end_ = nullptr;
  std::size_t plain_bytes_ = kNoRecords;
  std::uint64_t records_in_buffer_ = 0;
  std::uint64_t records_before_buffer_ = 0;
  std::uint64_t next_policy_check_ = 1;
  std::uint64_t clock_check_interval_ = 1;
  std::uint64_t records_at_last_check_ = 0;
  Clock::time_point buffer_started_{};
  Clock::time_point last_clock_check_{};
  std::byte* place_cursor_ = nullptr;  // null while no open buffer
  std::byte* place_limit_ = nullptr;
  std::size_t reserved_bytes_ = 0;
  bool reserved_ = false;  // begin_record reserved a frame that finish_record publishes
  bool in_place_ = false;
  std::chrono::nanoseconds flush_timeout_;
};

}  // namespace sluice::transport
