#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "sluice/transport/buffers.hpp"
#include "sluice/transport/channel.hpp"
#include "sluice/transport/status.hpp"
#include "sluice/transport/wait_strategy.hpp"

namespace sluice::transport {

// What a consumer's blocking calls do when the producer goes away without
// closing the stream (after everything it committed was received).
enum class ProducerLoss : std::uint8_t {
  kReturnPeerDied,      // return kPeerDied (default)
  kWaitForNewProducer,  // keep waiting: a new producer may attach and continue the stream
};

// The consuming end of a channel. Receives committed buffers as read-only
// views, in order, and releases them (in any order) back to the producer.
// One thread uses it at a time.
class Consumer {
 public:
  // Opens channel NAME (waiting up to options.wait_for_channel for it to
  // appear) and attaches as its consumer. If an earlier consumer died (or
  // left) holding buffers, this one takes them over: it receives them again
  // first, in their original order, then the rest of the stream
  // (at-least-once), and gives back what the dead one freed but never
  // returned, so no buffer leaks. Throws shm::SetupError naming the
  // channel: missing, not a Sluice channel, other layout or build, corrupt
  // header, or a consumer already attached.
  //
  // In a partitioned channel (fan-out) it reads subpartition
  // options.subpartition (a SetupError if there is no such subpartition),
  // exactly as a 1:1 channel: its own rings, liveness lock and takeover; the
  // consumers of other subpartitions are other endpoints.
  static Consumer open(std::string_view name, const OpenOptions& options = {});

  Consumer(Consumer&&) noexcept;
  // Detaches from the current channel (as the destructor does), then takes over `other`'s.
  Consumer& operator=(Consumer&& other) noexcept;
  // Detaches. Buffers, readers and writers made from this consumer must be
  // gone by then: a ReadableBuffer released after its consumer is destroyed
  // is a use-after-free.
  ~Consumer();

  // Receives the next buffer: kOk, kWouldBlock, kTimeout, kClosed (stream
  // ended and drained), kPeerDied (producer gone without closing, drained),
  // kCorrupt. Blocking forms count idle time in the channel's idle_ns.
  Status try_receive(ReadableBuffer& out) noexcept;
  Status receive(ReadableBuffer& out) noexcept;
  Status receive_for(ReadableBuffer& out, std::chrono::nanoseconds timeout) noexcept;
  Status receive_until(ReadableBuffer& out, const Deadline& deadline) noexcept;

  // Adds to the records-received counter (metrics; the record reader calls it).
  void count_records(std::uint64_t records) noexcept;
  // Adds the bytes read from an open buffer to the bytes-received counter.
  void count_in_place_bytes(std::uint64_t bytes) noexcept;

  // Waits until the frame word at `at` (in an open buffer this consumer
  // holds, 4-byte aligned) is non-zero, with the same waiting, liveness
  // checks and idle accounting as receive: kOk with `word` set, kWouldBlock,
  // kTimeout, kClosed or kPeerDied (nothing more will be written there).
  Status wait_in_place(const std::byte* at, const Deadline& deadline, std::uint32_t& word) noexcept;

  // The producer as a wait sees it: kOk while it may still deliver, kClosed
  // once it closed the stream, kPeerDied once it is gone without closing
  // (kOk instead under ProducerLoss::kWaitForNewProducer). Probes the
  // liveness lock, a system call: for waits, not for every poll.
  [[nodiscard]] Status producer_status() const noexcept;

  // Idle accounting for a caller that waits for this consumer's data itself,
  // as an input gate does for all its inputs at once: begin_idle marks the
  // start of a wait (so tools count a wait in progress), end_idle adds the
  // finished wait to the channel's idle time.
  void begin_idle(Clock::time_point since) noexcept;
  void end_idle(std::chrono::nanoseconds waited) noexcept;

  [[nodiscard]] const ChannelConfigRecord& config() const noexcept;
  [[nodiscard]] const ChannelMapping& mapping() const noexcept;
  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] std::string corruption() const;
  // How a blocking call waits. The default is default_wait_policy(K + 1)
  // for a channel of K subpartitions: no spinning once the channel's
  // processes outnumber the CPUs this process may use.
  void set_wait_policy(const WaitPolicy& policy) noexcept;
  void set_producer_loss(ProducerLoss policy) noexcept;
  // Buffers taken over from a previous consumer still waiting to be received again.
  [[nodiscard]] std::size_t redelivery_pending() const noexcept;

 private:
  explicit Consumer(std::unique_ptr<detail::ConsumerState> state);
  void detach() noexcept;
  std::unique_ptr<detail::ConsumerState> state_;
};

}  // namespace sluice::transport
