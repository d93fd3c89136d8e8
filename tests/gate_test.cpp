// Fan-in: an input gate over channels whose producers are real processes.
// End of stream, fair turns, one sleep for all inputs woken by any, inputs
// joining and leaving, a dead or hostile producer ending only its own input.

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "sluice/shm/setup_error.hpp"
#include "sluice/transport/input_gate.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/sequence_pattern.hpp"
#include "test_support.hpp"

namespace st = sluice::transport;
using namespace std::chrono_literals;
using sluice::test::ChannelGuard;
using sluice::test::ChildProcess;
using sluice::test::eventually;
using sluice::test::Signal;
using sluice::test::unique_channel;

namespace {

constexpr std::size_t kRecordBytes = 24;

st::ChannelConfig small_pool() {
  st::ChannelConfig config;
  config.buffer_bytes = 1024;
  config.buffer_count = 8;
  return config;
}

// Writes pattern records first..first+count-1; closes if asked.
int write_records(st::Producer& producer, std::uint64_t first, std::uint64_t count, bool close) {
  st::RecordWriter writer(producer);
  std::array<std::byte, kRecordBytes> record{};
  for (std::uint64_t seq = first; seq < first + count; ++seq) {
    st::pattern::fill(record, seq);
    if (writer.write(record) != st::Status::kOk) {
      return 1;
    }
  }
  if (close) {
    return writer.close() == st::Status::kOk ? 0 : 1;
  }
  return writer.flush() == st::Status::kOk ? 0 : 1;
}

int produce(const std::string& name, std::uint64_t count) {
  auto producer = st::Producer::create(name, small_pool());
  return write_records(producer, 0, count, true);
}

// Per input: the next sequence number expected; every record checked.
struct StreamCheck {
  std::vector<std::uint64_t> next;
  std::uint64_t errors = 0;
  explicit StreamCheck(std::size_t inputs) : next(inputs, 0) {}
  void observe(std::size_t input, std::span<const std::byte> record) {
    if (input >= next.size()) {
      next.resize(input + 1, 0);
    }
    if (record.size() != kRecordBytes || st::pattern::sequence_of(record) != next[input] ||
        !st::pattern::body_matches(record, next[input])) {
      ++errors;
    }
    ++next[input];
  }
};

std::vector<std::string> names_of(const std::vector<std::unique_ptr<ChannelGuard>>& guards) {
  std::vector<std::string> names;
  for (const auto& guard : guards) {
    names.push_back(guard->name());
  }
  return names;
}

std::vector<std::unique_ptr<ChannelGuard>> guards_for(const std::string& label, std::size_t n) {
  std::vector<std::unique_ptr<ChannelGuard>> guards;
  for (std::size_t i = 0; i < n; ++i) {
    guards.push_back(std::make_unique<ChannelGuard>(unique_channel(label)));
  }
  return guards;
}

st::GateOptions waiting_gate() {
  st::GateOptions options;
  options.open.wait_for_channel = 30s;
  return options;
}

}  // namespace

TEST(FanIn, ReadsEveryInputToTheEndOfItsStream) {
  constexpr std::size_t kInputs = 4;
  constexpr std::uint64_t kRecords = 20000;
  const auto guards = guards_for("gate-eos", kInputs);
  const auto names = names_of(guards);
  std::vector<std::unique_ptr<ChildProcess>> producers;
  for (std::size_t i = 0; i < kInputs; ++i) {
    // Each producer writes a different number of records: inputs end at different times.
    producers.push_back(std::make_unique<ChildProcess>(
        [&names, i] { return produce(names[i], kRecords + i * 1000); }));
  }
  auto gate = st::InputGate::open(names, waiting_gate());
  StreamCheck check(kInputs);
  std::span<const std::byte> record;
  st::Status status;
  while ((status = gate.next_for(record, 60s)) == st::Status::kOk) {
    check.observe(gate.last_input(), record);
  }
  EXPECT_EQ(status, st::Status::kClosed);
  EXPECT_EQ(check.errors, 0U);
  for (std::size_t i = 0; i < kInputs; ++i) {
    EXPECT_EQ(check.next[i], kRecords + i * 1000) << names[i];
    EXPECT_EQ(gate.input_records(i), kRecords + i * 1000);
    EXPECT_EQ(gate.input_state(i), st::InputState::kClosed);
    EXPECT_EQ(producers[i]->wait(), 0);
  }
  EXPECT_EQ(gate.open_inputs(), 0U);
  EXPECT_EQ(gate.next_for(record, 10ms), st::Status::kClosed);  // stays ended
}

