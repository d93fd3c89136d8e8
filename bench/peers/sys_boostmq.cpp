// Boost.Interprocess message_queue (Debian 12: Boost 1.74): one message per
// record; send() blocks while the queue is full, receive() while it is
// empty. The record is filled in a private buffer and copied in by send();
// receive() copies it out into a private buffer where it is checked.

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>

#include "harness.hpp"

namespace cmp {
namespace {

namespace bip = boost::interprocess;

std::unique_ptr<bip::message_queue> open_queue(const std::string& name) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    try {
      return std::make_unique<bip::message_queue>(bip::open_only, name.c_str());
    } catch (const bip::interprocess_exception&) {
      if (Clock::now() > deadline) {
        throw;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

class BoostMqSystem final : public System {
 public:
  [[nodiscard]] std::string name() const override { return "boost-mq"; }

  void prepare(const std::string& tag, bool /*ping*/) override {
    tag_ = tag;
    cleanup();
  }
  void cleanup() override {
    bip::message_queue::remove(queue("x").c_str());
    bip::message_queue::remove(queue("ping").c_str());
    bip::message_queue::remove(queue("pong").c_str());
  }

  void produce(Link& link, const Work& work) override {
    bip::message_queue mq(bip::create_only, queue("x").c_str(), queue_depth(work.size), work.size);
    std::vector<std::byte> record(work.size);
    link.ready();
    for (std::uint64_t sequence = 0; sequence < work.records; ++sequence) {
      pattern::fill(record, sequence);
      mq.send(record.data(), record.size(), 0);
    }
    link.done();
  }

  void consume(Link& link, const Work& work) override {
    const auto mq = open_queue(queue("x"));
    std::vector<std::byte> record(work.size);
    link.ready();
    for (std::uint64_t sequence = 0; sequence < work.records; ++sequence) {
      bip::message_queue::size_type received = 0;
      unsigned priority = 0;
      mq->receive(record.data(), record.size(), received, priority);
      check_record(std::span(record).first(received), work.size, sequence);
    }
    link.done();
  }

  void ping(Link& link, const PingWork& work) override {
    bip::message_queue out(bip::create_only, queue("ping").c_str(), 16, PingWork::kBytes);
    const auto in = open_queue(queue("pong"));
    std::vector<std::byte> message(PingWork::kBytes);
    std::vector<std::byte> reply(PingWork::kBytes);
    std::vector<std::int64_t> samples;
    samples.reserve(work.rounds);
    link.ready();
    for (std::uint64_t i = 0; i < work.total(); ++i) {
      pattern::fill(message, i);
      const std::int64_t start = now_ns();
      out.send(message.data(), message.size(), 0);
      const std::size_t got = receive(*in, reply, work.busy_poll);
      const std::int64_t end = now_ns();
      check_record(std::span(reply).first(got), PingWork::kBytes, i);
      if (i >= work.warmup) {
        samples.push_back(end - start);
      }
    }
    link.done();
    summarise_latency(samples, link.report());
  }

  void pong(Link& link, const PingWork& work) override {
    const auto in = open_queue(queue("ping"));
    bip::message_queue out(bip::create_only, queue("pong").c_str(), 16, PingWork::kBytes);
    std::vector<std::byte> message(PingWork::kBytes);
    link.ready();
    for (std::uint64_t i = 0; i < work.total(); ++i) {
      const std::size_t got = receive(*in, message, work.busy_poll);
      check_record(std::span(message).first(got), PingWork::kBytes, i);
      out.send(message.data(), got, 0);
    }
    link.done();
  }

 private:
  static std::size_t receive(bip::message_queue& mq, std::vector<std::byte>& into, bool busy) {
    bip::message_queue::size_type received = 0;
    unsigned priority = 0;
    if (busy) {
      while (!mq.try_receive(into.data(), into.size(), received, priority)) {
      }
    } else {
      mq.receive(into.data(), into.size(), received, priority);
    }
    return received;
  }

  [[nodiscard]] std::string queue(const char* what) const {
    return "sluice-cmp-" + tag_ + "-" + what;
  }

  std::string tag_;
};

}  // namespace

std::unique_ptr<System> make_boost_mq() {
  return std::make_unique<BoostMqSystem>();
}

}  // namespace cmp
