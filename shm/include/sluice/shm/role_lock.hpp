#pragma once

#include <cstdint>

namespace sluice::shm {

// A liveness token held by one endpoint: an open-file-description lock on one
// byte of the segment's file. The kernel drops it when the holder's file
// description is closed, which includes every way a process can die, so no
// heartbeat is needed and a reused pid can never pass for the holder.
// Different file descriptions conflict even inside one process, so a producer
// and a consumer opened by the same process still see each other.
enum class LockProbe { kFree, kHeld, kError };

// Tries to take the exclusive lock on byte `slot` through `fd`. Returns false
// when another file description holds it (errno is left as EAGAIN/EACCES).
bool try_lock_slot(int fd, std::uint32_t slot);
// Releases the lock on byte `slot` held through `fd`.
void unlock_slot(int fd, std::uint32_t slot);
// Whether some other file description holds the lock on byte `slot`.
LockProbe probe_slot(int fd, std::uint32_t slot);

}  // namespace sluice::shm
