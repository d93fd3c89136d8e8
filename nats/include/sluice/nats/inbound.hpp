#pragma once

// sluice-bridge in: a durable JetStream pull consumer that writes the
// records of each message into a local channel as its producer, and
// acknowledges a message only once the local consumer gave back every buffer
// holding its records, so a crash anywhere downstream is redelivered. The
// pull batch is the number of free local buffers (credit-based flow control).
//
// Duplicates: a message redelivered after a crash or an expired ack wait,
// or stored twice, is recognised by its origin and record positions
// (Sluice-Origin, Sluice-First) and its records already written are
// skipped. A restarted bridge learns where it stood from a small state file
// written before each local commit, checked against the channel's exact
// record count (Producer::attach), so no record reaches the local consumer
// twice from the bridge. (A local consumer that itself dies and resumes
// receives its unreleased buffers again: that is the channel's own
// at-least-once.)

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "sluice/nats/connection.hpp"
#include "sluice/transport/producer.hpp"

namespace sluice::nats {

// What in reports while it runs (InboundOptions::on_status).
struct InboundStatus {
  std::uint64_t records = 0;       // written to the local channel
  std::uint64_t acknowledged = 0;  // messages
  std::uint64_t pending = 0;       // messages written, waiting for the local consumer
  std::uint64_t lag = 0;           // messages in the stream after the last one taken
};

struct InboundOptions {
  std::string stream;
  std::string subject;  // filter; empty: the stream's first subject
  std::string durable;
  std::optional<std::uint64_t> from_sequence;  // DeliverByStartSequence
  std::optional<std::int64_t> from_time_ns;    // DeliverByStartTime (Unix ns)
  std::uint64_t max_records = 0;               // stop after this many (0: until the end marker)
  std::chrono::milliseconds ack_wait{30000};
  std::chrono::milliseconds fetch_wait{200};
  std::chrono::milliseconds wait_for_stream{0};  // for the stream to appear
  std::string state_path;                        // dedup state across restarts; empty: none
  bool wait_for_new_consumer = false;
  // Take over the durable consumer of an in that died (--resume): the
  // messages it held unacknowledged are delivered again at once, in order,
  // instead of after their ack wait.
  bool take_over = false;
  LogLine log;
  // Called from the bridge's loop a few times a second, and once at the end.
  std::function<void(const InboundStatus&)> on_status;
};

struct InboundResult {
  bool ok = false;
  std::string why;
  bool end_seen = false;
  std::uint64_t messages = 0;         // messages taken (acknowledged or about to be)
  std::uint64_t records = 0;          // records written to the local channel
  std::uint64_t skipped_records = 0;  // duplicates not written again
  std::uint64_t acknowledged = 0;
};

// The default durable name for channel NAME ('.' is not allowed in one).
std::string default_durable(const std::string& channel);
// The default state file for channel NAME.
std::string default_state_path(const std::string& channel);

InboundResult run_inbound(sluice::transport::Producer& producer, const Connection& connection,
                          const InboundOptions& options, const std::atomic<bool>& stop);

}  // namespace sluice::nats
