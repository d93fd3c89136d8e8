#pragma once

// Where sluice-bridge in stood, kept across its restarts: written before
// every local commit, it names the origin positions the commit carries and
// the channel's record count before and after it. A successor compares the
// channel's exact count (Producer::attach) with it to learn whether that
// commit happened, and so skips exactly the records its predecessor wrote.

#include <cstdint>
#include <optional>
#include <string>

namespace sluice::nats {

class ResumeState {
 public:
  struct Record {
    char magic[8];
    std::uint64_t position_before;
    std::uint64_t position_after;
    std::uint64_t local_before;
    std::uint64_t local_after;
    std::uint32_t origin_length;
    char origin[228];
  };

  // Opens (creates) the file at `path`; an empty path keeps nothing. Throws
  // BridgeError if the file cannot be opened.
  explicit ResumeState(const std::string& path);
  ResumeState(const ResumeState&) = delete;
  ResumeState& operator=(const ResumeState&) = delete;
  ~ResumeState();

  // The last record, if the file holds a whole, well-formed one.
  [[nodiscard]] std::optional<Record> load() const;
  // Replaces the record (an origin too long to note is not noted).
  void save(const std::string& origin, std::uint64_t position_before, std::uint64_t position_after,
            std::uint64_t local_before, std::uint64_t local_after);

 private:
  int fd_ = -1;
};

}  // namespace sluice::nats
