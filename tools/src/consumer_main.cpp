// sluice-consumer: attaches to a channel, receives N pattern records and
// checks every byte of each.

#include <cstdio>
#include <optional>

#include "../common/arguments.hpp"
#include "../common/channel_list.hpp"
#include "../common/json_line.hpp"
#include "../common/pacer.hpp"
#include "../common/peer_watch.hpp"
#include "../common/progress.hpp"
#include "../common/report.hpp"
#include "../common/sequence_check.hpp"
#include "gate_consumer.hpp"
#include "partition_consumer.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/sequence_pattern.hpp"

namespace st = sluice::transport;
using sluice::tools::JsonLine;

namespace {

constexpr const char* kUsage =
    "usage: sluice-consumer --channel NAME[,NAME...] --records N --size BYTES [options]\n"
    "\n"
    "Attaches to channel NAME (waiting for it to appear), receives records\n"
    "0..N-1 of BYTES bytes each, checks sequence and every byte, and counts\n"
    "lost, duplicated and corrupt records. With several names it reads them all\n"
    "through one input gate (fan-in): N records from each, each channel's stream\n"
    "checked on its own, and the JSON summary has an \"inputs\" entry per channel.\n"
    "\n"
    "options:\n"
    "  --rate R               at most R records per second\n"
    "  --rate-schedule LIST   SECONDS:RATE,... phases (RATE 0 = unthrottled; the last continues)\n"
    "  --wait SECONDS         how long to wait for the channel to appear (default 10); a\n"
    "                         channel left closed and fully read by an earlier run is\n"
    "                         removed and a fresh one waited for\n"
    "  --keep                 leave the channel in place at the end (default: remove it)\n"
    "  --resume               take over from a consumer that died: accept the stream from\n"
    "                         wherever it stands (records the dead one held come again\n"
    "                         first), check contiguity from the first sequence number\n"
    "                         seen, stop after N-1; wait for a new producer if one dies\n"
    "  --union                with several channels (NAME:I: subpartition I of one):\n"
    "                         together they carry records 0..N-1, each once, each channel\n"
    "                         in increasing order (the workers behind a fan-out); checked\n"
    "                         as a whole instead of each channel from 0\n"
    "  --subpartition I       read subpartition I of a partitioned channel (fan-out; see\n"
    "                         sluice-producer --consumers): to the end of the stream, or\n"
    "                         this subpartition's share of records 0..N-1 with --records;\n"
    "                         checks what the partitioner promises (round-robin: I, I+K,\n"
    "                         ...; key: the numbers whose key hash is I, in order;\n"
    "                         least-loaded: increasing, no duplicates; broadcast: every\n"
    "                         number, 0..N-1 in order); --size optional.\n"
    "                         The last consumer out removes the channel (unless --keep)\n"
    "  --json                 one JSON object per output line\n"
    "\n"
    "NAME is 1 to 200 letters, digits, '.', '_' or '-', not starting with '.'.\n"
    "\n"
    "exit status: 0 all N records arrived intact and in order (with --subpartition:\n"
    "everything the partitioner promises held); 1 loss, duplicates, corruption or a\n"
    "runtime error; 2 bad arguments or set-up failure\n";

struct Options {
  std::string channel;
  std::uint64_t records = 0;
  std::uint64_t size = 0;
  std::vector<sluice::tools::RatePhase> schedule;
  double wait_seconds = 10;
  bool keep = false;
  bool resume = false;
  bool union_of_inputs = false;
  bool json = false;
  std::optional<std::uint32_t> subpartition;
  bool records_given = true;
};

Options parse(int argc, char** argv) {
  const sluice::tools::Arguments args(
      argc, argv, 1,
      {"--channel", "--records", "--size", "--rate", "--rate-schedule", "--wait", "--subpartition"},
      {"--json", "--keep", "--resume", "--union", "--help"});
  if (args.has("--help")) {
    std::fputs(kUsage, stdout);
    std::exit(0);  // NOLINT(concurrency-mt-unsafe): single-threaded, before any work
  }
  if (!args.positional().empty()) {
    throw sluice::tools::UsageError("unexpected argument \"" + args.positional().front() + "\"");
  }
  Options o;
  o.channel = args.text("--channel");
  if (auto s =
          args.optional_unsigned("--subpartition", 0, st::ChannelConfig::kMaxSubpartitions - 1)) {
    o.subpartition = static_cast<std::uint32_t>(*s);
    if (o.channel.find(',') != std::string::npos) {
      throw sluice::tools::UsageError("--subpartition reads one channel, not a list");
    }
  }
  // A subpartition is read to the end of the stream unless N is given, and
  // its records may have any size unless --size says which.
  o.records_given = !o.subpartition || args.has("--records");
  if (o.records_given) {
    o.records = args.unsigned_number("--records", 0, UINT64_MAX / 2);
  }
  if (!o.subpartition || args.has("--size")) {
    o.size = args.unsigned_number("--size", st::pattern::kMinRecordBytes, 1ULL << 30);
  }
  o.schedule = sluice::tools::rate_schedule_from(args);
  if (args.has("--wait")) {
    o.wait_seconds = args.real_number("--wait", 0, 86400);
  }
  o.keep = args.has("--keep");
  o.resume = args.has("--resume");
  o.union_of_inputs = args.has("--union");
  if (o.union_of_inputs && o.channel.find_first_of(",:") == std::string::npos) {
    throw sluice::tools::UsageError("--union checks several inputs together: give a list");
  }
  o.json = args.has("--json");
  return o;
}

// One read_batch call: the records that continue the stream intact only
// advance `next`; any other goes to `other`, which tallies it and returns
// the sequence number expected after it. Stops after `wanted` - 1. A small
// function of its own with the record size, `next` and `wanted` in
// registers: inside read_and_check the size and `wanted` were reloaded
// from the stack per record, and the demo consumer of 8-byte records was
// the slower side of the pair (the producer blocked 17% of the run).
template <bool kPacing, class Other>
[[gnu::noinline]] st::Status read_one_batch(st::RecordReader& reader, std::uint64_t fast_size,
                                            std::uint64_t& next_sequence, std::uint64_t wanted,
                                            Other& other, sluice::tools::Pacer& pacer) {
  std::uint64_t next = next_sequence;
  const st::Status status =
      reader.read_batch([&](std::span<const std::byte> record) __attribute__((always_inline)) {
        if (record.size() == fast_size && st::pattern::sequence_of(record) == next &&
            st::pattern::body_matches(record, next)) [[likely]] {
          ++next;
        } else {
          next = other(record, next);
        }
        if (next >= wanted) {
          return false;
        }
        if constexpr (kPacing) {
          pacer.pace([] {});
        }
        return true;
      });
  next_sequence = next;
  return status;
}

// Reads records 0..wanted-1 (or to the stream's end) from `reader` and
// checks each into `tally`; progress lines and the pacer as the options ask.
st::Status read_and_check(st::RecordReader& reader, sluice::tools::SequenceCheck& tally,
                          sluice::tools::Progress& progress, sluice::tools::Pacer& pacer,
                          std::uint64_t wanted) {
  st::Status status = st::Status::kOk;
  bool started = false;
  const bool pacing = pacer.active();
  constexpr std::uint64_t kNoRecordSize = UINT64_MAX;  // larger than any buffer
  // The expected record (intact, next in sequence) only advances `next`;
  // anything else, and the first record, goes through the full tally,
  // which is then brought up to `next` first: the records taken by the
  // fast path since are next - tally.expected_next.
  std::uint64_t next = 0;
  // Out of line, so that the per-record check stays small in read_batch's loop.
  const auto unexpected = [&tally, &started, &progress, &pacer ](
      std::span<const std::byte> record, std::uint64_t expected) __attribute__((noinline)) {
    if (!started) {  // time from the first record, not from waiting for the producer
      started = true;
      progress.start();
      pacer.start(sluice::tools::Pacer::Clock::now());
    }
    tally.received += expected - tally.expected_next;
    tally.expected_next = expected;
    (void)tally.observe(record);
    return tally.expected_next;
  };
  pacer.pace([] {});
  while (next < wanted) {
    // The fast path needs a first record seen (its sequence number sets
    // where a resuming consumer starts); until then every record's size
    // misses `fast_size` and goes through the tally.
    const std::uint64_t fast_size =
        tally.first_seq.has_value() ? tally.record_bytes : kNoRecordSize;
    status = pacing ? read_one_batch<true>(reader, fast_size, next, wanted, unexpected, pacer)
                    : read_one_batch<false>(reader, fast_size, next, wanted, unexpected, pacer);
    progress.tick(tally.received + (next - tally.expected_next), next - 1);
    if (status != st::Status::kOk) {
      break;
    }
  }
  tally.received += next - tally.expected_next;
  tally.expected_next = next;
  if (tally.first_seq) {
    tally.last_seq = next - 1;  // the last new intact record is always expected_next - 1
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = parse(argc, argv);
  } catch (const sluice::tools::UsageError& e) {
    sluice::tools::report_failure("consumer", sluice::tools::command_line_has(argc, argv, "--json"),
                                  e.what());
    std::fprintf(stderr, "\n%s", kUsage);
    return 2;
  }

  if (options.subpartition) {
    sluice::tools::PartitionConsumerOptions part;
    part.channel = options.channel;
    part.subpartition = *options.subpartition;
    if (options.records_given) {
      part.records = options.records;
    }
    part.size = options.size;
    part.schedule = options.schedule;
    part.wait_seconds = options.wait_seconds;
    part.keep = options.keep;
    part.resume = options.resume;
    part.json = options.json;
    return sluice::tools::run_partition_consumer(part);
  }

  if (options.channel.find_first_of(",:") != std::string::npos) {
    sluice::tools::GateConsumerOptions gate;
    try {
      gate.channels = sluice::tools::parse_channel_list("--channel", options.channel);
    } catch (const sluice::tools::UsageError& e) {
      sluice::tools::report_failure("consumer", options.json, e.what());
      return 2;
    }
    gate.union_of_inputs = options.union_of_inputs;
    gate.records = options.records;
    gate.size = options.size;
    gate.schedule = options.schedule;
    gate.wait_seconds = options.wait_seconds;
    gate.keep = options.keep;
    gate.resume = options.resume;
    gate.json = options.json;
    return sluice::tools::run_gate_consumer(gate);
  }

  std::optional<st::Consumer> consumer;
  try {
    consumer.emplace(sluice::tools::open_skipping_finished_leftover(
        options.channel,
        std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::duration<double>(options.wait_seconds)),
        "consumer"));
  } catch (const std::exception& e) {
    sluice::tools::report_failure("consumer", options.json, e.what());
    return 2;
  }
  if (const std::uint32_t k = consumer->mapping().subpartitions(); k > 1) {
    // Subpartition 0 holds only its share: checking it as the whole stream
    // would report the others' records as lost.
    sluice::tools::report_failure("consumer", options.json,
                                  "channel \"" + options.channel + "\" has " + std::to_string(k) +
                                      " subpartitions; read one with --subpartition 0.." +
                                      std::to_string(k - 1));
    return 2;
  }

