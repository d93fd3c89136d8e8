// sluice-tcp-relay run as a real process between this test and a forked
// TCP server: bytes, delay, link cuts and argument errors.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "tool_run.hpp"

namespace {

using sluice::test::ChildProcess;
using sluice::test::tool;
using Clock = std::chrono::steady_clock;

constexpr auto kGenerous = std::chrono::seconds(30);

std::uint8_t forward_byte(std::size_t i) {
  return static_cast<std::uint8_t>((i * 7 + 3) & 0xff);
}
std::uint8_t backward_byte(std::size_t i) {
  return static_cast<std::uint8_t>((i * 13 + 5) & 0xff);
}

// A listening socket on a free loopback port, made before forking the
// server so that its port is known to both sides.
struct Listener {
  int fd = -1;
  std::uint16_t port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(fd, 16) != 0) {
      std::abort();
    }
    socklen_t length = sizeof(address);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
  }
  ~Listener() { ::close(fd); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
};

// Connects to 127.0.0.1:port; -1 with errno set when refused.
int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    const int error = errno;
    ::close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::vector<std::uint8_t>& bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// Reads exactly n bytes, waiting at most `timeout` for each part; shorter on
// end of stream, error or timeout.
std::vector<std::uint8_t> receive(int fd, std::size_t n,
                                  std::chrono::milliseconds timeout = kGenerous) {
  std::vector<std::uint8_t> bytes(n);
  std::size_t done = 0;
  while (done < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
      break;
    }
    const ssize_t got = ::recv(fd, bytes.data() + done, n - done, 0);
    if (got <= 0) {
      break;
    }
    done += static_cast<std::size_t>(got);
  }
  bytes.resize(done);
  return bytes;
}

// Echoes every connection, one after another, until killed.
int echo_forever(int listener) {
  for (;;) {
    const int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) {
      return 1;
    }
    std::vector<char> buffer(65536);
    for (;;) {
      const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n <= 0 || ::send(fd, buffer.data(), static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) {
        break;
      }
    }
    ::close(fd);
  }
}

