#pragma once

// The comparison harness: every system runs the same work in two forked
// processes (producer and consumer, or ping-pong client and server). The
// parent only coordinates: it forks both, waits until both are set up, lets
// them go, collects what each reports and reaps them with wait4.
//
// Protocol on the pipes between parent and child:
//   child -> parent: 'R' once set up; 'D' + Report when finished (or failed)
//   parent -> child: 'G' to start; 'E' once the other child has finished

#include <sys/types.h>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/queue_depth.hpp"
#include "sluice/transport/sequence_pattern.hpp"

namespace cmp {

namespace pattern = sluice::transport::pattern;
using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC: comparable across processes

std::int64_t now_ns() noexcept;
// CPU time (user + system) of the calling process so far, all threads, and
// of the children it has reaped.
std::int64_t process_cpu_ns() noexcept;
void pin_to_cpu(int cpu);

// What a child sends the parent at the end.
struct Report {
  std::int32_t ok = 0;
  std::int64_t t_go_ns = 0;    // steady clock when 'G' arrived
  std::int64_t t_done_ns = 0;  // steady clock at Link::done() (last record written / verified)
  std::int64_t cpu_ns = 0;     // CPU from 'G' until just before exit (teardown included)
  std::uint64_t extra = 0;     // per-system counter (e.g. failed loans)
  double latency_ns[6] = {};   // ping-pong client: p50, p99, p99.9, mean, min, max
  std::uint64_t samples = 0;
  char message[384] = {};
};

// The child's end of the pipes to the parent.
class Link {
 public:
  Link(int to_parent, int from_parent) : to_parent_(to_parent), from_parent_(from_parent) {}
  // Tells the parent this side is set up, then blocks until it says go.
  void ready();
  // Marks the moment the work is complete (timing ends here for a consumer).
  void done() { report_.t_done_ns = now_ns(); }
  // Blocks until the parent says the other side has finished (or died).
  void wait_end();
  Report& report() { return report_; }
  // Writes the report (CPU measured now). Called once by the child main.
  void finish();

 private:
  int to_parent_;
  int from_parent_;
  std::int64_t cpu_go_ = 0;
  bool went_ = false;
  Report report_;
};

// One forked process of a pair.
struct ChildSpec {
  std::function<void(Link&)> body;  // throws std::exception on failure
  int cpu = -1;                     // pin to this cpu, or -1
};

struct PairOutcome {
  std::string problem;  // empty when both children succeeded
  Report a, b;
  double cpu_total_a = 0, cpu_total_b = 0;  // wait4 rusage, seconds (set-up included)
};

// Forks a, then b; runs the protocol above. `close_in_child` is called in
// each child (with 0 for a, 1 for b) right after fork, `close_in_parent`
// once both are forked. Kills both if they have not finished after `timeout`.
PairOutcome run_pair(const ChildSpec& a, const ChildSpec& b, std::chrono::seconds timeout,
                     const std::function<void(int)>& close_in_child,
                     const std::function<void()>& close_in_parent,
                     std::array<const char*, 2> roles = {"producer", "consumer"});

// ---------------------------------------------------------------------------
// Record checks shared by every system.

[[noreturn]] void fail_record(std::span<const std::byte> record, std::size_t size,
                              std::uint64_t sequence);

// Always inlined: with the call out of line (GCC's choice) an 8-byte record's
// check cost a call and argument moves per record in every system's loop.
[[gnu::always_inline]] inline void check_record(std::span<const std::byte> record, std::size_t size,
                                                std::uint64_t sequence) {
  if (record.size() != size || pattern::sequence_of(record) != sequence ||
      !pattern::body_matches(record, sequence)) [[unlikely]] {
    fail_record(record, size, sequence);
  }
}

[[noreturn]] void fail(const std::string& what);

// Percentiles of round-trip samples into report.latency_ns.
void summarise_latency(std::vector<std::int64_t>& samples, Report& report);

// ---------------------------------------------------------------------------
// The work.

struct Work {
  std::size_t size = 0;       // bytes per record
  std::uint64_t records = 0;  // records in the stream
  std::string tag;            // unique per run: names channels, queues, sockets
};

struct PingWork {
  std::uint64_t rounds = 0;  // measured round trips
  std::uint64_t warmup = 0;  // unmeasured round trips first
  bool busy_poll = false;    // spin on non-blocking receives instead of blocking
  bool no_spin = false;      // Sluice only: blocking waits sleep at once (no spin, no yield)
  std::string tag;
  static constexpr std::size_t kBytes = 64;
  [[nodiscard]] std::uint64_t total() const { return rounds + warmup; }
};

using sluice::bench::queue_depth;

// A system under test. Child-side functions run in forked processes and
// throw on failure; parent-side hooks prepare and clean up per run.
class System {
 public:
  virtual ~System() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  // Empty when usable; otherwise why not (shown in the tables).
  [[nodiscard]] virtual std::string unavailable() const { return {}; }
  // Once before the first run and after the last (iceoryx: the daemon).
  virtual void start() {}
  virtual void stop() {}
  // A reference row (no-transport), not a peer: never the best or
  // cheapest peer a target is judged against.
  [[nodiscard]] virtual bool is_reference() const { return false; }
  // Whether it has a ping-pong; rows without one are left out of latency.
  [[nodiscard]] virtual bool has_ping() const { return true; }
  // Parent, before forking a run (pipes, names).
  virtual void prepare(const std::string& /*tag*/, bool /*ping*/) {}
  // Parent, before forking a throughput run; for systems that size shared
  // state by the work.
  virtual void prepare_throughput(const Work& work) { prepare(work.tag, false); }
  // Child right after fork: role 0 = producer/client, 1 = consumer/server.
  virtual void in_child(int /*role*/) {}
  // Parent, once both children are forked.
  virtual void in_parent() {}
  // Parent, after the run (remove names).
  virtual void cleanup() {}
  // CPU seconds used so far by helper processes that are not one of the two
  // children (iceoryx's RouDi), or a negative number if there are none.
  [[nodiscard]] virtual double daemon_cpu_seconds() const { return -1; }

