// Sluice: the record API (RecordWriter/RecordReader, default channel) for
// records up to 1 KiB; the zero-copy buffer API (acquire, fill in place,
// commit; receive, check in place, release) for 64 KiB and 1 MiB records,
// one record per buffer. Ping-pong: one channel each way, record API with
// every record published in place at once (Publication::kEachRecordInPlace).
// The "sluice-plain" row is the ordinary path a user writes first: write()
// of a record filled in a private buffer, next() per record, at every size
// (buffers large enough for one record above 1 KiB); not a peer, it shows
// what the batch paths above are worth.

#include <algorithm>
#include <chrono>
#include <span>
#include <string>
#include <vector>

#include "harness.hpp"
#include "sluice/transport/buffers.hpp"
#include "sluice/transport/channel.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"
#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/record_writer.hpp"
#include "sluice/transport/status.hpp"
#include "sluice/transport/write_claim.hpp"

namespace cmp {
namespace {

namespace st = sluice::transport;

constexpr std::size_t kRecordApiMaxBytes = 1024;
constexpr auto kWaitForChannel = std::chrono::seconds(10);

std::string status_text(st::Status status) {
  return std::string(st::to_string(status));
}

[[noreturn]] __attribute__((noinline, cold)) void fail_status(st::Status status, const char* what,
                                                              std::uint64_t sequence) {
  fail(std::string(what) + " " + std::to_string(sequence) + ": " + status_text(status));
}

// Inline: called once or twice per record, so only the failure is out of line.
inline void expect_ok(st::Status status, const char* what, std::uint64_t sequence) {
  if (status != st::Status::kOk) [[unlikely]] {
    fail_status(status, what, sequence);
  }
}

// One record per buffer (with room for a frame header, so the plain row's
// records fit too) and the pool the library sizes for large records, as the
// demo programs have.
st::ChannelConfig buffer_api_config(std::size_t size) {
  st::ChannelConfig config;
  config.buffer_bytes = st::ChannelConfig::kMinBufferBytes;  // too small: sized for one record
  return st::sized_for_records(config, size);
}

void apply_policy(const PingWork& work, st::Producer& producer, st::Consumer& consumer) {
  if (work.no_spin) {
    st::WaitPolicy policy;
    policy.spin_rounds = 0;
    policy.yield_rounds = 0;
    producer.set_wait_policy(policy);
    consumer.set_wait_policy(policy);
  }
}

st::Consumer open_consumer(const std::string& name) {
  st::OpenOptions options;
  options.wait_for_channel = kWaitForChannel;
  st::Consumer consumer = st::Consumer::open(name, options);
  st::remove_channel(name);  // both ends attached: the name is no longer needed
  return consumer;
}

// The consumers' loops, each in a small function of its own with the
// record size and count in locals, as a user's loop would have them (the
// no-transport row's loop has them in locals too): inside the large consume
// functions the compiler kept them, and the loop's count, on the stack and
// reloaded them per record. Both record-API rows get the same treatment.

// Batches: every record already in the current buffer per call.
[[gnu::noinline]] void read_batches(st::RecordReader& reader, std::size_t size,
                                    std::uint64_t records) {
  std::uint64_t sequence = 0;
  while (sequence < records) {
    const st::Status status = reader.read_batch([&](std::span<const std::byte> next) {
      check_record(next, size, sequence);
      return ++sequence < records;
    });
    if (status != st::Status::kOk) [[unlikely]] {
      const char* framing = reader.framing_error();
      fail("record " + std::to_string(sequence) + ": " + status_text(status) +
           (framing != nullptr ? std::string(" (") + framing + ")" : std::string()));
    }
  }
}

// The producers' loop of the plain row, likewise: write() per record of a
// private record filled first. In the large produce function the record's
// pointer and size were reloaded per record (every byte stored may alias
// the vector that holds them).
[[gnu::noinline]] void write_one_by_one(st::RecordWriter& writer, std::span<std::byte> record,
                                        std::uint64_t records) {
  for (std::uint64_t sequence = 0; sequence < records; ++sequence) {
    pattern::fill(record, sequence);
    expect_ok(writer.write(record), "record", sequence);
  }
}

// next() per record.
[[gnu::noinline]] void read_one_by_one(st::RecordReader& reader, std::size_t size,
                                       std::uint64_t records) {
  std::span<const std::byte> record;
  for (std::uint64_t sequence = 0; sequence < records; ++sequence) {
    expect_ok(reader.next(record), "record", sequence);
    check_record(record, size, sequence);
  }
}

class SluiceSystem final : public System {
 public:
  SluiceSystem(bool huge_pages, bool plain) : plain_(plain) {
    if (huge_pages) {
      create_options_.huge_pages = st::HugePages::kRequired;
    }
  }