TEST(FanIn, RunsComeFromOneInputInOrderAtMostTheBoundACall) {
  constexpr std::size_t kInputs = 3;
  constexpr std::uint64_t kRecords = 20000;
  const auto guards = guards_for("gate-runs", kInputs);
  const auto names = names_of(guards);
  std::vector<std::unique_ptr<ChildProcess>> producers;
  for (std::size_t i = 0; i < kInputs; ++i) {
    producers.push_back(
        std::make_unique<ChildProcess>([&names, i] { return produce(names[i], kRecords); }));
  }
  st::GateOptions options = waiting_gate();
  options.records_per_turn = 50;
  auto gate = st::InputGate::open(names, options);
  StreamCheck check(kInputs);
  std::uint64_t runs = 0;
  std::uint64_t in_call = 0;
  std::uint64_t most_in_a_call = 0;
  st::Status status;
  while ((status = gate.read_runs_until(
              [&](std::span<const std::byte> records, std::uint64_t count) {
                runs += count > 1 ? 1 : 0;
                in_call += count;
                const std::size_t input = gate.last_input();
                for (std::uint64_t i = 0; i < count; ++i) {
                  check.observe(input, records.subspan(i * kRecordBytes, records.size() / count));
                }
                return true;
              },
              st::Deadline::after(60s), 30)) == st::Status::kOk) {
    most_in_a_call = std::max(most_in_a_call, in_call);
    in_call = 0;
  }
  EXPECT_EQ(status, st::Status::kClosed);
  EXPECT_EQ(check.errors, 0U);
  EXPECT_LE(most_in_a_call, 30U);
  EXPECT_GT(runs, 0U);
  for (std::size_t i = 0; i < kInputs; ++i) {
    EXPECT_EQ(check.next[i], kRecords) << names[i];
    EXPECT_EQ(producers[i]->wait(), 0);
  }
}

TEST(FanIn, SixtyFourInputsThroughOneGate) {
  constexpr std::size_t kInputs = 64;
  constexpr std::uint64_t kRecords = 500;
  const auto guards = guards_for("gate-64", kInputs);
  const auto names = names_of(guards);
  // One child writes all 64 streams in turns, so 64 processes do not crowd two cores.
  ChildProcess producers([&names] {
    std::vector<st::Producer> outs;
    for (const auto& name : names) {
      outs.push_back(st::Producer::create(name, small_pool()));
    }
    for (std::uint64_t part = 0; part < 5; ++part) {
      for (auto& out : outs) {
        if (write_records(out, part * (kRecords / 5), kRecords / 5, part == 4) != 0) {
          return 1;
        }
      }
    }
    return 0;
  });
  auto gate = st::InputGate::open(names, waiting_gate());
  StreamCheck check(kInputs);
  std::span<const std::byte> record;
  st::Status status;
  while ((status = gate.next_for(record, 60s)) == st::Status::kOk) {
    check.observe(gate.last_input(), record);
  }
  EXPECT_EQ(status, st::Status::kClosed);
  EXPECT_EQ(check.errors, 0U);
  for (std::size_t i = 0; i < kInputs; ++i) {
    EXPECT_EQ(check.next[i], kRecords) << names[i];
  }
  EXPECT_EQ(producers.wait(), 0);
}

