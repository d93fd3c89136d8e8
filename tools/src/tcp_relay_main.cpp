// sluice-tcp-relay: a TCP relay that behaves like a slow, lossy link that can
// be cut, for trying the NATS bridge across "hosts" on one machine.

#include <cstdio>
#include <exception>
#include <memory>

#include "../common/arguments.hpp"
#include "../common/json_line.hpp"
#include "../common/report.hpp"
#include "tcp_relay.hpp"

using sluice::tools::JsonLine;

namespace {

constexpr const char* kUsage =
    "usage: sluice-tcp-relay --listen ADDR:PORT --to ADDR:PORT [options]\n"
    "\n"
    "Accepts TCP connections on --listen (PORT 0: any free port, printed at start)\n"
    "and relays each to --to, bytes in both directions, in order. Each direction\n"
    "delays every chunk it reads by --delay-ms. At most --max-queued-bytes wait per\n"
    "direction of a connection; beyond that the relay stops reading, so TCP\n"
    "backpressure passes through it.\n"
    "\n"
    "Loss: a TCP stream cannot lose bytes without breaking, so --loss P emulates\n"
    "what packet loss does to TCP instead: with probability P a chunk is held one\n"
    "retransmission timeout (--rto-ms, default 200) before it goes on, and\n"
    "everything behind it in that direction waits too (in-order delivery).\n"
    "\n"
    "Cutting the link: SIGUSR1 resets every relayed connection and closes the\n"
    "listening socket (new connections are refused) until SIGUSR2 restores it;\n"
    "--cut-after S --cut-for S does the same once on a timer. Each transition is\n"
    "logged on stderr (and as a JSON line with --json). SIGTERM or SIGINT ends it.\n"
    "\n"
    "options:\n"
    "  --delay-ms D            delay each chunk D milliseconds, each direction (default 0)\n"
    "  --loss P                probability 0..1 that a chunk is held one --rto-ms (default 0)\n"
    "  --rto-ms MS             how long a \"lost\" chunk is held (default 200)\n"
    "  --seed S                seed of the loss draws (default 1)\n"
    "  --max-queued-bytes N    bytes waiting per direction before reading stops (default 1M)\n"
    "  --cut-after S           cut the link S seconds after start (needs --cut-for)\n"
    "  --cut-for S             restore it S seconds later\n"
    "  --json                  one JSON object per output line\n"
    "\n"
    "exit status: 0 ended by SIGTERM or SIGINT; 1 a runtime failure (e.g. the port\n"
    "could not be bound again on restore); 2 bad arguments or set-up failure\n";

struct Options {
  sluice::tools::TcpRelayOptions relay;
  bool json = false;
};

std::chrono::milliseconds seconds_flag(const sluice::tools::Arguments& args, const char* flag) {
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(args.real_number(flag, 0, 86400) * 1000.0 + 0.5));
}

