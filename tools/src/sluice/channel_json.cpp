#include "channel_json.hpp"

namespace st = sluice::transport;

namespace sluice::tools {

JsonLine channel_json(const std::string& name, const st::ChannelObserver& observer,
                      const st::ChannelSnapshot& s, const st::ChannelRates& r) {
  const st::ChannelConfig config = observer.config();
  JsonLine line;
  line.add("name", name)
      .add("buffers", static_cast<std::uint64_t>(config.buffer_count))
      .add("buffer_bytes", static_cast<std::uint64_t>(config.buffer_bytes))
      .add("flush_timeout_us", static_cast<std::int64_t>(config.flush_timeout.count() / 1000))
      .add("segment_bytes", static_cast<std::uint64_t>(observer.mapping().segment().size()))
      .add("closed", s.closed)
      .add("producer_pid", static_cast<std::int64_t>(s.producer.pid))
      .add("producer_alive", s.producer.alive)
      .add("consumer_pid", static_cast<std::int64_t>(s.consumer.pid))
      .add("consumer_alive", s.consumer.alive)
      .add("records_sent", s.produced.records)
      .add("records_received", s.consumed.records)
      .add("bytes_sent", s.produced.bytes)
      .add("bytes_received", s.consumed.bytes)
      .add("buffers_sent", s.produced.buffers)
      .add("buffers_received", s.consumed.buffers)
      .add("blocked_seconds", static_cast<double>(s.produced.waited_ns) / 1e9)
      .add("idle_seconds", static_cast<double>(s.consumed.waited_ns) / 1e9)
      .add("pool_free", static_cast<std::uint64_t>(s.pool.free))
      .add("pool_writing", static_cast<std::uint64_t>(s.pool.writing))
      .add("pool_queued", static_cast<std::uint64_t>(s.pool.queued))
      .add("pool_reading", static_cast<std::uint64_t>(s.pool.reading))
      .add("pool_shared", static_cast<std::uint64_t>(s.pool.shared))
      .add("interval_seconds", r.seconds)
      .add("records_out_per_sec", r.records_out_per_sec)
      .add("records_in_per_sec", r.records_in_per_sec)
      .add("bytes_out_per_sec", r.bytes_out_per_sec)
      .add("bytes_in_per_sec", r.bytes_in_per_sec)
      .add("backpressured_ms_per_sec", r.backpressured_ms_per_sec)
      .add("producer_busy_ms_per_sec", r.producer_busy_ms_per_sec)
      .add("idle_ms_per_sec", r.idle_ms_per_sec)
      .add("consumer_busy_ms_per_sec", r.consumer_busy_ms_per_sec)
      .add("out_pool_usage", r.out_pool_usage)
      .add("buffer_fill", r.buffer_fill)
      .add("backpressure_level", st::to_string(r.level))
      .add("corruption_seen", s.produced.corruption_seen || s.consumed.corruption_seen);
  if (config.subpartitions > 1) {
    line.add("subpartitions", static_cast<std::uint64_t>(config.subpartitions))
        .add("partition", st::partitioner_name(config.partitioner))
        .add("max_queued_buffers", static_cast<std::uint64_t>(config.max_queued_buffers));
  }
  return line;
}

}  // namespace sluice::tools
