#include "sluice/nats/outbound.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include "sluice/nats/message_format.hpp"

namespace sluice::nats {

namespace st = sluice::transport;

namespace {

constexpr const char* kMsgIdHeader = "Nats-Msg-Id";
constexpr const char* kExpectedLastIdHeader = "Nats-Expected-Last-Msg-Id";

// What the library's acknowledgement thread reports for one message.
struct AckEvent {
  std::string id;
  bool stored = false;
  bool duplicate = false;
  std::string error;
  jsErrCode code = static_cast<jsErrCode>(0);
};

// Hands acknowledgements from the library's thread to the bridge's loop.
struct AckQueue {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<AckEvent> events;

  static void on_ack(jsCtx* /*js*/, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error,
                     void* closure) {
    auto* self = static_cast<AckQueue*>(closure);
    AckEvent event;
    const char* id = nullptr;
    if (msg != nullptr && natsMsgHeader_Get(msg, kMsgIdHeader, &id) == NATS_OK && id != nullptr) {
      event.id = id;
    }
    if (ack != nullptr) {
      event.stored = true;
      event.duplicate = ack->Duplicate;
    } else if (error != nullptr) {
      event.code = error->ErrCode;
      event.error = error->ErrText != nullptr ? error->ErrText : natsStatus_GetText(error->Err);
    }
    natsMsg_Destroy(msg);
    // Notified under the lock: once the loop has seen the event it may
    // destroy the queue, so nothing here may touch it after the unlock.
    const std::lock_guard<std::mutex> lock(self->mutex);
    self->events.push_back(std::move(event));
    self->changed.notify_one();
  }
};

enum class SlotState : std::uint8_t { kToSend, kInFlight, kAcked };

// One local buffer (or the end marker) on its way into the stream.
struct Slot {
  st::ReadableBuffer buffer;  // released when the slot leaves the window
  std::vector<std::byte> scratch;
  std::span<const std::byte> body;
  std::string id;
  std::uint64_t first = 0;
  std::uint64_t records = 0;
  bool end = false;
  SlotState state = SlotState::kToSend;
  std::chrono::steady_clock::time_point sent{};
  std::uint64_t stored_bytes = 0;  // what the stream keeps for it at most, once published
};

using Headers = std::vector<std::pair<const char*, std::string>>;

// What a file store keeps for a message, at most: its record's length,
// sequence, time and subject length (22 bytes), header length (4) and hash
// (8), the subject, the headers as sent ("NATS/1.0\r\n", "Key: Value\r\n"
// each, a closing "\r\n") and the body; plus a margin for other layouts.
std::uint64_t stored_bytes_at_most(const std::string& subject, const Headers& headers,
                                   std::size_t body_bytes) {
  constexpr std::uint64_t kRecordBytes = 22 + 4 + 8;
  constexpr std::uint64_t kMargin = 64;
  std::uint64_t header_bytes = 10 + 2;
  for (const auto& [key, value] : headers) {
    header_bytes += std::strlen(key) + 2 + value.size() + 2;
  }
  return kRecordBytes + subject.size() + header_bytes + body_bytes + kMargin;
}

class Outbound {
 public:
  Outbound(st::Consumer& consumer, const Connection& connection, const OutboundOptions& options)
      : consumer_(consumer), options_(options) {
    origin_ = origin_of(consumer.name(), consumer.mapping().subpartition(),
                        consumer.config().created_unix_ns);
    jsOptions_Init(&js_options_);
    // The library's own bound sits above ours, so it never stalls a publish.
    js_options_.PublishAsync.MaxPending = static_cast<std::int64_t>(options.max_in_flight) * 2 + 16;
    js_options_.PublishAsync.AckHandler = &AckQueue::on_ack;
    js_options_.PublishAsync.AckHandlerClosure = acks_;
    js_.emplace(connection, js_options_);
  }