Options parse(int argc, char** argv) {
  const sluice::tools::Arguments args(argc, argv, 1,
                                      {"--listen", "--to", "--delay-ms", "--loss", "--rto-ms",
                                       "--seed", "--max-queued-bytes", "--cut-after", "--cut-for"},
                                      {"--json", "--help"});
  if (args.has("--help")) {
    std::fputs(kUsage, stdout);
    std::exit(0);  // NOLINT(concurrency-mt-unsafe): single-threaded, before any work
  }
  if (!args.positional().empty()) {
    throw sluice::tools::UsageError("unexpected argument \"" + args.positional().front() + "\"");
  }
  Options o;
  o.relay.listen = sluice::tools::parse_ipv4_endpoint("--listen", args.text("--listen"), true);
  o.relay.to = sluice::tools::parse_ipv4_endpoint("--to", args.text("--to"), false);
  if (auto d = args.optional_unsigned("--delay-ms", 0, 600'000)) {
    o.relay.delay = std::chrono::milliseconds(*d);
  }
  if (args.has("--loss")) {
    o.relay.loss = args.real_number("--loss", 0, 1);
  }
  if (auto rto = args.optional_unsigned("--rto-ms", 1, 600'000)) {
    o.relay.retransmission = std::chrono::milliseconds(*rto);
  }
  if (auto seed = args.optional_unsigned("--seed", 0, UINT64_MAX)) {
    o.relay.seed = *seed;
  }
  if (auto bytes = args.optional_unsigned("--max-queued-bytes", 1, 1ULL << 30)) {
    o.relay.max_queued_bytes = *bytes;
  }
  if (args.has("--cut-after") != args.has("--cut-for")) {
    throw sluice::tools::UsageError("--cut-after and --cut-for go together");
  }
  if (args.has("--cut-for")) {
    o.relay.cut_after = seconds_flag(args, "--cut-after");
    o.relay.cut_for = seconds_flag(args, "--cut-for");
    if (o.relay.cut_for.count() == 0) {
      throw sluice::tools::UsageError("--cut-for must be more than 0");
    }
  }
  o.json = args.has("--json");
  return o;
}

void say(bool json, const JsonLine& line, const std::string& text) {
  if (json) {
    std::printf("%s\n", line.str().c_str());
    std::fflush(stdout);
  }
  std::fprintf(stderr, "sluice-tcp-relay: %s\n", text.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = parse(argc, argv);
  } catch (const sluice::tools::UsageError& e) {
    sluice::tools::report_failure("tcp-relay",
                                  sluice::tools::command_line_has(argc, argv, "--json"), e.what());
    std::fprintf(stderr, "\n%s", kUsage);
    return 2;
  }
  std::unique_ptr<sluice::tools::TcpRelay> relay;
  try {
    relay = std::make_unique<sluice::tools::TcpRelay>(options.relay);
  } catch (const std::exception& e) {
    sluice::tools::report_failure("tcp-relay", options.json, e.what());
    return 2;
  }

  const bool json = options.json;
  const auto base = [] { return JsonLine().add("role", "tcp-relay"); };
  sluice::tools::TcpRelayEvents events;
  events.listening = [&](std::uint16_t port) {
    if (json) {
      std::printf("%s\n",
                  base()
                      .add("type", "listening")
                      .add("port", static_cast<std::uint64_t>(port))
                      .add("delay_ms", static_cast<std::int64_t>(options.relay.delay.count()))
                      .add("loss", options.relay.loss)
                      .str()
                      .c_str());
    } else {
      std::printf("listening on port %u\n", static_cast<unsigned>(port));
    }
    std::fflush(stdout);
  };
  events.cut = [&](const std::string& why, std::size_t closed) {
    say(json,
        base().add("type", "cut").add("by", why).add("closed", static_cast<std::uint64_t>(closed)),
        "link cut (" + why + "): reset " + std::to_string(closed) +
            " connection(s), refusing new ones");
  };
  events.restored = [&](const std::string& why) {
    say(json, base().add("type", "restored").add("by", why),
        "link restored (" + why + "): accepting connections");
  };

  int status = 0;
  try {
    relay->run(events);
  } catch (const std::exception& e) {
    sluice::tools::report_failure("tcp-relay", json, e.what());
    status = 1;
  }
  const sluice::tools::TcpRelayCounters& c = relay->counters();
  if (json) {
    std::printf("%s\n", base()
                            .add("type", "summary")
                            .add("connections", c.connections)
                            .add("refused", c.refused)
                            .add("bytes_forward", c.bytes_forward)
                            .add("bytes_backward", c.bytes_backward)
                            .add("chunks", c.chunks)
                            .add("held_chunks", c.held_chunks)
                            .add("cuts", c.cuts)
                            .str()
                            .c_str());
  } else {
    std::printf(
        "connections %llu, refused %llu, bytes forward %llu, backward %llu, chunks %llu "
        "(held %llu), cuts %llu\n",
        static_cast<unsigned long long>(c.connections), static_cast<unsigned long long>(c.refused),
        static_cast<unsigned long long>(c.bytes_forward),
        static_cast<unsigned long long>(c.bytes_backward),
        static_cast<unsigned long long>(c.chunks), static_cast<unsigned long long>(c.held_chunks),
        static_cast<unsigned long long>(c.cuts));
  }
  return status;
}
