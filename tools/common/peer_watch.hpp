#pragma once

// What each demo program needs to know about the other end of its channel,
// read from the segment it has mapped: whether a consumer ever came, whether
// it still lives, how many records it has received, and whether a channel a
// consumer just opened is a finished leftover of an earlier run.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_writer.hpp"

namespace sluice::tools {

class ConsumerWatch {
 public:
  explicit ConsumerWatch(const sluice::transport::Producer& producer) : producer_(producer) {}

  // A consumer attached at some point (it may have gone since).
  [[nodiscard]] bool ever_attached() const noexcept;
  [[nodiscard]] bool alive() const noexcept;
  // Records the consumers of this channel reported as read, all of them together.
  [[nodiscard]] std::uint64_t records_received() const noexcept;

 private:
  const sluice::transport::Producer& producer_;
};

// Writes one record. Until a consumer has attached, a full pool is waited on
// only until `first_consumer_deadline`: kTimeout then means that no consumer
// came (nothing of the record was placed). Once one has been seen, writes
// block as long as backpressure lasts.
sluice::transport::Status write_record(
    sluice::transport::RecordWriter& writer, std::span<const std::byte> record,
    const ConsumerWatch& watch, bool& consumer_seen,
    std::chrono::steady_clock::time_point first_consumer_deadline);

// As write_record, for a record filled in place: reserves `bytes` in `out`
// for the caller to fill and then finish (RecordWriter::finish_record), with
// no private copy of the record to allocate, fill and copy.
sluice::transport::Status begin_record(
    sluice::transport::RecordWriter& writer, std::size_t bytes, std::span<std::byte>& out,
    const ConsumerWatch& watch, bool& consumer_seen,
    std::chrono::steady_clock::time_point first_consumer_deadline);

enum class Delivery : std::uint8_t {
  kDelivered,     // consumers reported every committed record as read
  kNoConsumer,    // none attached before the deadline
  kConsumerLeft,  // the consumer went away (died or detached) with records unread
};

// After close(): waits until the consumers have read every record the
// producer committed. A consumer that has not come yet is waited for until
// `first_consumer_deadline`; one that is attached is waited for as long as it
// lives (it is reading, however slowly); with `wait_for_new_consumer` a dead
// one's successor is waited for without limit, as during the stream.
Delivery wait_for_delivery(const sluice::transport::Producer& producer,
                           std::chrono::steady_clock::time_point first_consumer_deadline,
                           bool wait_for_new_consumer);

// Opens NAME as its consumer, waiting up to `wait` for it to appear. A
// channel that is closed, whose producer is gone and which holds nothing
// unread is what a finished earlier run left behind (e.g. with --keep):
// reading it would end at once with 0 records and leave the next producer
// unread. Such a channel is removed, with a note on stderr, and a fresh one
// waited for within the same `wait`. Throws shm::SetupError like open().
sluice::transport::Consumer open_skipping_finished_leftover(const std::string& name,
                                                            std::chrono::nanoseconds wait,
                                                            const std::string& role);

}  // namespace sluice::tools
