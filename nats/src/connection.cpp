#include "sluice/nats/connection.hpp"

#include "sluice/nats/message_format.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sluice::nats {

LogLine stderr_log(std::string program) {
  return [program = std::move(program)](const std::string& line) {
    // One write per line, so lines from the library's threads do not interleave.
    const std::string text = program + ": " + line + "\n";
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
  };
}

std::string describe(natsStatus status, jsErrCode js_code) {
  std::string text = natsStatus_GetText(status);
  if (js_code != 0) {
    text += " (JetStream error " + std::to_string(static_cast<int>(js_code)) + ")";
  }
  natsStatus ignored = NATS_OK;
  const char* last = nats_GetLastError(&ignored);
  if (last != nullptr && *last != '\0' && std::strstr(text.c_str(), last) == nullptr) {
    text += ": ";
    text += last;
  }
  return text;
}

struct Connection::State {
  natsConnection* connection = nullptr;
  std::string url;
  LogLine log;
  std::chrono::milliseconds reconnect_first{};
  std::chrono::milliseconds reconnect_max{};
  std::atomic<std::uint64_t> reconnects{0};
  std::atomic<bool> closing{false};
  // The library calls back on a thread of its own, also after
  // natsConnection_Destroy: the closed callback comes last, so this state
  // lives until it came.
  std::mutex mutex;
  std::condition_variable changed;
  bool closed = false;

  ~State() {
    closing.store(true);  // closing disconnects too: not worth a line
    if (connection != nullptr) {
      natsConnection_Close(connection);
      std::unique_lock<std::mutex> lock(mutex);
      changed.wait_for(lock, std::chrono::seconds(10), [this] { return closed; });
      lock.unlock();
      natsConnection_Destroy(connection);
    }
  }

  static void on_closed(natsConnection* /*nc*/, void* closure) {
    auto* self = static_cast<State*>(closure);
    // Notified under the lock: the waiter cannot destroy the state before
    // this call is done with it.
    const std::lock_guard<std::mutex> lock(self->mutex);
    self->closed = true;
    self->changed.notify_all();
  }
  static void on_disconnected(natsConnection* /*nc*/, void* closure) {
    auto* self = static_cast<State*>(closure);
    if (!self->closing.load()) {
      self->log("disconnected from " + self->url + "; reconnecting");
    }
  }
  static void on_reconnected(natsConnection* /*nc*/, void* closure) {
    auto* self = static_cast<State*>(closure);
    const std::uint64_t n = self->reconnects.fetch_add(1) + 1;
    self->log("reconnected to " + self->url + " (reconnect " + std::to_string(n) + ")");
  }
  // Doubling from reconnect_first, capped at reconnect_max.
  static std::int64_t reconnect_delay(natsConnection* /*nc*/, int attempts, void* closure) {
    const auto* self = static_cast<const State*>(closure);
    std::int64_t delay = self->reconnect_first.count();
    for (int i = 1; i < attempts && delay < self->reconnect_max.count(); ++i) {
      delay *= 2;
    }
    return std::min<std::int64_t>(delay, self->reconnect_max.count());
  }
};

