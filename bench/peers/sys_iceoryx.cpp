// iceoryx 2.0 (Debian 12: 2.0.3), untyped publisher/subscriber, one sample
// per record: the publisher loans a chunk, fills it in place and publishes
// it; the subscriber takes it, checks it in place and releases it. Nothing
// is dropped: ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER on the publisher and
// QueueFullPolicy::BLOCK_PRODUCER on the subscriber (publish() then waits
// while the subscriber's queue is full). Blocking receive: a WaitSet on the
// subscriber's HAS_DATA state. The RouDi daemon is started by start() with
// a generated configuration whose mempools hold 1 MiB chunks, and stopped by
// stop().

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

#ifdef SLUICE_COMPARE_HAVE_ICEORYX
#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/mepoo/chunk_header.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"
#endif

namespace cmp {
namespace {

#ifndef SLUICE_COMPARE_ICEORYX_MISSING
#define SLUICE_COMPARE_ICEORYX_MISSING "not built"
#endif

#ifdef SLUICE_COMPARE_HAVE_ICEORYX

constexpr const char* kRoudi = "/usr/bin/iox-roudi";
constexpr std::size_t kChunkOverhead = 128;  // chunk header and alignment, generously

// Chunk pools: enough for the deepest subscriber queue (queue_depth) plus
// what the publisher and subscriber hold, for every record size.
std::string roudi_config() {
  struct Pool {
    std::size_t payload;
    unsigned count;
  };
  const Pool pools[] = {
      {64, 2048},         // 8 and 64 byte records, ping-pong
      {1024, 1024},       // 1 KiB
      {64 * 1024, 128},   // 64 KiB (queue 32)
      {1024 * 1024, 48},  // 1 MiB (queue 8)
  };
  std::ostringstream out;
  out << "[general]\nversion = 1\n\n[[segment]]\n";
  for (const Pool& pool : pools) {
    const std::size_t size = (pool.payload + kChunkOverhead + 7) / 8 * 8;
    out << "\n[[segment.mempool]]\nsize = " << size << "\ncount = " << pool.count << "\n";
  }
  return out.str();
}

void init_runtime(const std::string& name) {
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn,
                                                           iox::log::LogLevelOutput::kHideLogLevel);
  iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name));
}

iox::capro::ServiceDescription service(const std::string& tag, const char* what) {
  return {"SluiceCompare", iox::capro::IdString_t(iox::cxx::TruncateToCapacity, tag),
          iox::capro::IdString_t(iox::cxx::TruncateToCapacity, what)};
}

iox::popo::PublisherOptions publisher_options() {
  iox::popo::PublisherOptions options;
  options.historyCapacity = 0;
  options.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
  return options;
}

