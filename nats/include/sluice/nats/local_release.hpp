#pragma once

// Which of the buffers a producer committed its consumer has given back,
// in commit order: the inbound bridge acknowledges a NATS message only once
// every local buffer holding its records came back (Flink's credit: the
// free buffers are also how many messages it asks for next).

#include <cstdint>
#include <deque>

#include "sluice/transport/producer.hpp"

namespace sluice::nats {

class ReleaseTracker {
 public:
  explicit ReleaseTracker(const sluice::transport::Producer& producer) : producer_(producer) {}

  // Buffer `index` was just committed.
  void committed(std::uint32_t index);
  // Buffer `index` was handed to the producer again, so every earlier
  // commit of it has been released.
  void acquired(std::uint32_t index);
  // How many commits, counted from the first, have all been released. Reads
  // the buffers' state words: a word the consumer's process could spoil
  // only makes a message acknowledged early or late, never memory unsafe.
  std::uint64_t released_prefix();
  [[nodiscard]] std::uint64_t committed_count() const noexcept { return committed_; }
  // Commits not yet known to be released.
  [[nodiscard]] std::uint64_t outstanding() const noexcept { return committed_ - released_; }

 private:
  struct Entry {
    std::uint32_t index;
    bool released;
  };
  const sluice::transport::Producer& producer_;
  std::deque<Entry> entries_;  // commits after the released prefix
  std::uint64_t committed_ = 0;
  std::uint64_t released_ = 0;
};

}  // namespace sluice::nats