TEST(FanIn, BusyInputsTakeTurns) {
  // Every input has more queued than it can deliver in many turns (each
  // producer committed its whole stream and closed before the gate reads),
  // so the gate must rotate exactly: a turn of records from each input in
  // order, never a second turn for one while another has data.
  constexpr std::size_t kInputs = 3;
  constexpr std::uint32_t kTurn = 32;
  constexpr std::uint64_t kRecords = 1500;  // 1500 x 28-byte frames fit in 64 KiB
  const auto guards = guards_for("gate-fair", kInputs);
  const auto names = names_of(guards);
  for (std::size_t i = 0; i < kInputs; ++i) {
    ChildProcess producer([&names, i] {
      st::ChannelConfig config;
      config.buffer_bytes = 1024;
      config.buffer_count = 64;
      auto out = st::Producer::create(names[i], config);
      return write_records(out, 0, kRecords + i, true);
    });
    ASSERT_EQ(producer.wait(), 0);
  }
  st::GateOptions options = waiting_gate();
  options.records_per_turn = kTurn;
  auto gate = st::InputGate::open(names, options);
  std::span<const std::byte> record;
  std::vector<std::size_t> order;
  StreamCheck check(kInputs);
  st::Status status;
  while ((status = gate.next_for(record, 30s)) == st::Status::kOk) {
    order.push_back(gate.last_input());
    check.observe(gate.last_input(), record);
  }
  EXPECT_EQ(status, st::Status::kClosed);
  EXPECT_EQ(check.errors, 0U);
  // While all inputs have data: turn t belongs to input (first + t) % kInputs.
  const std::uint64_t rotating = (kRecords / kTurn) * kTurn * kInputs;
  ASSERT_GE(order.size(), rotating);
  for (std::uint64_t at = 0; at < rotating; ++at) {
    const std::size_t expected = (order[0] + at / kTurn) % kInputs;
    ASSERT_EQ(order[at], expected) << "record " << at;
  }
}

TEST(FanIn, OneSleepIsWokenByAPublishOnAnyInput) {
  constexpr std::size_t kInputs = 5;
  const auto guards = guards_for("gate-wake", kInputs);
  const auto names = names_of(guards);
  // Quiet producers on every input but the last, kept alive by this process.
  std::vector<st::Producer> quiet;
  for (std::size_t i = 0; i + 1 < kInputs; ++i) {
    quiet.push_back(st::Producer::create(names[i], small_pool()));
  }
  // The last input's producer waits until the gate has announced that it
  // sleeps (the flag is set right before futex_waitv), then publishes one record.
  ChildProcess publisher([&] {
    auto producer = st::Producer::create(names.back(), small_pool());
    const auto& flag = producer.mapping().control().consumer_sleeping.sleeping;
    if (!eventually([&] { return flag.load() != 0; }, 60s)) {
      return 3;
    }
    return write_records(producer, 0, 1, false);
  });
  auto gate = st::InputGate::open(names, waiting_gate());
  std::span<const std::byte> record;
  ASSERT_EQ(gate.next_for(record, 60s), st::Status::kOk);
  EXPECT_EQ(gate.last_input(), kInputs - 1);
  EXPECT_EQ(st::pattern::sequence_of(record), 0U);
  EXPECT_EQ(publisher.wait(), 0);
  // The wait counted as idle time on every input, and the flags are down again.
  for (std::size_t i = 0; i < kInputs; ++i) {
    const auto& control = gate.input_consumer(i).mapping().control();
    EXPECT_GT(control.consumer_counters.idle_ns.load(), 0U) << i;
    EXPECT_EQ(control.consumer_counters.idle_since_ns.load(), 0U) << i;
    EXPECT_EQ(control.consumer_sleeping.sleeping.load(), 0U) << i;
  }
}

