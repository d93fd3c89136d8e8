#pragma once

// A private nats-server with JetStream for one benchmark: a free loopback
// port, a temporary store directory, killed and removed when this object
// goes (and killed by the kernel if the benchmark dies: PR_SET_PDEATHSIG).
// Readiness is checked over a plain socket (the server's INFO line), so the
// benchmark process itself never starts the NATS client library: its forked
// children do, and a library started before fork() would be unusable there.

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace bridge_bench {

class NatsServer {
 public:
  // Throws std::runtime_error when nats-server cannot be started.
  explicit NatsServer(const std::string& program = "nats-server");
  ~NatsServer();
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  [[nodiscard]] std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  void stop() noexcept;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::string store_;
  std::string log_;
};

// A loopback TCP port nobody listens on right now.
std::uint16_t free_loopback_port();

}  // namespace bridge_bench
