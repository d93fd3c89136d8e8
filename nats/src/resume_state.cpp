#include "sluice/nats/resume_state.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sluice/nats/connection.hpp"

namespace sluice::nats {

namespace {

static_assert(sizeof(ResumeState::Record) == 272);
constexpr char kMagic[8] = {'S', 'L', 'B', 'R', 'I', 'N', '0', '1'};

}  // namespace

ResumeState::ResumeState(const std::string& path) {
  if (!path.empty()) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      throw BridgeError("cannot open state file " + path + ": " + std::strerror(errno));
    }
  }
}

ResumeState::~ResumeState() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

std::optional<ResumeState::Record> ResumeState::load() const {
  Record record{};
  if (fd_ < 0 || ::pread(fd_, &record, sizeof(record), 0) != static_cast<ssize_t>(sizeof(record)) ||
      std::memcmp(record.magic, kMagic, sizeof(kMagic)) != 0 ||
      record.origin_length > sizeof(record.origin) ||
      record.position_before > record.position_after || record.local_before > record.local_after) {
    return std::nullopt;
  }
  return record;
}

void ResumeState::save(const std::string& origin, std::uint64_t position_before,
                       std::uint64_t position_after, std::uint64_t local_before,
                       std::uint64_t local_after) {
  if (fd_ < 0 || origin.size() > sizeof(Record::origin)) {
    return;
  }
  Record record{};
  std::memcpy(record.magic, kMagic, sizeof(kMagic));
  record.position_before = position_before;
  record.position_after = position_after;
  record.local_before = local_before;
  record.local_after = local_after;
  record.origin_length = static_cast<std::uint32_t>(origin.size());
  std::memcpy(record.origin, origin.data(), origin.size());
  // One small write to tmpfs: a process that dies leaves it whole.
  (void)!::pwrite(fd_, &record, sizeof(record), 0);
}

}  // namespace sluice::nats
