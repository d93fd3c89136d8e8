// Row (c) zeromq-tcp: the same batches of records as jetstream-raw, over
// ZeroMQ PUSH/PULL on TCP loopback with nothing stored: what moving the
// bytes between processes over TCP costs without a broker.

#include <zmq.h>

#include <algorithm>
#include <string>
#include <vector>

#include "../peers/harness.hpp"
#include "nats_server.hpp"
#include "rows.hpp"

namespace bridge_bench {

namespace {

namespace pattern = sluice::transport::pattern;

[[noreturn]] void fail_zmq(const char* what) {
  cmp::fail(std::string(what) + ": " + zmq_strerror(zmq_errno()));
}

// A context and one socket; closing the context waits until what was
// queued is delivered (linger -1).
class Zmq {
 public:
  explicit Zmq(int type, int high_water_mark) : context_(zmq_ctx_new()) {
    if (context_ == nullptr || (socket_ = zmq_socket(context_, type)) == nullptr) {
      fail_zmq("zmq_socket");
    }
    zmq_setsockopt(socket_, ZMQ_SNDHWM, &high_water_mark, sizeof(high_water_mark));
    zmq_setsockopt(socket_, ZMQ_RCVHWM, &high_water_mark, sizeof(high_water_mark));
  }
  ~Zmq() {
    zmq_close(socket_);
    zmq_ctx_term(context_);
  }
  Zmq(const Zmq&) = delete;
  Zmq& operator=(const Zmq&) = delete;
  [[nodiscard]] void* socket() const { return socket_; }

 private:
  void* context_;
  void* socket_ = nullptr;
};

std::size_t per_message(const RowWork& work) {
  return std::max<std::size_t>(1, work.batch_bytes / work.size);
}

// The same bound on bytes in flight as the JetStream rows' pending publishes.
int high_water_mark(const RowWork& work) {
  return static_cast<int>(max_pending(per_message(work) * work.size));
}

void produce(cmp::Link& link, const RowWork& work, const std::string& endpoint) {
  Zmq zmq(ZMQ_PUSH, high_water_mark(work));
  // The consumer may bind after this connects: retry within a millisecond,
  // not ZeroMQ's default 100 ms, which would fall inside a short run's timing.
  const int retry_ms = 1;
  zmq_setsockopt(zmq.socket(), ZMQ_RECONNECT_IVL, &retry_ms, sizeof(retry_ms));
  if (zmq_connect(zmq.socket(), endpoint.c_str()) != 0) {
    fail_zmq("zmq_connect");
  }
  std::vector<std::byte> message(per_message(work) * work.size);
  link.ready();
  std::uint64_t next = 0;
  while (next < work.records) {
    const std::size_t count =
        static_cast<std::size_t>(std::min<std::uint64_t>(per_message(work), work.records - next));
    for (std::size_t i = 0; i < count; ++i) {
      pattern::fill(std::span(message.data() + i * work.size, work.size), next + i);
    }
    if (zmq_send(zmq.socket(), message.data(), count * work.size, 0) < 0) {
      fail_zmq("zmq_send");
    }
    next += count;
  }
  link.wait_end();
}

void consume(cmp::Link& link, const RowWork& work, const std::string& endpoint) {
  Zmq zmq(ZMQ_PULL, high_water_mark(work));
  const int timeout_ms = work.timeout_s * 1000;
  zmq_setsockopt(zmq.socket(), ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
  if (zmq_bind(zmq.socket(), endpoint.c_str()) != 0) {
    fail_zmq("zmq_bind");
  }
  std::vector<std::byte> message(per_message(work) * work.size);
  link.ready();
  std::uint64_t expected = 0;
  while (expected < work.records) {
    const int n = zmq_recv(zmq.socket(), message.data(), message.size(), 0);
    if (n < 0) {
      fail_zmq("zmq_recv");
    }
    const auto length = static_cast<std::size_t>(n);
    if (length == 0 || length % work.size != 0 || length > message.size()) {
      cmp::fail("a message of " + std::to_string(n) + " bytes");
    }
    for (std::size_t at = 0; at < length; at += work.size) {
      cmp::check_record(std::span(message.data() + at, work.size), work.size, expected);
      ++expected;
    }
  }
  link.done();
  link.report().extra = expected;
}

}  // namespace

RowResult run_zeromq_tcp(const RowWork& work) {
  RowResult result;
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_loopback_port());
  const cmp::ChildSpec producer{[&](cmp::Link& link) { produce(link, work, endpoint); }, -1};
  const cmp::ChildSpec consumer{[&](cmp::Link& link) { consume(link, work, endpoint); }, -1};
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
    result.problem = "received " + std::to_string(result.received) + " records";
  }
  return result;
}

}  // namespace bridge_bench
