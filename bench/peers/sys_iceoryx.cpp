// iceoryx 2.0 (Debian 12: 2.0.3), untyped publisher/subscriber, one sample
// per record: the publisher loans a chunk, fills it in place and publishes
// it; the subscriber takes it, checks it in place and releases it. Nothing
// is dropped: ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER on the publisher and
// QueueFullPolicy::BLOCK_PRODUCER on the subscriber (publish() then waits
// while the subscriber's queue is full). Blocking receive: a WaitSet on the
// subscriber's HAS_DATA state. The RouDi daemon is started by start() with
// a generated configuration whose mempools hold 1 MiB chunks, and stopped by
// stop().

#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

#ifdef SLUICE_COMPARE_HAVE_ICEORYX
#include "../common/iceoryx_client.hpp"
#include "../common/roudi_daemon.hpp"
#endif

namespace cmp {
namespace {

#ifndef SLUICE_COMPARE_ICEORYX_MISSING
#define SLUICE_COMPARE_ICEORYX_MISSING "not built"
#endif

#ifdef SLUICE_COMPARE_HAVE_ICEORYX

using namespace sluice::bench::iceoryx;

iox::capro::ServiceDescription service(const std::string& tag, const char* what) {
  return sluice::bench::iceoryx::service("SluiceCompare", tag, what);
}

template <class Done>
void wait_until(const Done& done, const char* what) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (Clock::now() > deadline) {
      fail(std::string("timed out waiting for ") + what);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

class IceoryxSystem final : public System {
 public:
  [[nodiscard]] std::string name() const override { return "iceoryx"; }
  [[nodiscard]] std::string unavailable() const override { return unavailable_; }

  void start() override {
    unavailable_ = roudi_.start("/tmp/sluice-cmp-roudi-" + std::to_string(::getpid()));
  }
  void stop() override { roudi_.stop(); }
  [[nodiscard]] double daemon_cpu_seconds() const override { return roudi_.cpu_seconds(); }

  void prepare(const std::string& tag, bool /*ping*/) override { tag_ = tag; }
  void cleanup() override {
    // A client killed after a timeout leaves its socket and lock in /tmp
    // (iceoryx names them after the runtime); a clean exit removes them.
    for (const char* role : {"p", "c", "a", "b"}) {
      const std::string base = "/tmp/scmp-" + tag_ + "-" + role;
      ::unlink(base.c_str());
      ::unlink((base + ".lock").c_str());
    }
  }

  void produce(Link& link, const Work& work) override {
    init_runtime("scmp-" + tag_ + "-p");
    std::uint64_t retries = 0;
    {
      iox::popo::UntypedPublisher publisher(service(tag_, "x"), publisher_options());
      wait_until([&] { return publisher.hasSubscribers(); }, "a subscriber");
      link.ready();
      for (std::uint64_t sequence = 0; sequence < work.records; ++sequence) {
        void* chunk = loan(publisher, work.size, retries);
        pattern::fill({static_cast<std::byte*>(chunk), work.size}, sequence);
        publisher.publish(chunk);
      }
      link.done();
      // Keep the publisher until the subscriber has taken everything.
      link.wait_end();
    }
    link.report().extra = retries;
  }

  void consume(Link& link, const Work& work) override {
    init_runtime("scmp-" + tag_ + "-c");
    iox::popo::UntypedSubscriber subscriber(service(tag_, "x"),
                                            subscriber_options(queue_depth(work.size)));
    iox::popo::WaitSet<> waitset;
    if (waitset.attachState(subscriber, iox::popo::SubscriberState::HAS_DATA).has_error()) {
      fail("cannot attach the subscriber to a WaitSet");
    }
    wait_until([&] { return subscriber.getSubscriptionState() == iox::SubscribeState::SUBSCRIBED; },
               "the subscription");
    link.ready();
    for (std::uint64_t sequence = 0; sequence < work.records; ++sequence) {
      const void* chunk = take(subscriber, &waitset);
      check_record(payload(chunk), work.size, sequence);
      subscriber.release(chunk);
    }
    link.done();
    waitset.detachState(subscriber, iox::popo::SubscriberState::HAS_DATA);
  }

  void ping(Link& link, const PingWork& work) override {
    init_runtime("scmp-" + tag_ + "-a");
    std::uint64_t retries = 0;
    {
      iox::popo::UntypedPublisher publisher(service(tag_, "ping"), publisher_options());
      iox::popo::UntypedSubscriber subscriber(service(tag_, "pong"), subscriber_options(16));
      iox::popo::WaitSet<> waitset;
      if (waitset.attachState(subscriber, iox::popo::SubscriberState::HAS_DATA).has_error()) {
        fail("cannot attach the subscriber to a WaitSet");
      }
      wait_until([&] { return publisher.hasSubscribers(); }, "a subscriber");
      wait_until(
          [&] { return subscriber.getSubscriptionState() == iox::SubscribeState::SUBSCRIBED; },
          "the subscription");
      std::vector<std::int64_t> samples;
      samples.reserve(work.rounds);
      link.ready();
      for (std::uint64_t i = 0; i < work.total(); ++i) {
        const std::int64_t start = now_ns();
        void* chunk = loan(publisher, PingWork::kBytes, retries);
        pattern::fill({static_cast<std::byte*>(chunk), PingWork::kBytes}, i);
        publisher.publish(chunk);
        const void* reply = take(subscriber, work.busy_poll ? nullptr : &waitset);
        const std::int64_t end = now_ns();
        check_record(payload(reply), PingWork::kBytes, i);
        subscriber.release(reply);
        if (i >= work.warmup) {
          samples.push_back(end - start);
        }
      }
      link.done();
      summarise_latency(samples, link.report());
      waitset.detachState(subscriber, iox::popo::SubscriberState::HAS_DATA);
    }
    link.report().extra = retries;
  }

  void pong(Link& link, const PingWork& work) override {
    init_runtime("scmp-" + tag_ + "-b");
    std::uint64_t retries = 0;
    iox::popo::UntypedSubscriber subscriber(service(tag_, "ping"), subscriber_options(16));
    iox::popo::UntypedPublisher publisher(service(tag_, "pong"), publisher_options());
    iox::popo::WaitSet<> waitset;
    if (waitset.attachState(subscriber, iox::popo::SubscriberState::HAS_DATA).has_error()) {
      fail("cannot attach the subscriber to a WaitSet");
    }
    wait_until([&] { return publisher.hasSubscribers(); }, "a subscriber");
    wait_until([&] { return subscriber.getSubscriptionState() == iox::SubscribeState::SUBSCRIBED; },
               "the subscription");
    link.ready();
    for (std::uint64_t i = 0; i < work.total(); ++i) {
      const void* message = take(subscriber, work.busy_poll ? nullptr : &waitset);
      const std::span<const std::byte> data = payload(message);
      check_record(data, PingWork::kBytes, i);
      void* chunk = loan(publisher, PingWork::kBytes, retries);
      std::memcpy(chunk, data.data(), PingWork::kBytes);
      subscriber.release(message);
      publisher.publish(chunk);
    }
    link.done();
    link.wait_end();
    waitset.detachState(subscriber, iox::popo::SubscriberState::HAS_DATA);
    link.report().extra = retries;
  }

 private:
  std::string tag_;
  std::string unavailable_;
  sluice::bench::RoudiDaemon roudi_;
};

#endif

}  // namespace

std::unique_ptr<System> make_iceoryx() {
#if defined(SLUICE_COMPARE_HAVE_ICEORYX)
  return std::make_unique<IceoryxSystem>();
#else
  return std::make_unique<UnavailableSystem>("iceoryx", SLUICE_COMPARE_ICEORYX_MISSING);
#endif
}

}  // namespace cmp
