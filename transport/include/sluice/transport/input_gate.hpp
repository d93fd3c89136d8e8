#pragma once

// Fan-in (Flink's input gate): one consumer reading several channels. Each
// input stays a 1:1 channel with its own segment, producer, liveness locks
// and takeover; the gate owns no shared memory. It serves the inputs in
// turn, a quantum of records each, so no input starves while others are
// busy, and when every input is empty it sleeps on all of them at once with
// one futex_waitv over their data_ready words. Each input keeps the wake-up
// protocol of wait_strategy.hpp unchanged (its producer does not know it
// feeds a gate): the gate reads every input's wake sequence, checks every
// producer, announces itself on every input's sleep flag (seq_cst RMW),
// re-checks every input, and only then sleeps on all the sequences, so a
// publish on any input either is seen by the re-check or bumps a sequence
// the sleep is keyed on. (Modelled in tests/model/gate.pml.)

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/shm/futex.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/deadline.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/status.hpp"
#include "sluice/transport/wait_strategy.hpp"

namespace sluice::transport {

// Where one input of a gate stands. Only kOpen inputs are served.
enum class InputState : std::uint8_t {
  kOpen,      // its producer may still deliver
  kClosed,    // its producer closed the stream and everything was read
  kPeerDied,  // its producer went away without closing, everything was read
  kCorrupt,   // it delivered bad shared data; it is no longer read
};

struct GateOptions {
  // Per input: how long to wait for its channel to appear.
  OpenOptions open;
  // Per input's record reader (before_release: see RecordReaderOptions).
  RecordReaderOptions reader;
  // What a dead producer means for its input: the input ends (default), or
  // it stays open for a producer that attaches and continues the stream.
  ProducerLoss producer_loss = ProducerLoss::kReturnPeerDied;
  // Records one input may deliver before the next one with data gets its
  // turn. Small: fairer; large: fewer switches between inputs.
  std::uint32_t records_per_turn = 256;
  // Spin and yield rounds over all inputs before sleeping; the sleep slice
  // bounds how late a dead producer is noticed.
  WaitPolicy policy;
};

// One input of a gate: a channel, or one subpartition of a partitioned one.
struct GateInput {
  std::string channel;
  std::uint32_t subpartition = 0;
};

// Fan-in over named channels. One thread uses a gate at a time.
class InputGate {
 public:
  // The most inputs one gate reads (one futex_waitv call covers them all).
  static constexpr std::size_t kMaxInputs = sluice::shm::kMaxFutexWaitItems;

  // Opens every channel as its consumer (see Consumer::open: waits for it to
  // appear, takes over from a dead consumer). Throws shm::SetupError naming
  // the channel, or for no names, too many, or a name given twice.
  static InputGate open(std::span<const std::string> names, const GateOptions& options = {});
  static InputGate open(std::span<const GateInput> inputs, const GateOptions& options = {});

  InputGate(InputGate&&) noexcept;
  InputGate& operator=(InputGate&&) noexcept;
  ~InputGate();

  // Adds an input while the gate runs (a producer joining the gate's
  // pipeline); the caller's thread, between reads. Returns its index. An
  // input may be one subpartition of a partitioned channel (fan-out); the
  // gate then is that subpartition's consumer. Throws as open().
  std::size_t add_input(std::string_view name, std::uint32_t subpartition = 0);

  // The next record of any input, as RecordReader::next_until: kOk with
  // `record` set (a view valid until the next call) and last_input() naming
  // its input; kWouldBlock / kTimeout; kCorrupt once for an input that
  // delivered bad data (last_input() names it; while open_inputs() > 0 the
  // others go on and the next call reads them); and once
  // every input has ended, kClosed if all closed their streams, else kPeerDied
  // (a producer went away), else kCorrupt.
  Status next_until(std::span<const std::byte>& record, const Deadline& deadline) noexcept {
    if (turn_left_ != 0) [[likely]] {
      Input& input = *inputs_[current_];
      const Status status = input.reader.try_next(record);
      if (status == Status::kOk) [[likely]] {
        --turn_left_;
        return status;
      }
    }
    return next_slow(record, deadline);
  }
  Status try_next(std::span<const std::byte>& record) noexcept {
    return next_until(record, Deadline::immediate());
  }
  Status next(std::span<const std::byte>& record) noexcept {
    return next_until(record, Deadline::never());
  }
  Status next_for(std::span<const std::byte>& record, std::chrono::nanoseconds timeout) noexcept {
    return next_until(record, Deadline::after(timeout));
  }

