#pragma once

#include <stdexcept>
#include <string>

namespace sluice::shm {

// Thrown only on the set-up path (create, open, attach, remove). The message
// always names the segment and says what went wrong, so it can be shown to a
// user as is. The hot path never throws; it returns status codes instead.
class SetupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace sluice::shm
