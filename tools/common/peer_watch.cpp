#include "peer_watch.hpp"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "sluice/transport/channel_layout.hpp"

namespace st = sluice::transport;

namespace sluice::tools {

namespace {

// Polled, not slept on in the kernel: the consumer wakes nobody when it
// reads, and a millisecond is nothing next to a stream's end.
constexpr auto kPollInterval = std::chrono::milliseconds(1);

bool consumer_lock_held(const st::ChannelMapping& mapping) noexcept {
  return mapping.probe_role(st::Role::kConsumer) == sluice::shm::LockProbe::kHeld;
}

}  // namespace

// The endpoint record and the counters are written by the consumer alone.
// Each is read on its own and only decides when to stop polling, so no
// ordering with other shared data is needed: relaxed would do, and the
// state's acquire costs nothing on this path.
bool ConsumerWatch::ever_attached() const noexcept {
  return producer_.mapping().control().consumer.state.load(std::memory_order_acquire) !=
         static_cast<std::uint32_t>(st::EndpointState::kNeverAttached);
}

bool ConsumerWatch::alive() const noexcept {
  return consumer_lock_held(producer_.mapping());
}

std::uint64_t ConsumerWatch::records_received() const noexcept {
  return producer_.mapping().control().consumer_counters.records.load(std::memory_order_relaxed);
}

namespace {

// `timed(timeout)` while no consumer has been seen, retried until one is or
// the deadline passes (kTimeout then); `untimed()` once one has been.
template <class Timed, class Untimed>
st::Status until_first_consumer(const ConsumerWatch& watch, bool& consumer_seen,
                                std::chrono::steady_clock::time_point first_consumer_deadline,
                                Timed&& timed, Untimed&& untimed) {
  if (!consumer_seen) {
    consumer_seen = watch.ever_attached();
  }
  while (!consumer_seen) {
    const auto left = first_consumer_deadline - std::chrono::steady_clock::now();
    const st::Status status =
        timed(std::max(std::chrono::nanoseconds::zero(),
                       std::chrono::duration_cast<std::chrono::nanoseconds>(left)));
    if (status != st::Status::kTimeout) {
      return status;
    }
    consumer_seen = watch.ever_attached();
    if (!consumer_seen) {
      return st::Status::kTimeout;
    }
  }
  return untimed();
}

}  // namespace

st::Status write_record(st::RecordWriter& writer, std::span<const std::byte> record,
                        const ConsumerWatch& watch, bool& consumer_seen,
                        std::chrono::steady_clock::time_point first_consumer_deadline) {
  return until_first_consumer(
      watch, consumer_seen, first_consumer_deadline,
      [&](std::chrono::nanoseconds timeout) { return writer.write_for(record, timeout); },
      [&] { return writer.write(record); });
}

st::Status begin_record(st::RecordWriter& writer, std::size_t bytes, std::span<std::byte>& out,
                        const ConsumerWatch& watch, bool& consumer_seen,
                        std::chrono::steady_clock::time_point first_consumer_deadline) {
  return until_first_consumer(
      watch, consumer_seen, first_consumer_deadline,
      [&](std::chrono::nanoseconds timeout) {
        return writer.begin_record_for(bytes, out, timeout);
      },
      [&] { return writer.begin_record(bytes, out); });
}

Delivery wait_for_delivery(const st::Producer& producer,
                           std::chrono::steady_clock::time_point first_consumer_deadline,
                           bool wait_for_new_consumer) {
  const ConsumerWatch watch(producer);
  const std::uint64_t committed = producer.records_committed();
  for (;;) {
    // The count is read again once the consumer is seen gone: one that read
    // the last records and then left is a delivery, not a loss.
    const bool attached = watch.ever_attached();
    const std::uint64_t received = watch.records_received();
    const bool alive = watch.alive();
    if (attached && received >= committed) {
      return Delivery::kDelivered;
    }
    if (!attached && std::chrono::steady_clock::now() >= first_consumer_deadline) {
      return Delivery::kNoConsumer;
    }
    if (attached && !alive && !wait_for_new_consumer && watch.records_received() < committed) {
      return Delivery::kConsumerLeft;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

namespace {

bool is_finished_leftover(const st::Consumer& consumer) noexcept {
  const st::ChannelControl& control = consumer.mapping().control();
  if (control.stream.closed.load(std::memory_order_acquire) == 0) {
    return false;
  }
  // The producer sets `closed` before it lets go of its lock.
  if (consumer.mapping().probe_role(st::Role::kProducer) != sluice::shm::LockProbe::kFree) {
    return false;
  }
  const auto& produced = control.producer_counters;
  const auto& consumed = control.consumer_counters;
  return consumed.records.load(std::memory_order_relaxed) >=
             produced.records.load(std::memory_order_relaxed) &&
         consumed.bytes.load(std::memory_order_relaxed) >=
             produced.bytes.load(std::memory_order_relaxed);
}

}  // namespace

st::Consumer open_skipping_finished_leftover(const std::string& name, std::chrono::nanoseconds wait,
                                             const std::string& role) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  st::OpenOptions options;
  options.wait_for_channel = wait;
  st::Consumer consumer = st::Consumer::open(name, options);
  if (!is_finished_leftover(consumer)) {
    return consumer;
  }
  // Removed while this consumer holds its role lock, so no producer can have
  // replaced it in between (--replace-stale needs both locks free).
  st::remove_channel(name);
  std::fprintf(stderr,
               "sluice-%s: channel \"%s\" was left closed and fully read by an earlier run; "
               "removed it, waiting for a fresh one\n",
               role.c_str(), name.c_str());
  options.wait_for_channel = std::max(std::chrono::nanoseconds::zero(),
                                      std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          deadline - std::chrono::steady_clock::now()));
  consumer = st::Consumer::open(name, options);
  return consumer;
}

}  // namespace sluice::tools
