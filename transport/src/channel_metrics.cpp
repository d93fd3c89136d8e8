#include "sluice/transport/channel_metrics.hpp"

#include <algorithm>
#include <chrono>

namespace sluice::transport {

namespace {

std::uint64_t steady_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

// A finished-waits counter plus the part of a wait still in progress.
std::uint64_t with_ongoing_wait(std::uint64_t finished_ns, std::uint64_t since_ns,
                                std::uint64_t now_ns) {
  return finished_ns + (since_ns != 0 && since_ns < now_ns ? now_ns - since_ns : 0);
}

EndpointInfo read_endpoint(const ChannelMapping& mapping, const EndpointRecord& record, Role role,
                           std::uint32_t subpartition) {
  EndpointInfo info;
  const auto state = record.state.load(std::memory_order_acquire);
  info.state = state <= static_cast<std::uint32_t>(EndpointState::kDetached)
                   ? static_cast<EndpointState>(state)
                   : EndpointState::kDetached;
  info.pid = record.pid.load(std::memory_order_relaxed);
  info.start_ticks = record.start_ticks.load(std::memory_order_relaxed);
  info.attach_count = record.attach_count.load(std::memory_order_relaxed);
  info.alive = mapping.probe_role(role, subpartition) == sluice::shm::LockProbe::kHeld;
  return info;
}

double per_second(std::uint64_t before, std::uint64_t after, double seconds) {
  return after >= before && seconds > 0 ? static_cast<double>(after - before) / seconds : 0.0;
}

}  // namespace

BackpressureLevel backpressure_level(double backpressured_ms_per_sec) noexcept {
  const double ratio = backpressured_ms_per_sec / 1000.0;
  if (ratio <= 0.10) {
    return BackpressureLevel::kOk;
  }
  return ratio <= 0.50 ? BackpressureLevel::kLow : BackpressureLevel::kHigh;
}

ChannelObserver::ChannelObserver(std::string_view name)
    : mapping_(ChannelMapping::open(name, {})) {}

ChannelSnapshot ChannelObserver::snapshot() const noexcept {
  return snapshot(mapping_.subpartition());
}

ChannelSnapshot ChannelObserver::snapshot(std::uint32_t subpartition) const noexcept {
  ChannelSnapshot s;
  s.taken_ns = steady_now_ns();
  if (subpartition >= mapping_.subpartitions()) {  // the count is from the validated private copy
    return s;
  }
  const ChannelControl& control = mapping_.control(subpartition);
  const ProducerCounters& p = control.producer_counters;
  s.produced = {p.records.load(std::memory_order_relaxed), p.bytes.load(std::memory_order_relaxed),
                p.buffers.load(std::memory_order_relaxed),
                with_ongoing_wait(p.blocked_ns.load(std::memory_order_relaxed),
                                  p.blocked_since_ns.load(std::memory_order_relaxed), s.taken_ns),
                p.corruption_seen.load(std::memory_order_relaxed) != 0};
  const ConsumerCounters& c = control.consumer_counters;
  s.consumed = {c.records.load(std::memory_order_relaxed), c.bytes.load(std::memory_order_relaxed),
                c.buffers.load(std::memory_order_relaxed),
                with_ongoing_wait(c.idle_ns.load(std::memory_order_relaxed),
                                  c.idle_since_ns.load(std::memory_order_relaxed), s.taken_ns),
                c.corruption_seen.load(std::memory_order_relaxed) != 0};
  const BufferStateWord* states = mapping_.buffer_states();
  for (std::uint32_t i = 0; i < mapping_.config().buffer_count; ++i) {
    const std::uint32_t word = states[i].load(std::memory_order_relaxed);
    if (!state_word_possible(word, mapping_.subpartitions())) {
      ++s.pool.invalid;
      continue;
    }
    switch (static_cast<BufferState>(state_kind(word))) {
      case BufferState::kFree: ++s.pool.free; break;
      case BufferState::kWriting: ++s.pool.writing; break;
      case BufferState::kQueued: ++s.pool.queued; break;
      case BufferState::kReading: ++s.pool.reading; break;
      case BufferState::kShared: ++s.pool.shared; break;
      default: ++s.pool.invalid; break;
    }
  }
  s.closed = control.stream.closed.load(std::memory_order_acquire) != 0;
  s.producer = read_endpoint(mapping_, control.producer, Role::kProducer, subpartition);
  s.consumer = read_endpoint(mapping_, control.consumer, Role::kConsumer, subpartition);
  return s;
}

ChannelRates derive_rates(const ChannelSnapshot& before, const ChannelSnapshot& after,
                          const ChannelConfig& config) noexcept {
  ChannelRates r;
  r.seconds = after.taken_ns > before.taken_ns
                  ? static_cast<double>(after.taken_ns - before.taken_ns) / 1e9
                  : 0.0;
  r.records_out_per_sec = per_second(before.produced.records, after.produced.records, r.seconds);
  r.records_in_per_sec = per_second(before.consumed.records, after.consumed.records, r.seconds);
  r.bytes_out_per_sec = per_second(before.produced.bytes, after.produced.bytes, r.seconds);
  r.bytes_in_per_sec = per_second(before.consumed.bytes, after.consumed.bytes, r.seconds);
  r.buffers_out_per_sec = per_second(before.produced.buffers, after.produced.buffers, r.seconds);
  r.buffers_in_per_sec = per_second(before.consumed.buffers, after.consumed.buffers, r.seconds);
  // Waiting time per second of wall time, in ms: (ns / s) / 1e6.
  r.backpressured_ms_per_sec =
      std::clamp(per_second(before.produced.waited_ns, after.produced.waited_ns, r.seconds) / 1e6,
                 0.0, 1000.0);
  r.idle_ms_per_sec =
      std::clamp(per_second(before.consumed.waited_ns, after.consumed.waited_ns, r.seconds) / 1e6,
                 0.0, 1000.0);
  r.producer_busy_ms_per_sec = 1000.0 - r.backpressured_ms_per_sec;
  r.consumer_busy_ms_per_sec = 1000.0 - r.idle_ms_per_sec;
  const std::uint32_t total = after.pool.total();
  r.out_pool_usage = total > 0 ? static_cast<double>(total - after.pool.free) / total : 0.0;
  const std::uint64_t buffers =
      after.produced.buffers - std::min(after.produced.buffers, before.produced.buffers);
  const std::uint64_t bytes =
      after.produced.bytes - std::min(after.produced.bytes, before.produced.bytes);
  r.buffer_fill =
      buffers > 0 && config.buffer_bytes > 0
          ? static_cast<double>(bytes) / (static_cast<double>(buffers) * config.buffer_bytes)
          : 0.0;
  r.level = backpressure_level(r.backpressured_ms_per_sec);
  return r;
}

}  // namespace sluice::transport
