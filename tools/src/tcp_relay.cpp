#include "tcp_relay.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <deque>
#include <list>
#include <random>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "../common/arguments.hpp"

namespace sluice::tools {

namespace {

using Clock = std::chrono::steady_clock;

// One read() worth of bytes, forwarded once `due` has passed.
struct Chunk {
  Clock::time_point due;
  std::vector<char> bytes;
  std::size_t sent = 0;
};

// One direction of a relayed connection.
struct Direction {
  std::deque<Chunk> queue;
  std::size_t queued = 0;
  // A later chunk never goes before an earlier one, even when the earlier
  // one is held longer: TCP delivers in order, so a "lost" segment holds up
  // everything behind it.
  Clock::time_point last_due{};
  bool source_done = false;  // end of stream read from the source
  bool shut = false;         // end of stream passed on (shutdown(SHUT_WR))
};

struct Connection {
  int client = -1;
  int server = -1;
  bool connecting = true;  // non-blocking connect to the destination under way
  Direction forward;       // client -> server
  Direction backward;      // server -> client
  bool broken = false;
};

constexpr std::size_t kReadBytes = 64 * 1024;

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void close_fd(int& fd, bool reset) {
  if (fd < 0) {
    return;
  }
  if (reset) {
    // An abortive close (RST): the peer learns at once that the link is gone.
    const linger abort_on_close{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
  }
  ::close(fd);
  fd = -1;
}

int open_listener(const sockaddr_in& address) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail_errno("socket");
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 ||
      ::listen(fd, 128) != 0) {
    const int error = errno;
    ::close(fd);
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &address.sin_addr, text, sizeof(text));
    throw std::system_error(
        error, std::generic_category(),
        std::string("cannot listen on ") + text + ":" + std::to_string(ntohs(address.sin_port)));
  }
  return fd;
}

std::string signal_name(std::uint32_t signal) {
  switch (signal) {
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGTERM: return "SIGTERM";
    default: return "SIGINT";
  }
}

}  // namespace

struct TcpRelay::State {
  std::list<Connection> connections;
  std::mt19937_64 random;
  std::bernoulli_distribution lost;
  bool cut = false;
};

TcpRelay::TcpRelay(TcpRelayOptions options) : options_(options) {
  listener_ = open_listener(options_.listen);
  sockaddr_in bound{};
  socklen_t length = sizeof(bound);
  ::getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &length);
  port_ = ntohs(bound.sin_port);
  // Restoring the link binds the same port again, also when 0 was asked for.
  options_.listen.sin_port = bound.sin_port;

  sigset_t set;
  sigemptyset(&set);
  for (const int signal : {SIGUSR1, SIGUSR2, SIGTERM, SIGINT}) {
    sigaddset(&set, signal);
  }
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) {
    fail_errno("sigprocmask");
  }
  signals_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signals_ < 0) {
    fail_errno("signalfd");
  }
  std::signal(SIGPIPE, SIG_IGN);
}

TcpRelay::~TcpRelay() {
  close_fd(listener_, false);
  close_fd(signals_, false);
}

