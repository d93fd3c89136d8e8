#include "gate_consumer.hpp"

#include <cstdio>
#include <optional>

#include "../common/json_line.hpp"
#include "../common/last_consumer.hpp"
#include "../common/progress.hpp"
#include "../common/report.hpp"
#include "../common/sequence_check.hpp"
#include "sluice/transport/input_gate.hpp"

namespace st = sluice::transport;

namespace sluice::tools {

namespace {

const char* state_name(st::InputState state) {
  switch (state) {
    case st::InputState::kOpen: return "open";
    case st::InputState::kClosed: return "closed";
    case st::InputState::kPeerDied: return "peer_died";
    case st::InputState::kCorrupt: return "corrupt";
  }
  return "unknown";
}

// --union: the inputs together must carry 0..N-1, each record once and
// intact, and each input its records in increasing order.
int run_union(st::InputGate& gate, const GateConsumerOptions& options) {
  const std::uint64_t wanted = options.records;
  std::vector<std::uint64_t> seen((wanted + 63) / 64, 0);
  struct PerInput {
    std::uint64_t records = 0;
    std::uint64_t out_of_order = 0;
    std::optional<std::uint64_t> first_seq;
    std::optional<std::uint64_t> last_seq;
  };
  std::vector<PerInput> inputs(gate.input_count());
  std::uint64_t distinct = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t corrupt = 0;
  std::uint64_t received = 0;
  Progress progress("consumer", options.json, options.size);
  Pacer pacer(options.schedule);
  bool started = false;
  std::vector<std::string> errors;
  const auto on_record = [&](std::span<const std::byte> record) {
    if (!started) [[unlikely]] {
      started = true;
      progress.start();
      pacer.start(Pacer::Clock::now());
    }
    ++received;
    PerInput& input = inputs[gate.last_input()];
    ++input.records;
    const std::uint64_t seq = record.size() >= 8 ? st::pattern::sequence_of(record) : wanted;
    if (record.size() != options.size || seq >= wanted || !st::pattern::body_matches(record, seq)) {
      ++corrupt;
    } else if ((seen[seq / 64] >> (seq % 64) & 1U) != 0) {
      ++duplicated;
    } else {
      seen[seq / 64] |= std::uint64_t{1} << (seq % 64);
      ++distinct;
      if (input.last_seq && seq < *input.last_seq) {
        ++input.out_of_order;
      }
      if (!input.first_seq) {
        input.first_seq = seq;
      }
      input.last_seq = seq;
      progress.tick(distinct, seq);
    }
    if (distinct >= wanted) {
      return false;
    }
    pacer.pace([] {});
    return true;
  };
  st::Status status = st::Status::kOk;
  pacer.pace([] {});
  while (distinct < wanted) {
    status = gate.read_batch(on_record);
    if (status == st::Status::kCorrupt && gate.open_inputs() > 0) {
      errors.push_back(gate.input_corruption(gate.last_input()));
      continue;
    }
    if (status != st::Status::kOk) {
      break;
    }
  }
  const double seconds = received > 0 ? progress.elapsed_seconds() : 0.0;
  const std::uint64_t lost = wanted - distinct;
  std::uint64_t out_of_order = 0;
  std::string inputs_json = "[";
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    out_of_order += inputs[i].out_of_order;
    JsonLine entry;
    entry.add("channel", gate.input_name(i))
        .add("subpartition", std::uint64_t{gate.input_subpartition(i)})
        .add("state", state_name(gate.input_state(i)))
        .add("records", inputs[i].records)
        .add("out_of_order", inputs[i].out_of_order);
    inputs[i].first_seq ? entry.add("first_seq", *inputs[i].first_seq)
                        : entry.add_null("first_seq");
    inputs[i].last_seq ? entry.add("last_seq", *inputs[i].last_seq) : entry.add_null("last_seq");
    inputs_json += (i == 0 ? "" : ",") + entry.str();
  }
  inputs_json += "]";
  const bool intact =
      errors.empty() && lost == 0 && duplicated == 0 && corrupt == 0 && out_of_order == 0;
  if (!intact) {
    std::string message = "received " + std::to_string(distinct) + " of " + std::to_string(wanted) +
                          " distinct records: " + std::to_string(lost) + " lost, " +
                          std::to_string(duplicated) + " duplicated, " + std::to_string(corrupt) +
                          " corrupt, " + std::to_string(out_of_order) +
                          " out of order within an input";
    if (status != st::Status::kOk && status != st::Status::kClosed) {
      message += "; " + std::string(st::to_string(status));
    }
    errors.push_back(message);
  }
  for (const std::string& error : errors) {
    report_failure("consumer", options.json, error);
  }
  const double records_per_sec = seconds > 0 ? static_cast<double>(received) / seconds : 0.0;
  if (options.json) {
    JsonLine summary;
    summary.add("role", "consumer")
        .add("type", "summary")
        .add("channel", options.channels.front().channel)
        .add("ok", intact)
        .add("records", received)
        .add("bytes", received * options.size)
        .add("record_bytes", options.size)
        .add("seconds", seconds)
        .add("records_per_sec", records_per_sec)
        .add("bytes_per_sec", records_per_sec * static_cast<double>(options.size))
        .add("lost", lost)
        .add("duplicated", duplicated)
        .add("corrupt", corrupt)
        .add("out_of_order", out_of_order)
        .add_raw("inputs", inputs_json);
    std::printf("%s\n", summary.str().c_str());
  } else {
    std::printf(
        "consumer summary: %llu records of %llu bytes from %zu inputs in %.3f s: %.0f "
        "records/s; 0..%llu: lost %llu, duplicated %llu, corrupt %llu, out of order %llu\n",
        static_cast<unsigned long long>(received), static_cast<unsigned long long>(options.size),
        inputs.size(), seconds, records_per_sec,
        static_cast<unsigned long long>(wanted > 0 ? wanted - 1 : 0),
        static_cast<unsigned long long>(lost), static_cast<unsigned long long>(duplicated),
        static_cast<unsigned long long>(corrupt), static_cast<unsigned long long>(out_of_order));
  }
  std::fflush(stdout);
  if (!options.keep) {
    for (std::size_t i = 0; i < gate.input_count(); ++i) {
      if (gate.input_consumer(i).mapping().subpartitions() == 1 ||
          last_consumer_out(gate.input_consumer(i))) {
        st::remove_channel(gate.input_name(i));
      }
    }
  }
  return intact ? 0 : 1;
}

}  // namespace

