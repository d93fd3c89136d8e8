// Rows (a) nats-per-record and (b) jetstream-raw: the NATS C client on its
// own, publishing asynchronously into a fresh file-backed stream while a
// pull consumer drains it. Producer and consumer are forked processes
// (bench/peers' harness); each starts the client library itself.

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "../peers/harness.hpp"
#include "rows.hpp"

namespace bridge_bench {

namespace {

namespace pattern = sluice::transport::pattern;

[[noreturn]] void fail_nats(const std::string& what, natsStatus status,
                            jsErrCode code = static_cast<jsErrCode>(0)) {
  std::string text = what + ": " + natsStatus_GetText(status);
  if (code != 0) {
    text += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
  }
  if (const char* last = nats_GetLastError(nullptr); last != nullptr && *last != '\0') {
    text += std::string(" [") + last + "]";
  }
  cmp::fail(text);
}

// A connection and its JetStream context, closed in order; the library is
// opened here (in the child) and closed at the end.
class Client {
 public:
  Client(const std::string& url, std::int64_t max_pending,
         std::atomic<std::uint64_t>* publish_errors = nullptr) {
    if (natsStatus s = nats_Open(-1); s != NATS_OK) {
      fail_nats("nats_Open", s);
    }
    if (natsStatus s = natsConnection_ConnectTo(&connection_, url.c_str()); s != NATS_OK) {
      fail_nats("connect to " + url, s);
    }
    jsOptions options;
    jsOptions_Init(&options);
    options.Wait = 30000;
    options.PublishAsync.MaxPending = max_pending;
    options.PublishAsync.StallWait = 30000;
    if (publish_errors != nullptr) {
      options.PublishAsync.ErrHandler = [](jsCtx*, jsPubAckErr*, void* closure) {
        static_cast<std::atomic<std::uint64_t>*>(closure)->fetch_add(1);
      };
      options.PublishAsync.ErrHandlerClosure = publish_errors;
    }
    if (natsStatus s = natsConnection_JetStream(&js_, connection_, &options); s != NATS_OK) {
      fail_nats("JetStream context", s);
    }
  }
  ~Client() {
    jsCtx_Destroy(js_);
    natsConnection_Destroy(connection_);
    nats_Close();
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  [[nodiscard]] jsCtx* js() const { return js_; }

 private:
  natsConnection* connection_ = nullptr;
  jsCtx* js_ = nullptr;
};

std::string stream_name(const RowWork& work) {
  return "BENCH_" + work.tag;
}
std::string subject_of(const RowWork& work) {
  return "bench." + work.tag;
}

// Both sides add the stream (an identical configuration is accepted twice),
// so neither waits for the other. File storage: the durable setting.
void add_stream(jsCtx* js, const RowWork& work) {
  const std::string name = stream_name(work);
  const std::string subject = subject_of(work);
  const char* subjects[] = {subject.c_str()};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = name.c_str();
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.Storage = js_FileStorage;
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  if (natsStatus s = js_AddStream(&info, js, &config, nullptr, &code); s != NATS_OK) {
    fail_nats("add stream " + name, s, code);
  }
  jsStreamInfo_Destroy(info);
}

std::size_t records_per_message(const RowWork& work, bool batched) {
  return batched ? std::max<std::size_t>(1, work.batch_bytes / work.size) : 1;
}

void produce(cmp::Link& link, const RowWork& work, bool batched) {
  const std::size_t per_message = records_per_message(work, batched);
  std::atomic<std::uint64_t> errors{0};
  Client client(work.nats_url, max_pending(per_message * work.size), &errors);
  add_stream(client.js(), work);
  const std::string subject = subject_of(work);
  std::vector<std::byte> message(per_message * work.size);
  link.ready();
  std::uint64_t next = 0;
  while (next < work.records) {
    const std::size_t count =
        static_cast<std::size_t>(std::min<std::uint64_t>(per_message, work.records - next));
    for (std::size_t i = 0; i < count; ++i) {
      pattern::fill(std::span(message.data() + i * work.size, work.size), next + i);
    }
    if (natsStatus s = js_PublishAsync(client.js(), subject.c_str(), message.data(),
                                       static_cast<int>(count * work.size), nullptr);
        s != NATS_OK) {
      fail_nats("publish", s);
    }
    next += count;
  }
  jsPubOptions wait;
  jsPubOptions_Init(&wait);
  wait.MaxWait = static_cast<std::int64_t>(work.timeout_s) * 1000;
  if (natsStatus s = js_PublishAsyncComplete(client.js(), &wait); s != NATS_OK) {
    fail_nats("waiting for the publish acknowledgements", s);
  }
  if (errors.load() != 0) {
    cmp::fail(std::to_string(errors.load()) + " publishes failed");
  }
  link.done();
  link.wait_end();
}

void consume(cmp::Link& link, const RowWork& work, bool batched) {
  const std::size_t per_message = records_per_message(work, batched);
  Client client(work.nats_url, 16);
  add_stream(client.js(), work);
  const std::string name = stream_name(work);
  const std::string subject = subject_of(work);
  jsSubOptions options;
  jsSubOptions_Init(&options);
  options.Stream = name.c_str();
  options.Config.AckPolicy = js_AckAll;  // one acknowledgement per fetched batch
  options.Config.MaxAckPending = 1 << 20;
  natsSubscription* subscription = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  if (natsStatus s = js_PullSubscribe(&subscription, client.js(), subject.c_str(), "drain", nullptr,
                                      &options, &code);
      s != NATS_OK) {
    fail_nats("pull subscribe", s, code);
  }
  // About 4 MiB a fetch.
  const int batch = static_cast<int>(
      std::clamp<std::size_t>((std::size_t{4} << 20) / (per_message * work.size), 1, 4096));
  link.ready();
  std::uint64_t expected = 0;
  auto last_progress = cmp::Clock::now();
  while (expected < work.records) {
    natsMsgList list{};
    const natsStatus s = natsSubscription_Fetch(&list, subscription, batch, 1000, &code);
    if (s == NATS_TIMEOUT) {
      if (cmp::Clock::now() - last_progress > std::chrono::seconds(work.timeout_s)) {
        cmp::fail("no messages for " + std::to_string(work.timeout_s) + " s after record " +
                  std::to_string(expected));
      }
      continue;
    }
    if (s != NATS_OK) {
      fail_nats("fetch", s, code);
    }
    last_progress = cmp::Clock::now();
    for (int m = 0; m < list.Count; ++m) {
      const auto* data = reinterpret_cast<const std::byte*>(natsMsg_GetData(list.Msgs[m]));
      const auto length = static_cast<std::size_t>(natsMsg_GetDataLength(list.Msgs[m]));
      if (length % work.size != 0 || length == 0 || length > per_message * work.size) {
        cmp::fail("a message of " + std::to_string(length) + " bytes for " +
                  std::to_string(work.size) + "-byte records");
      }
      for (std::size_t at = 0; at < length; at += work.size) {
        if (expected >= work.records) {
          cmp::fail("more records than were sent");
        }
        cmp::check_record(std::span(data + at, work.size), work.size, expected);
        ++expected;
      }
    }
    if (list.Count > 0) {
      (void)natsMsg_Ack(list.Msgs[list.Count - 1], nullptr);
    }
    natsMsgList_Destroy(&list);
  }
  link.done();
  link.report().extra = expected;
  natsSubscription_Destroy(subscription);
  // Teardown, outside the timing: the stream goes with the run.
  (void)js_DeleteStream(client.js(), name.c_str(), nullptr, nullptr);
}

}  // namespace

RowResult run_jetstream(const RowWork& work, bool batched) {
  RowResult result;
  const cmp::ChildSpec producer{[&](cmp::Link& link) { produce(link, work, batched); }, -1};
  const cmp::ChildSpec consumer{[&](cmp::Link& link) { consume(link, work, batched); }, -1};
  const cmp::PairOutcome outcome = cmp::run_pair(
      producer, consumer, std::chrono::seconds(work.timeout_s), [](int) {}, [] {});
  if (!outcome.problem.empty()) {
    result.problem = outcome.problem;
    return result;
  }
  result.seconds = static_cast<double>(outcome.b.t_done_ns - outcome.a.t_go_ns) * 1e-9;
  result.received = outcome.b.extra;
  result.ok = result.seconds > 0 && result.received == work.records;
  if (!result.ok) {
    result.problem = "received " + std::to_string(result.received) + " of " +
                     std::to_string(work.records) + " records";
  }
  return result;
}

}  // namespace bridge_bench
