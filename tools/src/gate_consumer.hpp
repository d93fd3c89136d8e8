#pragma once

// sluice-consumer over several channels at once (--channel A,B,C): one input
// gate, each producer's stream checked on its own.

#include <string>
#include <vector>

#include "../common/pacer.hpp"
#include "sluice/transport/input_gate.hpp"

namespace sluice::tools {

struct GateConsumerOptions {
  std::vector<sluice::transport::GateInput> channels;  // NAME or NAME:I (a subpartition)
  std::uint64_t records = 0;  // per input; with `union_of_inputs`, in all together
  std::uint64_t size = 0;
  std::vector<RatePhase> schedule;
  double wait_seconds = 10;
  bool keep = false;
  bool resume = false;
  bool json = false;
  // The inputs together carry 0..N-1, each once, each input in increasing
  // order (workers behind a fan-out): checked as a whole, not per input.
  bool union_of_inputs = false;
};

// Runs to the end of every input; returns the exit status (0, 1 or 2).
int run_gate_consumer(const GateConsumerOptions& options);

}  // namespace sluice::tools
