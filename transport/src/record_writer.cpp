#include "sluice/transport/record_writer.hpp"

#include <algorithm>
#include <cstring>

namespace sluice::transport {

RecordWriter::RecordWriter(Producer& producer) noexcept
    : RecordWriter(producer, std::chrono::nanoseconds(producer.config().flush_timeout_ns)) {}

RecordWriter::RecordWriter(Producer& producer, std::chrono::nanoseconds flush_timeout) noexcept
    : producer_(&producer), flush_timeout_(flush_timeout) {
  schedule_policy_check();
}

RecordWriter::RecordWriter(Producer& producer, Publication publication) noexcept
    : RecordWriter(producer) {
  in_place_ = publication == Publication::kEachRecordInPlace;
  schedule_policy_check();
}

RecordWriter::RecordWriter(Producer& producer, TargetSubpartition target) noexcept
    : RecordWriter(producer) {
  target_ = target.index;
}

void RecordWriter::schedule_policy_check() noexcept {
  if (in_place_) {
    next_policy_check_ = 0;  // every record: finish_record publishes it
  } else if (flush_timeout_.count() == 0) {
    next_policy_check_ = records_in_buffer_ + 1;
  } else if (flush_timeout_.count() > 0) {
    next_policy_check_ = records_in_buffer_ + clock_check_interval_;
  } else {
    next_policy_check_ = UINT64_MAX;  // only when full or on flush()
  }
}

// A clock read costs about as much as writing several small records, so it
// is spaced by the rate just seen: about four reads per timeout at the
// current rate, at least one per kMaxClockCheckInterval records. A fast
// stream reads the clock a few times per buffer; a slow steady one every
// record or two, which bounds its wait close to the timeout.
Status RecordWriter::apply_flush_policy() noexcept {
  if (in_place_ && reserved_) {
    return publish_reserved();
  }
  if (flush_timeout_.count() == 0 || in_place_) {
    return flush();  // in place mode: a spanning record's last buffer, at once
  }
  const Clock::time_point now = Clock::now();
  if (current_.valid() && used() != 0 && now - buffer_started_ >= flush_timeout_) {
    return flush();
  }
  const auto since_check =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_clock_check_);
  // Across buffer boundaries: the rate is the stream's, not one buffer's.
  const std::uint64_t records_since_check = records_written() - records_at_last_check_;
  std::uint64_t interval = kMaxClockCheckInterval;
  if (since_check.count() > 0) {
    const double per_quarter_timeout = static_cast<double>(records_since_check) *
                                       (static_cast<double>(flush_timeout_.count()) / 4.0) /
                                       static_cast<double>(since_check.count());
    interval = per_quarter_timeout < static_cast<double>(kMaxClockCheckInterval)
                   ? static_cast<std::uint64_t>(per_quarter_timeout)
                   : kMaxClockCheckInterval;
  }
  clock_check_interval_ = std::max<std::uint64_t>(interval, 1);
  last_clock_check_ = now;
  records_at_last_check_ = records_written();
  schedule_policy_check();
  return Status::kOk;
}

RecordWriter::~RecordWriter() {
  seal_in_place();
  (void)flush();
}

void RecordWriter::set_run_fast_end() noexcept {
  if (in_place_ || cursor_ == nullptr || cursor_ != run_end_ || run_bytes_ == kNoRecords ||
      run_count_at_ == nullptr) {
    return;  // not at the end of a run that may still grow
  }
  // Records that may follow before the one at which the policy is due.
  const std::uint64_t before_policy =
      next_policy_check_ > records_in_buffer_ + 1 ? next_policy_check_ - records_in_buffer_ - 1 : 0;
  const std::size_t room_bytes = room();
  const std::size_t fast_bytes =
      before_policy >= room_bytes
          ? room_bytes
          : std::min<std::size_t>(static_cast<std::size_t>(before_policy) * run_bytes_, room_bytes);
  if (fast_bytes >= run_bytes_) {
    run_fast_end_ = cursor_ + fast_bytes;
  }
}

bool RecordWriter::fits_in_place(std::size_t bytes) const noexcept {
  // The frame, a discard frame before it in a resumed stream's first buffer,
  // and the word after it.
  return bytes <= frame::kLengthMask &&
         frame::in_place_frame_bytes(bytes) + 2 * frame::kHeaderBytes <=
             producer_->config().buffer_bytes;
}

Status RecordWriter::open_buffer(const Deadline& deadline) noexcept {
  WritableBuffer buffer;
  if (const Status status = producer_->acquire_until(buffer, deadline, target_);
      status != Status::kOk) {
    return status;
  }
  std::byte* base = buffer.data().data();
  std::size_t first = 0;
  if (buffer.first_after_takeover()) {
    // Not yet published: plain stores, made visible by the data-ring push.
    frame::write_header(base, frame::kInPlace | frame::kDiscard);
    first = frame::kHeaderBytes;
  }
  frame::write_header(base + first, 0);
  std::span<std::byte> writable;
  if (const Status status = producer_->publish_open(std::move(buffer), writable);
      status != Status::kOk) {
    return status;
  }
  place_cursor_ = writable.data() + first;
  place_limit_ = writable.data() + writable.size();
  records_before_buffer_ += records_in_buffer_;
  records_in_buffer_ = 0;
  return Status::kOk;
}

