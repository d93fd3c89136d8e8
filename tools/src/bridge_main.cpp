// sluice-bridge: carries a channel's records across hosts through a NATS
// JetStream stream. "out" reads a local channel (its consumer) and publishes
// into the stream; "in" reads the stream (a durable pull consumer) and writes
// into a local channel (its producer). See nats/include/sluice/nats/.

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <optional>

#include "../common/arguments.hpp"
#include "../common/bridge_status.hpp"
#include "../common/channel_list.hpp"
#include "../common/channel_options.hpp"
#include "../common/json_line.hpp"
#include "../common/last_consumer.hpp"
#include "../common/report.hpp"
#include "sluice/nats/connection.hpp"
#include "sluice/nats/inbound.hpp"
#include "sluice/nats/message_format.hpp"
#include "sluice/nats/outbound.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"

namespace st = sluice::transport;
namespace sn = sluice::nats;
using sluice::tools::JsonLine;
using sluice::tools::UsageError;

namespace {

constexpr const char* kUsage =
    "usage: sluice-bridge out --channel NAME[:I] --nats URL --stream STREAM [options]\n"
    "       sluice-bridge in  --stream STREAM --nats URL --channel NAME [options]\n"
    "\n"
    "out: reads channel NAME (subpartition I of a fan-out) as its consumer and publishes\n"
    "each buffer's records as one message into JetStream stream STREAM, creating the\n"
    "stream if it is missing. A buffer goes back to the channel's producer only after\n"
    "JetStream acknowledged it, so a bridge killed mid-stream loses nothing: run it again\n"
    "(--resume) and it republishes what was not acknowledged, under the same Nats-Msg-Id\n"
    "(duplicates are dropped by the stream). When the stream is full (--max-bytes,\n"
    "which out keeps itself, counting each message's stored size; discard new refuses\n"
    "the rest) buffers stay held and the producer blocks.\n"
    "When the channel's stream closes, out publishes an end marker and exits 0.\n"
    "\n"
    "in: a durable pull consumer of STREAM that writes the records into channel NAME\n"
    "(created; with --resume attached to) as its producer, asking for as many messages\n"
    "as it has free buffers. A message is acknowledged only once the local consumer\n"
    "released every buffer holding its records. Stops at the end marker (closing the\n"
    "channel, exit 0 once the consumer took everything) or after --records N.\n"
    "\n"
    "common options:\n"
    "  --subject SUBJ           subject of the messages (default: the stream's name for out,\n"
    "                           the stream's first subject for in)\n"
    "  --connect-timeout SEC    give up if no server answers within SEC (default 5); after\n"
    "                           the first connection, reconnects go on for ever (a line on\n"
    "                           stderr per disconnect and reconnect)\n"
    "  --json                   one JSON summary (or error) line on stdout\n"
    "out options:\n"
    "  --max-bytes BYTES        bound of a stream out creates (default 64M; K/M/G allowed)\n"
    "  --retention POLICY       of a stream out creates: work-queue (default; a message goes\n"
    "                           once in acknowledged it: a bounded queue) or limits (messages\n"
    "                           stay for replay; once --max-bytes is reached out blocks)\n"
    "  --duplicate-window SEC   stream's duplicate window when created (default 120)\n"
    "  --max-pending N          messages in flight at once (default 64)\n"
    "  --ack-timeout SEC        republish a message not acknowledged within SEC (default 5)\n"
    "  --wait SEC               how long to wait for the channel to appear (default 10)\n"
    "  --keep                   leave the channel in place at the end (default: remove it\n"
    "                           once its stream closed and everything was acknowledged)\n"
    "  --resume                 take over from a bridge that died (its buffers are received\n"
    "                           again) and wait for a new producer if the producer dies\n"
    "in options:\n"
    "  --wait SEC               wait up to SEC for the stream to appear (default 0: a\n"
    "                           missing stream fails at once)\n"
    "  --durable NAME           durable consumer name (default sluice-<channel>, '.' as '_');\n"
    "                           an existing one continues where it stood\n"
    "  --from-seq N             a new durable starts at stream sequence N (replay needs a\n"
    "                           stream of limits retention; a work queue holds only what\n"
    "                           is not yet acknowledged)\n"
    "  --from-time T            a new durable starts at time T: Unix seconds or\n"
    "                           YYYY-MM-DDTHH:MM:SSZ\n"
    "  --records N              stop after N records (at a message boundary)\n"
    "  --ack-wait SEC           server redelivers a message unacknowledged this long\n"
    "                           (default 30; redeliveries are recognised and skipped)\n"
    "  --resume                 attach to the channel left by an in that died, skipping\n"
    "                           records it already wrote (state file), and take over its\n"
    "                           durable: what it held unacknowledged comes again at once,\n"
    "                           in order\n"
    "  --state-file PATH        where in notes its position (default\n"
    "                           /dev/shm/.sluice-bridge-in.<channel>)\n"
    "  --wait-for-new-consumer  if the local consumer dies, wait for a new one\n"
    "  --buffer-size BYTES, --buffers COUNT, --mode OCTAL, --replace-stale\n"
    "                           the local channel, as for sluice-producer\n"
    "  --consumers K, --partition round-robin|least-loaded|broadcast, --max-queued-buffers N\n"
    "                           a fan-out channel: each message's records go to one\n"
    "                           subpartition together (so round-robin deals out\n"
    "                           messages, not records); not with --resume\n"
    "\n"
    "exit status: 0 done (out: the channel closed and everything was acknowledged; in: the\n"
    "end marker or --records reached and the local consumer took everything); 1 runtime\n"
    "failure (no NATS server within --connect-timeout, missing stream, a message or stream\n"
    "of another format, a peer went away, corruption); 2 bad arguments or local set-up\n"
    "failure\n";

std::atomic<bool> g_stop{false};

extern "C" void on_signal(int /*signal*/) {
  g_stop.store(true);
}

struct Common {
  std::string url;
  std::string stream;
  std::optional<std::string> subject;
  std::chrono::milliseconds connect_timeout{5000};
  bool json = false;
};

std::chrono::milliseconds seconds_flag(const sluice::tools::Arguments& args, const char* flag,
                                       double fallback, double min, double max) {
  const double seconds = args.has(flag) ? args.real_number(flag, min, max) : fallback;
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

Common common_from(const sluice::tools::Arguments& args) {
  Common c;
  c.url = args.text("--nats");
  c.stream = args.text("--stream");
  if (c.stream.empty() || c.stream.find_first_of(" .*>/\\\t") != std::string::npos) {
    throw UsageError("--stream must be a JetStream stream name (no spaces, '.', '*', '>', '/')");
  }
  c.subject = args.optional_text("--subject");
  if (c.subject && (c.subject->empty() || c.subject->find(' ') != std::string::npos)) {
    throw UsageError("--subject must be a NATS subject without spaces");
  }
  c.connect_timeout = seconds_flag(args, "--connect-timeout", 5, 0.1, 3600);
  c.json = args.has("--json");
  return c;
}

std::int64_t parse_time(const std::string& text) {
  std::size_t used = 0;
  try {
    const double seconds = std::stod(text, &used);
    if (used == text.size() && seconds >= 0) {
      return static_cast<std::int64_t>(seconds * 1e9);
    }
  } catch (...) {
    used = 0;
  }
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0') {
    throw UsageError("--from-time expects Unix seconds or YYYY-MM-DDTHH:MM:SSZ, got \"" + text +
                     "\"");
  }
  return static_cast<std::int64_t>(timegm(&tm)) * 1'000'000'000;
}

sn::ConnectOptions connect_options(const Common& c) {
  sn::ConnectOptions options;
  options.url = c.url;
  options.connect_timeout = c.connect_timeout;
  options.log = sn::stderr_log("sluice-bridge");
  return options;
}

void print_summary(const Common& c, JsonLine& json, const std::string& text) {
  if (c.json) {
    std::printf("%s\n", json.str().c_str());
  } else {
    std::printf("%s\n", text.c_str());
  }
  std::fflush(stdout);
}

int run_out(int argc, char** argv) {
  Common c;
  sn::StreamSpec spec;
  sn::OutboundOptions options;
  st::GateInput input;
  double wait_seconds = 10;
  bool resume = false;
  bool keep = false;
  try {
    const sluice::tools::Arguments args(
        argc, argv, 2,
        {"--channel", "--nats", "--stream", "--subject", "--connect-timeout", "--max-bytes",
         "--retention", "--duplicate-window", "--max-pending", "--ack-timeout", "--wait"},
        {"--json", "--resume", "--keep", "--help"});
    if (args.has("--help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (!args.positional().empty()) {
      throw UsageError("unexpected argument \"" + args.positional().front() + "\"");
    }
    c = common_from(args);
    const auto inputs = sluice::tools::parse_channel_list("--channel", args.text("--channel"));
    if (inputs.size() != 1) {
      throw UsageError("--channel takes one channel");
    }
    input = inputs.front();
    spec.name = c.stream;
    spec.subject = c.subject.value_or(c.stream);
    spec.max_bytes = static_cast<std::int64_t>(
        args.has("--max-bytes") ? args.unsigned_number("--max-bytes", 1024, 1ULL << 50)
                                : 64ULL << 20);
    if (auto retention = args.optional_text("--retention")) {
      if (*retention == "work-queue") {
        spec.retention = sn::Retention::kWorkQueue;
      } else if (*retention == "limits") {
        spec.retention = sn::Retention::kLimits;
      } else {
        throw UsageError("--retention expects work-queue or limits, not \"" + *retention + "\"");
      }
    }
    spec.duplicate_window = std::chrono::seconds(
        args.has("--duplicate-window") ? args.unsigned_number("--duplicate-window", 1, 86400 * 7)
                                       : 120);
    options.subject = spec.subject;
    options.max_in_flight =
        args.has("--max-pending") ? args.unsigned_number("--max-pending", 1, 65536) : 64;
    options.ack_timeout = seconds_flag(args, "--ack-timeout", 5, 0.1, 3600);
    options.log = sn::stderr_log("sluice-bridge");
    if (args.has("--wait")) {
      wait_seconds = args.real_number("--wait", 0, 86400);
    }
    resume = args.has("--resume");
    keep = args.has("--keep");
  } catch (const UsageError& e) {
    sluice::tools::report_failure("bridge", sluice::tools::command_line_has(argc, argv, "--json"),
                                  e.what());
    std::fprintf(stderr, "\n%s", kUsage);
    return 2;
  }

  std::optional<sn::Connection> connection;
  std::string stream_note;
  try {
    connection.emplace(sn::Connection::connect(connect_options(c)));
    jsOptions js_options;
    jsOptions_Init(&js_options);
    const sn::JetStream js(*connection, js_options);
    const sn::EnsuredStream stream = sn::ensure_stream(js.get(), spec);
    stream_note = stream.note;
    options.stream = spec.name;
    options.stream_bound_bytes = stream.bound_bytes;
  } catch (const sn::BridgeError& e) {
    sluice::tools::report_failure("bridge", c.json, e.what());
    return 1;
  }
  options.log(stream_note);

  std::optional<st::Consumer> consumer;
  try {
    st::OpenOptions open;
    open.wait_for_channel = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(wait_seconds));
    open.subpartition = input.subpartition;
    consumer.emplace(st::Consumer::open(input.channel, open));
    if (resume) {
      consumer->set_producer_loss(st::ProducerLoss::kWaitForNewProducer);
    }
  } catch (const std::exception& e) {
    sluice::tools::report_failure("bridge", c.json, e.what());
    return 2;
  }
  // A full buffer and its headers must fit one message, or it would be
  // refused for ever.
  const std::int64_t max_payload = natsConnection_GetMaxPayload(connection->get());
  const std::int64_t largest = static_cast<std::int64_t>(consumer->config().buffer_bytes) + 1024;
  if (largest > max_payload) {
    sluice::tools::report_failure(
        "bridge", c.json,
        "the channel's buffers (" + std::to_string(consumer->config().buffer_bytes) +
            " bytes, plus headers) do not fit a message of the server's max_payload (" +
            std::to_string(max_payload) + " bytes): use smaller buffers or raise max_payload");
    return 1;
  }
  // Nor may one be larger than the stream's bound: the stream would refuse
  // it while empty, for ever.
  const std::int64_t largest_stored =
      largest + static_cast<std::int64_t>(options.subject.size()) + 256;
  if (options.stream_bound_bytes > 0 && largest_stored > options.stream_bound_bytes) {
    sluice::tools::report_failure(
        "bridge", c.json,
        "the channel's buffers (" + std::to_string(consumer->config().buffer_bytes) +
            " bytes, plus headers) do not fit stream " + c.stream + "'s bound (" +
            std::to_string(options.stream_bound_bytes) + " bytes, --max-bytes): a full buffer " +
            "could never be stored; use smaller buffers or a larger bound");
    return 1;
  }

  // The status beside the channel, for `sluice stat` (removed at the end).
  const std::string status_file = sluice::tools::status_path(input.channel, "out");
  auto status_line = [&](const sn::OutboundStatus& status, const char* state) {
    return sluice::tools::StatusLine()
        .add("direction", "out")
        .add("state", state)
        .add("pid", static_cast<std::uint64_t>(getpid()))
        .add("subpartition", std::uint64_t{input.subpartition})
        .add("stream", c.stream)
        .add("subject", options.subject)
        .add("acknowledged_messages", status.acknowledged_messages)
        .add("acknowledged_records", status.acknowledged_records)
        .add("pending_messages", status.pending_messages)
        .add("refusals", status.refusals)
        .add("stream_full", std::uint64_t{status.stream_full ? 1U : 0U})
        .add("held_for_room", status.held_for_room)
        .str();
  };
  options.on_status = [&](const sn::OutboundStatus& status) {
    sluice::tools::write_status(status_file, status_line(status, "running"));
  };
  const auto started = std::chrono::steady_clock::now();
  const sn::OutboundResult result = sn::run_outbound(*consumer, *connection, options, g_stop);
  std::remove(status_file.c_str());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!result.ok) {
    sluice::tools::report_failure(
        "bridge", c.json,
        "out stopped after " + std::to_string(result.records) + " records: " + result.why);
  }
  JsonLine json;
  json.add("role", "bridge-out")
      .add("type", "summary")
      .add("channel", input.channel)
      .add("subpartition", std::uint64_t{input.subpartition})
      .add("stream", c.stream)
      .add("subject", options.subject)
      .add("ok", result.ok)
      .add("records", result.records)
      .add("buffers", result.buffers)
      .add("bytes", result.bytes)
      .add("duplicates", result.duplicates)
      .add("refusals", result.refusals)
      .add("held_for_room", result.held_for_room)
      .add("end_published", result.end_published)
      .add("reconnects", connection->reconnects())
      .add("seconds", seconds)
      .add("records_per_sec", seconds > 0 ? static_cast<double>(result.records) / seconds : 0.0);
  char text[512];
  std::snprintf(text, sizeof(text),
                "bridge out summary: %llu records in %llu messages from \"%s\" to stream %s in "
                "%.3f s (%llu duplicates, %llu refused and retried, %llu waits for room in the "
                "stream, %llu reconnects)",
                static_cast<unsigned long long>(result.records),
                static_cast<unsigned long long>(result.buffers), input.channel.c_str(),
                c.stream.c_str(), seconds, static_cast<unsigned long long>(result.duplicates),
                static_cast<unsigned long long>(result.refusals),
                static_cast<unsigned long long>(result.held_for_room),
                static_cast<unsigned long long>(connection->reconnects()));
  print_summary(c, json, text);
  // Read to its end and carried over: the channel's name goes, as after a
  // consumer (a fan-out's with its last consumer).
  if (result.ok && !keep &&
      (consumer->mapping().subpartitions() == 1 || sluice::tools::last_consumer_out(*consumer))) {
    st::remove_channel(input.channel);
  }
  return result.ok ? 0 : 1;
}