  // As RecordReader::read_batch_until: on_record for the next record, then
  // for the records already complete in the same input's buffer, at most the
  // rest of that input's turn. All records of one call come from last_input().
  template <class OnRecord>
  Status read_batch_until(OnRecord&& on_record, const Deadline& deadline) {
    std::span<const std::byte> first;
    const Status status = next_until(first, deadline);
    if (status != Status::kOk) {
      return status;
    }
    if (!on_record(first) || turn_left_ == 0) {
      return Status::kOk;
    }
    std::uint32_t left = turn_left_;
    // The rest is this input's; a status it reports (an end, corruption) is
    // reported by the next call, which asks it again.
    (void)inputs_[current_]->reader.try_read_batch([&](std::span<const std::byte> record) {
      --left;
      return on_record(record) && left != 0;
    });
    turn_left_ = left;
    return Status::kOk;
  }
  // As RecordReader::read_runs_until (at most `most` records), and at most
  // the rest of the input's turn (a run counts as its records): for a stage
  // that passes records on.
  template <class OnRun>
  Status read_runs_until(OnRun&& on_run, const Deadline& deadline,
                         std::uint64_t most = UINT64_MAX) {
    std::span<const std::byte> first;
    const Status status = next_until(first, deadline);
    if (status != Status::kOk) {
      return status;
    }
    if (!on_run(first, std::uint64_t{1}) || turn_left_ == 0 || most <= 1) {
      return Status::kOk;
    }
    const std::uint64_t turn = turn_left_;
    const std::uint64_t left = std::min(turn, most - 1);
    std::uint64_t taken = 0;
    // The rest is this input's; a status it reports (an end, corruption) is
    // reported by the next call, which asks it again.
    (void)inputs_[current_]->reader.read_runs_until(
        [&](std::span<const std::byte> records, std::uint64_t count) {
          taken += count;
          return on_run(records, count) && taken < left;
        },
        Deadline::immediate(), left);
    turn_left_ = static_cast<std::uint32_t>(turn - taken);
    return Status::kOk;
  }
  template <class OnRecord>
  Status read_batch(OnRecord&& on_record) {
    return read_batch_until(std::forward<OnRecord>(on_record), Deadline::never());
  }
  template <class OnRecord>
  Status try_read_batch(OnRecord&& on_record) {
    return read_batch_until(std::forward<OnRecord>(on_record), Deadline::immediate());
  }

  // The input the last record (or the last kCorrupt) came from.
  [[nodiscard]] std::size_t last_input() const noexcept { return current_; }
  [[nodiscard]] std::size_t input_count() const noexcept { return inputs_.size(); }
  [[nodiscard]] std::size_t open_inputs() const noexcept { return open_inputs_; }
  [[nodiscard]] const std::string& input_name(std::size_t input) const noexcept {
    return inputs_[input]->consumer.name();
  }
  [[nodiscard]] std::uint32_t input_subpartition(std::size_t input) const noexcept {
    return inputs_[input]->consumer.mapping().subpartition();
  }
  [[nodiscard]] InputState input_state(std::size_t input) const noexcept {
    return inputs_[input]->state;
  }
  // Records read from one input, and from all.
  [[nodiscard]] std::uint64_t input_records(std::size_t input) const noexcept {
    return inputs_[input]->reader.records_read();
  }
  [[nodiscard]] std::uint64_t records_read() const noexcept;
  // The input's consumer endpoint: its channel, counters and corruption().
  [[nodiscard]] Consumer& input_consumer(std::size_t input) noexcept {
    return inputs_[input]->consumer;
  }
  // Why the input's last kCorrupt was returned (channel data or framing).
  [[nodiscard]] std::string input_corruption(std::size_t input) const;

 private:
  struct Input {
    Input(Consumer c, const RecordReaderOptions& options)
        : consumer(std::move(c)), reader(consumer, options) {}
    Consumer consumer;
    RecordReader reader;  // reads `consumer`; declared after it
    InputState state = InputState::kOpen;
  };

  explicit InputGate(const GateOptions& options);
  Status next_slow(std::span<const std::byte>& record, const Deadline& deadline) noexcept;
  // One pass over the inputs, starting after the current one: kOk (a record),
  // kCorrupt (an input failed), kWouldBlock, or the final status once none is open.
  Status poll_round(std::span<const std::byte>& record) noexcept;
  // One step of the sleep: announce, re-check, futex_waitv.
  Status sleep_round(std::span<const std::byte>& record, const Deadline& deadline) noexcept;
  Status finish_input(std::size_t input, Status status) noexcept;
  [[nodiscard]] Status final_status() const noexcept;

  GateOptions options_;
  std::vector<std::unique_ptr<Input>> inputs_;
  std::vector<sluice::shm::FutexWaitItem> wait_items_;  // reused: no allocation while waiting
  std::vector<std::size_t> waiting_inputs_;
  std::vector<std::size_t> idle_inputs_;  // inputs open when the current wait began
  std::size_t current_ = 0;
  std::uint32_t turn_left_ = 0;  // records the current input may still deliver in its turn
  std::size_t open_inputs_ = 0;
};

}  // namespace sluice::transport
