#include "progress.hpp"

#include <cstdio>

#include "json_line.hpp"

namespace sluice::tools {

Progress::Progress(std::string role, bool json, std::uint64_t record_bytes)
    : role_(std::move(role)),
      json_(json),
      record_bytes_(record_bytes),
      stride_(record_bytes >= 4096 ? 1 : 256) {}

void Progress::start() noexcept {
  started_ = Clock::now();
  last_print_ = started_;
  records_at_last_print_ = 0;
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(Clock::now() - started_).count();
}

void Progress::maybe_print(std::uint64_t records, std::uint64_t last_seq) {
  const auto now = Clock::now();
  const double interval = std::chrono::duration<double>(now - last_print_).count();
  if (interval < 1.0) {
    return;
  }
  const double rate = static_cast<double>(records - records_at_last_print_) / interval;
  const double t = std::chrono::duration<double>(now - started_).count();
  if (json_) {
    std::printf("%s\n", JsonLine()
                            .add("role", role_)
                            .add("type", "progress")
                            .add("t", t)
                            .add("records", records)
                            .add("records_per_sec", rate)
                            .add("bytes_per_sec", rate * static_cast<double>(record_bytes_))
                            .add("last_seq", last_seq)
                            .str()
                            .c_str());
  } else {
    std::printf("%-8s t=%6.1fs %12.0f records/s %10.1f MB/s  records=%llu last_seq=%llu\n",
                role_.c_str(), t, rate, rate * static_cast<double>(record_bytes_) / 1e6,
                static_cast<unsigned long long>(records),
                static_cast<unsigned long long>(last_seq));
  }
  std::fflush(stdout);
  last_print_ = now;
  records_at_last_print_ = records;
}

}  // namespace sluice::tools
