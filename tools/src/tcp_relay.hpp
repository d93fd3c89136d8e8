#pragma once

// The engine of sluice-tcp-relay: accepts TCP connections on one address,
// opens one to a fixed destination for each, and copies bytes both ways
// after a delay, in order. See tcp_relay_main.cpp for what it emulates.

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace sluice::tools {

struct TcpRelayOptions {
  sockaddr_in listen{};
  sockaddr_in to{};
  std::chrono::milliseconds delay{0};
  double loss = 0;                                // probability a chunk is held one rto
  std::chrono::milliseconds retransmission{200};  // how long a "lost" chunk is held
  std::uint64_t seed = 1;
  std::size_t max_queued_bytes = 1 << 20;  // per direction of a connection
  // Cut the link once, cut_after after start, for cut_for (both zero: never).
  std::chrono::milliseconds cut_after{0};
  std::chrono::milliseconds cut_for{0};
};

struct TcpRelayCounters {
  std::uint64_t connections = 0;     // accepted while the link was up
  std::uint64_t refused = 0;         // not relayed: destination unreachable
  std::uint64_t bytes_forward = 0;   // client -> destination, delivered
  std::uint64_t bytes_backward = 0;  // destination -> client, delivered
  std::uint64_t chunks = 0;
  std::uint64_t held_chunks = 0;  // chunks held one retransmission timeout ("lost")
  std::uint64_t cuts = 0;
};

// What the relay reports as it runs: "listening" (port), "cut", "restored".
struct TcpRelayEvents {
  std::function<void(std::uint16_t port)> listening;
  std::function<void(const std::string& why, std::size_t closed)> cut;
  std::function<void(const std::string& why)> restored;
};

// Binds (throws std::runtime_error when it cannot: a set-up failure), then
// relays until SIGTERM or SIGINT (returns normally) or a runtime failure
// (throws std::system_error). SIGUSR1 cuts the link, SIGUSR2 restores it;
// the caller must not handle these signals itself.
class TcpRelay {
 public:
  explicit TcpRelay(TcpRelayOptions options);
  ~TcpRelay();
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  void run(const TcpRelayEvents& events);
  [[nodiscard]] const TcpRelayCounters& counters() const { return counters_; }

 private:
  struct State;
  TcpRelayOptions options_;
  std::uint16_t port_ = 0;
  int listener_ = -1;
  int signals_ = -1;
  TcpRelayCounters counters_;
};

// "A.B.C.D:PORT" (IPv4; "localhost" means 127.0.0.1). Throws UsageError
// naming `flag` on anything else; port 0 only when `allow_any_port`.
sockaddr_in parse_ipv4_endpoint(const std::string& flag, const std::string& text,
                                bool allow_any_port);

}  // namespace sluice::tools
