#pragma once

// Ownership of pool buffers, stated in types. A WritableBuffer is one buffer
// the producer holds; it goes to the consumer only through commit(), and back
// to the producer's free list if dropped uncommitted. A ReadableBuffer is one
// buffer the consumer holds; it returns to the producer through release(), or
// when dropped. Both are move-only and must not outlive their endpoint.

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace sluice::transport {

namespace detail {
struct ProducerState;
struct ConsumerState;
void abandon_buffer(ProducerState& owner, std::uint32_t index, bool first_after_takeover) noexcept;
void release_buffer(ConsumerState& owner, std::uint32_t index) noexcept;
}  // namespace detail

class WritableBuffer {
 public:
  WritableBuffer() = default;
  WritableBuffer(WritableBuffer&& other) noexcept { *this = std::move(other); }
  WritableBuffer& operator=(WritableBuffer&& other) noexcept {
    if (this != &other) {
      reset();
      owner_ = std::exchange(other.owner_, nullptr);
      index_ = other.index_;
      subpartition_ = other.subpartition_;
      first_after_takeover_ = other.first_after_takeover_;
      data_ = std::exchange(other.data_, {});
    }
    return *this;
  }
  WritableBuffer(const WritableBuffer&) = delete;
  WritableBuffer& operator=(const WritableBuffer&) = delete;
  ~WritableBuffer() { reset(); }

  [[nodiscard]] bool valid() const noexcept { return owner_ != nullptr; }
  [[nodiscard]] std::span<std::byte> data() const noexcept { return data_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return data_.size(); }
  [[nodiscard]] std::uint32_t index() const noexcept { return index_; }
  // The subpartition the buffer goes to when committed, chosen when it was
  // acquired (0 in a channel of one subpartition).
  [[nodiscard]] std::uint32_t subpartition() const noexcept { return subpartition_; }
  // The first buffer for its subpartition after Producer::attach(): the
  // stream before it may end inside a record, so a record writer starts it
  // with a discard frame. Handed out even when the subpartition is at its
  // cap, since its reader may be holding the dead producer's fragments of
  // that record until it reads the discard. Given back uncommitted, the
  // next buffer for the subpartition is the first again.
  [[nodiscard]] bool first_after_takeover() const noexcept { return first_after_takeover_; }

  // Gives the buffer back to the producer unsent.
  void reset() noexcept {
    if (owner_ != nullptr) {
      detail::abandon_buffer(*std::exchange(owner_, nullptr), index_, first_after_takeover_);
      data_ = {};
    }
  }

 private:
  friend class Producer;
  WritableBuffer(detail::ProducerState* owner, std::uint32_t index, std::uint32_t subpartition,
                 bool first_after_takeover, std::span<std::byte> data) noexcept
      : owner_(owner),
        index_(index),
        subpartition_(subpartition),
        first_after_takeover_(first_after_takeover),
        data_(data) {}
  detail::ProducerState* owner_ = nullptr;
  std::uint32_t index_ = 0;
  std::uint32_t subpartition_ = 0;
  bool first_after_takeover_ = false;
  std::span<std::byte> data_;
};

class ReadableBuffer {
 public:
  ReadableBuffer() = default;
  ReadableBuffer(ReadableBuffer&& other) noexcept { *this = std::move(other); }
  ReadableBuffer& operator=(ReadableBuffer&& other) noexcept {
    if (this != &other) {
      reset();
      owner_ = std::exchange(other.owner_, nullptr);
      index_ = other.index_;
      data_ = std::exchange(other.data_, {});
      open_ = other.open_;
      commit_sequence_ = other.commit_sequence_;
      records_through_ = other.records_through_;
    }
    return *this;
  }
  ReadableBuffer(const ReadableBuffer&) = delete;
  ReadableBuffer& operator=(const ReadableBuffer&) = delete;
  ~ReadableBuffer() { reset(); }

  [[nodiscard]] bool valid() const noexcept { return owner_ != nullptr; }
  // The committed bytes; valid until the buffer is released. For an open
  // buffer, the whole buffer, which the producer is still appending to: only
  // the in-place protocol (record_frame.hpp) may read it; the RecordReader does.
  [[nodiscard]] std::span<const std::byte> data() const noexcept { return data_; }
  [[nodiscard]] bool open() const noexcept { return open_; }
  [[nodiscard]] std::size_t size() const noexcept { return data_.size(); }
  [[nodiscard]] std::uint32_t index() const noexcept { return index_; }
  // What the producer recorded when it committed the buffer (BufferCommit),
  // copied once on receipt: its position in the subpartition's data ring
  // (consecutive commits have consecutive numbers, also across a producer's
  // takeover) and the stream's record count after its records. Untrusted:
  // the producer's process wrote them, so a caller that relies on them
  // checks them (e.g. that sequences only grow).
  [[nodiscard]] std::uint64_t commit_sequence() const noexcept { return commit_sequence_; }
  [[nodiscard]] std::uint64_t records_through() const noexcept { return records_through_; }

  // Returns the buffer to the producer.
  void reset() noexcept {
    if (owner_ != nullptr) {
      detail::release_buffer(*std::exchange(owner_, nullptr), index_);
      data_ = {};
    }
  }

 private:
  friend class Consumer;
  ReadableBuffer(detail::ConsumerState* owner, std::uint32_t index, std::span<const std::byte> data,
                 bool open, std::uint64_t commit_sequence, std::uint64_t records_through) noexcept
      : owner_(owner),
        index_(index),
        data_(data),
        open_(open),
        commit_sequence_(commit_sequence),
        records_through_(records_through) {}
  detail::ConsumerState* owner_ = nullptr;
  std::uint32_t index_ = 0;
  std::span<const std::byte> data_;
  bool open_ = false;
  std::uint64_t commit_sequence_ = 0;
  std::uint64_t records_through_ = 0;
};

}  // namespace sluice::transport
