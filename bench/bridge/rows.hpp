#pragma once

// The rows of sluice_bench_bridge: each moves the same records (the
// sequence pattern of sluice-producer) from a producer to a consumer that
// checks every one, through NATS JetStream, ZeroMQ or the whole bridge chain.

#include <cstddef>
#include <cstdint>
#include <string>

namespace bridge_bench {

struct RowWork {
  std::size_t size = 0;         // bytes per record
  std::uint64_t records = 0;    // records in the stream
  std::size_t batch_bytes = 0;  // records per message, in bytes (batched rows)
  std::string nats_url;         // nats://127.0.0.1:PORT
  std::string tag;              // unique per run: names streams, channels
  int timeout_s = 300;
};

struct RowResult {
  bool ok = false;
  std::string problem;  // why not ok
  double seconds = 0;   // producer start to the consumer's last checked record
  std::uint64_t received = 0;
  std::string note;  // shown under the table (e.g. how the chain was timed)
};

// (a) one JetStream message per record; (b) one per batch_bytes of records.
// Asynchronous publishes with a bounded number in flight; a durable pull
// consumer fetching batches, acknowledging the last of each (AckAll).
RowResult run_jetstream(const RowWork& work, bool batched);

// (c) ZeroMQ PUSH/PULL over TCP loopback, batch_bytes of records a message.
RowResult run_zeromq_tcp(const RowWork& work);

// (d) sluice-producer -> sluice-bridge out -> nats-server -> sluice-bridge in
// -> sluice-consumer, as processes: the producer and consumer from `bin_dir`,
// the bridge at path `bridge`.
RowResult run_bridge_chain(const RowWork& work, const std::string& bin_dir,
                           const std::string& bridge);

// Whether the chain's programs are there; empty when they are, else which are missing.
std::string bridge_missing(const std::string& bin_dir, const std::string& bridge);

// Messages in flight for asynchronous publishing: about 8 MiB of payload,
// at least 16, at most 4096.
inline std::int64_t max_pending(std::size_t message_bytes) {
  const std::int64_t by_bytes =
      static_cast<std::int64_t>((std::size_t{8} << 20) / (message_bytes == 0 ? 1 : message_bytes));
  return by_bytes < 16 ? 16 : (by_bytes > 4096 ? 4096 : by_bytes);
}

}  // namespace bridge_bench
