#include "sluice/transport/input_gate.hpp"

#include <algorithm>
#include <atomic>
#include <thread>

#include "sluice/shm/setup_error.hpp"

namespace sluice::transport {

InputGate::InputGate(const GateOptions& options) : options_(options) {
  options_.records_per_turn = std::max<std::uint32_t>(options_.records_per_turn, 1);
}
InputGate::InputGate(InputGate&&) noexcept = default;
InputGate& InputGate::operator=(InputGate&&) noexcept = default;
InputGate::~InputGate() = default;

InputGate InputGate::open(std::span<const std::string> names, const GateOptions& options) {
  if (names.empty()) {
    throw sluice::shm::SetupError("an input gate needs at least one channel");
  }
  InputGate gate(options);
  for (const std::string& name : names) {
    gate.add_input(name);
  }
  return gate;
}

InputGate InputGate::open(std::span<const GateInput> inputs, const GateOptions& options) {
  if (inputs.empty()) {
    throw sluice::shm::SetupError("an input gate needs at least one channel");
  }
  InputGate gate(options);
  for (const GateInput& input : inputs) {
    gate.add_input(input.channel, input.subpartition);
  }
  return gate;
}

std::size_t InputGate::add_input(std::string_view name, std::uint32_t subpartition) {
  if (inputs_.size() >= kMaxInputs) {
    throw sluice::shm::SetupError("cannot add channel \"" + std::string(name) +
                                  "\" to the input gate: it reads at most " +
                                  std::to_string(kMaxInputs) + " channels");
  }
  for (const auto& input : inputs_) {
    if (input->consumer.name() == name &&
        input->consumer.mapping().subpartition() == subpartition) {
      throw sluice::shm::SetupError(
          "channel \"" + std::string(name) + "\"" +
          (subpartition != 0 ? " subpartition " + std::to_string(subpartition) : std::string()) +
          " is already an input of this gate");
    }
  }
  OpenOptions open = options_.open;
  open.subpartition = subpartition;
  Consumer consumer = Consumer::open(name, open);
  consumer.set_producer_loss(options_.producer_loss);
  // The gate spins and yields across all inputs itself; an input's own wait
  // (used only to drain an input whose producer is gone) must not.
  consumer.set_wait_policy(
      {.spin_rounds = 0, .yield_rounds = 0, .sleep_slice = options_.policy.sleep_slice});
  inputs_.push_back(std::make_unique<Input>(std::move(consumer), options_.reader));
  wait_items_.reserve(inputs_.size());
  waiting_inputs_.reserve(inputs_.size());
  idle_inputs_.reserve(inputs_.size());
  ++open_inputs_;
  return inputs_.size() - 1;
}

std::uint64_t InputGate::records_read() const noexcept {
  std::uint64_t total = 0;
  for (const auto& input : inputs_) {
    total += input->reader.records_read();
  }
  return total;
}

std::string InputGate::input_corruption(std::size_t input) const {
  const Input& in = *inputs_[input];
  std::string why = in.consumer.corruption();
  if (why.empty() && in.reader.framing_error() != nullptr) {
    why = "channel \"" + in.consumer.name() + "\": " + in.reader.framing_error();
  }
  return why;
}

Status InputGate::finish_input(std::size_t input, Status status) noexcept {
  Input& in = *inputs_[input];
  if (in.state != InputState::kOpen) {
    return status;
  }
  in.state = status == Status::kClosed     ? InputState::kClosed
             : status == Status::kPeerDied ? InputState::kPeerDied
                                           : InputState::kCorrupt;
  --open_inputs_;
  if (input == current_) {
    turn_left_ = 0;
  }
  return status;
}

Status InputGate::final_status() const noexcept {
  bool died = false;
  for (const auto& input : inputs_) {
    if (input->state == InputState::kCorrupt) {
      return Status::kCorrupt;
    }
    died = died || input->state == InputState::kPeerDied;
  }
  return died ? Status::kPeerDied : Status::kClosed;
}

Status InputGate::poll_round(std::span<const std::byte>& record) noexcept {
  const std::size_t count = inputs_.size();
  for (std::size_t step = 1; step <= count && open_inputs_ != 0; ++step) {
    const std::size_t i = (current_ + step) % count;
    Input& in = *inputs_[i];
    if (in.state != InputState::kOpen) {
      continue;
    }
    const Status status = in.reader.try_next(record);
    switch (status) {
      case Status::kOk:
        current_ = i;
        turn_left_ = options_.records_per_turn - 1;
        return Status::kOk;
      case Status::kClosed:
      case Status::kPeerDied: finish_input(i, status); break;
      case Status::kWouldBlock:
      case Status::kTimeout: break;
      default:  // kCorrupt (or a status no reader returns): this input is done
        current_ = i;
        finish_input(i, Status::kCorrupt);
        return Status::kCorrupt;
    }
  }
  return open_inputs_ == 0 ? final_status() : Status::kWouldBlock;
}

Status InputGate::sleep_round(std::span<const std::byte>& record,
                              const Deadline& deadline) noexcept {
  wait_items_.clear();
  waiting_inputs_.clear();
  // 1. Every open input's wake sequence, read before its producer is checked:
  //    a detach or close that bumps it later makes the sleep return at once,
  //    one that bumped it earlier is visible to the check (acquire).
  for (std::size_t i = 0; i < inputs_.size(); ++i) {
    Input& in = *inputs_[i];
    if (in.state == InputState::kOpen) {
      WakeWord& word = in.consumer.mapping().control().data_ready;
      wait_items_.push_back({&word.sequence, word.sequence.load(std::memory_order_acquire)});
      waiting_inputs_.push_back(i);
    }
  }
  // 2. An input whose producer closed or is gone is drained, not slept on:
  //    its reader's own wait takes what was published and reports the end
  //    (its policy does not spin; a zero timeout makes it look just once).
  bool ended = false;
  for (const std::size_t i : waiting_inputs_) {
    Input& in = *inputs_[i];
    if (in.consumer.producer_status() == Status::kOk) {
      continue;
    }
    const Status status =
        in.reader.next_until(record, Deadline::after(std::chrono::nanoseconds(0)));
    if (status == Status::kOk) {
      current_ = i;
      turn_left_ = options_.records_per_turn - 1;
      return Status::kOk;
    }
    if (status != Status::kTimeout && status != Status::kWouldBlock) {
      current_ = status == Status::kCorrupt ? i : current_;
      finish_input(i, status);
      if (status == Status::kCorrupt) {
        return status;
      }
      ended = true;
    }
  }
  if (ended || open_inputs_ == 0) {
    return open_inputs_ == 0 ? final_status() : Status::kWouldBlock;  // sequences are stale
  }
  const auto left = deadline.remaining(Clock::now());
  if (left <= std::chrono::nanoseconds::zero()) {
    return Status::kTimeout;
  }
  // 3. Announce on every input (seq_cst RMW, as a single channel's waiter
  //    does), 4. re-check every input, 5. sleep on all the sequences.
  for (const std::size_t i : waiting_inputs_) {
    inputs_[i]->consumer.mapping().control().consumer_sleeping.sleeping.exchange(
        1, std::memory_order_seq_cst);
  }
  Status status = poll_round(record);
  if (status == Status::kWouldBlock) {
    sluice::shm::futex_wait_any(wait_items_, std::min(left, options_.policy.sleep_slice));
    status = poll_round(record);
  }
  for (const std::size_t i : waiting_inputs_) {
    inputs_[i]->consumer.mapping().control().consumer_sleeping.sleeping.store(
        0, std::memory_order_relaxed);
  }
  return status;
}

Status InputGate::next_slow(std::span<const std::byte>& record, const Deadline& deadline) noexcept {
  if (inputs_.empty()) {
    return Status::kClosed;
  }
  Status status = poll_round(record);
  if (status != Status::kWouldBlock || deadline.is_immediate()) {
    return status;
  }
  // Waiting: every input open now counts the wait as idle time.
  const Clock::time_point started = Clock::now();
  idle_inputs_.clear();
  for (std::size_t i = 0; i < inputs_.size(); ++i) {
    if (inputs_[i]->state == InputState::kOpen) {
      inputs_[i]->consumer.begin_idle(started);
      idle_inputs_.push_back(i);
    }
  }
  const auto finish = [&](Status result) {
    const auto waited =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started);
    for (const std::size_t i : idle_inputs_) {  // an input that ended meanwhile waited too
      inputs_[i]->consumer.end_idle(waited);
    }
    return result;
  };
  for (std::uint32_t i = 0; i < options_.policy.spin_rounds; ++i) {
    cpu_relax();
    if ((status = poll_round(record)) != Status::kWouldBlock) {
      return finish(status);
    }
  }
  for (std::uint32_t i = 0; i < options_.policy.yield_rounds; ++i) {
    std::this_thread::yield();
    if ((status = poll_round(record)) != Status::kWouldBlock) {
      return finish(status);
    }
  }
  for (;;) {
    status = sleep_round(record, deadline);
    if (status != Status::kWouldBlock) {
      return finish(status);
    }
  }
}

}  // namespace sluice::transport
