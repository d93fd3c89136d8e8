// sluice-relay: a pipeline stage. Reads records from one or more channels
// (an input gate) and writes them unchanged into another channel, so that
// pipelines of any shape can be built from the demo programs, with
// backpressure passing through every stage.

#include <cstdio>
#include <optional>

#include "../common/arguments.hpp"
#include "../common/channel_list.hpp"
#include "../common/channel_options.hpp"
#include "../common/json_line.hpp"
#include "../common/last_consumer.hpp"
#include "../common/pacer.hpp"
#include "../common/progress.hpp"
#include "../common/report.hpp"
#include "sluice/transport/input_gate.hpp"
#include "sluice/transport/partition_writer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/stage.hpp"

namespace st = sluice::transport;
using sluice::tools::JsonLine;

namespace {

constexpr const char* kUsage =
    "usage: sluice-relay --from NAME[:I][,NAME[:I]...] --to NAME [options]\n"
    "\n"
    "Reads every record from the channels NAME... (their consumer; several are read\n"
    "through one input gate, in turn) and writes it unchanged into channel --to (its\n"
    "producer), until every input has closed its stream; then closes --to. When the\n"
    "output is full the relay blocks and stops reading, so backpressure reaches its\n"
    "inputs' producers. An input buffer is released only after its records were\n"
    "committed to the output, so a relay killed mid-stream loses nothing: restart it\n"
    "with --resume (records it had committed but not released arrive again downstream).\n"
    "NAME:I reads subpartition I of a partitioned channel (a worker behind a fan-out).\n"
    "\n"
    "options:\n"
    "  --consumers K          the output is a fan-out of K subpartitions (1..64)\n"
    "  --partition NAME       how: round-robin (default), key (key = a record's first 8\n"
    "                         bytes, little-endian: the demo's sequence number), least-loaded\n"
    "  --max-queued-buffers N at most N buffers queued per output subpartition (default 10)\n"
    "  --rate R               at most R records per second\n"
    "  --rate-schedule LIST   SECONDS:RATE,... phases (RATE 0 = unthrottled; the last continues)\n"
    "  --wait SECONDS         how long to wait for each input channel to appear (default 10)\n"
    "  --buffer-size BYTES    output pool buffer size (default 32K)\n"
    "  --buffers COUNT        output pool buffer count (default 64)\n"
    "  --flush-timeout-us US  hand over a partly filled output buffer after US microseconds\n"
    "                         (default 1000), also while the inputs are idle\n"
    "  --mode OCTAL           permissions of the output channel (default 600)\n"
    "  --replace-stale        replace an existing output channel if nobody uses it\n"
    "  --resume               continue after a relay that died: take over its inputs and\n"
    "                         its output (attach); wait for new producers or consumers if\n"
    "                         one dies, instead of failing\n"
    "  --keep                 leave the input channels in place at the end (default: remove\n"
    "                         them once every input closed and was read)\n"
    "  --json                 one JSON object per output line\n"
    "\n"
    "exit status: 0 every input closed and everything was written and closed; 1 an input's\n"
    "producer or the output's consumer went away, or corruption; 2 bad arguments or\n"
    "set-up failure\n";

struct Options {
  std::vector<st::GateInput> inputs;
  std::string output;
  st::ChannelConfig config;
  st::CreateOptions create;
  std::vector<sluice::tools::RatePhase> schedule;
  double wait_seconds = 10;
  bool resume = false;
  bool keep = false;
  bool json = false;
  bool partitioned = false;
};

Options parse(int argc, char** argv) {
  const sluice::tools::Arguments args(
      argc, argv, 1,
      {"--from", "--to", "--rate", "--rate-schedule", "--wait", "--buffer-size", "--buffers",
       "--flush-timeout-us", "--mode", "--consumers", "--partition", "--max-queued-buffers"},
      {"--json", "--replace-stale", "--resume", "--keep", "--help"});
  if (args.has("--help")) {
    std::fputs(kUsage, stdout);
    std::exit(0);  // NOLINT(concurrency-mt-unsafe): single-threaded, before any work
  }
  if (!args.positional().empty()) {
    throw sluice::tools::UsageError("unexpected argument \"" + args.positional().front() + "\"");
  }
  Options o;
  o.inputs = sluice::tools::parse_channel_list("--from", args.text("--from"));
  o.output = args.text("--to");
  for (const st::GateInput& input : o.inputs) {
    if (input.channel == o.output) {
      throw sluice::tools::UsageError("channel \"" + input.channel + "\" is both --from and --to");
    }
  }
  o.schedule = sluice::tools::rate_schedule_from(args);
  if (args.has("--wait")) {
    o.wait_seconds = args.real_number("--wait", 0, 86400);
  }
  // 0 would flush every record as its own buffer: a relay batches.
  sluice::tools::channel_options_from(args, o.config, o.create, 1);
  o.partitioned = sluice::tools::partition_options_from(args, o.config);
  o.resume = args.has("--resume");
  o.keep = args.has("--keep");
  o.json = args.has("--json");
  return o;
}

// Where the relay writes: one record writer, or, when the output is a
// fan-out, a partition writer (key: a record's first 8 bytes).
class Output {
 public:
  explicit Output(st::Producer& producer) : writer_(producer) {
    if (producer.mapping().subpartitions() > 1) {
      partitioned_.emplace(producer);
      keyed_ = producer.config().partitioner == static_cast<std::uint32_t>(st::Partitioner::kKey);
    }
  }
  st::Status write(std::span<const std::byte> record) noexcept {
    if (!partitioned_) {
      return writer_.write(record);
    }
    if (keyed_) {
      std::uint64_t key = 0;
      std::memcpy(&key, record.data(), std::min(record.size(), sizeof(key)));
      return partitioned_->write(key, record);
    }
    return partitioned_->write(record);
  }
  // Records back to back, as the gate's read_runs_until hands them over.
  st::Status write_records(std::span<const std::byte> records, std::uint64_t count) noexcept {
    if (!partitioned_) {
      return writer_.write_records(records, count);
    }
    if (!keyed_) {
      return partitioned_->write_records(records, count);
    }
    const std::size_t bytes = records.size() / count;  // count >= 1
    for (std::uint64_t i = 0; i < count; ++i) {
      if (const st::Status status = write(records.subspan(i * bytes, bytes));
          status != st::Status::kOk) {
        return status;
      }
    }
    return st::Status::kOk;
  }
  [[nodiscard]] std::uint64_t records_written() const noexcept {
    return partitioned_ ? partitioned_->records_written() : writer_.records_written();
  }
  st::Status flush() noexcept { return partitioned_ ? partitioned_->flush() : writer_.flush(); }
  st::Status flush_if_due() noexcept {
    return partitioned_ ? partitioned_->flush_if_due() : writer_.flush_if_due();
  }
  st::Status close() noexcept { return partitioned_ ? partitioned_->close() : writer_.close(); }
  // A release hook (RecordReaderOptions::before_release) that flushes this output.
  st::ReleaseHook flush_hook() noexcept {
    return {.call = [](void* self) noexcept { (void)static_cast<Output*>(self)->flush(); },
            .context = this};
  }