  Outbound(const Outbound&) = delete;
  Outbound& operator=(const Outbound&) = delete;
  ~Outbound() = default;

  OutboundResult run(const std::atomic<bool>& stop) {
    bool input_open = true;
    for (;;) {
      take_events();
      release_acked_front();
      report_status(false);
      if (!input_open && window_.empty()) {
        return finish(result_.why.empty() && result_.end_published);
      }
      if (stop.load() && input_open) {
        input_open = false;
        fail("stopped");
      }
      if (!result_.why.empty()) {
        // No more input: what was received is still published, for a while.
        input_open = false;
        if (!settle_by_) {
          settle_by_ = std::chrono::steady_clock::now() + options_.ack_timeout * 2;
        }
        if (std::chrono::steady_clock::now() > *settle_by_) {
          return finish(false);  // unacknowledged buffers stay with the channel for a successor
        }
      }
      send_due();
      if (input_open && window_.size() < options_.max_in_flight) {
        input_open = receive_one(window_.empty() ? std::chrono::milliseconds(50)
                                                 : std::chrono::milliseconds(1));
        continue;
      }
      wait_for_events(std::chrono::milliseconds(20));
    }
  }

  // Returns false once the channel has nothing more to give.
  bool receive_one(std::chrono::milliseconds wait) {
    st::ReadableBuffer buffer;
    const st::Status status = consumer_.receive_for(buffer, wait);
    switch (status) {
      case st::Status::kOk: return accept(std::move(buffer));
      case st::Status::kTimeout:
      case st::Status::kWouldBlock: return true;
      case st::Status::kClosed: {
        // Everything was received: the end marker follows the last buffer.
        Slot end;
        end.id = end_message_id(origin_);
        end.end = true;
        window_.push_back(std::move(end));
        return false;
      }
      case st::Status::kPeerDied:
        fail("the channel's producer went away without closing its stream");
        return false;
      case st::Status::kCorrupt:
        fail("the channel is corrupt: " + consumer_.corruption());
        return false;
      default:
        fail(std::string("receiving failed: ") + std::string(st::to_string(status)));
        return false;
    }
  }

  bool accept(st::ReadableBuffer&& buffer) {
    if (buffer.open()) {
      fail(
          "the channel's producer publishes records in place (open buffers); sluice-bridge "
          "carries whole buffers only");
      return false;
    }
    Slot slot;
    BufferBody body;
    const std::string problem = body_from_buffer(buffer.data(), slot.scratch, body);
    if (!problem.empty()) {
      fail("buffer " + std::to_string(buffer.commit_sequence()) + ": " + problem);
      return false;
    }
    // The commit record is the producer's word: check it before it names a message.
    const std::uint64_t sequence = buffer.commit_sequence();
    const std::uint64_t through = buffer.records_through();
    if ((last_sequence_ && sequence <= *last_sequence_) || through < body.records ||
        (last_through_ && through - body.records < *last_through_)) {
      fail("the channel's commit record is inconsistent (sequence " + std::to_string(sequence) +
           ", records through " + std::to_string(through) + "): corrupt or hostile producer");
      return false;
    }
    if (!last_sequence_) {
      result_.first_sequence = sequence;
    }
    last_sequence_ = sequence;
    last_through_ = through;
    consumer_.count_records(body.records);  // the producer's delivery check reads this
    slot.body = body.body;
    slot.records = body.records;
    slot.first = through - body.records;
    slot.id = message_id(origin_, sequence);
    slot.buffer = std::move(buffer);
    window_.push_back(std::move(slot));
    return true;
  }

