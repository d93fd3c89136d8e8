// sluice export: serves the Prometheus text of every channel and stage over
// HTTP (GET /metrics) for a Prometheus server to scrape. One blocking loop,
// one request at a time: a scrape is small and rare.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <optional>
#include <string>
#include <system_error>

#include "commands.hpp"
#include "pipeline.hpp"
#include "prometheus.hpp"

namespace sluice::tools {

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_stop_signal(int /*signal*/) {
  g_stop = 1;
}

constexpr std::size_t kMaxRequestBytes = 8192;
constexpr int kClientTimeoutSeconds = 5;

// "9464" (loopback), "HOST:9464" with HOST an IPv4 address or localhost; port 0 picks a free one.
sockaddr_in parse_listen_address(const std::string& text) {
  const auto colon = text.rfind(':');
  std::string host = colon == std::string::npos ? "127.0.0.1" : text.substr(0, colon);
  const std::string port_text = colon == std::string::npos ? text : text.substr(colon + 1);
  if (host == "localhost") {
    host = "127.0.0.1";
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) {
    throw UsageError("--listen: \"" + host + "\" is not an IPv4 address (in \"" + text + "\")");
  }
  unsigned long port = 0;
  std::size_t used = 0;
  try {
    port = std::stoul(port_text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (port_text.empty() || used != port_text.size() || port > 65535 ||
      port_text.find_first_not_of("0123456789") != std::string::npos) {
    throw UsageError("--listen: \"" + port_text + "\" is not a port number 0-65535 (in \"" + text +
                     "\")");
  }
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  return address;
}

std::string address_text(const sockaddr_in& address) {
  char host[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &address.sin_addr, host, sizeof(host));
  return std::string(host) + ":" + std::to_string(ntohs(address.sin_port));
}

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  [[nodiscard]] int fd() const { return fd_; }

 private:
  int fd_;
};

// The request head, up to the blank line; nullopt if the client sent
// nothing usable in time or too much.
std::optional<std::string> read_request_head(int fd) {
  std::string head;
  char chunk[1024];
  while (head.find("\r\n\r\n") == std::string::npos && head.find("\n\n") == std::string::npos) {
    if (head.size() > kMaxRequestBytes) {
      return std::nullopt;
    }
    const ssize_t got = recv(fd, chunk, sizeof(chunk), 0);
    if (got <= 0) {
      if (got < 0 && errno == EINTR && g_stop == 0) {
        continue;
      }
      return std::nullopt;
    }
    head.append(chunk, static_cast<std::size_t>(got));
  }
  return head;
}

void send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR && g_stop == 0) {
      continue;
    }
    if (n <= 0) {
      return;  // the client went away; nothing to tell it
    }
    sent += static_cast<std::size_t>(n);
  }
}

std::string response(const char* status, const char* content_type, const std::string& body,
                     bool with_body, const char* extra_header = "") {
  return std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_header +
         "Connection: close\r\n\r\n" + (with_body ? body : "");
}

class Exporter {
 public:
  explicit Exporter(double window_seconds) : sampler_({}), window_seconds_(window_seconds) {
    sampler_.sample();  // the baseline: the first scrape has rates since start
  }

  void serve(int client) {
    timeval timeout{kClientTimeoutSeconds, 0};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    const auto head = read_request_head(client);
    if (!head) {
      send_all(client, response("400 Bad Request", "text/plain", "bad request\n", true));
      return;
    }
    const std::string line = head->substr(0, head->find_first_of("\r\n"));
    const auto first_space = line.find(' ');
    const auto second_space = line.find(' ', first_space + 1);
    if (first_space == std::string::npos || second_space == std::string::npos) {
      send_all(client, response("400 Bad Request", "text/plain", "bad request\n", true));
      return;
    }
    const std::string method = line.substr(0, first_space);
    std::string path = line.substr(first_space + 1, second_space - first_space - 1);
    path = path.substr(0, path.find('?'));
    if (path != "/metrics") {
      send_all(client, response("404 Not Found", "text/plain",
                                "not found: metrics are at /metrics\n", method != "HEAD"));
      return;
    }
    if (method != "GET" && method != "HEAD") {
      send_all(client, response("405 Method Not Allowed", "text/plain", "use GET\n", true,
                                "Allow: GET, HEAD\r\n"));
      return;
    }
    const std::vector<ChannelView> views = views_of(sampler_.sample(window_seconds_));
    send_all(client, response("200 OK", kPrometheusContentType,
                              prometheus_text(views, analyse_pipeline(views)), method == "GET"));
  }

 private:
  ChannelSampler sampler_;
  double window_seconds_;
};

}  // namespace

int run_export(int argc, char** argv) {
  const Arguments args(argc, argv, 2, {"--listen", "--max-requests", "--interval"}, {});
  if (!args.positional().empty()) {
    throw UsageError("export takes no names (it serves every channel)");
  }
  const sockaddr_in wanted =
      parse_listen_address(args.has("--listen") ? args.text("--listen") : "127.0.0.1:9464");
  const auto max_requests = args.optional_unsigned("--max-requests", 1, UINT64_MAX);
  const double window = args.has("--interval") ? args.real_number("--interval", 0, 3600) : 1.0;

  const Socket listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listener.fd() < 0) {
    std::fprintf(stderr, "sluice export: socket: %s\n",
                 std::generic_category().message(errno).c_str());
    return 1;
  }
  const int yes = 1;
  setsockopt(listener.fd(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  if (bind(listener.fd(), reinterpret_cast<const sockaddr*>(&wanted), sizeof(wanted)) != 0 ||
      listen(listener.fd(), 16) != 0) {
    const int error = errno;
    std::fprintf(
        stderr, "sluice export: cannot listen on %s: %s%s\n", address_text(wanted).c_str(),
        std::generic_category().message(error).c_str(),
        error == EADDRINUSE ? " (another program has this port; pick another with --listen)" : "");
    return 2;
  }
  sockaddr_in bound{};
  socklen_t bound_size = sizeof(bound);
  getsockname(listener.fd(), reinterpret_cast<sockaddr*>(&bound), &bound_size);

  struct sigaction stop {};
  stop.sa_handler = on_stop_signal;  // no SA_RESTART: accept returns EINTR
  sigaction(SIGINT, &stop, nullptr);
  sigaction(SIGTERM, &stop, nullptr);

  Exporter exporter(window);
  std::printf("sluice export: serving http://%s/metrics\n", address_text(bound).c_str());
  std::fflush(stdout);
  std::uint64_t served = 0;
  while (g_stop == 0 && (!max_requests || served < *max_requests)) {
    const int fd = accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) {
        continue;
      }
      std::fprintf(stderr, "sluice export: accept: %s\n",
                   std::generic_category().message(errno).c_str());
      return 1;
    }
    const Socket client(fd);
    exporter.serve(client.fd());
    ++served;
  }
  return 0;
}

}  // namespace sluice::tools
