#pragma once

// Who removes a channel: a channel's name lives in /dev/shm until someone
// removes it (remove_channel(), `sluice rm`), and a producer cannot create a
// channel whose name is taken. A ChannelRemover ties the name to a scope: it
// removes the name when it is destroyed, however the scope is left (return,
// exception), so that one run leaves nothing behind for the next. Processes
// that have the channel open keep using it; only the name goes.

#include <sys/types.h>
#include <string>

#include "sluice/transport/channel.hpp"

namespace sluice::transport {

class ChannelRemover {
 public:
  // Remembers the channel `mapping` is (producer.mapping() or
  // consumer.mapping()). Only that channel is removed: if its name was
  // removed meanwhile and given to a new channel, the new one stays.
  explicit ChannelRemover(const ChannelMapping& mapping) noexcept;
  ChannelRemover(ChannelRemover&& other) noexcept;
  ChannelRemover& operator=(ChannelRemover&&) = delete;
  ChannelRemover(const ChannelRemover&) = delete;
  ChannelRemover& operator=(const ChannelRemover&) = delete;
  ~ChannelRemover();

  // Keeps the channel after all (e.g. to let a later consumer read what is left).
  void release() noexcept { armed_ = false; }

 private:
  std::string name_;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  bool armed_ = false;
};

}  // namespace sluice::transport
