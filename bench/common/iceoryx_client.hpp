#pragma once

// How the benchmarks use iceoryx 2.0 (untyped publisher and subscriber, one
// sample per record), shared by the comparison (bench/peers) and the
// topology benchmark so both run it with the same blocking settings.
// Include only where iceoryx_posh was found; its headers need
// -Wno-shadow -Wno-conversion -Wno-pedantic.

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>

#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/mepoo/chunk_header.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"

namespace sluice::bench::iceoryx {

// Registers this process with RouDi under `name` (unique among live
// processes); iceoryx's own log only from warnings up.
inline void init_runtime(const std::string& name) {
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn,
                                                           iox::log::LogLevelOutput::kHideLogLevel);
  iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name));
}

inline iox::capro::ServiceDescription service(const char* app, const std::string& tag,
                                              const char* what) {
  return {iox::capro::IdString_t(iox::cxx::TruncateToCapacity, app),
          iox::capro::IdString_t(iox::cxx::TruncateToCapacity, tag),
          iox::capro::IdString_t(iox::cxx::TruncateToCapacity, what)};
}

// Nothing is dropped: publish() waits while a subscriber's queue is full
// (WAIT_FOR_CONSUMER here, BLOCK_PRODUCER on the subscriber).
inline iox::popo::PublisherOptions publisher_options() {
  iox::popo::PublisherOptions options;
  options.historyCapacity = 0;
  options.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
  return options;
}

inline iox::popo::SubscriberOptions subscriber_options(std::uint64_t depth) {
  iox::popo::SubscriberOptions options;
  options.queueCapacity = depth;
  options.historyRequest = 0;
  options.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
  return options;
}

// Loans a chunk; loan() fails instead of blocking when the pool is empty,
// so retry (counted) with a yield.
inline void* loan(iox::popo::UntypedPublisher& publisher, std::size_t bytes,
                  std::uint64_t& retries) {
  for (;;) {
    auto result = publisher.loan(static_cast<std::uint32_t>(bytes));
    if (!result.has_error()) {
      return result.value();
    }
    const auto error = result.get_error();
    if (error != iox::popo::AllocationError::RUNNING_OUT_OF_CHUNKS &&
        error != iox::popo::AllocationError::TOO_MANY_CHUNKS_ALLOCATED_IN_PARALLEL) {
      throw std::runtime_error("loan failed: error " + std::to_string(static_cast<int>(error)));
    }
    ++retries;
    std::this_thread::yield();
  }
}

// Takes the next sample: spinning (no waitset) or sleeping on the WaitSet.
inline const void* take(iox::popo::UntypedSubscriber& subscriber, iox::popo::WaitSet<>* waitset) {
  for (;;) {
    auto result = subscriber.take();
    if (!result.has_error()) {
      return result.value();
    }
    if (result.get_error() != iox::popo::ChunkReceiveResult::NO_CHUNK_AVAILABLE) {
      throw std::runtime_error("take failed: too many chunks held");
    }
    if (waitset != nullptr) {
      (void)waitset->wait();
    }
  }
}

inline std::span<const std::byte> payload(const void* chunk) {
  const auto* header = iox::mepoo::ChunkHeader::fromUserPayload(chunk);
  return {static_cast<const std::byte*>(chunk), header->userPayloadSize()};
}

// The publisher port a sample came from (to tell publishers of one service apart).
inline std::uint64_t origin(const void* chunk) {
  return static_cast<std::uint64_t>(iox::mepoo::ChunkHeader::fromUserPayload(chunk)->originId());
}

}  // namespace sluice::bench::iceoryx