TEST(FanIn, InputsJoinAndLeaveWhileTheGateRuns) {
  const auto guards = guards_for("gate-join", 3);
  const auto names = names_of(guards);
  ChildProcess first([&] { return produce(names[0], 3000); });
  Signal second_may_end;
  ChildProcess second([&] {
    auto producer = st::Producer::create(names[1], small_pool());
    if (write_records(producer, 0, 1000, false) != 0) {
      return 1;
    }
    if (!second_may_end.wait(60s)) {
      return 2;
    }
    return write_records(producer, 1000, 1000, true);
  });
  auto gate = st::InputGate::open(std::vector<std::string>{names[0], names[1]}, waiting_gate());
  StreamCheck check(3);
  std::span<const std::byte> record;
  // Input 0 leaves (closes) while input 1 stays open.
  while (check.next[0] < 3000 || check.next[1] < 1000) {
    ASSERT_EQ(gate.next_for(record, 60s), st::Status::kOk);
    check.observe(gate.last_input(), record);
  }
  // Nothing more to read now: the wait finds input 0 closed (its producer
  // closes a moment after its last record) and times out on input 1.
  ASSERT_TRUE(eventually([&] {
    return gate.next_for(record, 200ms) == st::Status::kTimeout &&
           gate.input_state(0) == st::InputState::kClosed;
  }));
  EXPECT_EQ(gate.input_state(1), st::InputState::kOpen);
  EXPECT_EQ(check.next[0], 3000U);
  EXPECT_EQ(gate.open_inputs(), 1U);
  // A third producer joins.
  ChildProcess third([&] { return produce(names[2], 2500); });
  EXPECT_EQ(gate.add_input(names[2]), 2U);
  second_may_end.notify();
  st::Status status;
  while ((status = gate.next_for(record, 60s)) == st::Status::kOk) {
    check.observe(gate.last_input(), record);
  }
  EXPECT_EQ(status, st::Status::kClosed);
  EXPECT_EQ(check.errors, 0U);
  EXPECT_EQ(check.next[1], 2000U);
  EXPECT_EQ(check.next[2], 2500U);
  EXPECT_EQ(first.wait(), 0);
  EXPECT_EQ(second.wait(), 0);
  EXPECT_EQ(third.wait(), 0);
  EXPECT_THROW(gate.add_input(names[2]), sluice::shm::SetupError);  // already an input
}

TEST(FanIn, ADeadProducerEndsOnlyItsOwnInput) {
  const auto guards = guards_for("gate-dead", 3);
  const auto names = names_of(guards);
  Signal written;
  ChildProcess doomed([&] {
    auto producer = st::Producer::create(names[1], small_pool());
    // Fits in the pool (8 buffers of 1 KiB), so it is all committed before anyone reads.
    const int status = write_records(producer, 0, 200, false);
    written.notify();
    pause();  // killed here, the stream never closed
    return status;
  });
  ChildProcess a([&] { return produce(names[0], 5000); });
  ChildProcess c([&] { return produce(names[2], 5000); });
  auto gate = st::InputGate::open(names, waiting_gate());
  ASSERT_TRUE(written.wait());
  doomed.kill_now();
  EXPECT_EQ(doomed.wait(), 128 + SIGKILL);
  StreamCheck check(3);
  std::span<const std::byte> record;
  st::Status status;
  while ((status = gate.next_for(record, 60s)) == st::Status::kOk) {
    check.observe(gate.last_input(), record);
  }
  EXPECT_EQ(status, st::Status::kPeerDied);  // the end, with one input gone
  EXPECT_EQ(check.errors, 0U);
  EXPECT_EQ(check.next[0], 5000U);
  EXPECT_EQ(check.next[1], 200U);  // everything it committed before dying
  EXPECT_EQ(check.next[2], 5000U);
  EXPECT_EQ(gate.input_state(0), st::InputState::kClosed);
  EXPECT_EQ(gate.input_state(1), st::InputState::kPeerDied);
  EXPECT_EQ(gate.input_state(2), st::InputState::kClosed);
  EXPECT_EQ(a.wait(), 0);
  EXPECT_EQ(c.wait(), 0);
}

