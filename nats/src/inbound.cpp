#include "sluice/nats/inbound.hpp"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "pull_reader.hpp"
#include "sluice/nats/local_release.hpp"
#include "sluice/nats/message_format.hpp"
#include "sluice/nats/resume_state.hpp"
#include "sluice/shm/role_lock.hpp"
#include "sluice/transport/channel_layout.hpp"
#include "sluice/transport/record_frame.hpp"

namespace sluice::nats {

namespace st = sluice::transport;
namespace frame = sluice::transport::frame;

std::string default_durable(const std::string& channel) {
  std::string name = "sluice-" + channel;
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

std::string default_state_path(const std::string& channel) {
  // Hidden, so that tools listing channels in /dev/shm pass it by.
  return "/dev/shm/.sluice-bridge-in." + channel;
}

namespace {

// How many origins the bridge remembers positions for (to skip what it
// already wrote), so that a stream of many origins cannot grow it without end.
constexpr std::size_t kMaxOrigins = 1024;

struct PendingAck {
  natsMsg* msg;
  std::uint64_t commits_needed;  // released local commits before it may be acknowledged
};

class Inbound {
 public:
  Inbound(st::Producer& producer, const Connection& connection, const InboundOptions& options)
      : producer_(producer),
        connection_(connection),
        options_(options),
        tracker_(producer),
        state_(options.state_path) {
    jsOptions_Init(&js_options_);
    js_.emplace(connection, js_options_);
    const StreamFacts facts = wait_for_stream(js_->get(), options.stream, options.wait_for_stream);
    subject_ = options.subject.empty() ? facts.first_subject : options.subject;
    work_queue_ = facts.work_queue;
    if (subject_.empty()) {
      throw BridgeError("stream " + options.stream + " has no subject to read; give --subject");
    }
    capacity_ = producer.config().buffer_bytes;
    staged_.reserve(capacity_);
    buffer_count_ = producer.config().buffer_count;
    recover_position();
    subscribe(options_.take_over);
  }

  Inbound(const Inbound&) = delete;
  Inbound& operator=(const Inbound&) = delete;

  ~Inbound() {
    for (PendingAck& pending : pending_) {
      natsMsg_Destroy(pending.msg);
    }
    natsMsg_Destroy(end_msg_);
    // The durable consumer stays on the server; the readers go after the
    // messages taken from them.
  }

  InboundResult run(const std::atomic<bool>& stop) {
    while (result_.why.empty()) {
      settle_acks();
      if (stop.load()) {
        fail("stopped");
        break;
      }
      if (end_msg_ != nullptr && !result_.end_seen) {
        result_.end_seen = nothing_else_outstanding();
      }
      if (result_.end_seen ||
          (options_.max_records != 0 && result_.records >= options_.max_records)) {
        return finish();
      }
      const std::uint64_t outstanding = tracker_.outstanding();
      if (outstanding >= buffer_count_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polled: no one wakes us
        continue;
      }
      fetch(static_cast<int>(std::min<std::uint64_t>(buffer_count_ - outstanding, 256)), stop);
    }
    result_.ok = false;
    report_status(true);
    return result_;
  }

 private:
  void recover_position() {
    const std::optional<ResumeState::Record> saved = state_.load();
    if (!saved || !producer_.resumed_stream()) {
      return;
    }
    const std::string origin(saved->origin, saved->origin_length);
    const std::uint64_t local = producer_.records_committed();
    // The commit noted last either happened (the channel holds its records)
    // or not; nothing in between.
    positions_[origin] =
        local >= saved->local_after ? saved->position_after : saved->position_before;
    options_.log("resuming " + origin + " after record " + std::to_string(positions_[origin]));
  }

  // take_over: a durable with unacknowledged messages is recreated from its
  // ack floor, so that they come again now and in order.
  void subscribe(bool take_over) {
    jsConsumerInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus found = js_GetConsumerInfo(&info, js_->get(), options_.stream.c_str(),
                                          options_.durable.c_str(), nullptr, &code);
    std::optional<std::uint64_t> restart_at;
    if (found == NATS_OK && take_over && info->NumAckPending > 0) {
      // Its dead reader's messages would come back only after their ack
      // wait, behind later ones; recreated from the ack floor, the durable
      // delivers them again now and in order (those acknowledged out of
      // order come again too, and are recognised as written).
      restart_at = info->AckFloor.Stream + 1;
      options_.log("taking over durable consumer " + options_.durable + ": " +
                   std::to_string(info->NumAckPending) +
                   " unacknowledged messages delivered again from stream sequence " +
                   std::to_string(*restart_at));
      code = static_cast<jsErrCode>(0);
      const natsStatus deleted = js_DeleteConsumer(js_->get(), options_.stream.c_str(),
                                                   options_.durable.c_str(), nullptr, &code);
      if (deleted != NATS_OK) {
        jsConsumerInfo_Destroy(info);
        throw BridgeError("cannot recreate durable consumer " + options_.durable + ": " +
                          describe(deleted, code));
      }
      found = NATS_NOT_FOUND;
    } else if (found == NATS_OK && info->NumAckPending > 0) {
      options_.log("durable consumer " + options_.durable + " has " +
                   std::to_string(info->NumAckPending) +
                   " messages delivered to an earlier reader and not acknowledged: they come "
                   "again after the ack wait, behind newer ones (after a crash, --resume takes "
                   "the durable over in order)");
    }
    jsConsumerInfo_Destroy(info);
    if (found == NATS_OK) {
      // The durable consumer remembers where it stood: read it as it is.
      if (options_.from_sequence || options_.from_time_ns) {
        options_.log("durable consumer " + options_.durable + " exists and continues where it " +
                     "stood; --from-seq/--from-time apply to a new one (give another --durable)");
      }
    } else {
      create_durable(restart_at);
    }
    reader_ = std::make_unique<PullReader>(connection_.get(), options_.stream, options_.durable);
    fresh_durable_ = found != NATS_OK;
    last_delivery_ = 0;
  }

  // A durable pull consumer of the stream's subject, explicit acks.
  void create_durable(std::optional<std::uint64_t> restart_at) {
    jsConsumerConfig config;
    jsConsumerConfig_Init(&config);
    config.Durable = options_.durable.c_str();
    config.FilterSubject = subject_.c_str();
    config.AckPolicy = js_AckExplicit;
    config.AckWait =
        std::chrono::duration_cast<std::chrono::nanoseconds>(options_.ack_wait).count();
    if (restart_at) {
      // A work queue holds only unacknowledged messages: all of them, from
      // its start (the only policy it allows).
      if (!work_queue_) {
        config.DeliverPolicy = js_DeliverByStartSequence;
        config.OptStartSeq = *restart_at;
      }
    } else if (options_.from_sequence) {
      config.DeliverPolicy = js_DeliverByStartSequence;
      config.OptStartSeq = *options_.from_sequence;
    } else if (options_.from_time_ns) {
      config.DeliverPolicy = js_DeliverByStartTime;
      config.OptStartTime = *options_.from_time_ns;
    }
    jsConsumerInfo* created = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s =
        js_AddConsumer(&created, js_->get(), options_.stream.c_str(), &config, nullptr, &code);
    jsConsumerInfo_Destroy(created);
    if (s != NATS_OK) {
      throw BridgeError("cannot create the pull consumer " + options_.durable + " on stream " +
                        options_.stream + ": " + describe(s, code));
    }
  }

  void fetch(int batch, const std::atomic<bool>& stop) {
    if (resubscribe_ && std::chrono::steady_clock::now() < next_take_over_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    if (resubscribe_) {
      // Messages went missing in flight (a gap in an origin's positions):
      // their redelivery would wait for the ack wait and come behind later
      // ones, so the durable starts again from its ack floor instead.
      if (reader_ != nullptr) {
        // Kept (unsubscribed) while messages taken from it are held: they
        // name its subscription.
        reader_->unsubscribe();
        retired_.push_back(std::move(reader_));
      }
      try {
        subscribe(true);
        resubscribe_ = false;
      } catch (const BridgeError& error) {
        // Right after a reconnection the cluster may still be choosing the
        // consumer's leader: tried again until it answers.
        options_.log(std::string(error.what()) + "; trying again");
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        return;
      }
    }
    // A pull request made while disconnected waits in the client library's
    // reconnect buffer and goes out on reconnection, long after it was given
    // up on: its messages would then come beyond the credit. So none is made.
    if (natsConnection_Status(connection_.get()) != NATS_CONN_STATUS_CONNECTED) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      return;
    }
    // Shorter while acknowledgements wait on local releases, so they go out
    // soon.
    const auto wait = pending_.empty() ? options_.fetch_wait : std::chrono::milliseconds(25);
    const PullOutcome outcome = reader_->pull(batch, wait, [&](natsMsg* msg) {
      if (resubscribe_) {
        natsMsg_Destroy(msg);  // comes again from the recreated durable
        return;
      }
      const bool stopped = !result_.why.empty() || result_.end_seen || stop.load() ||
                           (options_.max_records != 0 && result_.records >= options_.max_records);
      if (stopped) {
        // Handed back at once, so that the next reader gets it before newer ones.
        (void)hand_back(connection_.get(), msg);
        natsMsg_Destroy(msg);
        return;
      }
      take(msg);
    });
    if (outcome == PullOutcome::kConsumerGone) {
      options_.log(reader_->error() + "; creating durable consumer " + options_.durable + " again");
      resubscribe_ = true;
      return;
    }
    if (outcome == PullOutcome::kFailed) {
      if (!fetch_failing_) {
        options_.log("fetching from stream " + options_.stream + " failed: " + reader_->error() +
                     "; retrying");
        fetch_failing_ = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      return;
    }
    fetch_failing_ = false;
  }

  // Whether a delivery before `msg` never reached this reader: the durable
  // numbers its deliveries (redeliveries too) 1, 2, 3, ..., and one that came
  // after its fetch gave up is dropped by the client library (or was lost in
  // a cut). Its redelivery would wait for the ack wait, behind later ones.
  bool missed_a_delivery(natsMsg* msg) {
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) != NATS_OK || meta == nullptr) {
      return false;
    }
    const std::uint64_t delivery = meta->Sequence.Consumer;
    jsMsgMetaData_Destroy(meta);
    const std::uint64_t expected = last_delivery_ != 0 ? last_delivery_ + 1
                                   : fresh_durable_    ? 1
                                                       : 0;
    last_delivery_ = std::max(last_delivery_, delivery);
    return expected != 0 && delivery > expected;
  }

  // Takes ownership of `msg`.
  void take(natsMsg* msg) {
    if (missed_a_delivery(msg)) {
      options_.log("a delivery of stream " + options_.stream + " before message " +
                   stream_sequence(msg) +
                   " never arrived; reading the stream again from its first unacknowledged "
                   "message");
      resubscribe_ = true;
      natsMsg_Destroy(msg);
      return;
    }
    const char* values[5] = {};
    const char* names[5] = {kFormatHeader, kOriginHeader, kFirstHeader, kRecordsHeader, kEndHeader};
    for (int i = 0; i < 5; ++i) {
      if (natsMsgHeader_Get(msg, names[i], &values[i]) != NATS_OK) {
        values[i] = nullptr;
      }
    }
    MessageHeaders headers;
    std::string problem =
        parse_headers(values[0], values[1], values[2], values[3], values[4], headers);
    const auto body = std::span<const std::byte>(
        reinterpret_cast<const std::byte*>(natsMsg_GetData(msg)),
        static_cast<std::size_t>(std::max(natsMsg_GetDataLength(msg), 0)));
    if (problem.empty()) {
      problem = check_body(body, headers.records);
    }
    if (!problem.empty()) {
      fail("message " + stream_sequence(msg) + " of stream " + options_.stream +
           " is not in sluice-bridge format " + kFormatVersion + ": " + problem);
      natsMsg_Destroy(msg);  // left unacknowledged: it stays in the stream
      return;
    }
    if (headers.end) {
      natsMsg_Destroy(end_msg_);  // an earlier copy, delivered again
      end_msg_ = msg;
      return;
    }
    ++result_.messages;
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK && meta != nullptr) {
      lag_ = meta->NumPending;
      jsMsgMetaData_Destroy(meta);
    }
    std::uint64_t skip = 0;
    const auto known = positions_.find(headers.origin);
    if (known != positions_.end() && headers.first > known->second) {
      const bool seen_before =
          gap_ && gap_->origin == headers.origin && gap_->position == known->second;
      if (gap_stays(headers.origin, known->second)) {
        // The stream holds an origin's messages in record order, so after a
        // take-over the missing ones would have come first: they are no
        // longer in the stream. Going on would lose them without a word.
        fail("records " + std::to_string(known->second) + " to " +
             std::to_string(headers.first - 1) + " of " + headers.origin +
             " are no longer in stream " + options_.stream + ": after " +
             std::to_string(gap_->take_overs) + " take-overs in " +
             std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::steady_clock::now() - gap_->since)
                                .count()) +
             " s its next message still starts at record " + std::to_string(headers.first) +
             " (acknowledged or removed before they were written here); stopping instead of "
             "going on without them");
        natsMsg_Destroy(msg);
        return;
      }
      // Records between were in messages lost in flight (a link cut): this
      // one must wait for them, or the stream's order breaks. Said once per
      // gap; a take-over that did not close it is followed by the next after
      // a growing pause (50 ms, doubling to 1 s), not at once.
      if (!seen_before) {
        options_.log("records " + std::to_string(known->second) + " to " +
                     std::to_string(headers.first - 1) + " of " + headers.origin +
                     " were lost in flight; reading the stream again from its first "
                     "unacknowledged message");
      } else {
        const std::uint64_t doublings = std::min<std::uint64_t>(gap_->take_overs - 2, 5);
        const auto pause =
            std::min(std::chrono::milliseconds(50 << doublings), std::chrono::milliseconds(1000));
        next_take_over_ = std::chrono::steady_clock::now() + pause;
      }
      --result_.messages;
      resubscribe_ = true;
      natsMsg_Destroy(msg);
      return;
    }
    if (known != positions_.end() && known->second > headers.first) {
      skip = std::min(known->second - headers.first, headers.records);
    }
    result_.skipped_records += skip;
    if (skip < headers.records && !write(headers, body, skip)) {
      natsMsg_Destroy(msg);
      return;
    }
    if (positions_.size() >= kMaxOrigins && positions_.count(headers.origin) == 0) {
      positions_.erase(positions_.begin());  // bounded, whatever a stream holds
    }
    std::uint64_t& position = positions_[headers.origin];
    position = std::max(position, headers.first + headers.records);
    pending_.push_back({msg, tracker_.committed_count()});
  }

  // Writes records [skip, records) of a checked body into local buffers,
  // each buffer as full as it gets, none shared with another message. Plain
  // records are copied as they are, runs in pieces that fit (a run is cut
  // where a buffer ends or where the skipped records end).
  bool write(const MessageHeaders& headers, std::span<const std::byte> body, std::uint64_t skip) {
    staged_.clear();
    std::uint64_t gathered = 0;
    std::uint64_t position = headers.first + skip;
    std::uint64_t passed = 0;  // records of the body before the current frame
    bool ok = true;
    const auto commit_staged = [&] {
      if (gathered > 0) {
        ok = commit(headers.origin, staged_, gathered, position);
        position += gathered;
        gathered = 0;
        staged_.clear();
      }
    };
    const auto append = [&](const std::byte* from, std::size_t size) {
      staged_.insert(staged_.end(), from, from + size);
    };
    const auto append_word = [&](std::uint32_t word) {
      std::byte bytes[frame::kHeaderBytes];
      frame::write_header(bytes, word);
      append(bytes, sizeof(bytes));
    };
    for_each_frame(body, [&](const BodyFrame& f) {
      const std::uint64_t skipped = passed < skip ? std::min(f.count, skip - passed) : 0;
      passed += f.count;
      std::uint64_t left = f.count - skipped;
      const std::byte* next = body.data() + f.records_at + skipped * f.length;
      while (ok && left > 0) {
        if (4 + f.length > capacity_) {
          fail("a record of " + std::to_string(f.length) +
               " bytes does not fit a local buffer of " + std::to_string(capacity_) +
               " bytes (--buffer-size)");
          ok = false;
          return;
        }
        const std::size_t room = capacity_ - staged_.size();
        const std::uint64_t in_run = f.run && room >= 8 + f.length
                                         ? std::min<std::uint64_t>(left, (room - 8) / f.length)
                                         : 0;
        if (in_run >= 2) {
          append_word(frame::kRun | static_cast<std::uint32_t>(f.length));
          append_word(static_cast<std::uint32_t>(in_run));
          append(next, in_run * f.length);
          next += in_run * f.length;
          left -= in_run;
          gathered += in_run;
        } else if (room >= 4 + f.length) {
          append_word(static_cast<std::uint32_t>(f.length));
          append(next, f.length);
          next += f.length;
          --left;
          ++gathered;
        } else {
          commit_staged();
        }
      }
    });
    if (ok) {
      commit_staged();
    }
    return ok;
  }

  bool commit(const std::string& origin, std::span<const std::byte> frames, std::uint64_t records,
              std::uint64_t first_position) {
    st::WritableBuffer buffer;
    for (;;) {
      const st::Status status = producer_.acquire_for(buffer, std::chrono::milliseconds(20));
      if (status == st::Status::kOk) {
        break;
      }
      if (status == st::Status::kTimeout || status == st::Status::kWouldBlock) {
        settle_acks();  // the local consumer is behind: acknowledge what it did take
        continue;
      }
      fail(status == st::Status::kPeerDied ? std::string("the local consumer went away")
                                           : "the local channel failed: " + producer_.corruption());
      return false;
    }
    tracker_.acquired(buffer.index());
    std::memcpy(buffer.data().data(), frames.data(), frames.size());
    const std::uint64_t local_before = producer_.records_committed();
    state_.save(origin, first_position, first_position + records, local_before,
                local_before + records);
    const std::uint32_t index = buffer.index();
    const st::Status status = producer_.commit(std::move(buffer), frames.size(), records);
    if (status != st::Status::kOk) {
      fail("committing to the local channel failed: " + std::string(st::to_string(status)));
      return false;
    }
    tracker_.committed(index);
    result_.records += records;
    return true;
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
    InboundStatus status;
    status.records = result_.records;
    status.acknowledged = result_.acknowledged;
    status.pending = pending_.size();
    status.lag = lag_;
    options_.on_status(status);
  }

  void settle_acks() {
    report_status(false);
    const std::uint64_t released = tracker_.released_prefix();
    while (!pending_.empty() && pending_.front().commits_needed <= released) {
      natsMsg* msg = pending_.front().msg;
      pending_.pop_front();
      // Fire and forget: a lost acknowledgement means a redelivery, which is skipped.
      (void)acknowledge(connection_.get(), msg);
      natsMsg_Destroy(msg);
      ++result_.acknowledged;
    }
  }

  // The stream (or --records) ended: close the local stream, wait until the
  // local consumer took everything, acknowledge it all.
  InboundResult finish() {
    producer_.close();
    bool consumer_seen = false;
    while (tracker_.outstanding() > 0 || !pending_.empty()) {
      settle_acks();
      if (tracker_.outstanding() == 0) {
        continue;
      }
      const bool alive =
          producer_.mapping().probe_role(st::Role::kConsumer) == sluice::shm::LockProbe::kHeld;
      consumer_seen = consumer_seen || alive;
      if (consumer_seen && !alive && !options_.wait_for_new_consumer) {
        // Looked at again after the death was seen: a consumer that released
        // everything and then left is not one that went away early.
        settle_acks();
        if (tracker_.outstanding() > 0) {
          fail("the local consumer went away before it took every record");
          return result_;
        }
        continue;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polled: no one wakes us
    }
    if (end_msg_ != nullptr) {
      const natsStatus s =
          acknowledge_confirmed(connection_.get(), end_msg_, std::chrono::milliseconds(5000));
      if (s != NATS_OK) {
        options_.log("acknowledging the end marker failed: " + describe(s) +
                     " (a later run sees it again)");
      }
    }
    (void)natsConnection_FlushTimeout(connection_.get(), 5000);
    result_.ok = true;
    report_status(true);
    return result_;
  }

  // Whether the durable consumer holds no message for us but the end marker
  // and those we hold: messages delivered to an earlier reader come back
  // only after their ack wait, and the end must not overtake them.
  bool nothing_else_outstanding() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_end_check_) {
      return false;
    }
    next_end_check_ = now + std::chrono::milliseconds(50);
    jsConsumerInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (js_GetConsumerInfo(&info, js_->get(), options_.stream.c_str(), options_.durable.c_str(),
                           nullptr, &code) != NATS_OK) {
      return false;
    }
    const std::int64_t others =
        info->NumAckPending - static_cast<std::int64_t>(pending_.size()) - 1;
    jsConsumerInfo_Destroy(info);
    if (!end_seen_at_) {
      end_seen_at_ = now;
    }
    // (Acknowledgements on their way count for a moment: not worth a line.)
    if (others > 0 && !end_wait_logged_ && now - *end_seen_at_ > std::chrono::seconds(1)) {
      options_.log("end marker seen; waiting for " + std::to_string(others) +
                   " earlier messages to be delivered again");
      end_wait_logged_ = true;
    }
    return others <= 0;
  }

  static std::string stream_sequence(natsMsg* msg) {
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) != NATS_OK || meta == nullptr) {
      return "?";
    }
    std::string text = "#" + std::to_string(meta->Sequence.Stream);
    jsMsgMetaData_Destroy(meta);
    return text;
  }

  // Whether the gap before `position` of `origin` has outlasted what can
  // bring its records back: several take-overs, over twice the ack wait (a
  // delivery that went to a reader no longer there comes again after one
  // ack wait at the latest).
  bool gap_stays(const std::string& origin, std::uint64_t position) {
    const auto now = std::chrono::steady_clock::now();
    if (!gap_ || gap_->origin != origin || gap_->position != position) {
      gap_ = Gap{origin, position, now, 0};
    }
    ++gap_->take_overs;
    return gap_->take_overs > kGapTakeOvers && now - gap_->since >= 2 * options_.ack_wait;
  }

  void fail(const std::string& why) {
    if (result_.why.empty()) {
      result_.why = why;
    }
  }

  st::Producer& producer_;
  const Connection& connection_;
  const InboundOptions& options_;
  ReleaseTracker tracker_;
  ResumeState state_;
  jsOptions js_options_{};
  std::optional<JetStream> js_;
  std::unique_ptr<PullReader> reader_;
  // Replaced after a gap; declared before pending_ so that they outlive the
  // messages taken from them.
  std::vector<std::unique_ptr<PullReader>> retired_;
  std::string subject_;
  bool work_queue_ = false;
  std::size_t capacity_ = 0;
  std::vector<std::byte> staged_;  // the frames of the next local buffer
  std::uint64_t buffer_count_ = 0;
  std::map<std::string, std::uint64_t> positions_;  // per origin: records written through
  std::deque<PendingAck> pending_;
  natsMsg* end_msg_ = nullptr;
  bool fetch_failing_ = false;
  bool resubscribe_ = false;
  // The gap the last take-over was for: an origin's next record that did not come.
  struct Gap {
    std::string origin;
    std::uint64_t position = 0;
    std::chrono::steady_clock::time_point since;
    std::uint64_t take_overs = 0;
  };
  static constexpr std::uint64_t kGapTakeOvers = 3;
  std::optional<Gap> gap_;
  std::chrono::steady_clock::time_point next_take_over_{};
  // The last delivery number seen from the durable (0: none yet), and whether
  // this reader created it (its deliveries then start at 1).
  std::uint64_t last_delivery_ = 0;
  bool fresh_durable_ = false;  // a gap was seen: recreate the durable before the next fetch
  bool end_wait_logged_ = false;
  std::uint64_t lag_ = 0;
  std::chrono::steady_clock::time_point next_status_{};
  std::optional<std::chrono::steady_clock::time_point> end_seen_at_;
  std::chrono::steady_clock::time_point next_end_check_{};
  InboundResult result_;
};

}  // namespace

InboundResult run_inbound(st::Producer& producer, const Connection& connection,
                          const InboundOptions& options, const std::atomic<bool>& stop) {
  Inbound inbound(producer, connection, options);
  return inbound.run(stop);
}

}  // namespace sluice::nats
