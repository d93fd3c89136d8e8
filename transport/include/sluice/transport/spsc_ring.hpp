#pragma once

// Process-local handles on a single-producer/single-consumer ring that lives
// in shared memory (RingIndices + slots). Each handle keeps its own index and
// a cached copy of the other side's, and reads the shared line of the other
// side only when the cache says the ring looks full (writer) or empty
// (reader). Indices read from shared memory are range-checked: a peer that
// writes nonsense makes the handle report kCorrupt, never read out of bounds.

#include <atomic>
#include <cstdint>

#include "sluice/transport/channel_layout.hpp"

namespace sluice::transport {

enum class RingResult : std::uint8_t { kOk, kFull, kEmpty, kCorrupt };

class RingWriter {
 public:
  RingWriter() = default;
  // Takes up where the shared indices stand (a fresh ring or a re-attach).
  RingWriter(RingIndices* indices, RingSlot* slots, std::uint64_t capacity) noexcept
      : indices_(indices),
        slots_(slots),
        mask_(capacity - 1),
        capacity_(capacity),
        tail_(indices->tail.load(std::memory_order_relaxed)),
        head_cache_(indices->head.load(std::memory_order_acquire)) {}

  // Writes `value` into the next slot without making it visible yet.
  RingResult stage(std::uint64_t value) noexcept {
    if (tail_ - head_cache_ >= capacity_) {
      const std::uint64_t head = indices_->head.load(std::memory_order_acquire);
      // The reader's head may only move forward, and never past what we wrote.
      if (head < head_cache_ || head > tail_) {
        return RingResult::kCorrupt;
      }
      head_cache_ = head;
      if (tail_ - head_cache_ >= capacity_) {
        return RingResult::kFull;
      }
    }
    slots_[tail_ & mask_].store(value, std::memory_order_relaxed);
    ++tail_;
    return RingResult::kOk;
  }

  // Makes every staged value visible with one store.
  void publish() noexcept { indices_->tail.store(tail_, std::memory_order_release); }

  RingResult push(std::uint64_t value) noexcept {
    const RingResult result = stage(value);
    if (result == RingResult::kOk) {
      publish();
    }
    return result;
  }

  [[nodiscard]] std::uint64_t position() const noexcept { return tail_; }

  // Values written and not yet consumed as far as the cached head knows: at
  // least the true number, since the head only moves forward.
  [[nodiscard]] std::uint64_t unread_at_most() const noexcept { return tail_ - head_cache_; }
  // Values written and not yet consumed, from the shared head (acquire);
  // kCorrupt if the reader's head moved backwards or past what was written.
  RingResult unread(std::uint64_t& count) noexcept {
    const std::uint64_t head = indices_->head.load(std::memory_order_acquire);
    if (head < head_cache_ || head > tail_) {
      return RingResult::kCorrupt;
    }
    head_cache_ = head;
    count = tail_ - head;
    return RingResult::kOk;
  }

 private:
  RingIndices* indices_ = nullptr;
  RingSlot* slots_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint64_t tail_ = 0;
  std::uint64_t head_cache_ = 0;
};

class RingReader {
 public:
  RingReader() = default;
  RingReader(RingIndices* indices, RingSlot* slots, std::uint64_t capacity) noexcept
      : indices_(indices),
        slots_(slots),
        mask_(capacity - 1),
        capacity_(capacity),
        head_(indices->head.load(std::memory_order_relaxed)),
        tail_cache_(head_) {}

  // Reads the next value without consuming it. An endpoint records what it
  // took (a buffer's state) between peek() and advance(), so that at every
  // instant a buffer is either still in the ring or marked as taken: what
  // a successor needs to recover after a crash.
  RingResult peek(std::uint64_t& value) noexcept {
    if (head_ == tail_cache_) {
      const RingResult refreshed = refresh();
      if (refreshed != RingResult::kOk) {
        return refreshed;
      }
    }
    value = slots_[head_ & mask_].load(std::memory_order_relaxed);
    return RingResult::kOk;
  }

  // Consumes the value the last peek() returned.
  void advance() noexcept {
    ++head_;
    // Release: the slot was read (and the taker's marks made) before the
    // writer may reuse the slot.
    indices_->head.store(head_, std::memory_order_release);
  }

  RingResult pop(std::uint64_t& value) noexcept {
    const RingResult result = peek(value);
    if (result == RingResult::kOk) {
      advance();
    }
    return result;
  }

  // Whether a pop would find something; reads the shared tail only when the
  // cached one says empty.
  RingResult poll() noexcept { return head_ != tail_cache_ ? RingResult::kOk : refresh(); }

  [[nodiscard]] std::uint64_t position() const noexcept { return head_; }

  // Values waiting, as last seen (never more than there are), and as the
  // shared tail says now (kCorrupt if it moved impossibly).
  [[nodiscard]] std::uint64_t waiting_at_least() const noexcept { return tail_cache_ - head_; }
  RingResult waiting(std::uint64_t& count) noexcept {
    const RingResult refreshed = refresh();
    count = tail_cache_ - head_;
    return refreshed == RingResult::kCorrupt ? refreshed : RingResult::kOk;
  }

 private:
  RingResult refresh() noexcept {
    const std::uint64_t tail = indices_->tail.load(std::memory_order_acquire);
    // The writer's tail may only move forward and never more than a full
    // ring ahead of what we consumed. (Unsigned: tail < head wraps to huge.)
    if (tail - head_ > capacity_) {
      return RingResult::kCorrupt;
    }
    tail_cache_ = tail;
    return head_ == tail_cache_ ? RingResult::kEmpty : RingResult::kOk;
  }

  RingIndices* indices_ = nullptr;
  RingSlot* slots_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t capacity_ = 0;
  std::uint64_t head_ = 0;
  std::uint64_t tail_cache_ = 0;
};

}  // namespace sluice::transport
