#include "pull_reader.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "sluice/nats/connection.hpp"

namespace sluice::nats {

namespace {

// How the server marks a reply that is not a stream message: a header-only
// message with a status line, which the client library presents as headers.
constexpr const char* kStatusHeader = "Status";
constexpr const char* kDescriptionHeader = "Description";

// The server's request ends this many milliseconds before the reader stops
// waiting for it, so that its replies are in by then.
constexpr std::chrono::milliseconds kServerMargin{10};

}  // namespace

PullReader::PullReader(natsConnection* connection, const std::string& stream,
                       const std::string& durable)
    : connection_(connection),
      next_subject_("$JS.API.CONSUMER.MSG.NEXT." + stream + "." + durable) {
  natsInbox* inbox = nullptr;
  natsStatus s = natsInbox_Create(&inbox);
  if (s == NATS_OK) {
    inbox_ = inbox;
    natsInbox_Destroy(inbox);
    s = natsConnection_SubscribeSync(&subscription_, connection_, inbox_.c_str());
  }
  if (s == NATS_OK) {
    // A bridge message is up to a server payload (1 MiB by default) and at
    // most a few hundred are asked for at once: no limit of the library's
    // own may drop replies (a dropped one would only come again after the
    // ack wait).
    s = natsSubscription_SetPendingLimits(subscription_, -1, -1);
  }
  if (s != NATS_OK) {
    natsSubscription_Destroy(subscription_);
    subscription_ = nullptr;
    throw BridgeError("cannot subscribe to an inbox for pull requests: " + describe(s));
  }
}

PullReader::~PullReader() {
  unsubscribe();
  natsSubscription_Destroy(subscription_);
}

void PullReader::unsubscribe() noexcept {
  if (subscription_ != nullptr && natsSubscription_IsValid(subscription_)) {
    (void)natsSubscription_Unsubscribe(subscription_);
  }
}

PullReader::Kind PullReader::classify(natsMsg* msg) {
  if (natsMsg_GetDataLength(msg) > 0) {
    return Kind::kUser;
  }
  const char* status = nullptr;
  if (natsMsgHeader_Get(msg, kStatusHeader, &status) != NATS_OK || status == nullptr) {
    return Kind::kUser;  // a stream message with headers only
  }
  const std::string_view code(status, std::min<std::size_t>(std::strlen(status), 3));
  if (code == "100") {
    return Kind::kIgnore;  // an idle heartbeat (not asked for)
  }
  if (code == "404" || code == "408") {
    return Kind::kEndOfRequest;  // no messages / the request expired
  }
  const char* description = nullptr;
  if (natsMsgHeader_Get(msg, kDescriptionHeader, &description) != NATS_OK) {
    description = nullptr;
  }
  error_ = "the server ended a pull request with status " + std::string(code) +
           (description != nullptr ? " (" + std::string(description) + ")" : std::string());
  if (code == "409" && description != nullptr &&
      std::string_view(description).find("Deleted") != std::string_view::npos) {
    return Kind::kConsumerGone;
  }
  if (code == "409" && description != nullptr &&
      std::string_view(description).find("Leadership") != std::string_view::npos) {
    return Kind::kEndOfRequest;  // the cluster moved the consumer: ask again
  }
  return Kind::kFailed;
}

PullOutcome PullReader::pull(int batch, std::chrono::milliseconds wait,
                             const std::function<void(natsMsg*)>& take) {
  error_.clear();
  int taken = 0;
  bool request_sent = false;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    natsMsg* msg = nullptr;
    std::int64_t timeout_ms = 0;
    if (request_sent) {
      timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       deadline - std::chrono::steady_clock::now())
                       .count();
      if (timeout_ms <= 0) {
        return taken > 0 ? PullOutcome::kMessages : PullOutcome::kNothing;
      }
    }
    natsStatus s =
        natsSubscription_NextMsg(&msg, subscription_, timeout_ms);  // 0: only what is queued
    if (s == NATS_TIMEOUT) {
      if (request_sent) {
        return taken > 0 ? PullOutcome::kMessages : PullOutcome::kNothing;
      }
      if (taken > 0) {
        // Late replies to an earlier request: credit changed, so the caller
        // works out the next batch.
        return PullOutcome::kMessages;
      }
      char body[96];
      const auto server_wait = std::max(wait - kServerMargin, std::chrono::milliseconds(1));
      const int length = std::snprintf(
          body, sizeof body, R"({"batch":%d,"expires":%lld})", std::max(batch, 1),
          static_cast<long long>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(server_wait).count()));
      s = natsConnection_PublishRequest(connection_, next_subject_.c_str(), inbox_.c_str(), body,
                                        length);
      if (s != NATS_OK) {
        error_ = "cannot send a pull request: " + describe(s);
        return PullOutcome::kFailed;
      }
      request_sent = true;
      continue;
    }
    if (s == NATS_NO_RESPONDERS) {
      error_ = "JetStream did not answer the pull request (no responders)";
      return taken > 0 ? PullOutcome::kMessages : PullOutcome::kFailed;
    }
    if (s != NATS_OK) {
      error_ = "reading pull replies failed: " + describe(s);
      return taken > 0 ? PullOutcome::kMessages : PullOutcome::kFailed;
    }
    switch (classify(msg)) {
      case Kind::kUser:
        take(msg);
        ++taken;
        if (request_sent && taken >= batch) {
          return PullOutcome::kMessages;
        }
        break;
      case Kind::kIgnore: natsMsg_Destroy(msg); break;
      case Kind::kEndOfRequest:
        natsMsg_Destroy(msg);
        // Before the request went out it belongs to an earlier one.
        if (request_sent) {
          return taken > 0 ? PullOutcome::kMessages : PullOutcome::kNothing;
        }
        break;
      case Kind::kFailed:
        natsMsg_Destroy(msg);
        if (request_sent) {
          return taken > 0 ? PullOutcome::kMessages : PullOutcome::kFailed;
        }
        error_.clear();  // an earlier request's complaint
        break;
      case Kind::kConsumerGone: natsMsg_Destroy(msg); return PullOutcome::kConsumerGone;
    }
  }
}

namespace {

natsStatus publish_to_reply(natsConnection* connection, natsMsg* msg, const char* body) {
  const char* reply = natsMsg_GetReply(msg);
  if (reply == nullptr || *reply == '\0') {
    return NATS_INVALID_ARG;
  }
  return natsConnection_PublishString(connection, reply, body);
}

}  // namespace

natsStatus acknowledge(natsConnection* connection, natsMsg* msg) {
  return publish_to_reply(connection, msg, "+ACK");
}

natsStatus hand_back(natsConnection* connection, natsMsg* msg) {
  return publish_to_reply(connection, msg, "-NAK");
}

natsStatus acknowledge_confirmed(natsConnection* connection, natsMsg* msg,
                                 std::chrono::milliseconds wait) {
  const char* reply = natsMsg_GetReply(msg);
  if (reply == nullptr || *reply == '\0') {
    return NATS_INVALID_ARG;
  }
  natsMsg* answer = nullptr;
  const natsStatus s =
      natsConnection_RequestString(&answer, connection, reply, "+ACK", wait.count());
  natsMsg_Destroy(answer);
  return s;
}

}  // namespace sluice::nats