iox::popo::SubscriberOptions subscriber_options(std::uint64_t depth) {
  iox::popo::SubscriberOptions options;
  options.queueCapacity = depth;
  options.historyRequest = 0;
  options.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
  return options;
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

// Loans a chunk; loan() fails instead of blocking when the pool is empty,
// so retry (counted) with a yield.
void* loan(iox::popo::UntypedPublisher& publisher, std::size_t bytes, std::uint64_t& retries) {
  for (;;) {
    auto result = publisher.loan(static_cast<std::uint32_t>(bytes));
    if (!result.has_error()) {
      return result.value();
    }
    const auto error = result.get_error();
    if (error != iox::popo::AllocationError::RUNNING_OUT_OF_CHUNKS &&
        error != iox::popo::AllocationError::TOO_MANY_CHUNKS_ALLOCATED_IN_PARALLEL) {
      fail("loan failed: error " + std::to_string(static_cast<int>(error)));
    }
    ++retries;
    std::this_thread::yield();
  }
}

// Takes the next sample: spinning (busy) or sleeping on the WaitSet.
const void* take(iox::popo::UntypedSubscriber& subscriber, iox::popo::WaitSet<>* waitset) {
  for (;;) {
    auto result = subscriber.take();
    if (!result.has_error()) {
      return result.value();
    }
    if (result.get_error() != iox::popo::ChunkReceiveResult::NO_CHUNK_AVAILABLE) {
      fail("take failed: too many chunks held");
    }
    if (waitset != nullptr) {
      (void)waitset->wait();
    }
  }
}

std::span<const std::byte> payload(const void* chunk) {
  const auto* header = iox::mepoo::ChunkHeader::fromUserPayload(chunk);
  return {static_cast<const std::byte*>(chunk), header->userPayloadSize()};
}

class IceoryxSystem final : public System {
 public:
  [[nodiscard]] std::string name() const override { return "iceoryx"; }
  [[nodiscard]] std::string unavailable() const override { return unavailable_; }

  void start() override {
    if (::access(kRoudi, X_OK) != 0) {
      unavailable_ = "iox-roudi not installed (Debian package iceoryx)";
      return;
    }
    const std::string base = "/tmp/sluice-cmp-roudi-" + std::to_string(::getpid());
    config_path_ = base + ".toml";
    log_path_ = base + ".log";
    std::ofstream(config_path_) << roudi_config();
    std::fflush(nullptr);
    roudi_ = ::fork();
    if (roudi_ < 0) {
      unavailable_ = "cannot fork iox-roudi";
      return;
    }
    if (roudi_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // an interrupted harness leaves no daemon behind
      const int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int null = ::open("/dev/null", O_RDONLY);
      ::dup2(null, 0);
      ::dup2(log, 1);
      ::dup2(log, 2);
      ::execl(kRoudi, kRoudi, "-c", config_path_.c_str(), "-l", "info", "-k", "2",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Ready when it says so in its log; a failure is a reason to show.
    const auto deadline = Clock::now() + std::chrono::seconds(15);
    for (;;) {
      const std::string log = read_log();
      if (log.find("RouDi is ready for clients") != std::string::npos) {
        return;
      }
      int status = 0;
      if (::waitpid(roudi_, &status, WNOHANG) == roudi_) {
        roudi_ = -1;
        unavailable_ = "iox-roudi did not start: " + last_line(log);
        return;
      }
      if (Clock::now() > deadline) {
        stop();
        unavailable_ = "iox-roudi not ready after 15 s: " + last_line(log);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void stop() override {
    if (roudi_ > 0) {
      ::kill(roudi_, SIGTERM);
      const auto deadline = Clock::now() + std::chrono::seconds(10);
      int status = 0;
      while (::waitpid(roudi_, &status, WNOHANG) == 0) {
        if (Clock::now() > deadline) {
          ::kill(roudi_, SIGKILL);
          ::waitpid(roudi_, &status, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      roudi_ = -1;
      ::unlink(config_path_.c_str());
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        ::unlink(log_path_.c_str());
      } else {
        // RouDi 2.0.3 asserts when asked to stop while a client it knows was
        // killed (a run that timed out), leaving its segments. The names are
        // fixed (only one RouDi can run), and this one was ours: remove them.
        ::shm_unlink("/iceoryx_mgmt");
        if (const group* g = ::getgrgid(::getegid()); g != nullptr) {
          ::shm_unlink(("/" + std::string(g->gr_name)).c_str());
        }
        std::fprintf(stderr, "iceoryx: iox-roudi did not end cleanly; its log: %s\n",
                     log_path_.c_str());
      }
    }
  }

  [[nodiscard]] double daemon_cpu_seconds() const override {
    if (roudi_ <= 0) {
      return -1;
    }
    std::ifstream stat("/proc/" + std::to_string(roudi_) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const std::size_t close = text.rfind(')');
    if (close == std::string::npos) {
      return -1;
    }
    std::istringstream fields(text.substr(close + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14 || i == 15) {  // utime, stime
        ticks += std::stod(field);
      }
    }
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }

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
  [[nodiscard]] std::string read_log() const {
    std::ifstream in(log_path_);
    return {(std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()};
  }
  static std::string last_line(const std::string& log) {
    std::string text = log;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
      text.pop_back();
    }
    const std::size_t newline = text.rfind('\n');
    text = newline == std::string::npos ? text : text.substr(newline + 1);
    return text.empty() ? "(no output)" : text;
  }

  std::string tag_;
  std::string unavailable_;
  std::string config_path_;
  std::string log_path_;
  pid_t roudi_ = -1;
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