void RecordWriter::seal_in_place() noexcept {
  if (place_cursor_ == nullptr) {
    return;
  }
  if (place_cursor_ + frame::kHeaderBytes <= place_limit_) {
    // Release: the reader that sees the seal has seen every frame before it.
    frame::store_in_place_word(place_cursor_, frame::kSealed, __ATOMIC_RELEASE);
  }
  producer_->sealed_in_place();
  place_cursor_ = place_limit_ = nullptr;
  reserved_ = false;
}

Status RecordWriter::reserve_in_place(std::size_t bytes, std::span<std::byte>& out,
                                      const Deadline& deadline) noexcept {
  if (!fits_in_place(bytes)) {
    return Status::kInvalidArgument;
  }
  const std::size_t needed = frame::in_place_frame_bytes(bytes) + frame::kHeaderBytes;
  if (place_cursor_ == nullptr || static_cast<std::size_t>(place_limit_ - place_cursor_) < needed) {
    seal_in_place();
    if (const Status status = open_buffer(deadline); status != Status::kOk) {
      return status;
    }
  }
  out = std::span<std::byte>(place_cursor_ + frame::kHeaderBytes, bytes);
  reserved_bytes_ = bytes;
  reserved_ = true;
  return Status::kOk;
}

Status RecordWriter::publish_reserved() noexcept {
  // `next` has room: reserve_in_place kept a word after the frame.
  reserved_ = false;
  return publish_frame(reserved_bytes_);
}

Status RecordWriter::start_buffer(const Deadline& deadline) noexcept {
  return start_buffer_for(deadline, target_);
}

Status RecordWriter::start_buffer_for(const Deadline& deadline, std::uint32_t subpartition,
                                      CapUse cap_use) noexcept {
  const Status status = producer_->acquire_until(current_, deadline, subpartition, cap_use);
  if (status != Status::kOk) {
    return status;
  }
  cursor_ = current_.data().data();
  limit_ = cursor_ + current_.capacity();
  prefetch_start_for_write(cursor_, limit_);
  forget_last_frame();
  records_before_buffer_ += records_in_buffer_;  // of a buffer whose commit failed
  records_in_buffer_ = 0;
  schedule_policy_check();
  if (current_.first_after_takeover()) {
    // A stream taken over from a dead producer may end in half a record:
    // tell the reader to drop it before anything of ours (in a fan-out,
    // once per subpartition).
    frame::write_header(cursor_, frame::kDiscard);
    cursor_ += frame::kHeaderBytes;
  }
  if (flush_timeout_.count() > 0) {
    buffer_started_ = Clock::now();
  }
  return Status::kOk;
}

void RecordWriter::start_run(std::span<const std::byte> record) noexcept {
  std::byte* const second = run_from_plain(record.size());
  frame::copy_payload(second, record.data(), record.size());
  cursor_ = run_end_ = second + record.size();
}

std::byte* RecordWriter::run_from_plain(std::size_t bytes) noexcept {
  settle_run();
  std::byte* const first = cursor_ - bytes - frame::kHeaderBytes;
  std::memmove(first + frame::kRunHeaderBytes, first + frame::kHeaderBytes, bytes);
  frame::write_header(first, frame::kRun | static_cast<std::uint32_t>(bytes));
  run_count_at_ = first + frame::kHeaderBytes;
  run_bytes_ = bytes;
  plain_end_ = nullptr;
  return first + frame::kRunHeaderBytes + bytes;
}

Status RecordWriter::write_for(std::span<const std::byte> record,
                               std::chrono::nanoseconds timeout) noexcept {
  settle_fast_run();
  if (frame::kHeaderBytes + record.size() <= room()) {
    return write(record);  // no wait: it fits (as a frame, or in the run)
  }
  return write_slow(record, Deadline::after(timeout));
}

