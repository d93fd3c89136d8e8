#include "topology_iceoryx.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

#ifdef SLUICE_TOPOLOGY_HAVE_ICEORYX
#include "common/iceoryx_client.hpp"
#include "common/queue_depth.hpp"
#endif

namespace sluice::bench::topology {

#ifndef SLUICE_TOPOLOGY_ICEORYX_MISSING
#define SLUICE_TOPOLOGY_ICEORYX_MISSING "not built"
#endif

std::string IceoryxRows::size_problem(std::size_t size) {
  if (size > kLargestChunkPayload) {
    return "records larger than RouDi's largest chunk (1 MiB)";
  }
  return {};
}

namespace {

// Each process's name with RouDi, unique among live processes.
std::string runtime_name(const std::string& tag, char role, std::uint32_t index) {
  return "stopo-" + tag + "-" + role + std::to_string(index);
}

}  // namespace

void iceoryx_cleanup(const std::string& tag, std::uint32_t processes) {
  for (const char role : {'p', 'c'}) {
    for (std::uint32_t i = 0; i < processes; ++i) {
      const std::string base = "/tmp/" + runtime_name(tag, role, i);
      ::unlink(base.c_str());
      ::unlink((base + ".lock").c_str());
    }
  }
}

#ifdef SLUICE_TOPOLOGY_HAVE_ICEORYX

namespace {

namespace pattern = sluice::transport::pattern;
namespace iceoryx = sluice::bench::iceoryx;

iox::capro::ServiceDescription service(const std::string& tag) {
  return iceoryx::service("SluiceTopology", tag, "x");
}

template <class Done>
void wait_until(const Done& done, const char* what) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error(std::string("timed out waiting for ") + what);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

std::string IceoryxRows::start() {
  return roudi_.start("/tmp/sluice-topo-roudi-" + std::to_string(::getpid()));
}

int iceoryx_publish(const std::string& tag, std::uint32_t index, std::size_t size,
                    std::uint64_t records, std::uint32_t consumers, RunControl& control) {
  iceoryx::init_runtime(runtime_name(tag, 'p', index));
  std::uint64_t retries = 0;
  iox::popo::UntypedPublisher publisher(service(tag), iceoryx::publisher_options());
  // Each subscriber says it is set up only once it is subscribed, so the
  // start waits for all of them; this one waits for its first.
  wait_until([&] { return publisher.hasSubscribers(); }, "a subscriber");
  wait_for_go(control);
  for (std::uint64_t sequence = 0; sequence < records; ++sequence) {
    void* chunk = iceoryx::loan(publisher, size, retries);
    pattern::fill({static_cast<std::byte*>(chunk), size}, sequence);
    publisher.publish(chunk);
  }
  // Keep the publisher until the subscribers have taken everything.
  wait_for_consumers(control, consumers);
  return 0;
}

int iceoryx_subscribe(const std::string& tag, std::uint32_t index, std::uint32_t publishers,
                      std::size_t size, std::uint64_t records_each, RunControl& control) {
  iceoryx::init_runtime(runtime_name(tag, 'c', index));
  iox::popo::UntypedSubscriber subscriber(service(tag),
                                          iceoryx::subscriber_options(queue_depth(size)));
  iox::popo::WaitSet<> waitset;
  if (waitset.attachState(subscriber, iox::popo::SubscriberState::HAS_DATA).has_error()) {
    throw std::runtime_error("cannot attach the subscriber to a WaitSet");
  }
  wait_until([&] { return subscriber.getSubscriptionState() == iox::SubscribeState::SUBSCRIBED; },
             "the subscription");
  // Publisher i is the i-th origin seen; its next expected sequence.
  std::vector<std::uint64_t> origins;
  std::vector<std::uint64_t> next;
  origins.reserve(publishers);
  next.reserve(publishers);
  const std::uint64_t total = records_each * publishers;
  bool good = true;
  wait_for_go(control);
  for (std::uint64_t received = 0; received < total; ++received) {
    const void* chunk = iceoryx::take(subscriber, &waitset);
    const std::uint64_t origin = iceoryx::origin(chunk);
    std::size_t from = 0;
    while (from < origins.size() && origins[from] != origin) {
      ++from;
    }
    if (from == origins.size()) {
      if (origins.size() == publishers) {
        std::fprintf(stderr, "iceoryx: a sample from an unknown publisher\n");
        return 1;
      }
      origins.push_back(origin);
      next.push_back(0);
    }
    good = good && intact(iceoryx::payload(chunk), size, next[from]++);
    subscriber.release(chunk);
  }
  finished(control);
  waitset.detachState(subscriber, iox::popo::SubscriberState::HAS_DATA);
  return good ? 0 : 1;
}

#else

std::string IceoryxRows::start() {
  return SLUICE_TOPOLOGY_ICEORYX_MISSING;
}

int iceoryx_publish(const std::string&, std::uint32_t, std::size_t, std::uint64_t, std::uint32_t,
                    RunControl&) {
  return 1;
}

int iceoryx_subscribe(const std::string&, std::uint32_t, std::uint32_t, std::size_t, std::uint64_t,
                      RunControl&) {
  return 1;
}

#endif

}  // namespace sluice::bench::topology