void TcpRelay::run(const TcpRelayEvents& events) {
  State state{.connections = {},
              .random = std::mt19937_64(options_.seed),
              .lost = std::bernoulli_distribution(options_.loss),
              .cut = false};
  if (events.listening) {
    events.listening(port_);
  }
  const auto start = Clock::now();
  const bool scheduled_cut = options_.cut_for.count() > 0;
  const auto cut_at = start + options_.cut_after;
  const auto restore_at = cut_at + options_.cut_for;
  bool scheduled_cut_done = false;
  bool scheduled_restore_done = false;

  const auto cut = [&](const std::string& why) {
    if (state.cut) {
      return;
    }
    const std::size_t closed = state.connections.size();
    for (Connection& c : state.connections) {
      close_fd(c.client, true);
      close_fd(c.server, true);
    }
    state.connections.clear();
    close_fd(listener_, false);  // connection attempts are refused now
    state.cut = true;
    ++counters_.cuts;
    if (events.cut) {
      events.cut(why, closed);
    }
  };
  const auto restore = [&](const std::string& why) {
    if (!state.cut) {
      return;
    }
    listener_ = open_listener(options_.listen);
    state.cut = false;
    if (events.restored) {
      events.restored(why);
    }
  };

  const auto accept_all = [&] {
    for (;;) {
      const int client = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (client < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR) {
          return;
        }
        fail_errno("accept");
      }
      const int one = 1;
      ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (server < 0) {
        ::close(client);
        fail_errno("socket");
      }
      ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      if (::connect(server, reinterpret_cast<const sockaddr*>(&options_.to), sizeof(options_.to)) !=
              0 &&
          errno != EINPROGRESS) {
        ::close(server);
        int closing = client;
        close_fd(closing, true);
        ++counters_.refused;
        continue;
      }
      Connection& c = state.connections.emplace_back();
      c.client = client;
      c.server = server;
      ++counters_.connections;
    }
  };

  // Reads one chunk from `from` into `d`; false when the connection broke.
  const auto read_into = [&](int from, Direction& d) {
    Chunk chunk;
    chunk.bytes.resize(kReadBytes);
    const ssize_t n = ::read(from, chunk.bytes.data(), chunk.bytes.size());
    if (n < 0) {
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    }
    if (n == 0) {
      d.source_done = true;
      return true;
    }
    chunk.bytes.resize(static_cast<std::size_t>(n));
    const bool held = options_.loss > 0 && state.lost(state.random);
    chunk.due = std::max(Clock::now() + options_.delay +
                             (held ? options_.retransmission : std::chrono::milliseconds(0)),
                         d.last_due);
    d.last_due = chunk.due;
    d.queued += chunk.bytes.size();
    d.queue.push_back(std::move(chunk));
    ++counters_.chunks;
    counters_.held_chunks += held ? 1 : 0;
    return true;
  };
  // Writes what is due from `d` to `to`; false when the connection broke.
  const auto write_from = [&](Direction& d, int to, std::uint64_t& delivered) {
    const auto now = Clock::now();
    while (!d.queue.empty() && d.queue.front().due <= now) {
      Chunk& chunk = d.queue.front();
      const ssize_t n = ::send(to, chunk.bytes.data() + chunk.sent, chunk.bytes.size() - chunk.sent,
                               MSG_NOSIGNAL);
      if (n < 0) {
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      }
      chunk.sent += static_cast<std::size_t>(n);
      delivered += static_cast<std::uint64_t>(n);
      d.queued -= static_cast<std::size_t>(n);
      if (chunk.sent == chunk.bytes.size()) {
        d.queue.pop_front();
      }
    }
    return true;
  };

  std::vector<pollfd> fds;
  for (;;) {
    const auto now = Clock::now();
    if (scheduled_cut && !scheduled_cut_done && now >= cut_at) {
      scheduled_cut_done = true;
      cut("--cut-after");
    }
    if (scheduled_cut && scheduled_cut_done && !scheduled_restore_done && now >= restore_at) {
      scheduled_restore_done = true;
      restore("--cut-for");
    }

    std::int64_t timeout_ms = -1;
    const auto wake_at = [&](Clock::time_point when) {
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(when - now).count();
      const std::int64_t clamped = std::max<std::int64_t>(ms, 0);
      timeout_ms = timeout_ms < 0 ? clamped : std::min(timeout_ms, clamped);
    };
    if (scheduled_cut && !scheduled_cut_done) {
      wake_at(cut_at);
    } else if (scheduled_cut && !scheduled_restore_done) {
      wake_at(restore_at);
    }

    fds.clear();
    fds.push_back({signals_, POLLIN, 0});
    fds.push_back({state.cut ? -1 : listener_, POLLIN, 0});
    const auto wants = [&](const Direction& in, const Direction& out, bool can_use) {
      short wanted = 0;
      if (!can_use) {
        return wanted;
      }
      if (!in.source_done && in.queued < options_.max_queued_bytes) {
        wanted |= POLLIN;
      }
      if (!out.queue.empty()) {
        if (out.queue.front().due <= now) {
          wanted |= POLLOUT;
        } else {
          wake_at(out.queue.front().due);
        }
      }
      return wanted;
    };
    for (const Connection& c : state.connections) {
      // Nothing is read from the client until the destination answered.
      const short client_events = wants(c.forward, c.backward, !c.connecting);
      const short server_events =
          c.connecting ? short{POLLOUT} : wants(c.backward, c.forward, true);
      // An fd with nothing asked of it is left out: otherwise a hang-up it
      // reports would wake the loop again and again while a queue is full.
      fds.push_back({client_events != 0 ? c.client : -1, client_events, 0});
      fds.push_back({server_events != 0 ? c.server : -1, server_events, 0});
    }

    if (::poll(fds.data(), fds.size(), static_cast<int>(timeout_ms)) < 0) {
      if (errno == EINTR) {
        continue;
      }
      fail_errno("poll");
    }

    if ((fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo info{};
      while (::read(signals_, &info, sizeof(info)) == sizeof(info)) {
        if (info.ssi_signo == SIGUSR1) {
          cut(signal_name(info.ssi_signo));
        } else if (info.ssi_signo == SIGUSR2) {
          restore(signal_name(info.ssi_signo));
        } else {
          return;
        }
      }
    }
    if (state.cut) {
      continue;  // the connections polled above are closed
    }
    if (fds[1].revents != 0) {
      accept_all();
    }

    std::size_t index = 2;
    for (auto it = state.connections.begin(); it != state.connections.end(); index += 2) {
      Connection& c = *it;
      if (index + 1 >= fds.size()) {
        break;  // accepted in this round: polled from the next one
      }
      const short client_revents = fds[index].revents;
      const short server_revents = fds[index + 1].revents;
      if (c.connecting && server_revents != 0) {
        int error = 0;
        socklen_t length = sizeof(error);
        ::getsockopt(c.server, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) {
          ++counters_.refused;
          c.broken = true;
        } else {
          c.connecting = false;
        }
      } else if (!c.connecting) {
        if ((client_revents & (POLLIN | POLLHUP | POLLERR)) != 0 && !c.forward.source_done &&
            c.forward.queued < options_.max_queued_bytes) {
          c.broken = c.broken || !read_into(c.client, c.forward);
        }
        if ((server_revents & (POLLIN | POLLHUP | POLLERR)) != 0 && !c.backward.source_done &&
            c.backward.queued < options_.max_queued_bytes) {
          c.broken = c.broken || !read_into(c.server, c.backward);
        }
        if ((server_revents & (POLLOUT | POLLERR)) != 0) {
          c.broken = c.broken || !write_from(c.forward, c.server, counters_.bytes_forward);
        }
        if ((client_revents & (POLLOUT | POLLERR)) != 0) {
          c.broken = c.broken || !write_from(c.backward, c.client, counters_.bytes_backward);
        }
      }
      if (!c.connecting) {
        for (auto [d, to] : {std::pair{&c.forward, c.server}, std::pair{&c.backward, c.client}}) {
          if (d->source_done && d->queue.empty() && !d->shut) {
            ::shutdown(to, SHUT_WR);
            d->shut = true;
          }
        }
      }
      if (c.broken || (c.forward.shut && c.backward.shut)) {
        // A broken side is reset on the other so neither end waits forever.
        close_fd(c.client, c.broken);
        close_fd(c.server, c.broken);
        it = state.connections.erase(it);
      } else {
        ++it;
      }
    }
  }
}

sockaddr_in parse_ipv4_endpoint(const std::string& flag, const std::string& text,
                                bool allow_any_port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    throw UsageError(flag + " expects ADDRESS:PORT, got \"" + text + "\"");
  }
  std::string host = text.substr(0, colon);
  const std::string port_text = text.substr(colon + 1);
  if (host == "localhost") {
    host = "127.0.0.1";
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  if (::inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) {
    throw UsageError(flag + " expects an IPv4 address, got \"" + host + "\"");
  }
  unsigned port = 0;
  const auto [end, error] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size() || port_text.empty() ||
      port > 65535 || (port == 0 && !allow_any_port)) {
    throw UsageError(flag + " has a bad port \"" + port_text + "\" (" +
                     (allow_any_port ? "0" : "1") + "..65535)");
  }
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  return address;
}

}  // namespace sluice::tools
