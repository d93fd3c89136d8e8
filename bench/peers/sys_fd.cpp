// A pipe and a Unix stream socket, each wrapped on both ends in a 64 KiB
// user-space buffer (what stdio or a buffered stream would do). Records are
// fixed-size, so no length prefix is needed. A record that fits is filled in
// place in the write buffer and checked in place in the read buffer; a
// record larger than the buffer (1 MiB) goes straight through, as stdio does
// for large requests: filled in a private record and written with one call,
// read into a private record.

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "harness.hpp"

namespace cmp {
namespace {

constexpr std::size_t kBufferBytes = 64 * 1024;

[[noreturn]] void fail_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

class BufferedWriter {
 public:
  explicit BufferedWriter(int fd) : fd_(fd), buffer_(kBufferBytes) {}

  // Room for `bytes` (<= capacity) in the buffer, flushing first if needed.
  std::span<std::byte> reserve(std::size_t bytes) {
    if (used_ + bytes > buffer_.size()) {
      flush();
    }
    return {buffer_.data() + used_, bytes};
  }
  void commit(std::size_t bytes) { used_ += bytes; }
  void flush() {
    write_all(buffer_.data(), used_);
    used_ = 0;
  }
  // For a record larger than the buffer.
  void write_direct(std::span<const std::byte> data) {
    flush();
    write_all(data.data(), data.size());
  }

 private:
  void write_all(const std::byte* at, std::size_t bytes) const {
    while (bytes > 0) {
      const ssize_t n = ::write(fd_, at, bytes);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) {
          continue;  // EAGAIN only in busy-poll mode: spin
        }
        fail_errno("write");
      }
      at += n;
      bytes -= static_cast<std::size_t>(n);
    }
  }

  int fd_;
  std::vector<std::byte> buffer_;
  std::size_t used_ = 0;
};

class BufferedReader {
 public:
  explicit BufferedReader(int fd) : fd_(fd), buffer_(kBufferBytes) {}

  // The next `bytes` (<= capacity) bytes, as a view into the buffer valid
  // until the next call.
  std::span<const std::byte> take(std::size_t bytes) {
    if (end_ - begin_ < bytes) {
      std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      while (end_ < bytes) {
        const std::size_t n = read_some(buffer_.data() + end_, buffer_.size() - end_);
        if (n == 0) {
          fail("end of stream inside a record");
        }
        end_ += n;
      }
    }
    const std::span<const std::byte> view(buffer_.data() + begin_, bytes);
    begin_ += bytes;
    return view;
  }
  // For a record larger than the buffer: what is buffered, then straight in.
  void read_direct(std::span<std::byte> out) {
    std::size_t have = std::min(out.size(), end_ - begin_);
    std::memcpy(out.data(), buffer_.data() + begin_, have);
    begin_ += have;
    while (have < out.size()) {
      const std::size_t n = read_some(out.data() + have, out.size() - have);
      if (n == 0) {
        fail("end of stream inside a record");
      }
      have += n;
    }
  }
  bool at_end() {
    if (end_ > begin_) {
      return false;
    }
    begin_ = end_ = 0;
    return read_some(buffer_.data(), buffer_.size()) == 0;
  }

 private:
  std::size_t read_some(std::byte* at, std::size_t bytes) const {
    for (;;) {
      const ssize_t n = ::read(fd_, at, bytes);
      if (n >= 0) {
        return static_cast<std::size_t>(n);
      }
      if (errno != EINTR && errno != EAGAIN) {
        fail_errno("read");
      }
      // EAGAIN only in busy-poll mode: spin
    }
  }

  int fd_;
  std::vector<std::byte> buffer_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    fail_errno("fcntl(O_NONBLOCK)");
  }
}

void close_fd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

// fds_[0]: role 0's end (producer / client), fds_[1]: role 1's end.
// For a pipe, throughput uses one pipe (0 writes, 1 reads) and ping-pong a
// second one for the way back; a socket is bidirectional.
class FdSystem final : public System {
 public:
  explicit FdSystem(bool socket) : socket_(socket) {}
  [[nodiscard]] std::string name() const override { return socket_ ? "unix-socket" : "pipe"; }