  virtual void produce(Link& link, const Work& work) = 0;
  virtual void consume(Link& link, const Work& work) = 0;
  virtual void ping(Link& link, const PingWork& work) = 0;  // client: measures
  virtual void pong(Link& link, const PingWork& work) = 0;  // server: echoes
};

// A peer that was not built (its library was missing): listed in the tables
// with the reason, never run.
class UnavailableSystem final : public System {
 public:
  UnavailableSystem(std::string name, std::string reason)
      : name_(std::move(name)), reason_(std::move(reason)) {}
  [[nodiscard]] std::string name() const override { return name_; }
  [[nodiscard]] std::string unavailable() const override { return reason_; }
  void produce(Link&, const Work&) override { fail(reason_); }
  void consume(Link&, const Work&) override { fail(reason_); }
  void ping(Link&, const PingWork&) override { fail(reason_); }
  void pong(Link&, const PingWork&) override { fail(reason_); }

 private:
  std::string name_;
  std::string reason_;
};

// huge_pages: every Sluice segment is created with HugePages::kRequired.
// plain: the "sluice-plain" row (write()/next() per record), not a peer.
std::unique_ptr<System> make_sluice(bool huge_pages, bool plain = false);
// "sluice-demo": the demo programs sluice-producer and sluice-consumer, run as
// a user runs them; not a peer.
std::unique_ptr<System> make_sluice_demo();
std::unique_ptr<System> make_iceoryx();
std::unique_ptr<System> make_boost_mq();
std::unique_ptr<System> make_pipe();
std::unique_ptr<System> make_socket();
std::unique_ptr<System> make_zmq();
// The reference row: the work through bare shared buffers, no transport.
std::unique_ptr<System> make_no_transport();

// Machine limits (limits.cpp).
struct Limits {
  double memcpy_cache_gbps = 0;   // 256 KiB -> 256 KiB
  double memcpy_memory_gbps = 0;  // 256 MiB -> 256 MiB
  double cacheline_rtt_mean_ns = 0;
  double cacheline_rtt_p50_ns = 0;  // timed one by one, like the ping-pong
  double cacheline_rtt_p99_ns = 0;
  std::vector<double> cacheline_p50_runs;
  double futex_rtt_p50_ns = 0;  // both sides sleeping (median of runs)
  double futex_rtt_p99_ns = 0;
  std::vector<double> futex_p50_runs;
  std::vector<double> futex_slept_fraction_runs;
  struct FillCheck {
    std::size_t size = 0;
    double fill_check_rps = 0;  // fill then body_matches, one core
    double fill_rps = 0;
    double check_rps = 0;
  };
  std::vector<FillCheck> fill_check;
  std::string problem;
};
// Without the cache-line round trip, which measure_cacheline() gives; the
// caller measures it next to the ping-pong runs.
Limits measure_limits(const std::vector<std::size_t>& sizes, double seconds_each);

struct CachelineRtt {
  double mean_ns = 0;  // median batch of 1000, no clock reads inside
  double p50_ns = 0;   // timed one by one, like the ping-pong
  double p99_ns = 0;
  std::string problem;
};
CachelineRtt measure_cacheline(std::uint64_t rounds);

// A word handed back and forth between cpu 0 and cpu 1, each side asleep on
// a shared futex until woken: what a blocking round trip that sleeps costs
// with no transport around it.
struct FutexRtt {
  double p50_ns = 0;
  double p99_ns = 0;
  double slept_fraction = 0;  // of each side's waits, the share that slept
  std::string problem;
};
FutexRtt measure_futex(std::uint64_t rounds);

}  // namespace cmp
