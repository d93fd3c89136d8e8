#pragma once

// Writing to a pipe between a benchmark and its forked children.

#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace sluice::bench {

// Writes all `bytes`, retrying after signals and short writes; false on error.
inline bool write_all(int fd, const void* data, std::size_t bytes) {
  const auto* at = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd, at, bytes);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    at += n;
    bytes -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace sluice::bench
