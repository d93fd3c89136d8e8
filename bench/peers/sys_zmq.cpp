// ZeroMQ PUSH/PULL over ipc:// (Debian 12: libzmq 4.3.4), default high-water
// marks (1000 messages each side). PUSH never drops: zmq_msg_send blocks at
// the high-water mark. One message per record, filled in place in a
// zmq_msg_t (zmq_msg_init_size) and checked in place in the received one.
// Ping-pong: a PUSH/PULL pair each way.

#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "harness.hpp"

#ifdef SLUICE_COMPARE_HAVE_ZMQ
#include <zmq.h>
#endif

namespace cmp {
namespace {

#ifdef SLUICE_COMPARE_HAVE_ZMQ

[[noreturn]] void fail_zmq(const char* what) {
  fail(std::string(what) + ": " + zmq_strerror(zmq_errno()));
}

// A context and one or two sockets, closed in order.
class Zmq {
 public:
  Zmq() : context_(zmq_ctx_new()) {
    if (context_ == nullptr) {
      fail_zmq("zmq_ctx_new");
    }
  }
  Zmq(const Zmq&) = delete;
  Zmq& operator=(const Zmq&) = delete;
  ~Zmq() {
    for (void* socket : sockets_) {
      zmq_close(socket);
    }
    zmq_ctx_term(context_);  // waits until queued messages are delivered (linger -1)
  }
  void* socket(int type) {
    void* socket = zmq_socket(context_, type);
    if (socket == nullptr) {
      fail_zmq("zmq_socket");
    }
    sockets_.push_back(socket);
    return socket;
  }