  [[nodiscard]] std::string name() const override { return plain_ ? "sluice-plain" : "sluice"; }
  [[nodiscard]] bool has_ping() const override { return !plain_; }

  void prepare(const std::string& tag, bool /*ping*/) override { tag_ = tag; }
  void cleanup() override {
    // Normally removed by the consumer already; this is for failed runs.
    st::remove_channel(channel("x"));
    st::remove_channel(channel("ping"));
    st::remove_channel(channel("pong"));
  }

  void produce(Link& link, const Work& work) override {
    if (plain_) {
      produce_plain(link, work);
    } else if (work.size <= kRecordApiMaxBytes) {
      produce_records(link, work);
    } else {
      produce_buffers(link, work);
    }
  }
  void consume(Link& link, const Work& work) override {
    if (plain_) {
      consume_plain(link, work);
    } else if (work.size <= kRecordApiMaxBytes) {
      consume_records(link, work);
    } else {
      consume_buffers(link, work);
    }
  }

  void ping(Link& link, const PingWork& work) override {
    st::Producer producer =
        st::Producer::create(channel("ping"), st::ChannelConfig{}, create_options_);
    st::Consumer consumer = open_consumer(channel("pong"));
    apply_policy(work, producer, consumer);
    // Every record published in place the moment it is written.
    st::RecordWriter writer(producer, st::Publication::kEachRecordInPlace);
    st::RecordReader reader(consumer);
    std::vector<std::byte> message(PingWork::kBytes);
    std::vector<std::int64_t> samples;
    samples.reserve(work.rounds);
    link.ready();
    std::span<const std::byte> reply;
    for (std::uint64_t i = 0; i < work.total(); ++i) {
      pattern::fill(message, i);
      const std::int64_t start = now_ns();
      expect_ok(writer.write(message), "ping", i);
      st::Status status;
      if (work.busy_poll) {
        while ((status = reader.try_next(reply)) == st::Status::kWouldBlock) {
        }
      } else {
        status = reader.next(reply);
      }
      const std::int64_t end = now_ns();
      expect_ok(status, "pong", i);
      check_record(reply, PingWork::kBytes, i);
      if (i >= work.warmup) {
        samples.push_back(end - start);
      }
    }
    link.done();
    summarise_latency(samples, link.report());
    expect_ok(writer.close(), "close", work.total());
  }

  void pong(Link& link, const PingWork& work) override {
    st::Consumer consumer = open_consumer(channel("ping"));
    st::Producer producer =
        st::Producer::create(channel("pong"), st::ChannelConfig{}, create_options_);
    apply_policy(work, producer, consumer);
    st::RecordReader reader(consumer);
    st::RecordWriter writer(producer, st::Publication::kEachRecordInPlace);
    link.ready();
    std::span<const std::byte> message;
    for (std::uint64_t i = 0; i < work.total(); ++i) {
      st::Status status;
      if (work.busy_poll) {
        while ((status = reader.try_next(message)) == st::Status::kWouldBlock) {
        }
      } else {
        status = reader.next(message);
      }
      expect_ok(status, "ping", i);
      check_record(message, PingWork::kBytes, i);
      expect_ok(writer.write(message), "pong", i);
    }
    link.done();
    expect_ok(writer.close(), "close", work.total());
  }