Status RecordWriter::write_slow(std::span<const std::byte> record,
                                const Deadline& deadline) noexcept {
  if (in_place_) {
    if (fits_in_place(record.size())) {
      std::span<std::byte> out;
      if (const Status status = reserve_in_place(record.size(), out, deadline);
          status != Status::kOk) {
        return status;
      }
      frame::copy_payload(out.data(), record.data(), record.size());
      return after_append();  // publishes it
    }
    // Too large for one open buffer: sealed, committed fragments as in the
    // default mode, each handed over at once (the flush timeout is 0).
    seal_in_place();
  }
  const std::size_t buffer_bytes = producer_->config().buffer_bytes;
  if (frame::kHeaderBytes + record.size() <= buffer_bytes) {
    // Fits in an empty buffer: never split a record that does not have to be.
    if (Status status = flush(); status != Status::kOk) {
      return status;
    }
    if (Status status = start_buffer(deadline); status != Status::kOk) {
      return status;
    }
    if (frame::kHeaderBytes + record.size() <= room()) {
      append_whole(record);
      return after_append();
    }
    // Only after a discard frame took the first bytes: split it after all.
  }

  // Larger than a buffer: fill the current one, then continue in fresh ones.
  if (room() <= frame::kHeaderBytes) {
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
    const std::size_t chunk = std::min(rest.size(), room() - frame::kHeaderBytes);
    const bool more = chunk < rest.size();
    frame::write_header(cursor_, static_cast<std::uint32_t>(chunk) | continuation |
                                     (more ? frame::kMoreFollows : 0U));
    std::memcpy(cursor_ + frame::kHeaderBytes, rest.data(), chunk);
    cursor_ += frame::kHeaderBytes + chunk;
    rest = rest.subspan(chunk);
    if (!more) {
      if (continuation != 0 && producer_->mapping().subpartitions() > 1) {
        // The tail goes out now: its reader holds the record's earlier
        // fragments until it comes, and with several readers sharing one
        // pool, fragments held while tails wait in writers could take every
        // buffer (a fan-out of pinned writers would then wait forever).
        const Status status = after_append();
        return status != Status::kOk ? status : flush();
      }
      return after_append();  // counted in the buffer where it ends
    }
    // A fan-out: every fragment goes where the first went.
    const std::uint32_t same_subpartition = current_.subpartition();
    if (Status status = flush(); status != Status::kOk) {
      return status;
    }
    // Part of the record is out: finish it whatever the deadline.
    if (Status status = start_buffer_for(Deadline::never(), same_subpartition, CapUse::kOverdraft);
        status != Status::kOk) {
      return status;
    }
    continuation = frame::kContinuation;
  }
}

Status RecordWriter::make_room(std::size_t needed, const Deadline& deadline) noexcept {
  if (needed > producer_->config().buffer_bytes) {
    return Status::kInvalidArgument;
  }
  if (const Status status = flush(); status != Status::kOk) {
    return status;
  }
  if (const Status status = start_buffer(deadline); status != Status::kOk) {
    return status;
  }
  if (needed > room()) {  // the discard frame of a resumed stream took the first bytes
    if (const Status status = flush(); status != Status::kOk) {
      return status;
    }
    return start_buffer(deadline);
  }
  return Status::kOk;
}

bool RecordWriter::accepts_begin_record(std::size_t bytes) const noexcept {
  return in_place_ ? fits_in_place(bytes)
                   : bytes <= frame::kLengthMask &&
                         frame::kHeaderBytes + bytes <= producer_->config().buffer_bytes;
}

Status RecordWriter::begin_record_for(std::size_t bytes, std::span<std::byte>& out,
                                      std::chrono::nanoseconds timeout) noexcept {
  settle_fast_run();
  if (frame::kHeaderBytes + bytes > room()) {
    const Deadline deadline = Deadline::after(timeout);
    if (in_place_) {
      return reserve_in_place(bytes, out, deadline);
    }
    if (const Status status = make_room(frame::kHeaderBytes + bytes, deadline);
        status != Status::kOk) {
      return status;
    }
  }
  return begin_record(bytes, out);  // it fits now: no wait left
}

Status RecordWriter::write_records(std::span<const std::byte> records,
                                   std::uint64_t count) noexcept {
  settle_fast_run();
  if (count == 0) {
    return records.empty() ? Status::kOk : Status::kInvalidArgument;
  }
  const std::size_t bytes = records.size() / count;
  if (bytes * count != records.size()) {
    return Status::kInvalidArgument;
  }
  if (count == 1 || frame::kHeaderBytes + bytes > producer_->config().buffer_bytes) {
    // A record alone, or records that span this channel's buffers: write()'s way.
    for (std::uint64_t i = 0; i < count; ++i) {
      if (const Status status = write(records.subspan(i * bytes, bytes)); status != Status::kOk) {
        return status;
      }
    }
    return Status::kOk;
  }
  const std::byte* from = records.data();
  const auto copy_one = [&from, bytes](std::span<std::byte> out) noexcept {
    frame::copy_payload(out.data(), from, bytes);
    from += bytes;
  };
  return place_records(bytes, count, copy_one,
                       [&from, bytes](std::byte* at, std::uint64_t n) noexcept {
                         std::memcpy(at, from, n * bytes);
                         from += n * bytes;
                       });
}

Status RecordWriter::flush() noexcept {
  settle_fast_run();
  if (!current_.valid() || used() == 0) {
    return Status::kOk;
  }
  settle_run();
  const std::size_t bytes = used();
  drop_current_view();
  const Status status = producer_->commit(std::move(current_), bytes, records_in_buffer_);
  if (status == Status::kOk) {
    records_before_buffer_ += records_in_buffer_;
    records_in_buffer_ = 0;
    schedule_policy_check();
  }
  return status;
}

Status RecordWriter::flush_if_due() noexcept {
  settle_fast_run();
  if (!current_.valid() || used() == 0 || flush_timeout_.count() < 0) {
    return Status::kOk;
  }
  if (Clock::now() - buffer_started_ >= flush_timeout_) {
    return flush();
  }
  return Status::kOk;
}

Status RecordWriter::close() noexcept {
  settle_fast_run();
  seal_in_place();
  const Status status = flush();
  producer_->close();
  return status;
}

}  // namespace sluice::transport