// sluice-tcp-relay --json in a child process; its stdout lines are read here.
class RelayProcess {
 public:
  explicit RelayProcess(const std::vector<std::string>& arguments) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      std::abort();
    }
    std::vector<std::string> argv_text = {tool("sluice-tcp-relay"), "--json"};
    argv_text.insert(argv_text.end(), arguments.begin(), arguments.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      std::vector<char*> argv;
      for (std::string& a : argv_text) {
        argv.push_back(a.data());
      }
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = out[0];
  }
  ~RelayProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_);
  }
  RelayProcess(const RelayProcess&) = delete;
  RelayProcess& operator=(const RelayProcess&) = delete;

  // The next stdout line holding `needle`, or "" after the timeout.
  std::string line_with(const std::string& needle) {
    const auto deadline = Clock::now() + kGenerous;
    for (;;) {
      const auto newline = pending_.find('\n');
      if (newline != std::string::npos) {
        std::string line = pending_.substr(0, newline);
        pending_.erase(0, newline + 1);
        if (line.find(needle) != std::string::npos) {
          return line;
        }
        continue;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{out_, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) != 1) {
        return "";
      }
      char chunk[4096];
      const ssize_t n = ::read(out_, chunk, sizeof(chunk));
      if (n <= 0) {
        return "";
      }
      pending_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  // The port from the "listening" line, or 0.
  std::uint16_t port() {
    const std::string line = line_with("\"type\":\"listening\"");
    const auto at = line.find("\"port\":");
    return at == std::string::npos ? 0
                                   : static_cast<std::uint16_t>(std::stoul(line.substr(at + 7)));
  }
  void signal(int number) const { ::kill(pid_, number); }
  // Exit status after SIGTERM, or -1.
  int stop() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool reaped_ = false;
  std::string pending_;
};

std::vector<std::string> relay_to(const Listener& server, std::vector<std::string> more = {}) {
  std::vector<std::string> arguments = {"--listen", "127.0.0.1:0", "--to",
                                        "127.0.0.1:" + std::to_string(server.port)};
  arguments.insert(arguments.end(), more.begin(), more.end());
  return arguments;
}

// Time for one byte to go through the relay to the echo server and back.
std::chrono::milliseconds round_trip(std::uint16_t port) {
  const int fd = connect_to(port);
  if (fd < 0) {
    return std::chrono::milliseconds(-1);
  }
  const auto start = Clock::now();
  const bool echoed = send_all(fd, {42}) && receive(fd, 1) == std::vector<std::uint8_t>{42};
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  ::close(fd);
  return echoed ? took : std::chrono::milliseconds(-1);
}

TEST(TcpRelay, BytesPassIntactInBothDirections) {
  Listener server;
  // More than the relay queues per direction (1 MiB), so its backpressure is used.
  constexpr std::size_t kBytes = 4 << 20;
  ChildProcess far([&] {
    const int fd = ::accept(server.fd, nullptr, nullptr);
    const std::vector<std::uint8_t> got = receive(fd, kBytes);
    if (got.size() != kBytes) {
      return 3;
    }
    for (std::size_t i = 0; i < kBytes; ++i) {
      if (got[i] != forward_byte(i)) {
        return 4;
      }
    }
    std::vector<std::uint8_t> reply(kBytes);
    for (std::size_t i = 0; i < kBytes; ++i) {
      reply[i] = backward_byte(i);
    }
    const bool sent = send_all(fd, reply);
    ::close(fd);
    return sent ? 0 : 5;
  });
  RelayProcess relay(relay_to(server, {"--delay-ms", "1"}));
  const std::uint16_t port = relay.port();
  ASSERT_NE(port, 0);
  const int fd = connect_to(port);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  std::vector<std::uint8_t> data(kBytes);
  for (std::size_t i = 0; i < kBytes; ++i) {
    data[i] = forward_byte(i);
  }
  ASSERT_TRUE(send_all(fd, data));
  const std::vector<std::uint8_t> back = receive(fd, kBytes);
  ASSERT_EQ(back.size(), kBytes);
  for (std::size_t i = 0; i < kBytes; ++i) {
    ASSERT_EQ(back[i], backward_byte(i)) << "at byte " << i;
  }
  EXPECT_TRUE(receive(fd, 1).empty());  // the server's end of stream passed through
  ::close(fd);
  EXPECT_EQ(far.wait(kGenerous), 0);
  EXPECT_EQ(relay.stop(), 0);
  const std::string summary = relay.line_with("\"type\":\"summary\"");
  EXPECT_NE(summary.find("\"bytes_forward\":" + std::to_string(kBytes)), std::string::npos)
      << summary;
  EXPECT_NE(summary.find("\"bytes_backward\":" + std::to_string(kBytes)), std::string::npos)
      << summary;
}

TEST(TcpRelay, EachDirectionIsDelayed) {
  Listener server;
  ChildProcess far([&] { return echo_forever(server.fd); });
  RelayProcess relay(relay_to(server, {"--delay-ms", "100"}));
  const std::uint16_t port = relay.port();
  ASSERT_NE(port, 0);
  // A lower bound only: the machine may add any amount.
  EXPECT_GE(round_trip(port).count(), 200);
}

TEST(TcpRelay, LossHoldsAChunkOneRetransmissionTimeout) {
  Listener server;
  ChildProcess far([&] { return echo_forever(server.fd); });
  RelayProcess relay(relay_to(server, {"--loss", "1", "--rto-ms", "150"}));
  const std::uint16_t port = relay.port();
  ASSERT_NE(port, 0);
  EXPECT_GE(round_trip(port).count(), 300);
  EXPECT_EQ(relay.stop(), 0);
  const std::string summary = relay.line_with("\"type\":\"summary\"");
  EXPECT_NE(summary.find("\"held_chunks\":2"), std::string::npos) << summary;
}

TEST(TcpRelay, ACutResetsConnectionsAndRefusesNewOnesUntilRestored) {
  Listener server;
  ChildProcess far([&] { return echo_forever(server.fd); });
  RelayProcess relay(relay_to(server));
  const std::uint16_t port = relay.port();
  ASSERT_NE(port, 0);
  const int before = connect_to(port);
  ASSERT_GE(before, 0);
  ASSERT_TRUE(send_all(before, {1, 2, 3}));
  ASSERT_EQ(receive(before, 3), (std::vector<std::uint8_t>{1, 2, 3}));

  relay.signal(SIGUSR1);
  const std::string cut = relay.line_with("\"type\":\"cut\"");
  EXPECT_NE(cut.find("\"closed\":1"), std::string::npos) << cut;
  EXPECT_TRUE(receive(before, 1).empty());  // reset or end of stream, not a hang
  ::close(before);
  EXPECT_EQ(connect_to(port), -1);
  EXPECT_EQ(errno, ECONNREFUSED);

  relay.signal(SIGUSR2);
  EXPECT_NE(relay.line_with("\"type\":\"restored\""), "");
  EXPECT_GE(round_trip(port).count(), 0);
  EXPECT_EQ(relay.stop(), 0);
  EXPECT_NE(relay.line_with("\"type\":\"summary\"").find("\"cuts\":1"), std::string::npos);
}

TEST(TcpRelay, ATimedCutEndsByItself) {
  Listener server;
  ChildProcess far([&] { return echo_forever(server.fd); });
  RelayProcess relay(relay_to(server, {"--cut-after", "0.2", "--cut-for", "0.3"}));
  const std::uint16_t port = relay.port();
  ASSERT_NE(port, 0);
  EXPECT_NE(relay.line_with("\"type\":\"cut\""), "");
  EXPECT_NE(relay.line_with("\"type\":\"restored\""), "");
  EXPECT_GE(round_trip(port).count(), 0);
}

TEST(TcpRelay, BadArgumentsExitWithStatusTwo) {
  const std::string relay = tool("sluice-tcp-relay");
  for (const char* arguments : {
           "",
           "--listen 127.0.0.1:0",
           "--listen 127.0.0.1 --to 127.0.0.1:4222",
           "--listen 127.0.0.1:0 --to 127.0.0.1:0",
           "--listen 127.0.0.1:70000 --to 127.0.0.1:4222",
           "--listen host.example:1 --to 127.0.0.1:4222",
           "--listen 127.0.0.1:0 --to 127.0.0.1:4222 --loss 1.5",
           "--listen 127.0.0.1:0 --to 127.0.0.1:4222 --delay-ms -1",
           "--listen 127.0.0.1:0 --to 127.0.0.1:4222 --cut-after 1",
           "--listen 127.0.0.1:0 --to 127.0.0.1:4222 --cut-after 1 --cut-for 0",
           "--listen 127.0.0.1:0 --to 127.0.0.1:4222 --frobnicate",
           "--listen 127.0.0.1:0 --to 127.0.0.1:4222 extra",
       }) {
    const sluice::test::ToolRun run = sluice::test::run_tool(relay + " " + arguments);
    EXPECT_EQ(run.status, 2) << arguments << "\n" << run.out;
    EXPECT_NE(run.out.find("sluice-tcp-relay:"), std::string::npos) << arguments << "\n" << run.out;
  }
  // A port in use is a set-up failure, also exit status 2.
  Listener busy;
  const sluice::test::ToolRun run = sluice::test::run_tool(
      relay + " --listen 127.0.0.1:" + std::to_string(busy.port) + " --to 127.0.0.1:1");
  EXPECT_EQ(run.status, 2) << run.out;
  EXPECT_NE(run.out.find("cannot listen"), std::string::npos) << run.out;
}

}  // namespace
