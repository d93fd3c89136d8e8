#pragma once

// Per-second counts of both ends of a bridged pipeline, from the channels'
// own counters.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sluice/transport/channel_metrics.hpp"

namespace sluice::test::nats {

using namespace std::chrono_literals;

// Samples, every 100 ms, how many records the near producer committed to
// the channel `out` reads and how many the far consumer read from the
// channel `in` writes, through the channels' counters (read-only, without
// attaching). Gives both rates over any stretch of the run, writes them per
// second from the far consumer's first record as CSV for a chart, and keeps
// the largest gap.
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

  // Seconds from the start of sampling to the far consumer's first record
  // (the midpoint of the two samples around it; nothing if none came).
  [[nodiscard]] std::optional<double> first_consumed_at() const {
    for (std::size_t i = 1; i < rows_.size(); ++i) {
      if (rows_[i].consumed > 0) {
        return (rows_[i - 1].at + rows_[i].at) / 2;
      }
    }
    return std::nullopt;
  }

  struct Rates {
    double producer = 0;  // records/s
    double consumer = 0;
  };
  // Both rates between the samples nearest to `from` and `to` (seconds).
  [[nodiscard]] Rates rates(double from, double to) const {
    const Row& a = nearest(from);
    const Row& b = nearest(to);
    Rates r;
    if (b.at > a.at) {
      r.producer = static_cast<double>(b.produced - a.produced) / (b.at - a.at);
      r.consumer = static_cast<double>(b.consumed - a.consumed) / (b.at - a.at);
    }
    return r;
  }

  // Both rates as the least-squares slopes of the counts sampled in
  // [from, to]. Unlike rates(), one stall at either end of the stretch
  // (a link holding a chunk for a retransmission timeout stops the
  // producer for 200 ms) moves it by a fraction of what it moves the
  // difference of the two end samples. Zero with fewer than three samples.
  [[nodiscard]] Rates fitted_rates(double from, double to) const {
    double n = 0;
    double sum_t = 0;
    double sum_p = 0;
    double sum_c = 0;
    for (const Row& row : rows_) {
      if (row.at >= from && row.at <= to) {
        n += 1;
        sum_t += row.at;
        sum_p += static_cast<double>(row.produced);
        sum_c += static_cast<double>(row.consumed);
      }
    }
    Rates r;
    if (n < 3) {
      return r;
    }
    const double mean_t = sum_t / n;
    double tt = 0;
    double tp = 0;
    double tc = 0;
    for (const Row& row : rows_) {
      if (row.at >= from && row.at <= to) {
        const double dt = row.at - mean_t;
        tt += dt * dt;
        // Centred on the means, so that counts in the millions keep their
        // precision in the products.
        tp += dt * (static_cast<double>(row.produced) - sum_p / n);
        tc += dt * (static_cast<double>(row.consumed) - sum_c / n);
      }
    }
    if (tt > 0) {
      r.producer = tp / tt;
      r.consumer = tc / tt;
    }
    return r;
  }

  // Records produced but not yet consumed at the sample nearest `at`.
  [[nodiscard]] std::int64_t gap(double at) const {
    const Row& row = nearest(at);
    return static_cast<std::int64_t>(row.produced) - static_cast<std::int64_t>(row.consumed);
  }
  // The smallest gap sampled in [from, to] (the gap at the sample nearest
  // `to` if none lies in it). A link that holds a chunk for a
  // retransmission timeout stops the consumer while the producer fills what
  // lies between them, so a stall only ever raises the gap: its smallest
  // value over a stretch is the level the stream stands at.
  [[nodiscard]] std::int64_t smallest_gap(double from, double to) const {
    std::optional<std::int64_t> smallest;
    for (const Row& row : rows_) {
      if (row.at >= from && row.at <= to) {
        const std::int64_t gap =
            static_cast<std::int64_t>(row.produced) - static_cast<std::int64_t>(row.consumed);
        smallest = smallest ? std::min(*smallest, gap) : gap;
      }
    }
    return smallest.value_or(gap(to));
  }
  // The first sample time in [from, to] at which the gap is at least
  // `level`; `to` if there is none.
  [[nodiscard]] double first_gap_at_least(double from, double to, std::int64_t level) const {
    for (const Row& row : rows_) {
      if (row.at >= from && row.at <= to &&
          static_cast<std::int64_t>(row.produced) - static_cast<std::int64_t>(row.consumed) >=
              level) {
        return row.at;
      }
    }
    return to;
  }

  void write_csv(const std::string& path) const {
    std::ofstream csv(path);
    csv << "second,producer_records_per_sec,consumer_records_per_sec,produced,consumed\n";
    // Seconds counted from the far consumer's first record, as its schedule is.
    std::size_t first = 0;
    if (const std::optional<double> start = first_consumed_at()) {
      first = static_cast<std::size_t>(&nearest(*start) - rows_.data());
    }
    for (std::size_t i = first + kPerSecond, second = 1; i < rows_.size();
         i += kPerSecond, ++second) {
      const Row& before = rows_[i - kPerSecond];
      const Row& now = rows_[i];
      csv << second << "," << now.produced - before.produced << ","
          << now.consumed - before.consumed << "," << now.produced << "," << now.consumed << "\n";
    }
  }

 private:
  static constexpr std::size_t kPerSecond = 10;
  struct Row {
    double at = 0;  // seconds since sampling began
    std::uint64_t produced = 0;
    std::uint64_t consumed = 0;
  };
  [[nodiscard]] const Row& nearest(double at) const {
    static const Row kNone;
    if (rows_.empty()) {
      return kNone;
    }
    const auto after = std::lower_bound(rows_.begin(), rows_.end(), at,
                                        [](const Row& row, double t) { return row.at < t; });
    if (after == rows_.end()) {
      return rows_.back();
    }
    if (after != rows_.begin() && at - std::prev(after)->at < after->at - at) {
      return *std::prev(after);
    }
    return *after;
  }
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
    const auto began = std::chrono::steady_clock::now();
    auto next = began;
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      Row row;
      row.at = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
      row.produced = count(from_, true).value_or(last.produced);
      row.consumed = count(to_, false).value_or(last.consumed);
      if (row.produced >= row.consumed) {
        largest_gap_ = std::max(largest_gap_, row.produced - row.consumed);
      }
      rows_.push_back(row);
      last = row;
      lock.lock();
      next += 100ms;  // a steady beat, whatever a sample took
      wake_.wait_until(lock, next, [this] { return stopping_; });
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