Connection::Connection(std::unique_ptr<State> state) : state_(std::move(state)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

natsConnection* Connection::get() const noexcept {
  return state_->connection;
}
const std::string& Connection::url() const noexcept {
  return state_->url;
}
std::uint64_t Connection::reconnects() const noexcept {
  return state_->reconnects.load();
}

Connection Connection::connect(const ConnectOptions& options) {
  auto state = std::make_unique<State>();
  state->url = options.url;
  state->log = options.log ? options.log : stderr_log("sluice-bridge");
  state->reconnect_first = std::max(options.reconnect_first, std::chrono::milliseconds(1));
  state->reconnect_max = std::max(options.reconnect_max, state->reconnect_first);

  natsOptions* raw = nullptr;
  if (natsOptions_Create(&raw) != NATS_OK) {
    throw BridgeError("cannot allocate NATS options");
  }
  std::unique_ptr<natsOptions, void (*)(natsOptions*)> opts(raw, natsOptions_Destroy);
  const auto attempt_timeout = std::clamp(options.connect_timeout, std::chrono::milliseconds(100),
                                          std::chrono::milliseconds(5000));
  // A comma-separated list names the servers of a cluster: the client
  // library takes a list only through SetServers, and one URL through SetURL.
  std::vector<std::string> servers;
  for (std::size_t from = 0;;) {
    const std::size_t comma = options.url.find(',', from);
    servers.push_back(options.url.substr(from, comma == std::string::npos ? comma : comma - from));
    if (comma == std::string::npos) {
      break;
    }
    from = comma + 1;
  }
  natsStatus s = NATS_OK;
  if (servers.size() == 1) {
    s = natsOptions_SetURL(opts.get(), options.url.c_str());
  } else {
    std::vector<const char*> list;
    for (const std::string& server : servers) {
      if (server.empty()) {
        throw BridgeError("bad NATS URL \"" + options.url + "\": an empty server in the list");
      }
      list.push_back(server.c_str());
    }
    s = natsOptions_SetServers(opts.get(), list.data(), static_cast<int>(list.size()));
  }
  if (s != NATS_OK) {
    throw BridgeError("bad NATS URL \"" + options.url + "\": " + describe(s));
  }
  s = natsOptions_SetTimeout(opts.get(), attempt_timeout.count());
  if (s == NATS_OK) {
    s = natsOptions_SetName(opts.get(), options.client_name.c_str());
  }
  if (s == NATS_OK) {
    s = natsOptions_SetMaxReconnect(opts.get(), -1);  // for ever: the bridge waits out outages
  }
  if (s == NATS_OK) {
    s = natsOptions_SetCustomReconnectDelay(opts.get(), &State::reconnect_delay, state.get());
  }
  if (s == NATS_OK) {
    s = natsOptions_SetDisconnectedCB(opts.get(), &State::on_disconnected, state.get());
  }
  if (s == NATS_OK) {
    s = natsOptions_SetReconnectedCB(opts.get(), &State::on_reconnected, state.get());
  }
  if (s == NATS_OK) {
    s = natsOptions_SetClosedCB(opts.get(), &State::on_closed, state.get());
  }
  if (s == NATS_OK) {
    s = natsOptions_SetPingInterval(opts.get(), options.ping_interval.count());
  }
  if (s == NATS_OK) {
    s = natsOptions_SetMaxPingsOut(opts.get(), 2);
  }
  if (s != NATS_OK) {
    throw BridgeError("cannot set NATS options: " + describe(s));
  }

  // The first connection is retried until the timeout, so a server that is
  // still starting is waited for; a wrong address fails after the timeout.
  const auto deadline = std::chrono::steady_clock::now() + options.connect_timeout;
  auto pause = std::chrono::milliseconds(20);
  std::string last_error;
  for (;;) {
    s = natsConnection_Connect(&state->connection, opts.get());
    if (s == NATS_OK) {
      return Connection(std::move(state));
    }
    state->connection = nullptr;
    last_error = describe(s);
    if (std::chrono::steady_clock::now() + pause >= deadline) {
      break;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(500));
  }
  throw BridgeError("cannot connect to NATS at " + options.url + " within " +
                    std::to_string(options.connect_timeout.count()) + " ms: " + last_error);
}

JetStream::JetStream(const Connection& connection, jsOptions& options) {
  const natsStatus s = natsConnection_JetStream(&js_, connection.get(), &options);
  if (s != NATS_OK) {
    throw BridgeError("cannot open a JetStream context: " + describe(s));
  }
}

JetStream::~JetStream() {
  jsCtx_Destroy(js_);
}

namespace {

constexpr const char* kDescriptionPrefix = "sluice-bridge format ";

// Throws if the stream says it was made for another format of the bridge.
void check_description(const std::string& name, const jsStreamInfo& info) {
  const char* description = info.Config != nullptr ? info.Config->Description : nullptr;
  if (description == nullptr ||
      std::strncmp(description, kDescriptionPrefix, std::strlen(kDescriptionPrefix)) != 0) {
    return;  // not made by the bridge: its messages are checked one by one
  }
  if (stream_description() != description) {
    throw BridgeError("stream " + name + " was made for \"" + description +
                      "\", this bridge speaks \"" + stream_description() + "\"");
  }
}

using StreamInfoPtr = std::unique_ptr<jsStreamInfo, void (*)(jsStreamInfo*)>;

// The stream's info, or null if it does not exist; throws on other failures.
StreamInfoPtr find_stream(jsCtx* js, const std::string& name) {
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus s = js_GetStreamInfo(&info, js, name.c_str(), nullptr, &code);
  if (s == NATS_NOT_FOUND || code == JSStreamNotFoundErr) {
    return {nullptr, jsStreamInfo_Destroy};
  }
  if (s != NATS_OK) {
    throw BridgeError("cannot look up stream " + name + ": " + describe(s, code));
  }
  return {info, jsStreamInfo_Destroy};
}

}  // namespace

std::string stream_description() {
  return std::string(kDescriptionPrefix) + kFormatVersion;
}

EnsuredStream ensure_stream(jsCtx* js, const StreamSpec& spec) {
  if (StreamInfoPtr existing = find_stream(js, spec.name)) {
    check_description(spec.name, *existing);
    const jsStreamConfig* config = existing->Config;
    const std::int64_t bound = config != nullptr ? config->MaxBytes : -1;
    EnsuredStream found;
    found.note = "using existing stream " + spec.name + " (max bytes " +
                 (bound > 0 ? std::to_string(bound) : std::string("unbounded")) + ")";
    if (bound > 0 && config->Discard == js_DiscardNew) {
      found.bound_bytes = bound;
    }
    return found;
  }
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  const std::string description = stream_description();
  const char* subjects[] = {spec.subject.c_str()};
  config.Name = spec.name.c_str();
  config.Description = description.c_str();
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.Retention = spec.retention == Retention::kWorkQueue ? js_WorkQueuePolicy : js_LimitsPolicy;
  config.Discard = js_DiscardNew;  // a full stream refuses: the publisher waits (backpressure)
  config.MaxBytes = spec.max_bytes > 0 ? spec.max_bytes : -1;
  config.Storage = js_FileStorage;
  config.Duplicates =
      std::chrono::duration_cast<std::chrono::nanoseconds>(spec.duplicate_window).count();
  jsStreamInfo* created = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus s = js_AddStream(&created, js, &config, nullptr, &code);
  if (s != NATS_OK) {
    throw BridgeError("cannot create stream " + spec.name + ": " + describe(s, code));
  }
  jsStreamInfo_Destroy(created);
  EnsuredStream made;
  made.note = "created stream " + spec.name + " (subject " + spec.subject + ", " +
              (spec.retention == Retention::kWorkQueue ? "work-queue" : "limits") +
              " retention, max bytes " +
              (spec.max_bytes > 0 ? std::to_string(spec.max_bytes) : std::string("unbounded")) +
              ")";
  made.bound_bytes = spec.max_bytes > 0 ? spec.max_bytes : -1;
  return made;
}

StreamFacts require_stream(jsCtx* js, const std::string& name) {
  StreamInfoPtr info = find_stream(js, name);
  if (!info) {
    throw BridgeError("stream " + name + " does not exist (sluice-bridge out creates it)");
  }
  check_description(name, *info);
  StreamFacts facts;
  if (info->Config != nullptr) {
    if (info->Config->SubjectsLen > 0 && info->Config->Subjects[0] != nullptr) {
      facts.first_subject = info->Config->Subjects[0];
    }
    facts.max_bytes = info->Config->MaxBytes;
    facts.work_queue = info->Config->Retention == js_WorkQueuePolicy;
  }
  facts.messages = info->State.Msgs;
  facts.bytes = info->State.Bytes;
  return facts;
}

StreamFacts wait_for_stream(jsCtx* js, const std::string& name, std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    try {
      return require_stream(js, name);
    } catch (const BridgeError&) {
      if (std::chrono::steady_clock::now() >= deadline) {
        throw;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // out creates it soon
  }
}

}  // namespace sluice::nats