  void send_due() {
    const auto now = std::chrono::steady_clock::now();
    std::size_t in_flight = 0;
    for (std::size_t i = 0; i < window_.size(); ++i) {
      Slot& slot = window_[i];
      if (slot.state == SlotState::kInFlight && now - slot.sent > options_.ack_timeout * 2) {
        // The library's timeout should have answered: treat it as lost.
        slot.state = SlotState::kToSend;
        ++result_.refusals;
        probing_ = true;
      }
      if (slot.state == SlotState::kInFlight) {
        ++in_flight;
      }
      if (slot.state != SlotState::kToSend) {
        continue;
      }
      // After a refusal one message probes the stream, alone, until it is
      // taken; the rest of the window would only be refused too.
      if (now < retry_at_ || (probing_ && in_flight > 0)) {
        return;
      }
      // Expect the predecessor as the stream's last message while it is
      // unconfirmed, so that this one cannot overtake it.
      const Slot* before = i > 0 ? &window_[i - 1] : nullptr;
      const char* expected =
          before != nullptr && before->state != SlotState::kAcked ? before->id.c_str() : nullptr;
      const Headers headers = headers_of(slot, expected);
      const std::uint64_t stored =
          stored_bytes_at_most(options_.subject, headers, slot.body.size());
      if (!room_for(stored, now)) {
        return;  // later slots wait: they must not overtake this one
      }
      if (!publish(slot, headers)) {
        back_off();
        return;
      }
      slot.stored_bytes = stored;
      slot.state = SlotState::kInFlight;
      slot.sent = now;
      ++in_flight;
    }
  }

  Headers headers_of(const Slot& slot, const char* expected_last_id) const {
    Headers headers = {{kFormatHeader, kFormatVersion},
                       {kOriginHeader, origin_},
                       {kFirstHeader, std::to_string(slot.first)},
                       {kRecordsHeader, std::to_string(slot.records)}};
    if (slot.end) {
      headers.emplace_back(kEndHeader, "1");
    }
    headers.emplace_back(kMsgIdHeader, slot.id);
    if (expected_last_id != nullptr) {
      headers.emplace_back(kExpectedLastIdHeader, expected_last_id);
    }
    return headers;
  }

  // Whether a message the stream keeps in `bytes` may be published now
  // without the stream's stored bytes passing its bound. Counts it in if so.
  // The stream's figure is asked for only when what out knows (the last
  // figure plus everything published since) leaves no room: in's
  // acknowledgements, which make room, are not seen otherwise. While it
  // stays full the stream is asked again after a back-off.
  bool room_for(std::uint64_t bytes, std::chrono::steady_clock::time_point now) {
    if (options_.stream_bound_bytes <= 0) {
      return true;
    }
    const auto bound = static_cast<std::uint64_t>(options_.stream_bound_bytes);
    if (stream_figure_known_ && stream_bytes_at_most_ + bytes <= bound) {
      stream_bytes_at_most_ += bytes;
      return true;
    }
    if (now < next_look_) {
      return false;
    }
    const std::optional<std::uint64_t> stored = stream_stored_bytes();
    if (!stored) {
      next_look_ = now + options_.retry_max;
      return false;
    }
    // A message in flight may or may not be in the figure: counted as not.
    std::uint64_t in_flight = 0;
    for (const Slot& slot : window_) {
      in_flight += slot.state == SlotState::kInFlight ? slot.stored_bytes : 0;
    }
    stream_bytes_at_most_ = *stored + in_flight;
    stream_figure_known_ = true;
    // An empty stream takes any message the server takes: out never waits
    // for room that cannot come.
    if (stream_bytes_at_most_ + bytes <= bound || stream_bytes_at_most_ == 0) {
      stream_bytes_at_most_ += bytes;
      if (waiting_for_room_) {
        waiting_for_room_ = false;
        look_backoff_ = {};
      }
      return true;
    }
    if (!waiting_for_room_) {
      waiting_for_room_ = true;
      ++result_.held_for_room;
      if (result_.held_for_room == 1 || now - last_room_log_ > std::chrono::seconds(10)) {
        options_.log("stream " + options_.stream + " is at its bound (" +
                     std::to_string(stream_bytes_at_most_) + " of " + std::to_string(bound) +
                     " bytes stored or in flight); holding the channel's buffers until there "
                     "is room (" +
                     std::to_string(result_.held_for_room) + " times so far)");
        last_room_log_ = now;
      }
    }
    look_backoff_ = look_backoff_.count() == 0 ? options_.retry_first
                                               : std::min(look_backoff_ * 2, options_.retry_max);
    next_look_ = now + look_backoff_;
    return false;
  }