TEST(FanIn, ANewProducerContinuesADeadOnesInput) {
  const auto guards = guards_for("gate-resume", 2);
  const auto names = names_of(guards);
  Signal written;
  ChildProcess doomed([&] {
    auto producer = st::Producer::create(names[0], small_pool());
    const int status = write_records(producer, 0, 200, false);  // fits in the pool
    written.notify();
    pause();
    return status;
  });
  ChildProcess other([&] { return produce(names[1], 4000); });
  st::GateOptions options = waiting_gate();
  options.producer_loss = st::ProducerLoss::kWaitForNewProducer;
  auto gate = st::InputGate::open(names, options);
  ASSERT_TRUE(written.wait());
  doomed.kill_now();
  EXPECT_EQ(doomed.wait(), 128 + SIGKILL);
  StreamCheck check(2);
  std::span<const std::byte> record;
  while (check.next[0] < 200 || check.next[1] < 4000) {
    ASSERT_EQ(gate.next_for(record, 60s), st::Status::kOk);
    check.observe(gate.last_input(), record);
  }
  // Input 1 is closed; input 0's producer is dead, and the gate waits for a successor.
  EXPECT_EQ(gate.next_for(record, 200ms), st::Status::kTimeout);
  EXPECT_EQ(gate.input_state(0), st::InputState::kOpen);
  EXPECT_EQ(gate.input_state(1), st::InputState::kClosed);
  ChildProcess successor([&] {
    auto producer = st::Producer::attach(names[0], {.wait_for_channel = 5s});
    return write_records(producer, producer.records_committed(), 800, true);
  });
  st::Status status;
  while ((status = gate.next_for(record, 60s)) == st::Status::kOk) {
    check.observe(gate.last_input(), record);
  }
  EXPECT_EQ(status, st::Status::kClosed);
  EXPECT_EQ(check.errors, 0U);
  EXPECT_EQ(check.next[0], 1000U);
  EXPECT_EQ(check.next[1], 4000U);
  EXPECT_EQ(successor.wait(), 0);
  EXPECT_EQ(other.wait(), 0);
}

TEST(FanIn, AHostileInputIsReportedOnceAndTheOthersGoOn) {
  const auto guards = guards_for("gate-hostile", 2);
  const auto names = names_of(guards);
  auto good = st::Producer::create(names[0], small_pool());
  auto bad = st::Producer::create(names[1], small_pool());
  auto gate = st::InputGate::open(names, waiting_gate());
  ASSERT_EQ(write_records(good, 0, 100, true), 0);
  // A rogue producer plants a buffer index beyond the pool in its data ring.
  st::RingIndices& ring = bad.mapping().data_ring();
  const auto tail = ring.tail.load();
  bad.mapping().data_slots()[tail & (bad.config().ring_capacity - 1)].store(
      st::make_descriptor(99, 10));
  ring.tail.store(tail + 1);
  st::ChannelControl& control = bad.mapping().control();
  control.stream.closed.store(1);

  StreamCheck check(2);
  std::span<const std::byte> record;
  std::uint64_t corrupt_reports = 0;
  st::Status status;
  // kCorrupt while inputs remain open reports one input; the others go on.
  while ((status = gate.next_for(record, 30s)) == st::Status::kOk ||
         (status == st::Status::kCorrupt && gate.open_inputs() > 0)) {
    if (status == st::Status::kCorrupt) {
      ++corrupt_reports;
      EXPECT_EQ(gate.last_input(), 1U);
      EXPECT_NE(gate.input_corruption(1).find("beyond the pool"), std::string::npos)
          << gate.input_corruption(1);
      continue;
    }
    check.observe(gate.last_input(), record);
  }
  EXPECT_EQ(corrupt_reports, 1U);
  EXPECT_EQ(status, st::Status::kCorrupt);  // the end: one input was corrupt
  EXPECT_EQ(check.next[0], 100U);
  EXPECT_EQ(check.errors, 0U);
  EXPECT_EQ(gate.input_state(1), st::InputState::kCorrupt);
}

TEST(FanIn, SetUpErrorsNameTheProblem) {
  EXPECT_THROW(st::InputGate::open(std::vector<std::string>{}), sluice::shm::SetupError);
  const std::string missing = unique_channel("gate-missing");
  try {
    st::InputGate::open(std::vector<std::string>{missing});
    FAIL() << "opened a missing channel";
  } catch (const sluice::shm::SetupError& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
}