  st::Status status = st::Status::kOk;
  sluice::tools::SequenceCheck tally;
  tally.record_bytes = options.size;
  tally.from_first_seen = options.resume;
  if (options.resume) {
    consumer->set_producer_loss(st::ProducerLoss::kWaitForNewProducer);
  }
  sluice::tools::Progress progress("consumer", options.json, options.size);
  {
    st::RecordReader reader(*consumer);
    sluice::tools::Pacer pacer(options.schedule);
    status = read_and_check(reader, tally, progress, pacer, options.records);
  }
  const double seconds = tally.received > 0 ? progress.elapsed_seconds() : 0.0;
  if (tally.expected_next < options.records) {
    tally.lost += options.records - tally.expected_next;
  }

  std::string error;
  if (status == st::Status::kCorrupt) {
    error = consumer->corruption();
    if (error.empty()) {
      error = "the stream's framing is corrupt";
    }
  } else if (status == st::Status::kPeerDied) {
    error = "the producer went away without closing the stream";
  } else if (status == st::Status::kClosed && tally.expected_next < options.records) {
    error = "the stream ended early";
  } else if (status != st::Status::kOk) {
    error = std::string(st::to_string(status));
  }
  const bool intact =
      error.empty() && tally.lost == 0 && tally.duplicated == 0 && tally.corrupt == 0 &&
      (options.resume ? tally.expected_next >= options.records : tally.received == options.records);
  if (!intact) {
    std::string message =
        "received " + std::to_string(tally.received) + " of " + std::to_string(options.records) +
        " records: " + std::to_string(tally.lost) + " lost, " + std::to_string(tally.duplicated) +
        " duplicated, " + std::to_string(tally.corrupt) + " corrupt";
    if (!error.empty()) {
      message += "; " + error;
    }
    sluice::tools::report_failure("consumer", options.json, message);
  }

