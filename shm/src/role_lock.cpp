#include "sluice/shm/role_lock.hpp"

#include <fcntl.h>

namespace sluice::shm {

namespace {
struct flock one_byte(short type, std::uint32_t slot) {
  struct flock lock {};
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = static_cast<off_t>(slot);
  lock.l_len = 1;
  lock.l_pid = 0;  // must be 0 for open-file-description locks
  return lock;
}
}  // namespace

bool try_lock_slot(int fd, std::uint32_t slot) {
  auto lock = one_byte(F_WRLCK, slot);
  return fcntl(fd, F_OFD_SETLK, &lock) == 0;
}

void unlock_slot(int fd, std::uint32_t slot) {
  auto lock = one_byte(F_UNLCK, slot);
  (void)fcntl(fd, F_OFD_SETLK, &lock);
}

LockProbe probe_slot(int fd, std::uint32_t slot) {
  auto lock = one_byte(F_WRLCK, slot);
  if (fcntl(fd, F_OFD_GETLK, &lock) != 0) {
    return LockProbe::kError;
  }
  return lock.l_type == F_UNLCK ? LockProbe::kFree : LockProbe::kHeld;
}

}  // namespace sluice::shm
