#pragma once

// iceoryx's RouDi daemon for a benchmark run: the comparison (bench/peers)
// and the topology benchmark start one before their iceoryx runs and stop it
// after the last. Needs only /usr/bin/iox-roudi, not iceoryx's headers.

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace sluice::bench {

// RouDi's mempool configuration (TOML): chunk pools for 64 B, 1 KiB, 64 KiB
// and 1 MiB payloads, enough for the deepest subscriber queue the benchmarks
// use (256 chunks of 64 B, 32 of 64 KiB, 8 of 1 MiB) plus what publishers and
// subscribers hold. A record larger than kLargestChunkPayload cannot be loaned.
std::string roudi_config();
inline constexpr std::size_t kLargestChunkPayload = 1024 * 1024;

class RoudiDaemon {
 public:
  RoudiDaemon() = default;
  RoudiDaemon(const RoudiDaemon&) = delete;
  RoudiDaemon& operator=(const RoudiDaemon&) = delete;
  ~RoudiDaemon() { stop(); }

  // Writes the configuration to `file_base`.toml, starts iox-roudi with its
  // log in `file_base`.log and waits until it is ready for clients. Empty on
  // success, otherwise why it is not running (to show as "unavailable").
  std::string start(const std::string& file_base);
  // Stops it (SIGTERM, SIGKILL after 10 s) and removes its files; a daemon
  // that did not end cleanly keeps its log and its segments are removed.
  void stop();
  [[nodiscard]] bool running() const { return pid_ > 0; }
  // User + system CPU seconds it has used so far, or -1 if it is not running.
  [[nodiscard]] double cpu_seconds() const;

 private:
  [[nodiscard]] std::string read_log() const;

  pid_t pid_ = -1;
  std::string config_path_;
  std::string log_path_;
};

}  // namespace sluice::bench