  // The bytes the stream stores now, or nothing (logged) if it does not say.
  std::optional<std::uint64_t> stream_stored_bytes() {
    jsOptions look;
    jsOptions_Init(&look);
    look.Wait = std::min<std::int64_t>(options_.ack_timeout.count(), 1000);
    jsStreamInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s = js_GetStreamInfo(&info, js_->get(), options_.stream.c_str(), &look, &code);
    if (s != NATS_OK || info == nullptr) {
      if (!stream_look_failing_) {
        options_.log("cannot read the size of stream " + options_.stream + ": " +
                     describe(s, code) + "; retrying");
        stream_look_failing_ = true;
      }
      return std::nullopt;
    }
    stream_look_failing_ = false;
    const std::uint64_t bytes = info->State.Bytes;
    jsStreamInfo_Destroy(info);
    return bytes;
  }

  bool publish(const Slot& slot, const Headers& headers) {
    natsMsg* msg = nullptr;
    natsStatus s = natsMsg_Create(&msg, options_.subject.c_str(), nullptr,
                                  reinterpret_cast<const char*>(slot.body.data()),
                                  static_cast<int>(slot.body.size()));
    for (const auto& [key, value] : headers) {
      if (s == NATS_OK) {
        s = natsMsgHeader_Set(msg, key, value.c_str());
      }
    }
    if (s == NATS_OK) {
      jsPubOptions publish_options;
      jsPubOptions_Init(&publish_options);
      publish_options.MaxWait = options_.ack_timeout.count();
      s = js_PublishMsgAsync(js_->get(), &msg, &publish_options);
    }
    natsMsg_Destroy(msg);  // no effect once the library took it
    if (s != NATS_OK && !publish_failing_) {
      options_.log("publishing to " + options_.subject + " failed: " + describe(s) + "; retrying");
      publish_failing_ = true;
    }
    return s == NATS_OK;
  }

  void take_events() {
    std::vector<AckEvent> events;
    {
      const std::lock_guard<std::mutex> lock(acks_->mutex);
      events.swap(acks_->events);
    }
    for (AckEvent& event : events) {
      Slot* slot = find(event.id);
      if (slot == nullptr || slot->state != SlotState::kInFlight) {
        continue;  // an answer to an earlier attempt of a slot already settled
      }
      if (event.stored) {
        slot->state = SlotState::kAcked;
        result_.duplicates += event.duplicate ? 1 : 0;
        if (refused_in_a_row_ > 0) {
          options_.log("stream accepts messages again after " + std::to_string(refused_in_a_row_) +
                       " refusals");
        }
        refused_in_a_row_ = 0;
        probing_ = false;
        backoff_ = {};
        publish_failing_ = false;
        continue;
      }
      slot->state = SlotState::kToSend;
      ++result_.refusals;
      // A message refused only because its predecessor was is not news, and
      // does not lengthen the back-off.
      if (event.code == JSStreamWrongLastMsgIDErr) {
        continue;
      }
      if (refused_in_a_row_++ == 0) {
        options_.log("stream refused a message (" + event.error + "); holding the channel's " +
                     "buffers and retrying");
      }
      probing_ = true;
      back_off();
    }
  }

  void back_off() {
    backoff_ =
        backoff_.count() == 0 ? options_.retry_first : std::min(backoff_ * 2, options_.retry_max);
    retry_at_ = std::chrono::steady_clock::now() + backoff_;
  }