  void prepare(const std::string& /*tag*/, bool ping) override {
    int pair[2];
    if (socket_) {
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        fail_errno("socketpair");
      }
      out_[0] = in_[0] = pair[0];
      out_[1] = in_[1] = pair[1];
      return;
    }
    if (::pipe2(pair, O_CLOEXEC) != 0) {
      fail_errno("pipe2");
    }
    out_[0] = pair[1];  // 0 -> 1
    in_[1] = pair[0];
    out_[1] = in_[0] = -1;
    if (ping) {
      if (::pipe2(pair, O_CLOEXEC) != 0) {
        fail_errno("pipe2");
      }
      out_[1] = pair[1];  // 1 -> 0
      in_[0] = pair[0];
    }
  }
  void in_child(int role) override {
    // Keep only this role's ends, so the other side's death reads as end-of-file.
    for (const int fd : open_fds()) {
      if (fd != in_[role] && fd != out_[role]) {
        ::close(fd);
      }
    }
  }
  void in_parent() override {
    for (const int fd : open_fds()) {
      ::close(fd);
    }
    in_[0] = in_[1] = out_[0] = out_[1] = -1;
  }

  void produce(Link& link, const Work& work) override {
    BufferedWriter writer(out_[0]);
    std::vector<std::byte> large(work.size > kBufferBytes ? work.size : 0);
    link.ready();
    for (std::uint64_t sequence = 0; sequence < work.records; ++sequence) {
      if (work.size <= kBufferBytes) {
        pattern::fill(writer.reserve(work.size), sequence);
        writer.commit(work.size);
      } else {
        pattern::fill(large, sequence);
        writer.write_direct(large);
      }
    }
    writer.flush();
    if (socket_) {
      ::shutdown(out_[0], SHUT_WR);
    }
    close_fd(out_[0]);
    link.done();
  }

  void consume(Link& link, const Work& work) override {
    BufferedReader reader(in_[1]);
    std::vector<std::byte> large(work.size > kBufferBytes ? work.size : 0);
    link.ready();
    for (std::uint64_t sequence = 0; sequence < work.records; ++sequence) {
      if (work.size <= kBufferBytes) {
        check_record(reader.take(work.size), work.size, sequence);
      } else {
        reader.read_direct(large);
        check_record(large, work.size, sequence);
      }
    }
    link.done();
    if (!reader.at_end()) {
      fail("more bytes after the last record");
    }
    close_fd(in_[1]);
  }

  void ping(Link& link, const PingWork& work) override {
    if (work.busy_poll) {
      set_nonblocking(in_[0]);
    }
    BufferedWriter writer(out_[0]);
    BufferedReader reader(in_[0]);
    std::vector<std::int64_t> samples;
    samples.reserve(work.rounds);
    link.ready();
    for (std::uint64_t i = 0; i < work.total(); ++i) {
      const std::int64_t start = now_ns();
      pattern::fill(writer.reserve(PingWork::kBytes), i);
      writer.commit(PingWork::kBytes);
      writer.flush();
      const std::span<const std::byte> reply = reader.take(PingWork::kBytes);
      const std::int64_t end = now_ns();
      check_record(reply, PingWork::kBytes, i);
      if (i >= work.warmup) {
        samples.push_back(end - start);
      }
    }
    link.done();
    summarise_latency(samples, link.report());
  }

  void pong(Link& link, const PingWork& work) override {
    if (work.busy_poll) {
      set_nonblocking(in_[1]);
    }
    BufferedWriter writer(out_[1]);
    BufferedReader reader(in_[1]);
    link.ready();
    for (std::uint64_t i = 0; i < work.total(); ++i) {
      const std::span<const std::byte> message = reader.take(PingWork::kBytes);
      check_record(message, PingWork::kBytes, i);
      std::memcpy(writer.reserve(PingWork::kBytes).data(), message.data(), PingWork::kBytes);
      writer.commit(PingWork::kBytes);
      writer.flush();
    }
    link.done();
  }

 private:
  [[nodiscard]] std::vector<int> open_fds() const {
    std::vector<int> fds;
    for (const int fd : {in_[0], in_[1], out_[0], out_[1]}) {
      if (fd >= 0 && std::find(fds.begin(), fds.end(), fd) == fds.end()) {
        fds.push_back(fd);
      }
    }
    return fds;
  }

  bool socket_;
  int out_[2] = {-1, -1};
  int in_[2] = {-1, -1};
};

}  // namespace

std::unique_ptr<System> make_pipe() {
  return std::make_unique<FdSystem>(false);
}
std::unique_ptr<System> make_socket() {
  return std::make_unique<FdSystem>(true);
}

}  // namespace cmp
