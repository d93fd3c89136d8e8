#include "sluice/transport/channel_remover.hpp"

#include <sys/stat.h>

#include "sluice/shm/segment_name.hpp"

namespace sluice::transport {

ChannelRemover::ChannelRemover(const ChannelMapping& mapping) noexcept : name_(mapping.name()) {
  struct stat st {};
  if (::fstat(mapping.segment().fd(), &st) == 0) {
    device_ = st.st_dev;
    inode_ = st.st_ino;
    armed_ = true;
  }
}

ChannelRemover::ChannelRemover(ChannelRemover&& other) noexcept
    : name_(std::move(other.name_)),
      device_(other.device_),
      inode_(other.inode_),
      armed_(other.armed_) {
  other.armed_ = false;
}

ChannelRemover::~ChannelRemover() {
  if (!armed_) {
    return;
  }
  // The name may have been taken by a successor's fresh channel; that one is
  // not ours to remove. (A replacement between this check and the removal
  // is not excluded; it needs the name removed and recreated in that instant.)
  struct stat st {};
  if (::lstat(sluice::shm::object_path(name_).c_str(), &st) != 0 || st.st_dev != device_ ||
      st.st_ino != inode_) {
    return;
  }
  try {
    remove_channel(name_);
  } catch (...) {  // a destructor must not throw; the name then stays, as without a remover
  }
}

}  // namespace sluice::transport
