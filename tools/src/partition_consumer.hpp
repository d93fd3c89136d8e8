#pragma once

// sluice-consumer on one subpartition of a partitioned channel
// (--subpartition I): reads to the end of the stream, or N records, and
// checks what the channel's partitioner promises (partition_check.hpp).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../common/pacer.hpp"

namespace sluice::tools {

struct PartitionConsumerOptions {
  std::string channel;
  std::uint32_t subpartition = 0;
  std::optional<std::uint64_t> records;  // records in the whole stream (0..N-1), if known
  std::uint64_t size = 0;                // 0: any size
  std::vector<RatePhase> schedule;
  double wait_seconds = 10;
  bool keep = false;
  bool resume = false;
  bool json = false;
};

// Runs to the end of the stream; returns the exit status (0, 1 or 2).
int run_partition_consumer(const PartitionConsumerOptions& options);

}  // namespace sluice::tools