int run_gate_consumer(const GateConsumerOptions& options) {
  std::optional<st::InputGate> gate;
  try {
    st::GateOptions gate_options;
    gate_options.open.wait_for_channel = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(options.wait_seconds));
    if (options.resume) {
      gate_options.producer_loss = st::ProducerLoss::kWaitForNewProducer;
    }
    gate.emplace(st::InputGate::open(options.channels, gate_options));
  } catch (const std::exception& e) {
    report_failure("consumer", options.json, e.what());
    return 2;
  }

  if (options.union_of_inputs) {
    return run_union(*gate, options);
  }
  std::vector<SequenceCheck> tallies(options.channels.size());
  for (SequenceCheck& tally : tallies) {
    tally.record_bytes = options.size;
    tally.from_first_seen = options.resume;
  }
  Progress progress("consumer", options.json, options.size);
  Pacer pacer(options.schedule);
  std::uint64_t received = 0;
  std::uint64_t inputs_done = 0;  // inputs whose N records all arrived (resume: up to N-1)
  std::vector<std::string> errors;
  st::Status status = st::Status::kOk;
  bool started = false;
  // Every record already in the current input's buffer per call, each paced and checked.
  const auto on_record = [&](std::span<const std::byte> record) {
    if (!started) [[unlikely]] {
      started = true;
      progress.start();
      pacer.start(Pacer::Clock::now());
    }
    SequenceCheck& tally = tallies[gate->last_input()];
    const bool was_done = tally.expected_next >= options.records;
    const auto seq = tally.observe(record);
    ++received;
    if (!was_done && tally.expected_next >= options.records) {
      ++inputs_done;
    }
    if (seq) {
      progress.tick(received, *seq);
    }
    if (inputs_done >= tallies.size()) {
      return false;
    }
    pacer.pace([] {});
    return true;
  };
  pacer.pace([] {});
  while (inputs_done < tallies.size()) {
    status = gate->read_batch(on_record);
    if (status == st::Status::kCorrupt && gate->open_inputs() > 0) {
      errors.push_back(gate->input_corruption(gate->last_input()));
      continue;  // the other inputs go on
    }
    if (status != st::Status::kOk) {
      break;
    }
  }
  const double seconds = received > 0 ? progress.elapsed_seconds() : 0.0;

  bool intact = errors.empty();
  std::uint64_t lost = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t corrupt = 0;
  std::string inputs_json = "[";
  for (std::size_t i = 0; i < tallies.size(); ++i) {
    SequenceCheck& tally = tallies[i];
    if (tally.expected_next < options.records) {
      tally.lost += options.records - tally.expected_next;
    }
    const bool input_ok = tally.clean() && gate->input_state(i) != st::InputState::kCorrupt &&
                          (options.resume ? tally.expected_next >= options.records
                                          : tally.received == options.records);
    if (!input_ok) {
      intact = false;
      report_failure("consumer", options.json,
                     "channel \"" + options.channels[i].channel + "\": received " +
                         std::to_string(tally.received) + " of " + std::to_string(options.records) +
                         " records: " + std::to_string(tally.lost) + " lost, " +
                         std::to_string(tally.duplicated) + " duplicated, " +
                         std::to_string(tally.corrupt) + " corrupt (input " +
                         state_name(gate->input_state(i)) + ")");
    }
    lost += tally.lost;
    duplicated += tally.duplicated;
    corrupt += tally.corrupt;
    const double idle =
        static_cast<double>(
            gate->input_consumer(i).mapping().control().consumer_counters.idle_ns.load()) /
        1e9;
    JsonLine entry;
    entry.add("channel", options.channels[i].channel)
        .add("ok", input_ok)
        .add("state", state_name(gate->input_state(i)))
        .add("records", tally.received)
        .add("lost", tally.lost)
        .add("duplicated", tally.duplicated)
        .add("corrupt", tally.corrupt)
        .add("idle_seconds", idle);
    tally.first_seq ? entry.add("first_seq", *tally.first_seq) : entry.add_null("first_seq");
    tally.last_seq ? entry.add("last_seq", *tally.last_seq) : entry.add_null("last_seq");
    inputs_json += (i == 0 ? "" : ",") + entry.str();
  }
  inputs_json += "]";
  if (status != st::Status::kOk && status != st::Status::kClosed &&
      status != st::Status::kCorrupt && inputs_done < tallies.size()) {
    intact = false;
    errors.push_back(status == st::Status::kPeerDied
                         ? "a producer went away without closing its stream"
                         : std::string(st::to_string(status)));
  }
  for (const std::string& error : errors) {
    report_failure("consumer", options.json, error);
  }

  const std::uint64_t bytes = received * options.size;
  const double records_per_sec = seconds > 0 ? static_cast<double>(received) / seconds : 0.0;
  const double bytes_per_sec = seconds > 0 ? static_cast<double>(bytes) / seconds : 0.0;
  if (options.json) {
    JsonLine summary;
    summary.add("role", "consumer")
        .add("type", "summary")
        .add("channel", options.channels.front().channel)
        .add("ok", intact)
        .add("records", received)
        .add("bytes", bytes)
        .add("record_bytes", options.size)
        .add("seconds", seconds)
        .add("records_per_sec", records_per_sec)
        .add("bytes_per_sec", bytes_per_sec)
        .add("lost", lost)
        .add("duplicated", duplicated)
        .add("corrupt", corrupt)
        .add_raw("inputs", inputs_json);
    std::printf("%s\n", summary.str().c_str());
  } else {
    std::printf(
        "consumer summary: %llu records of %llu bytes from %zu channels in %.3f s: %.0f "
        "records/s, %.1f MB/s; lost %llu, duplicated %llu, corrupt %llu\n",
        static_cast<unsigned long long>(received), static_cast<unsigned long long>(options.size),
        tallies.size(), seconds, records_per_sec, bytes_per_sec / 1e6,
        static_cast<unsigned long long>(lost), static_cast<unsigned long long>(duplicated),
        static_cast<unsigned long long>(corrupt));
    for (std::size_t i = 0; i < tallies.size(); ++i) {
      std::printf("  %s: %llu records, %s\n", options.channels[i].channel.c_str(),
                  static_cast<unsigned long long>(tallies[i].received),
                  state_name(gate->input_state(i)));
    }
  }
  std::fflush(stdout);
  if (!options.keep) {
    for (const st::GateInput& input : options.channels) {
      st::remove_channel(input.channel);
    }
  }
  return intact ? 0 : 1;
}

}  // namespace sluice::tools
