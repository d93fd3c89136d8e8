#pragma once

// sluice-bridge out: reads a local channel as its consumer and publishes each
// committed buffer as one JetStream message (message_format.hpp). A buffer
// goes back to the local producer only once JetStream acknowledged its
// message, and buffers are released in order, so a bridge that dies loses
// nothing: its successor (Consumer::open takes over) receives the unreleased
// buffers again and republishes them under the same Nats-Msg-Id, which the
// stream drops as duplicates within its duplicate window.
//
// Many messages are in flight at once (asynchronous publish, at most
// max_in_flight). Order in the stream is kept although a full stream
// (discard new) refuses messages: each message after the first in flight
// expects its predecessor's id as the stream's last (Nats-Expected-Last-Msg-Id),
// so once one is refused all later ones are refused too, and they are
// published again in order after a back-off. While the stream stays full,
// no buffer is released and the local producer blocks: that is the backpressure.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "sluice/nats/connection.hpp"
#include "sluice/transport/consumer.hpp"

namespace sluice::nats {

// What out reports while it runs (OutboundOptions::on_status).
struct OutboundStatus {
  std::uint64_t acknowledged_messages = 0;
  std::uint64_t acknowledged_records = 0;
  std::uint64_t pending_messages = 0;  // received, not yet acknowledged
  std::uint64_t refusals = 0;
  bool stream_full = false;         // the last answer was a refusal, or out waits for room
  std::uint64_t held_for_room = 0;  // times out found the stream at its bound and waited
};

struct OutboundOptions {
  std::string subject;
  std::string stream;
  // The stream's byte bound under discard new (-1: none). out publishes a
  // message only when the stream's stored bytes, with those of every message
  // in flight and this one's own, stay within it; so the server never
  // checks a message against a full stream. Some servers (nats-server before
  // 2.9.22 and 2.10.5) check the bound without the bytes they store per
  // message, and then delete the oldest message, unread, to get back under it.
  std::int64_t stream_bound_bytes = -1;
  std::size_t max_in_flight = 64;
  // A publish not acknowledged within this time is published again.
  std::chrono::milliseconds ack_timeout{5000};
  // Back-off after a refused publish (stream full): doubles up to retry_max.
  std::chrono::milliseconds retry_first{1};
  std::chrono::milliseconds retry_max{20};
  LogLine log;
  // Called from the bridge's loop a few times a second, and once at the end.
  std::function<void(const OutboundStatus&)> on_status;
};

struct OutboundResult {
  bool ok = false;
  std::string why;  // when !ok
  bool end_published = false;
  std::uint64_t buffers = 0;         // acknowledged and released
  std::uint64_t records = 0;         // in those buffers
  std::uint64_t bytes = 0;           // message bodies acknowledged
  std::uint64_t duplicates = 0;      // acknowledged as duplicates (already stored)
  std::uint64_t refusals = 0;        // publishes refused (stream full) or timed out, then retried
  std::uint64_t held_for_room = 0;   // times the stream was at its bound and out waited for room
  std::uint64_t first_sequence = 0;  // commit sequence of the first buffer (diagnostics)
};

// Runs until the channel's stream ends (then publishes the end marker and
// returns ok), its producer goes away, corruption, an unsendable buffer, or
// `stop` becomes true (then returns !ok after the messages in flight are
// settled or after ack_timeout).
OutboundResult run_outbound(sluice::transport::Consumer& consumer, const Connection& connection,
                            const OutboundOptions& options, const std::atomic<bool>& stop);

}  // namespace sluice::nats