  Slot* find(const std::string& id) {
    for (Slot& slot : window_) {
      if (slot.id == id) {
        return &slot;
      }
    }
    return nullptr;
  }

  void release_acked_front() {
    while (!window_.empty() && window_.front().state == SlotState::kAcked) {
      Slot& slot = window_.front();
      if (slot.end) {
        result_.end_published = true;
      } else {
        ++result_.buffers;
        result_.records += slot.records;
        result_.bytes += slot.body.size();
      }
      window_.pop_front();  // the buffer goes back to the local producer
    }
  }

  void wait_for_events(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(acks_->mutex);
    acks_->changed.wait_for(lock, timeout, [this] { return !acks_->events.empty(); });
  }

  void fail(const std::string& why) {
    if (result_.why.empty()) {
      result_.why = why;
    }
  }

  void report_status(bool now) {
    if (!options_.on_status) {
      return;
    }
    const auto time = std::chrono::steady_clock::now();
    if (!now && time < next_status_) {
      return;
    }
    next_status_ = time + std::chrono::milliseconds(200);
    OutboundStatus status;
    status.acknowledged_messages = result_.buffers;
    status.acknowledged_records = result_.records;
    status.pending_messages = window_.size();
    status.refusals = result_.refusals;
    status.stream_full = probing_ || waiting_for_room_;
    status.held_for_room = result_.held_for_room;
    options_.on_status(status);
  }

  OutboundResult finish(bool ok) {
    result_.ok = ok;
    report_status(true);
    // The library must not call back into a queue that is gone: take back
    // what is still pending (its acknowledgements are then dropped).
    // (Only after a publish: libnats 3.4 crashes on a context that never published.)
    const bool in_flight = std::any_of(window_.begin(), window_.end(), [](const Slot& slot) {
      return slot.state == SlotState::kInFlight;
    });
    natsMsgList pending{};
    if (in_flight && js_PublishAsyncGetPendingList(&pending, js_->get()) == NATS_OK) {
      natsMsgList_Destroy(&pending);
    }
    js_.reset();
    if (!in_flight) {
      delete acks_;  // every answer came: the library calls back no more
    }
    acks_ = nullptr;
    return result_;
  }

  st::Consumer& consumer_;
  const OutboundOptions& options_;
  std::string origin_;
  jsOptions js_options_{};
  // Heap-allocated: given up (left allocated) when messages are still in
  // flight at the end, since the library may still answer them.
  AckQueue* acks_ = new AckQueue;
  std::optional<JetStream> js_;
  std::deque<Slot> window_;
  std::optional<std::uint64_t> last_sequence_;
  std::optional<std::uint64_t> last_through_;
  std::optional<std::chrono::steady_clock::time_point> settle_by_;
  std::chrono::milliseconds backoff_{};
  std::chrono::steady_clock::time_point retry_at_{};
  std::uint64_t refused_in_a_row_ = 0;
  bool publish_failing_ = false;
  bool probing_ = false;
  // The stream's bound, kept by out (OutboundOptions::stream_bound_bytes):
  // the stored bytes it last read plus what it published since, which
  // overstates the stream (in removes messages, and one published before the
  // figure is counted twice) until the next look.
  std::uint64_t stream_bytes_at_most_ = 0;
  bool stream_figure_known_ = false;
  bool waiting_for_room_ = false;
  bool stream_look_failing_ = false;
  std::chrono::milliseconds look_backoff_{};
  std::chrono::steady_clock::time_point next_look_{};
  std::chrono::steady_clock::time_point last_room_log_{};
  std::chrono::steady_clock::time_point
      next_status_{};  // the last answer was a refusal: one message at a time
  OutboundResult result_;
};

}  // namespace

OutboundResult run_outbound(st::Consumer& consumer, const Connection& connection,
                            const OutboundOptions& options, const std::atomic<bool>& stop) {
  Outbound outbound(consumer, connection, options);
  return outbound.run(stop);
}

}  // namespace sluice::nats
