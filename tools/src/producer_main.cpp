// sluice-producer: creates a channel and sends N pattern records through it.

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include "../common/arguments.hpp"
#include "../common/channel_options.hpp"
#include "../common/json_line.hpp"
#include "../common/pacer.hpp"
#include "../common/peer_watch.hpp"
#include "../common/progress.hpp"
#include "../common/report.hpp"
#include "sluice/shm/setup_error.hpp"
#include "sluice/transport/partition_writer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_frame.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/sequence_pattern.hpp"

namespace st = sluice::transport;
using sluice::tools::JsonLine;

namespace {

constexpr const char* kUsage =
    "usage: sluice-producer --channel NAME --records N --size BYTES [options]\n"
    "\n"
    "Creates channel NAME and sends N records of BYTES bytes (>= 8): the first 8\n"
    "bytes are the sequence number 0..N-1 (little-endian), the rest a pattern\n"
    "derived from it. Blocks while the consumer is behind (backpressure).\n"
    "By default it succeeds only when a consumer has received every record: at the\n"
    "end it waits for that, as long as the consumer lives.\n"
    "\n"
    "options:\n"
    "  --rate R               at most R records per second\n"
    "  --rate-schedule LIST   SECONDS:RATE,... phases (RATE 0 = unthrottled; the last continues)\n"
    "  --buffer-size BYTES    size of each pool buffer (default 32K, or one record and its\n"
    "                         4-byte header when records are larger, so that none is\n"
    "                         split; K/M suffixes allowed; 64 bytes to 256 MiB)\n"
    "  --buffers COUNT        number of pool buffers (default 64; with buffers of one\n"
    "                         record 1 MiB worth, at least 2 and at least --consumers\n"
    "                         plus 1; the pool, buffers times size, at most 64 GiB)\n"
    "  --flush-timeout-us US  hand over a partly filled buffer after US microseconds\n"
    "                         (default 1000; 0 = every record at once, published in place)\n"
    "  --mode OCTAL           permissions of the channel (default 600)\n"
    "  --replace-stale        replace an existing channel of that name if nobody uses it\n"
    "  --huge-pages           back the channel with 2 MiB pages; set-up fails (exit 2) if\n"
    "                         /dev/shm does not give them (mount it with huge=advise)\n"
    "  --wait-for-new-consumer  if the consumer dies, wait for a new one (sluice-consumer\n"
    "                         --resume) instead of failing\n"
    "  --wait SECONDS         how long to wait for a first consumer to attach (default 10)\n"
    "  --no-wait-for-consumer succeed once every record is in the channel and the stream\n"
    "                         closed, read or not (fire and forget); --wait then only\n"
    "                         bounds a wait on a full pool that no consumer empties\n"
    "  --consumers K          fan-out: K subpartitions (1..64), each read by its own\n"
    "                         sluice-consumer --subpartition I (the producer then does not\n"
    "                         wait for delivery: each consumer's summary proves its share)\n"
    "  --partition NAME       how records are split among them: round-robin (record n to\n"
    "                         n mod K; default), key (key = sequence number, by its hash),\n"
    "                         least-loaded (per buffer, to the least-queued live consumer),\n"
    "                         broadcast (every record to every consumer; the slowest\n"
    "                         sets the pace)\n"
    "  --max-queued-buffers N at most N buffers queued per subpartition (default 10)\n"
    "  --resume               continue the stream of a producer that died: attach to\n"
    "                         channel NAME (waiting up to --wait for it) instead of\n"
    "                         creating it, and send from the first record it had not\n"
    "                         committed up to N-1 (the channel's own configuration\n"
    "                         applies). For a 1:1, least-loaded or broadcast channel;\n"
    "                         refused for round-robin and key, whose committed records\n"
    "                         are not a prefix of the stream\n"
    "  --json                 one JSON object per output line\n"
    "\n"
    "NAME is 1 to 200 letters, digits, '.', '_' or '-', not starting with '.'.\n"
    "\n"
    "exit status: 0 a consumer received all records (with --no-wait-for-consumer: all\n"
    "records sent and the stream closed); 1 runtime error (the consumer went away\n"
    "before reading everything, channel corrupt, ...); 2 bad arguments or set-up\n"
    "failure; 3 no consumer attached within --wait\n";

struct Options {
  std::string channel;
  std::uint64_t records = 0;
  std::uint64_t size = 0;
  st::ChannelConfig config;
  st::CreateOptions create;
  std::vector<sluice::tools::RatePhase> schedule;
  bool json = false;
  bool wait_for_new_consumer = false;
  bool wait_for_consumer = true;  // success means delivered, not just sent
  double wait_seconds = 10;       // for a first consumer
  bool partitioned = false;       // --consumers or --partition given
  bool resume = false;            // attach to a dead producer's channel and continue it
};

Options parse(int argc, char** argv) {
  const sluice::tools::Arguments args(
      argc, argv, 1,
      {"--channel", "--records", "--size", "--rate", "--rate-schedule", "--buffer-size",
       "--buffers", "--flush-timeout-us", "--mode", "--wait", "--consumers", "--partition",
       "--max-queued-buffers"},
      {"--json", "--replace-stale", "--huge-pages", "--wait-for-new-consumer",
       "--no-wait-for-consumer", "--resume", "--help"});
  if (args.has("--help")) {
    std::fputs(kUsage, stdout);
    std::exit(0);  // NOLINT(concurrency-mt-unsafe): single-threaded, before any work
  }
  if (!args.positional().empty()) {
    throw sluice::tools::UsageError("unexpected argument \"" + args.positional().front() + "\"");
  }
  Options o;
  o.channel = args.text("--channel");
  o.records = args.unsigned_number("--records", 0, UINT64_MAX / 2);
  o.size = args.unsigned_number("--size", st::pattern::kMinRecordBytes, 1ULL << 30);
  o.schedule = sluice::tools::rate_schedule_from(args);
  sluice::tools::channel_options_from(args, o.config, o.create);
  o.partitioned = sluice::tools::partition_options_from(args, o.config);
  if (!args.has("--buffer-size")) {
    // A record larger than the default buffer would be split over several
    // and copied piecewise at both ends: a buffer per record instead, and a
    // pool sized for large records unless --buffers says otherwise.
    const st::ChannelConfig sized = st::sized_for_records(o.config, o.size);
    o.config.buffer_bytes = sized.buffer_bytes;
    if (!args.has("--buffers")) {
      o.config.buffer_count = sized.buffer_count;
    }
  }
  if (args.has("--huge-pages")) {
    o.create.huge_pages = st::HugePages::kRequired;
  }
  o.wait_for_new_consumer = args.has("--wait-for-new-consumer");
  o.wait_for_consumer = !args.has("--no-wait-for-consumer");
  if (args.has("--wait")) {
    o.wait_seconds = args.real_number("--wait", 0, 86400);
  }
  o.json = args.has("--json");
  o.resume = args.has("--resume");
  return o;
}

// With --resume: the producer of the existing channel, its stream taken
// over from the one that died; the options then describe that channel.
st::Producer attach_to_continue(Options& options) {
  st::OpenOptions open;
  open.wait_for_channel = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(options.wait_seconds));
  st::Producer producer = st::Producer::attach(options.channel, open);
  const st::ChannelConfigRecord& config = producer.config();
  const auto partitioner = static_cast<st::Partitioner>(config.partitioner);
  if (config.subpartitions > 1 &&
      (partitioner == st::Partitioner::kRoundRobin || partitioner == st::Partitioner::kKey)) {
    // One writer per subpartition, each committing on its own: the records
    // committed are not the first records_committed() of the stream.
    throw sluice::shm::SetupError(
        "channel \"" + options.channel + "\" is a " +
        std::string(st::partitioner_name(partitioner)) +
        " fan-out; --resume is available for a 1:1, least-loaded or broadcast channel");
  }
  options.config.subpartitions = config.subpartitions;
  options.config.partitioner = partitioner;
  options.config.flush_timeout = std::chrono::nanoseconds(config.flush_timeout_ns);
  return producer;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = parse(argc, argv);
  } catch (const sluice::tools::UsageError& e) {
    sluice::tools::report_failure("producer", sluice::tools::command_line_has(argc, argv, "--json"),
                                  e.what());
    std::fprintf(stderr, "\n%s", kUsage);
    return 2;
  }

  std::optional<st::Producer> producer;
  try {
    if (options.resume) {
      producer.emplace(attach_to_continue(options));
    } else {
      producer.emplace(st::Producer::create(options.channel, options.config, options.create));
    }
  } catch (const std::exception& e) {
    sluice::tools::report_failure("producer", options.json, e.what());
    return 2;
  }

  if (options.wait_for_new_consumer) {
    producer->set_consumer_loss(st::ConsumerLoss::kWaitForNewConsumer);
  }
  // A zero timeout asks for every record at once: published in place in an
  // open buffer rather than one buffer per record (in a channel of one
  // subpartition; a partitioned one hands over a buffer per record).
  const bool fan_out = options.config.subpartitions > 1;
  st::RecordWriter writer(*producer, options.config.flush_timeout.count() == 0 && !fan_out
                                         ? st::Publication::kEachRecordInPlace
                                         : st::Publication::kWholeBuffers);
  std::optional<st::PartitionWriter> partitioned;
  if (fan_out) {
    partitioned.emplace(*producer);
  }
  const bool keyed = options.config.partitioner == st::Partitioner::kKey;
  sluice::tools::Pacer pacer(options.schedule);
  sluice::tools::Progress progress("producer", options.json, options.size);
  // A record filled apart and then copied, for the paths that need one;
  // allocated at first use: fresh memory costs a page fault per page (about
  // 4 ms for a 1 MiB record), a share of a short run's time.
  std::vector<std::byte> record_storage;
  const auto private_record = [&record_storage, &options]() -> std::span<std::byte> {
    if (record_storage.empty()) {
      record_storage.resize(options.size);
    }
    return record_storage;
  };

  const auto first_consumer_deadline =
      std::chrono::steady_clock::now() +
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(options.wait_seconds));
  const sluice::tools::ConsumerWatch consumer_watch(*producer);
  bool consumer_seen = false;
  progress.start();
  pacer.start(sluice::tools::Pacer::Clock::now());
  st::Status status = st::Status::kOk;
  // Resumed: every record below the count is in the stream already.
  std::uint64_t sent = std::min(producer->records_committed(), options.records);
  // Records that fit a buffer are filled in place: once a consumer is
  // there in runs (write_batch: the write position stays in registers), as
  // many per run as the pacer allows before its next look at the clock.
  // (Published in place, a record needs a few bytes more than in a whole
  // buffer; the partition writers hand over whole buffers.)
  const bool fills_in_place =
      fan_out ? options.size + sizeof(std::uint32_t) <= producer->config().buffer_bytes
              : writer.accepts_begin_record(options.size);
  constexpr std::uint64_t kMostPerRun = 4096;
  // The next records filled in place by `target` (the RecordWriter, or the
  // PartitionWriter of a fan-out) in one write_batch: as many as the pacer
  // allows before its next look at the clock, at most kMostPerRun. `sent`
  // counts those that went in.
  const auto write_run = [&](auto& target) {
    const std::uint64_t run = std::min<std::uint64_t>(
        {options.records - sent, kMostPerRun,
         std::min<std::uint64_t>(pacer.records_until_check(), kMostPerRun) + 1});
    pacer.count(run - 1);
    const std::uint64_t written_before = target.records_written();
    std::uint64_t sequence = sent;
    const st::Status result = target.write_batch(
        options.size, run,
        [&sequence](std::span<std::byte> out) noexcept { st::pattern::fill(out, sequence++); });
    sent += target.records_written() - written_before;
    return result;
  };
  // Fan-out: through the partition writer (one writer per subpartition),
  // which routes each record by the partitioner or by its key; filled in
  // place in runs unless keyed or larger than a buffer.
  while (fan_out && sent < options.records) {
    pacer.pace([&] { (void)partitioned->flush_if_due(); });
    if (keyed || !fills_in_place) {
      const std::span<std::byte> record = private_record();
      st::pattern::fill(record, sent);
      status = keyed ? partitioned->write(sent, record) : partitioned->write(record);
      if (status != st::Status::kOk) {
        break;
      }
      ++sent;
      progress.tick(sent, sent - 1);
      continue;
    }
    status = write_run(*partitioned);
    if (status != st::Status::kOk) {
      break;
    }
    progress.tick(sent, sent - 1);
  }
  while (!fan_out && sent < options.records) {
    pacer.pace([&writer] { (void)writer.flush_if_due(); });
    if (!consumer_seen && fills_in_place && options.size > st::frame::kRunMaxRecordBytes) {
      // Filled in place, one at a time, each wait bounded until a consumer
      // is seen (a pool that nobody empties must not block forever). Not
      // small records: one at a time, each would be a frame of its own,
      // where write() packs records of one length into runs.
      std::span<std::byte> out;
      status = sluice::tools::begin_record(writer, options.size, out, consumer_watch, consumer_seen,
                                           first_consumer_deadline);
      if (status == st::Status::kOk) {
        st::pattern::fill(out, sent);
        status = writer.finish_record();
      }
      if (status != st::Status::kOk) {
        break;
      }
      ++sent;
      progress.tick(sent, sent - 1);
      continue;
    }
    if (!consumer_seen || !fills_in_place) {
      // Copied from a private record: a small one until a consumer is seen
      // (each wait bounded), or one larger than a buffer (spanning buffers).
      const std::span<std::byte> record = private_record();
      st::pattern::fill(record, sent);
      status = sluice::tools::write_record(writer, record, consumer_watch, consumer_seen,
                                           first_consumer_deadline);
      if (status != st::Status::kOk) {
        break;
      }
      ++sent;
      progress.tick(sent, sent - 1);
      continue;
    }
    status = write_run(writer);
    if (status != st::Status::kOk) {
      break;
    }
    progress.tick(sent, sent - 1);
  }
  if (status == st::Status::kOk) {
    status = fan_out ? partitioned->close() : writer.close();
  }
  const double seconds = progress.elapsed_seconds();  // sending only, not the wait below
  // Sent is not delivered: the records may sit in the pool until a consumer
  // reads them, or never.
  sluice::tools::Delivery delivery = sluice::tools::Delivery::kDelivered;
  if (status == st::Status::kOk && options.wait_for_consumer && !fan_out) {
    delivery = sluice::tools::wait_for_delivery(*producer, first_consumer_deadline,
                                                options.wait_for_new_consumer);
  }
  const bool no_consumer =
      status == st::Status::kTimeout || delivery == sluice::tools::Delivery::kNoConsumer;
  const bool ok = status == st::Status::kOk && delivery == sluice::tools::Delivery::kDelivered;

  const auto& counters = producer->mapping().control().producer_counters;
  const double blocked = static_cast<double>(counters.blocked_ns.load()) / 1e9;
  const std::uint64_t bytes = sent * options.size;
  const double records_per_sec = seconds > 0 ? static_cast<double>(sent) / seconds : 0.0;
  const double bytes_per_sec = seconds > 0 ? static_cast<double>(bytes) / seconds : 0.0;

  if (no_consumer) {
    char waited[32];
    std::snprintf(waited, sizeof(waited), "%g", options.wait_seconds);
    sluice::tools::report_failure(
        "producer", options.json,
        "no consumer attached to channel \"" + options.channel + "\" within " + waited +
            " s (--wait); " + std::to_string(sent) + " of " + std::to_string(options.records) +
            " records are in the channel, unread: start sluice-consumer --channel " +
            options.channel + " to read them, or remove them with sluice rm " + options.channel);
  } else if (delivery == sluice::tools::Delivery::kConsumerLeft) {
    sluice::tools::report_failure("producer", options.json,
                                  "sent all " + std::to_string(sent) +
                                      " records, but the consumer went away after "
                                      "reading " +
                                      std::to_string(consumer_watch.records_received()) +
                                      " of them");
  } else if (status != st::Status::kOk) {
    std::string why = std::string(st::to_string(status));
    if (status == st::Status::kPeerDied) {
      why = "the consumer went away";
    } else if (status == st::Status::kCorrupt) {
      why = producer->corruption();
    }
    sluice::tools::report_failure("producer", options.json,
                                  "stopped after " + std::to_string(sent) + " of " +
                                      std::to_string(options.records) + " records: " + why);
  }
  if (options.json) {
    JsonLine summary;
    summary.add("role", "producer")
        .add("type", "summary")
        .add("channel", options.channel)
        .add("ok", ok)
        .add("records", sent)
        .add("bytes", bytes)
        .add("record_bytes", options.size)
        .add("seconds", seconds)
        .add("records_per_sec", records_per_sec)
        .add("bytes_per_sec", bytes_per_sec)
        .add("lost", std::uint64_t{0})
        .add("duplicated", std::uint64_t{0})
        .add("corrupt", std::uint64_t{0})
        .add("blocked_seconds", blocked);
    if (options.partitioned) {
      summary.add("subpartitions", std::uint64_t{options.config.subpartitions})
          .add("partition", st::partitioner_name(options.config.partitioner));
    }
    if (sent > 0) {
      summary.add("first_seq", std::uint64_t{0}).add("last_seq", sent - 1);
    } else {
      summary.add_null("first_seq").add_null("last_seq");
    }
    std::printf("%s\n", summary.str().c_str());
  } else {
    std::printf(
        "producer summary: %llu records of %llu bytes in %.3f s: %.0f records/s, %.1f MB/s, "
        "blocked %.3f s (%.0f%%)\n",
        static_cast<unsigned long long>(sent), static_cast<unsigned long long>(options.size),
        seconds, records_per_sec, bytes_per_sec / 1e6, blocked,
        seconds > 0 ? 100.0 * blocked / seconds : 0.0);
  }
  std::fflush(stdout);
  if (no_consumer) {
    return 3;
  }
  return ok ? 0 : 1;
}