// The local channel of in: created, or with --resume attached to.
st::Producer open_local(const std::string& name, const st::ChannelConfig& config,
                        const st::CreateOptions& create, bool resume) {
  if (resume) {
    try {
      return st::Producer::attach(name);
    } catch (const std::exception&) {
      // Nothing to continue (or not resumable): create it.
    }
  }
  return st::Producer::create(name, config, create);
}

int run_in(int argc, char** argv) {
  Common c;
  sn::InboundOptions options;
  std::string channel;
  st::ChannelConfig config;
  st::CreateOptions create;
  bool resume = false;
  try {
    const sluice::tools::Arguments args(
        argc, argv, 2,
        {"--channel", "--nats", "--stream", "--subject", "--connect-timeout", "--durable", "--wait",
         "--from-seq", "--from-time", "--records", "--ack-wait", "--state-file", "--buffer-size",
         "--buffers", "--mode", "--consumers", "--partition", "--max-queued-buffers"},
        {"--json", "--resume", "--help", "--replace-stale", "--wait-for-new-consumer"});
    if (args.has("--help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (!args.positional().empty()) {
      throw UsageError("unexpected argument \"" + args.positional().front() + "\"");
    }
    c = common_from(args);
    channel = args.text("--channel");
    sluice::tools::channel_options_from(args, config, create);
    if (sluice::tools::partition_options_from(args, config) &&
        config.partitioner == st::Partitioner::kKey) {
      throw UsageError(
          "--partition key is not available in sluice-bridge in: a message's "
          "records go to one subpartition together");
    }
    resume = args.has("--resume");
    options.take_over = resume;
    if (resume && config.subpartitions > 1) {
      throw UsageError("--resume is not available for a fan-out channel (--consumers)");
    }
    options.stream = c.stream;
    options.subject = c.subject.value_or("");
    options.durable = args.optional_text("--durable").value_or(sn::default_durable(channel));
    if (options.durable.empty() || options.durable.find_first_of(" .*>") != std::string::npos) {
      throw UsageError("--durable must be a name without spaces, '.', '*' or '>'");
    }
    if (args.has("--from-seq") && args.has("--from-time")) {
      throw UsageError("give --from-seq or --from-time, not both");
    }
    if (args.has("--from-seq")) {
      options.from_sequence = args.unsigned_number("--from-seq", 1, UINT64_MAX);
    }
    if (auto time = args.optional_text("--from-time")) {
      options.from_time_ns = parse_time(*time);
    }
    options.max_records =
        args.has("--records") ? args.unsigned_number("--records", 1, UINT64_MAX) : 0;
    options.ack_wait = seconds_flag(args, "--ack-wait", 30, 1, 86400);
    options.state_path =
        args.optional_text("--state-file").value_or(sn::default_state_path(channel));
    options.wait_for_new_consumer = args.has("--wait-for-new-consumer");
    options.wait_for_stream = seconds_flag(args, "--wait", 0, 0, 86400);
    options.log = sn::stderr_log("sluice-bridge");
  } catch (const UsageError& e) {
    sluice::tools::report_failure("bridge", sluice::tools::command_line_has(argc, argv, "--json"),
                                  e.what());
    std::fprintf(stderr, "\n%s", kUsage);
    return 2;
  }

  std::optional<sn::Connection> connection;
  try {
    connection.emplace(sn::Connection::connect(connect_options(c)));
    jsOptions js_options;
    jsOptions_Init(&js_options);
    const sn::JetStream js(*connection, js_options);
    (void)sn::wait_for_stream(js.get(), c.stream, options.wait_for_stream);
  } catch (const sn::BridgeError& e) {
    sluice::tools::report_failure("bridge", c.json, e.what());
    return 1;
  }

  std::optional<st::Producer> producer;
  try {
    producer.emplace(open_local(channel, config, create, resume));
    if (resume || options.wait_for_new_consumer) {
      producer->set_consumer_loss(st::ConsumerLoss::kWaitForNewConsumer);
      options.wait_for_new_consumer = true;
    }
  } catch (const std::exception& e) {
    sluice::tools::report_failure("bridge", c.json, e.what());
    return 2;
  }

  // The status beside the channel, for `sluice stat` (removed at the end).
  const std::string status_file = sluice::tools::status_path(channel, "in");
  options.on_status = [&](const sn::InboundStatus& status) {
    sluice::tools::write_status(status_file, sluice::tools::StatusLine()
                                                 .add("direction", "in")
                                                 .add("state", "running")
                                                 .add("pid", static_cast<std::uint64_t>(getpid()))
                                                 .add("stream", c.stream)
                                                 .add("durable", options.durable)
                                                 .add("records", status.records)
                                                 .add("acknowledged_messages", status.acknowledged)
                                                 .add("pending_messages", status.pending)
                                                 .add("lag_messages", status.lag)
                                                 .str());
  };
  const auto started = std::chrono::steady_clock::now();
  sn::InboundResult result;
  try {
    result = sn::run_inbound(*producer, *connection, options, g_stop);
  } catch (const sn::BridgeError& e) {
    result.why = e.what();
    if (!producer->resumed_stream()) {
      producer.reset();
      st::remove_channel(channel);  // created here, never written
    }
  }
  std::remove(status_file.c_str());
  if (result.ok) {
    std::remove(options.state_path.c_str());  // the local stream is closed: nothing to resume
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!result.ok) {
    sluice::tools::report_failure(
        "bridge", c.json,
        "in stopped after " + std::to_string(result.records) + " records: " + result.why);
  }
  JsonLine json;
  json.add("role", "bridge-in")
      .add("type", "summary")
      .add("channel", channel)
      .add("stream", c.stream)
      .add("durable", options.durable)
      .add("ok", result.ok)
      .add("records", result.records)
      .add("messages", result.messages)
      .add("acknowledged", result.acknowledged)
      .add("skipped_records", result.skipped_records)
      .add("end_seen", result.end_seen)
      .add("reconnects", connection->reconnects())
      .add("seconds", seconds)
      .add("records_per_sec", seconds > 0 ? static_cast<double>(result.records) / seconds : 0.0);
  char text[512];
  std::snprintf(text, sizeof(text),
                "bridge in summary: %llu records from stream %s to \"%s\" in %.3f s (%llu "
                "messages, %llu duplicate records skipped, %llu reconnects)",
                static_cast<unsigned long long>(result.records), c.stream.c_str(), channel.c_str(),
                seconds, static_cast<unsigned long long>(result.messages),
                static_cast<unsigned long long>(result.skipped_records),
                static_cast<unsigned long long>(connection->reconnects()));
  print_summary(c, json, text);
  return result.ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "out") {
    return run_out(argc, argv);
  }
  if (mode == "in") {
    return run_in(argc, argv);
  }
  if (mode == "--help" || mode == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  sluice::tools::report_failure(
      "bridge", sluice::tools::command_line_has(argc, argv, "--json"),
      mode.empty() ? "say out or in" : "unknown mode \"" + mode + "\": say out or in");
  std::fprintf(stderr, "\n%s", kUsage);
  return 2;
}
