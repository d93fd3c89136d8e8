#pragma once

// sluice-consumer over several channels at once (--channel A,B,C): one input
// gate, each producer's stream checked on its own.

#include <string>
#include <vector>

#include "../common/pacer.hpp"

namespace sluice::tools {

struct GateConsumerOptions {
  std::vector<std::string> channels;
  std::uint64_t records = 0;  // per input
  std::uint64_t size = 0;
  std::vector<RatePhase> schedule;
  double wait_seconds = 10;
  bool keep = false;
  bool resume = false;
  bool json = false;
};

// Runs to the end of every input; returns the exit status (0, 1 or 2).
int run_gate_consumer(const GateConsumerOptions& options);

}  // namespace sluice::tools