 private:
  void* context_;
  std::vector<void*> sockets_;
};

void bind_to(void* socket, const std::string& endpoint) {
  const int timeout_ms = 5000;
  zmq_setsockopt(socket, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
  if (zmq_bind(socket, endpoint.c_str()) != 0) {
    fail_zmq("zmq_bind");
  }
}
void connect_to(void* socket, const std::string& endpoint) {
  if (zmq_connect(socket, endpoint.c_str()) != 0) {
    fail_zmq("zmq_connect");
  }
}
void send_empty(void* socket) {
  if (zmq_send(socket, "", 0, 0) != 0) {
    fail_zmq("zmq_send");
  }
}
void receive_empty(void* socket) {
  char c = 0;
  if (zmq_recv(socket, &c, 1, 0) != 0) {
    fail("handshake: unexpected message");
  }
}

// A received message, reused for every receive.
class Message {
 public:
  Message() { zmq_msg_init(&message_); }
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  ~Message() { zmq_msg_close(&message_); }
  void receive(void* socket, bool busy) {
    for (;;) {
      if (zmq_msg_recv(&message_, socket, busy ? ZMQ_DONTWAIT : 0) >= 0) {
        return;
      }
      if (zmq_errno() == EAGAIN && !busy) {
        fail("nothing received for 5 s");  // ZMQ_RCVTIMEO: a stalled stream
      }
      if (zmq_errno() != EAGAIN && zmq_errno() != EINTR) {
        fail_zmq("zmq_msg_recv");
      }
    }
  }
  [[nodiscard]] std::span<const std::byte> data() {
    return {static_cast<const std::byte*>(zmq_msg_data(&message_)), zmq_msg_size(&message_)};
  }

 private:
  zmq_msg_t message_;
};

// Sends `bytes` filled with the pattern for `sequence`, or copied from `from`.
void send_record(void* socket, std::size_t bytes, std::uint64_t sequence,
                 std::span<const std::byte> from = {}) {
  zmq_msg_t message;
  if (zmq_msg_init_size(&message, bytes) != 0) {
    fail_zmq("zmq_msg_init_size");
  }
  const std::span<std::byte> data(static_cast<std::byte*>(zmq_msg_data(&message)), bytes);
  if (from.empty()) {
    pattern::fill(data, sequence);
  } else {
    std::memcpy(data.data(), from.data(), bytes);
  }
  if (zmq_msg_send(&message, socket, 0) < 0) {
    zmq_msg_close(&message);
    fail_zmq("zmq_msg_send");
  }
}

class ZmqSystem final : public System {
 public:
  [[nodiscard]] std::string name() const override { return "zeromq"; }

  void prepare(const std::string& tag, bool /*ping*/) override {
    tag_ = tag;
    cleanup();
  }
  void cleanup() override {
    for (const char* what : {"x", "ping", "pong"}) {
      ::unlink(path(what).c_str());
    }
  }

  void produce(Link& link, const Work& work) override {
    Zmq zmq;
    void* push = zmq.socket(ZMQ_PUSH);
    connect_to(push, endpoint("x"));
    send_empty(push);  // handshake: the consumer is connected before the clock starts
    link.ready();
    for (std::uint64_t sequence = 0; sequence < work.records; ++sequence) {
      send_record(push, work.size, sequence);
    }
    link.done();
    // Closing with linger -1 should deliver what is queued, but libzmq can
    // lose the tail of an ipc stream when the sender exits right away
    // (libzmq issues #1922, #4660): keep the socket until the consumer has
    // everything, as applications do with an end-of-stream acknowledgement.
    link.wait_end();
  }

  void consume(Link& link, const Work& work) override {
    Zmq zmq;
    void* pull = zmq.socket(ZMQ_PULL);
    bind_to(pull, endpoint("x"));
    receive_empty(pull);
    link.ready();
    Message message;
    for (std::uint64_t sequence = 0; sequence < work.records; ++sequence) {
      try {
        message.receive(pull, false);
      } catch (const std::exception& error) {
        fail("record " + std::to_string(sequence) + ": " + error.what());
      }
      check_record(message.data(), work.size, sequence);
    }
    link.done();
  }

  void ping(Link& link, const PingWork& work) override {
    Zmq zmq;
    void* push = zmq.socket(ZMQ_PUSH);
    void* pull = zmq.socket(ZMQ_PULL);
    bind_to(pull, endpoint("pong"));
    connect_to(push, endpoint("ping"));
    send_empty(push);
    receive_empty(pull);
    std::vector<std::int64_t> samples;
    samples.reserve(work.rounds);
    Message reply;
    link.ready();
    for (std::uint64_t i = 0; i < work.total(); ++i) {
      const std::int64_t start = now_ns();
      send_record(push, PingWork::kBytes, i);
      reply.receive(pull, work.busy_poll);
      const std::int64_t end = now_ns();
      check_record(reply.data(), PingWork::kBytes, i);
      if (i >= work.warmup) {
        samples.push_back(end - start);
      }
    }
    link.done();
    summarise_latency(samples, link.report());
  }

  void pong(Link& link, const PingWork& work) override {
    Zmq zmq;
    void* pull = zmq.socket(ZMQ_PULL);
    void* push = zmq.socket(ZMQ_PUSH);
    bind_to(pull, endpoint("ping"));
    connect_to(push, endpoint("pong"));
    send_empty(push);
    receive_empty(pull);
    Message message;
    link.ready();
    for (std::uint64_t i = 0; i < work.total(); ++i) {
      message.receive(pull, work.busy_poll);
      check_record(message.data(), PingWork::kBytes, i);
      send_record(push, PingWork::kBytes, i, message.data());
    }
    link.done();
    link.wait_end();  // keep the socket until the client has the last reply (see produce)
  }

 private:
  [[nodiscard]] std::string path(const char* what) const {
    return "/tmp/sluice-cmp-" + tag_ + "-" + what + ".ipc";
  }
  [[nodiscard]] std::string endpoint(const char* what) const { return "ipc://" + path(what); }

  std::string tag_;
};

#endif

}  // namespace

std::unique_ptr<System> make_zmq() {
#if defined(SLUICE_COMPARE_HAVE_ZMQ)
  return std::make_unique<ZmqSystem>();
#else
  return std::make_unique<UnavailableSystem>("zeromq",
                                             "libzmq (libzmq3-dev) not found at build time");
#endif
}

}  // namespace cmp
