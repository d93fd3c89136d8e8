// The wake-up protocol between two threads sharing one mapping, with spinning
// and yielding turned off so every wait goes to the futex. A lost wake-up
// would leave a waiter asleep until its deadline; none may. Runs under TSan
// too, where both threads' accesses to the same addresses are checked.

#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <thread>

#include "sluice/transport/spsc_ring.hpp"
#include "sluice/transport/wait_strategy.hpp"

namespace st = sluice::transport;
using namespace std::chrono_literals;

namespace {

struct SharedPair {
  st::RingIndices indices;
  st::RingSlot slots[4];
  st::WakeWord data_ready;
  st::SleepFlag consumer_sleeping;
  st::WakeWord space_free;
  st::SleepFlag producer_sleeping;
};

TEST(WakeProtocol, NoWakeUpIsLostWhenEveryWaitSleeps) {
  constexpr std::uint64_t kItems = 20'000;
  constexpr auto kWaitLimit = 30s;
  auto* shared = new SharedPair{};
  st::WaitPolicy policy;
  policy.spin_rounds = 0;
  policy.yield_rounds = 0;
  policy.sleep_slice = std::chrono::hours(1);  // only a wake-up ends a sleep early

  std::uint64_t producer_overlong = 0;
  std::thread producer([&] {
    st::RingWriter writer(&shared->indices, shared->slots, 4);
    for (std::uint64_t i = 0; i < kItems; ++i) {
      std::chrono::nanoseconds waited{};
      const auto status = st::wait_for(
          [&] {
            return writer.push(i) == st::RingResult::kOk ? st::Status::kOk
                                                         : st::Status::kWouldBlock;
          },
          [] { return st::Status::kOk; }, shared->space_free, shared->producer_sleeping,
          st::Deadline::after(kWaitLimit), policy, waited);
      if (status != st::Status::kOk || waited > kWaitLimit / 2) {
        ++producer_overlong;
      }
      st::wake_peer(shared->data_ready, shared->consumer_sleeping);
    }
  });

  st::RingReader reader(&shared->indices, shared->slots, 4);
  std::uint64_t consumer_overlong = 0;
  std::uint64_t out_of_order = 0;
  for (std::uint64_t i = 0; i < kItems; ++i) {
    std::uint64_t value = 0;
    std::chrono::nanoseconds waited{};
    const auto status = st::wait_for(
        [&] {
          return reader.pop(value) == st::RingResult::kOk ? st::Status::kOk
                                                          : st::Status::kWouldBlock;
        },
        [] { return st::Status::kOk; }, shared->data_ready, shared->consumer_sleeping,
        st::Deadline::after(kWaitLimit), policy, waited);
    if (status != st::Status::kOk || waited > kWaitLimit / 2) {
      ++consumer_overlong;
    }
    out_of_order += value != i ? 1 : 0;
    st::wake_peer(shared->space_free, shared->producer_sleeping);
  }
  producer.join();
  delete shared;
  EXPECT_EQ(producer_overlong, 0U);
  EXPECT_EQ(consumer_overlong, 0U);
  EXPECT_EQ(out_of_order, 0U);
}

}  // namespace
