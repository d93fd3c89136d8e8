#pragma once

// Per-second counts of both ends of a bridged pipeline, from the channels'
// own counters.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sluice/transport/channel_metrics.hpp"

namespace sluice::test::nats {

using namespace std::chrono_literals;

// Samples, once a second, how many records the near producer committed to
// the channel `out` reads and how many the far consumer read from the
// channel `in` writes, through the channels' counters (read-only, without
// attaching). Writes them as CSV for a chart and keeps the largest gap.
class RateSampler {
 public:
  RateSampler(std::string from, std::string to)
      : from_(std::move(from)), to_(std::move(to)), thread_([this] { run(); }) {}
  ~RateSampler() { stop(); }
  RateSampler(const RateSampler&) = delete;
  RateSampler& operator=(const RateSampler&) = delete;

  void stop() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  // Records produced but not yet consumed, the most seen in any sample.
  [[nodiscard]] std::uint64_t largest_gap() const { return largest_gap_; }
  [[nodiscard]] std::size_t samples() const { return rows_.size(); }
  void write_csv(const std::string& path) const {
    std::ofstream csv(path);
    csv << "second,producer_records_per_sec,consumer_records_per_sec,produced,consumed\n";
    for (std::size_t i = 1; i < rows_.size(); ++i) {
      csv << i << "," << rows_[i].produced - rows_[i - 1].produced << ","
          << rows_[i].consumed - rows_[i - 1].consumed << "," << rows_[i].produced << ","
          << rows_[i].consumed << "\n";
    }
  }

 private:
  struct Row {
    std::uint64_t produced = 0;
    std::uint64_t consumed = 0;
  };
  static std::optional<std::uint64_t> count(const std::string& channel, bool produced) {
    try {
      const sluice::transport::ChannelObserver observer(channel);
      const auto snapshot = observer.snapshot();
      return produced ? snapshot.produced.records : snapshot.consumed.records;
    } catch (const std::exception&) {
      return std::nullopt;  // not there yet, or already removed at the end
    }
  }
  void run() {
    Row last;
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      Row row;
      row.produced = count(from_, true).value_or(last.produced);
      row.consumed = count(to_, false).value_or(last.consumed);
      if (row.produced >= row.consumed) {
        largest_gap_ = std::max(largest_gap_, row.produced - row.consumed);
      }
      rows_.push_back(row);
      last = row;
      lock.lock();
      wake_.wait_for(lock, 1s, [this] { return stopping_; });
    }
  }

  std::string from_;
  std::string to_;
  std::vector<Row> rows_;
  std::uint64_t largest_gap_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sluice::test::nats