 private:
  st::RecordWriter writer_;
  std::optional<st::PartitionWriter> partitioned_;
  bool keyed_ = false;
};

// The output: created, or with --resume attached to when it exists (its
// previous producer, a relay that died, left it open).
st::Producer open_output(const Options& options) {
  if (options.resume) {
    try {
      return st::Producer::attach(options.output);
    } catch (const std::exception&) {
      // No channel of that name to continue (or it is not resumable): create it.
    }
  }
  return st::Producer::create(options.output, options.config, options.create);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = parse(argc, argv);
  } catch (const sluice::tools::UsageError& e) {
    sluice::tools::report_failure("relay", sluice::tools::command_line_has(argc, argv, "--json"),
                                  e.what());
    std::fprintf(stderr, "\n%s", kUsage);
    return 2;
  }

  std::optional<st::Producer> producer;
  std::optional<Output> writer;
  std::optional<st::InputGate> gate;
  try {
    producer.emplace(open_output(options));
    if (options.resume) {
      producer->set_consumer_loss(st::ConsumerLoss::kWaitForNewConsumer);
    }
    writer.emplace(*producer);
    st::GateOptions gate_options;
    gate_options.open.wait_for_channel = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(options.wait_seconds));
    gate_options.reader.before_release = writer->flush_hook();
    if (options.resume) {
      gate_options.producer_loss = st::ProducerLoss::kWaitForNewProducer;
    }
    gate.emplace(st::InputGate::open(options.inputs, gate_options));
  } catch (const std::exception& e) {
    gate.reset();
    writer.reset();
    if (producer && !options.resume) {
      producer.reset();
      st::remove_channel(options.output);  // created here, never used
    }
    sluice::tools::report_failure("relay", options.json, e.what());
    return 2;
  }

  // The output's record size is unknown to the relay: progress shows records and bytes.
  sluice::tools::Progress progress("relay", options.json, 0);
  sluice::tools::Pacer pacer(options.schedule);
  const auto flush_timeout = std::chrono::nanoseconds(producer->config().flush_timeout_ns);
  std::uint64_t relayed = 0;
  st::Status write_status = st::Status::kOk;
  st::Status read_status = st::Status::kOk;
  progress.start();
  pacer.start(sluice::tools::Pacer::Clock::now());
  // The records of a run are copied in one go (for small records several
  // times faster than a write() each). Throttled, a call takes at most the
  // records the pacer allows before its next look at the clock.
  const bool pacing = pacer.active();
  const auto relay_run = [&](std::span<const std::byte> records, std::uint64_t count) {
    if (pacing) {
      pacer.pace([&] { (void)writer->flush_if_due(); });
      pacer.count(count - 1);
    }
    const std::uint64_t written_before = writer->records_written();
    write_status = writer->write_records(records, count);
    if (write_status != st::Status::kOk) {
      relayed += writer->records_written() - written_before;
      return false;
    }
    relayed += count;
    progress.tick(relayed, relayed - 1);
    return true;
  };
  for (;;) {
    read_status = gate->read_runs_until(relay_run, st::Deadline::after(flush_timeout),
                                        pacing ? pacer.records_until_check() + 1 : UINT64_MAX);
    if (write_status != st::Status::kOk) {
      break;
    }
    if (read_status == st::Status::kTimeout) {
      // Inputs idle: what was written so far goes downstream now, not when
      // the next input buffer comes.
      write_status = writer->flush();
      if (write_status != st::Status::kOk) {
        break;
      }
      continue;
    }
    if (read_status == st::Status::kCorrupt && gate->open_inputs() > 0) {
      sluice::tools::report_failure("relay", options.json,
                                    gate->input_corruption(gate->last_input()));
      continue;  // the other inputs go on; the exit status says it
    }
    if (read_status != st::Status::kOk) {
      break;  // every input ended
    }
  }

  bool ok = false;
  std::string why;
  if (write_status != st::Status::kOk) {
    why = write_status == st::Status::kPeerDied  ? "the output's consumer went away"
          : write_status == st::Status::kCorrupt ? producer->corruption()
                                                 : std::string(st::to_string(write_status));
  } else if (read_status == st::Status::kClosed) {
    write_status = writer->close();
    ok = write_status == st::Status::kOk;
    if (!ok) {
      why = "closing the output failed: " + std::string(st::to_string(write_status));
    }
  } else {
    // An input's producer died (or was corrupt): the output stays open, so
    // that downstream sees a peer that went away, not a complete stream.
    (void)writer->flush();
    why = read_status == st::Status::kPeerDied
              ? "an input's producer went away without closing its stream"
              : "an input was corrupt";
  }
  if (!ok) {
    sluice::tools::report_failure("relay", options.json,
                                  "stopped after " + std::to_string(relayed) + " records: " + why);
  }

  const double seconds = progress.elapsed_seconds();
  const double blocked =
      static_cast<double>(producer->mapping().control().producer_counters.blocked_ns.load()) / 1e9;
  const double records_per_sec = seconds > 0 ? static_cast<double>(relayed) / seconds : 0.0;
  if (options.json) {
    std::string inputs = "[";
    for (std::size_t i = 0; i < gate->input_count(); ++i) {
      inputs +=
          (i == 0 ? "" : ",") + JsonLine()
                                    .add("channel", gate->input_name(i))
                                    .add("subpartition", std::uint64_t{gate->input_subpartition(i)})
                                    .add("records", gate->input_records(i))
                                    .str();
    }
    inputs += "]";
    JsonLine summary;
    summary.add("role", "relay")
        .add("type", "summary")
        .add("channel", options.output)
        .add("ok", ok)
        .add("records", relayed)
        .add("seconds", seconds)
        .add("records_per_sec", records_per_sec)
        .add("blocked_seconds", blocked)
        .add_raw("inputs", inputs);
    std::printf("%s\n", summary.str().c_str());
  } else {
    std::printf(
        "relay summary: %llu records from %zu channel(s) to \"%s\" in %.3f s: %.0f "
        "records/s, blocked %.3f s\n",
        static_cast<unsigned long long>(relayed), gate->input_count(), options.output.c_str(),
        seconds, records_per_sec, blocked);
  }
  std::fflush(stdout);
  // Inputs are released (gate) before the writer they flush into goes.
  if (ok && !options.keep) {
    for (std::size_t i = 0; i < gate->input_count(); ++i) {
      // A fan-out's name goes with its last consumer, not before.
      if (gate->input_consumer(i).mapping().subpartitions() == 1 ||
          sluice::tools::last_consumer_out(gate->input_consumer(i))) {
        st::remove_channel(gate->input_name(i));
      }
    }
  }
  gate.reset();
  return ok ? 0 : 1;
}
