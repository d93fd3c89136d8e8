#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "sluice/transport/buffers.hpp"
#include "sluice/transport/channel.hpp"
#include "sluice/transport/channel_config.hpp"
#include "sluice/transport/status.hpp"
#include "sluice/transport/wait_strategy.hpp"

namespace sluice::transport {

// "No subpartition named": the channel's partitioner chooses (acquire_until).
inline constexpr std::uint32_t kAnySubpartition = UINT32_MAX;

// Whether an acquire in a fan-out respects the subpartition's cap. A record
// that spans buffers finishes on overdraft (Flink's overdraft buffers): once
// its first fragment is out, the rest may go past the cap, bounded by the
// pool, since its reader holds the earlier fragments until the record is whole.
enum class CapUse : std::uint8_t { kWithinCap, kOverdraft };

// What a producer's blocking calls do when the consumer goes away.
enum class ConsumerLoss : std::uint8_t {
  kReturnPeerDied,      // return kPeerDied (default)
  kWaitForNewConsumer,  // keep waiting: a new consumer takes over the dead one's buffers
};

// The producing end of a channel. Creates the channel, acquires free buffers
// (blocking when none is free: that is the backpressure), commits them to the
// consumer, and closes the stream. One thread uses it at a time.
class Producer {
 public:
  // Creates the channel NAME and attaches as its producer. Throws
  // shm::SetupError with a message naming the channel on any failure
  // (bad name or configuration, name taken, /dev/shm full, ...).
  static Producer create(std::string_view name, const ChannelConfig& config = {},
                         const CreateOptions& options = {});

  // Attaches as the producer of an existing channel whose producer died (or
  // left without closing), and continues its stream: buffers the dead one
  // held come back to the pool, a half-written record is discarded (the
  // record writer marks the restart), and commits continue after the last
  // one published. Fails if a producer is attached or the stream was closed,
  // and for a broadcast channel (not available). A fan-out (round-robin, key,
  // least-loaded) is taken over whole: every subpartition continues, each
  // with its own discard mark.
  static Producer attach(std::string_view name, const OpenOptions& options = {});

  Producer(Producer&&) noexcept;
  // Detaches from the current channel (as the destructor does), then takes over `other`'s.
  Producer& operator=(Producer&& other) noexcept;
  // Detaches. Buffers, writers and readers made from this producer must be
  // gone by then. Does not close the stream: a consumer then sees kPeerDied
  // after draining, as for a crash. Call close() for a clean end.
  ~Producer();

  // Takes a free buffer: kOk, kWouldBlock, kTimeout, kPeerDied (consumer
  // gone and its buffers with it), kCorrupt. Blocking forms count the time
  // spent blocked in the channel's blocked_ns counter.
  //
  // In a partitioned channel (fan-out) the buffer's subpartition is chosen
  // here (WritableBuffer::subpartition()), so commit never blocks: round-robin
  // and key take the next subpartition in turn, least-loaded the one with the
  // fewest buffers queued or being written whose consumer is alive or never
  // came; `subpartition` names one instead (kInvalidArgument if there is no
  // such subpartition). A buffer is handed out only while its subpartition
  // holds fewer than max_queued_buffers (queued for it, being read by its
  // consumer or being written for it), unless `cap_use` is kOverdraft;
  // otherwise the call waits as for a free buffer. kPeerDied when the consumer of the
  // chosen subpartition is gone (least-loaded: when every consumer is).
  Status try_acquire(WritableBuffer& out) noexcept;
  Status acquire(WritableBuffer& out) noexcept;
  Status acquire_for(WritableBuffer& out, std::chrono::nanoseconds timeout) noexcept;
  Status acquire_until(WritableBuffer& out, const Deadline& deadline,
                       std::uint32_t subpartition = kAnySubpartition,
                       CapUse cap_use = CapUse::kWithinCap) noexcept;

  // Hands the first `bytes` bytes of `buffer` to the consumer. Committing 0
  // bytes gives the buffer back to the pool; the consumer never sees it.
  // On any status but kOk the buffer stays with the caller. `records` is
  // only counted (metrics). kInvalidArgument if `bytes` exceeds the buffer or
  // the buffer is not this producer's; kClosed after close().
  Status commit(WritableBuffer&& buffer, std::size_t bytes, std::uint64_t records = 0) noexcept;

  // Hands `buffer` to the consumer before it is written: an open buffer,
  // whose records the caller then publishes one by one in place
  // (record_frame.hpp) and ends with a kSealed word. The caller must have
  // written a zero word at `first_frame` (0, or 4 after a discard frame).
  // On kOk `writable` is the buffer's memory: from now on only the in-place
  // protocol may touch it, since the consumer reads it concurrently. The
  // RecordWriter does all this (Publication::kEachRecordInPlace).
  // kInvalidArgument in a partitioned channel: not available there yet.
  Status publish_open(WritableBuffer&& buffer, std::span<std::byte>& writable) noexcept;
  // Counts one record published in place (records and frame bytes, which a
  // successor producer's records_committed() relies on) and wakes a consumer
  // waiting for it; called after the frame word's release store. kClosed if
  // the stream was closed before (the record may never be read).
  Status published_in_place(std::uint64_t frame_bytes) noexcept;
  // Wakes a consumer waiting on an open buffer just sealed.
  void sealed_in_place() noexcept;

  // Ends the stream: the consumer receives everything committed so far, then
  // kClosed. Idempotent.
  void close() noexcept;

  [[nodiscard]] const ChannelConfigRecord& config() const noexcept;
  [[nodiscard]] const ChannelMapping& mapping() const noexcept;
  [[nodiscard]] const std::string& name() const noexcept;
  // What was wrong, after a call returned kCorrupt.
  [[nodiscard]] std::string corruption() const;
  // How a blocking call waits. The default is default_wait_policy(K + 1)
  // for a channel of K subpartitions: no spinning once the channel's
  // processes outnumber the CPUs this process may use.
  void set_wait_policy(const WaitPolicy& policy) noexcept;
  void set_consumer_loss(ConsumerLoss policy) noexcept;
  // True when this producer took over a stream from another (attach()).
  [[nodiscard]] bool resumed_stream() const noexcept;
  // Records committed to the stream so far, by this producer and those it
  // took over from (as counted by commit()'s `records`). After attach() it
  // is exact: an application that numbers its records can continue at this
  // number, and the consumer sees no gap and no duplicate.
  [[nodiscard]] std::uint64_t records_committed() const noexcept;

 private:
  explicit Producer(std::unique_ptr<detail::ProducerState> state);
  void detach() noexcept;
  std::unique_ptr<detail::ProducerState> state_;
};

}  // namespace sluice::transport