  const double idle =
      static_cast<double>(consumer->mapping().control().consumer_counters.idle_ns.load()) / 1e9;
  const std::uint64_t bytes = tally.received * options.size;
  const double records_per_sec = seconds > 0 ? static_cast<double>(tally.received) / seconds : 0.0;
  const double bytes_per_sec = seconds > 0 ? static_cast<double>(bytes) / seconds : 0.0;
  if (options.json) {
    JsonLine summary;
    summary.add("role", "consumer")
        .add("type", "summary")
        .add("channel", options.channel)
        .add("ok", intact)
        .add("records", tally.received)
        .add("bytes", bytes)
        .add("record_bytes", options.size)
        .add("seconds", seconds)
        .add("records_per_sec", records_per_sec)
        .add("bytes_per_sec", bytes_per_sec)
        .add("lost", tally.lost)
        .add("duplicated", tally.duplicated)
        .add("corrupt", tally.corrupt)
        .add("idle_seconds", idle);
    tally.first_seq ? summary.add("first_seq", *tally.first_seq) : summary.add_null("first_seq");
    tally.last_seq ? summary.add("last_seq", *tally.last_seq) : summary.add_null("last_seq");
    std::printf("%s\n", summary.str().c_str());
  } else {
    std::printf(
        "consumer summary: %llu records of %llu bytes in %.3f s: %.0f records/s, %.1f MB/s, "
        "idle %.3f s; lost %llu, duplicated %llu, corrupt %llu\n",
        static_cast<unsigned long long>(tally.received),
        static_cast<unsigned long long>(options.size), seconds, records_per_sec,
        bytes_per_sec / 1e6, idle, static_cast<unsigned long long>(tally.lost),
        static_cast<unsigned long long>(tally.duplicated),
        static_cast<unsigned long long>(tally.corrupt));
  }
  std::fflush(stdout);
  if (!options.keep) {
    st::remove_channel(options.channel);
  }
  return intact ? 0 : 1;
}
