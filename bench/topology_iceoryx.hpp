#pragma once

// iceoryx's rows of sluice_bench_topology: one publisher process and M
// subscriber processes on one service (every subscriber gets every sample),
// and M publisher processes on one service with one subscriber process.
// Same work and settings as the comparison's iceoryx row (bench/peers/
// sys_iceoryx.cpp): one sample per record, loaned, filled in place and
// published; taken, checked in place and released; the publisher waits
// while a subscriber's queue is full; the subscriber sleeps on a WaitSet.

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/roudi_daemon.hpp"
#include "topology_run.hpp"

namespace sluice::bench::topology {

class IceoryxRows {
 public:
  // Starts RouDi. Empty when the rows can run, otherwise why not.
  std::string start();
  void stop() { roudi_.stop(); }
  // Why records of `size` bytes cannot run (larger than the largest chunk),
  // or empty.
  [[nodiscard]] static std::string size_problem(std::size_t size);

 private:
  RoudiDaemon roudi_;
};

// Child bodies; 0 on success. `tag` names the service of one run and is
// unique per run; `index` makes each process's runtime name unique.
// The publisher writes records 0..records-1 once every set-up process is
// told to go, then keeps its samples alive until `consumers` consumers
// have finished.
int iceoryx_publish(const std::string& tag, std::uint32_t index, std::size_t size,
                    std::uint64_t records, std::uint32_t consumers, RunControl& control);
// The subscriber checks records 0..records_each-1 from each of `publishers`
// publishers, each publisher's in order (told apart by the sample's origin).
int iceoryx_subscribe(const std::string& tag, std::uint32_t index, std::uint32_t publishers,
                      std::size_t size, std::uint64_t records_each, RunControl& control);

// After a run: a client killed by a signal leaves its socket and lock in
// /tmp (iceoryx names them after the runtime); a clean exit removes them.
void iceoryx_cleanup(const std::string& tag, std::uint32_t processes);

}  // namespace sluice::bench::topology
