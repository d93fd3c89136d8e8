#pragma once

// Reads a durable JetStream pull consumer through pull requests of its own
// on a plain inbox subscription, and acknowledges by publishing to each
// message's reply subject.
//
// Why not the client library's fetch: libnats 3.4 (Debian 12) writes past the
// message array of natsSubscription_Fetch/FetchRequest when replies to an
// earlier request are still queued as a fetch starts (it lowers its batch by
// what it took and then loops until the count equals the lowered batch). Such
// late replies are ordinary across a delayed or cut link. Here they are
// simply the first messages of the next round.

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace sluice::nats {

enum class PullOutcome : std::uint8_t {
  kMessages,      // at least one message was handed over
  kNothing,       // the request ended (or timed out) with no message
  kFailed,        // the request could not be made or the server refused it: `error` says why
  kConsumerGone,  // the server says the consumer was deleted: create it again
};

class PullReader {
 public:
  // Subscribes to a new inbox of `connection`; requests go to
  // $JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>. Throws BridgeError on failure.
  PullReader(natsConnection* connection, const std::string& stream, const std::string& durable);
  PullReader(const PullReader&) = delete;
  PullReader& operator=(const PullReader&) = delete;
  // Messages taken from it stay valid: they only name the subscription.
  ~PullReader();

  // Stops delivery to this reader (its queued messages are dropped): used
  // when the durable it reads is replaced.
  void unsubscribe() noexcept;

  // Hands every message already queued to `take` (ownership passes); if there
  // were none, asks for up to `batch` messages and hands over what comes
  // within `wait` (the server ends the request 10 ms earlier, so that its
  // replies are normally in before this gives up; any that come later are
  // handed over by the next call).
  PullOutcome pull(int batch, std::chrono::milliseconds wait,
                   const std::function<void(natsMsg*)>& take);

  // Why the last call returned kFailed or kConsumerGone.
  [[nodiscard]] const std::string& error() const noexcept { return error_; }

 private:
  enum class Kind : std::uint8_t { kUser, kEndOfRequest, kIgnore, kFailed, kConsumerGone };
  Kind classify(natsMsg* msg);

  natsConnection* connection_;
  natsSubscription* subscription_ = nullptr;
  std::string inbox_;
  std::string next_subject_;
  std::string error_;
};

// Acknowledges (or hands back) a message read through a PullReader: publishes
// to its reply subject. Fire and forget: a lost acknowledgement only means a
// redelivery.
natsStatus acknowledge(natsConnection* connection, natsMsg* msg);
natsStatus hand_back(natsConnection* connection, natsMsg* msg);
// Acknowledges and waits for the server's confirmation.
natsStatus acknowledge_confirmed(natsConnection* connection, natsMsg* msg,
                                 std::chrono::milliseconds wait);

}  // namespace sluice::nats
