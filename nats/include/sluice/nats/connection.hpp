#pragma once

// A connection to a NATS server with JetStream, made the way the bridge
// needs it: given up on with a clear error if no server answers within the
// connect timeout, and afterwards reconnecting on its own for ever, with a
// bounded back-off and one log line per disconnect and per reconnect.

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

namespace sluice::nats {

// A failure the bridge reports and exits 1 for: no server, no stream, a
// stream or message of another format, a server error.
class BridgeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where the bridge's log lines go (one line each, no newline); stderr by default.
using LogLine = std::function<void(const std::string&)>;
LogLine stderr_log(std::string program);

struct ConnectOptions {
  std::string url;
  std::chrono::milliseconds connect_timeout{5000};
  // Back-off between reconnect attempts: doubles from the first to the last.
  std::chrono::milliseconds reconnect_first{50};
  std::chrono::milliseconds reconnect_max{2000};
  // A server that answers no ping for this long (two pings) counts as lost,
  // so a silent network cut is noticed, not only a closed socket.
  std::chrono::milliseconds ping_interval{1000};
  std::string client_name = "sluice-bridge";
  LogLine log;
};

class Connection {
 public:
  // Connects, retrying until options.connect_timeout has passed; throws
  // BridgeError naming the URL and the last reason otherwise.
  static Connection connect(const ConnectOptions& options);

  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  [[nodiscard]] natsConnection* get() const noexcept;
  [[nodiscard]] const std::string& url() const noexcept;
  [[nodiscard]] std::uint64_t reconnects() const noexcept;

 private:
  struct State;
  explicit Connection(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// A JetStream context on a connection (jsCtx_Destroy on destruction).
class JetStream {
 public:
  JetStream(const Connection& connection, jsOptions& options);
  JetStream(const JetStream&) = delete;
  JetStream& operator=(const JetStream&) = delete;
  ~JetStream();
  [[nodiscard]] jsCtx* get() const noexcept { return js_; }

 private:
  jsCtx* js_ = nullptr;
};

enum class Retention : std::uint8_t {
  kWorkQueue,  // a message is removed once `in` acknowledged it: a bounded queue
  kLimits,     // messages stay until --max-bytes is reached: history to replay
};

struct StreamSpec {
  std::string name;
  std::string subject;
  std::int64_t max_bytes = 0;
  Retention retention = Retention::kWorkQueue;
  std::chrono::seconds duplicate_window{120};
};

// The stream's description, which marks it as one the bridge made (and in
// which format); a stream whose description names another format is refused.
std::string stream_description();

// The stream out publishes into.
struct EnsuredStream {
  std::string note;  // a line saying whether it was created or found, and its bound
  // The bytes it may store when a full stream refuses new messages (discard
  // new with a byte bound); -1 when nothing is refused for size.
  std::int64_t bound_bytes = -1;
};

// Creates the stream if it does not exist (file storage, discard new, the
// given bound and retention); an existing stream is used as it is, and
// refused if it was made for another format.
EnsuredStream ensure_stream(jsCtx* js, const StreamSpec& spec);

// What the bridge needs of an existing stream: throws BridgeError if it does
// not exist or was made for another format.
struct StreamFacts {
  std::string first_subject;
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::int64_t max_bytes = 0;
  bool work_queue = false;
};
StreamFacts require_stream(jsCtx* js, const std::string& name);
// The same, waiting up to `wait` for the stream to appear.
StreamFacts wait_for_stream(jsCtx* js, const std::string& name, std::chrono::milliseconds wait);

// "text (code N)" for a status, with the library's last error when there is one.
std::string describe(natsStatus status, jsErrCode js_code = static_cast<jsErrCode>(0));

}  // namespace sluice::nats