 private:
  [[nodiscard]] std::string channel(const char* what) const { return "cmp-" + tag_ + "-" + what; }

  void produce_records(Link& link, const Work& work) {
    st::Producer producer =
        st::Producer::create(channel("x"), st::ChannelConfig{}, create_options_);
    link.ready();
    {
      // Records are filled in place in the shared buffer, as the pipe and
      // socket rows fill theirs in place in their 64 KiB user-space buffers;
      // write_batch is begin_record / fill / finish_record per record with
      // the write position kept in registers.
      st::RecordWriter writer(producer);
      std::uint64_t sequence = 0;
      const st::Status status = writer.write_batch(
          work.size, work.records,
          [&sequence](std::span<std::byte> record) noexcept { pattern::fill(record, sequence++); });
      expect_ok(status, "record", writer.records_written());
      expect_ok(writer.close(), "close", work.records);
    }
    link.done();
  }

  void consume_records(Link& link, const Work& work) {
    st::Consumer consumer = open_consumer(channel("x"));
    link.ready();
    st::RecordReader reader(consumer);
    read_batches(reader, work.size, work.records);
    link.done();
    std::span<const std::byte> record;
    const st::Status end = reader.next(record);
    if (end != st::Status::kClosed) {
      fail("after the last record: " + status_text(end) + " instead of closed");
    }
  }

  void produce_buffers(Link& link, const Work& work) {
    st::Producer producer =
        st::Producer::create(channel("x"), buffer_api_config(work.size), create_options_);
    link.ready();
    for (std::uint64_t sequence = 0; sequence < work.records; ++sequence) {
      st::WritableBuffer buffer;
      expect_ok(producer.acquire(buffer), "acquire", sequence);
      // As RecordWriter::begin_record does for large records.
      st::claim_for_write(buffer.data().first(work.size));
      pattern::fill(buffer.data().first(work.size), sequence);
      expect_ok(producer.commit(std::move(buffer), work.size, 1), "commit", sequence);
    }
    producer.close();
    link.done();
  }

  void consume_buffers(Link& link, const Work& work) {
    st::Consumer consumer = open_consumer(channel("x"));
    link.ready();
    for (std::uint64_t sequence = 0; sequence < work.records; ++sequence) {
      st::ReadableBuffer buffer;  // released at the end of each round
      expect_ok(consumer.receive(buffer), "buffer", sequence);
      check_record(buffer.data(), work.size, sequence);
    }
    link.done();
    st::ReadableBuffer extra;
    const st::Status end = consumer.receive(extra);
    if (end != st::Status::kClosed) {
      fail("after the last buffer: " + status_text(end) + " instead of closed");
    }
  }

  [[nodiscard]] static st::ChannelConfig plain_config(std::size_t size) {
    // Above 1 KiB, a buffer holds one record and its frame header, as the
    // buffer API rows use one buffer per record.
    return size <= kRecordApiMaxBytes ? st::ChannelConfig{} : buffer_api_config(size);
  }

  void produce_plain(Link& link, const Work& work) {
    st::Producer producer =
        st::Producer::create(channel("x"), plain_config(work.size), create_options_);
    std::vector<std::byte> record(work.size);
    link.ready();
    {
      st::RecordWriter writer(producer);
      write_one_by_one(writer, record, work.records);
      expect_ok(writer.close(), "close", work.records);
    }
    link.done();
  }

  void consume_plain(Link& link, const Work& work) {
    st::Consumer consumer = open_consumer(channel("x"));
    link.ready();
    st::RecordReader reader(consumer);
    read_one_by_one(reader, work.size, work.records);
    link.done();
    std::span<const std::byte> record;
    const st::Status end = reader.next(record);
    if (end != st::Status::kClosed) {
      fail("after the last record: " + status_text(end) + " instead of closed");
    }
  }

  bool plain_;
  std::string tag_;
  st::CreateOptions create_options_;
};

}  // namespace

std::unique_ptr<System> make_sluice(bool huge_pages, bool plain) {
  return std::make_unique<SluiceSystem>(huge_pages, plain);
}

}  // namespace cmp
