// Fuzz target: arbitrary bytes as a channel segment, fed to the open path
// (Consumer::open, which validates the header, and inspect_channel, which the
// tools use on any segment they find). Every refusal must be a
// shm::SetupError (or, for inspect_channel, readable == false); a crash, any
// other exception, a sanitizer report or a leak is a bug.
//
// Input: the first byte picks a mode, the rest depends on it.
//   0  raw:        the rest is the whole segment (size = rest, at least 1 byte)
//   1  sized raw:  u16 size-1, then the segment's first bytes (the rest is zero)
//   2  overlay:    u8 config, u8 flags, u16 offset, then bytes written over a
//                  real, valid channel at that offset (so the fuzzer starts
//                  past the magic and the ABI checks)
//   3  patches:    u8 config, u8 flags, then {u16 offset, u8 length, bytes}...
//                  written over a real channel
// Config byte: buffer count 1 + (c & 7), buffer size {64, 100, 256, 4096}[(c >> 3) & 3],
// subpartitions 1 + ((c >> 5) & 3), round-robin (bit 7 clear) or least-loaded.
// Flags: bit 0 keep the producer attached while opening, bit 1 close the
// stream first, bit 2 attach a consumer first (open must then refuse), bit 3
// take the producer over (Producer::attach, then acquires and commits)
// before the consumer opens: the successor's recovery reads every state
// word, ring index, holders word and commit record the patches may have
// forged; bit 4 makes the channel a broadcast.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include "fuzz_support.hpp"
#include "sluice/shm/segment.hpp"
#include "sluice/shm/setup_error.hpp"
#include "sluice/transport/channel_info.hpp"
#include "sluice/transport/consumer.hpp"
#include "sluice/transport/producer.hpp"

namespace st = sluice::transport;
namespace shm = sluice::shm;
using sluice::fuzz::FuzzInput;

namespace {

// SLUICE_FUZZ_TRACE=1 prints what open and inspect said, for reading a
// reproducer (./sluice_fuzz_open crash-file).
bool tracing() {
  // Read once, before any thread could set the environment.
  static const bool on =
      std::getenv("SLUICE_FUZZ_TRACE") != nullptr;  // NOLINT(concurrency-mt-unsafe)
  return on;
}

constexpr std::size_t kMaxSegmentBytes = std::size_t{64} << 10;

st::ChannelConfig config_from_byte(std::uint8_t c) {
  static constexpr std::uint32_t kSizes[] = {64, 100, 256, 4096};
  st::ChannelConfig config;
  config.buffer_count = 1 + (c & 7U);
  config.buffer_bytes = kSizes[(c >> 3) & 3U];
  config.subpartitions = 1 + ((c >> 5) & 3U);
  config.partitioner =
      (c & 0x80U) != 0 ? st::Partitioner::kLeastLoaded : st::Partitioner::kRoundRobin;
  return config;
}

// The takeover path on a forged segment: attach, then what the successor
// hands out must lie inside the pool, whatever the recovery found.
void take_over(const std::string& name) {
  try {
    st::Producer producer = st::Producer::attach(name);
    const auto& segment = producer.mapping().segment();
    for (int i = 0; i < 8; ++i) {
      st::WritableBuffer buffer;
      const st::Status status = producer.try_acquire(buffer);
      if (tracing()) {
        std::fprintf(stderr, "takeover acquire: %s\n", std::string(st::to_string(status)).c_str());
      }
      if (status != st::Status::kOk) {
        break;
      }
      if (buffer.index() >= producer.config().buffer_count ||
          buffer.subpartition() >= producer.config().subpartitions ||
          buffer.data().data() != producer.mapping().buffer(buffer.index()) ||
          buffer.data().data() + buffer.capacity() > segment.base() + segment.size()) {
        sluice::fuzz::violated("a taken-over producer handed out a buffer outside the pool");
      }
      const std::size_t bytes = std::min<std::size_t>(8, buffer.capacity());
      if (producer.commit(std::move(buffer), bytes, 1) != st::Status::kOk) {
        break;
      }
    }
    (void)producer.corruption();
  } catch (const shm::SetupError& e) {
    if (tracing()) {
      std::fprintf(stderr, "attach: %s\n", e.what());
    }
  }
}

// What a successfully opened consumer hands out must lie inside its buffer.
void check_view(const st::Consumer& consumer, const st::ReadableBuffer& buffer) {
  const st::ChannelConfigRecord& config = consumer.config();
  const auto& segment = consumer.mapping().segment();
  if (buffer.index() >= config.buffer_count) {
    sluice::fuzz::violated("received buffer index beyond the pool");
  }
  if (buffer.size() > config.buffer_bytes) {
    sluice::fuzz::violated("received buffer longer than a buffer");
  }
  const std::byte* start = consumer.mapping().buffer(buffer.index());
  if (buffer.data().data() != start || start + buffer.size() > segment.base() + segment.size()) {
    sluice::fuzz::violated("received view outside its buffer or the segment");
  }
}

void open_and_inspect(const std::string& name) {
  const st::ChannelInfo before = st::inspect_channel(name);
  if (tracing()) {
    std::fprintf(stderr, "inspect: %s\n", before.readable ? "readable" : before.problem.c_str());
  }
  try {
    st::Consumer consumer = st::Consumer::open(name);
    // Opened: whatever the rings hold must still be handled safely.
    for (int i = 0; i < 8; ++i) {
      st::ReadableBuffer buffer;
      const st::Status status = consumer.try_receive(buffer);
      if (tracing()) {
        std::fprintf(stderr, "try_receive: %s\n", std::string(st::to_string(status)).c_str());
      }
      if (status != st::Status::kOk) {
        break;
      }
      check_view(consumer, buffer);
    }
    const st::ChannelInfo during = st::inspect_channel(name);
    (void)during;
    (void)consumer.corruption();
  } catch (const shm::SetupError& e) {
    // A refusal with a message: the expected outcome for most inputs.
    if (tracing()) {
      std::fprintf(stderr, "open: %s\n", e.what());
    }
  }
}

void raw_segment(const std::string& name, std::size_t size, std::span<const std::uint8_t> content) {
  size = std::max<std::size_t>(1, std::min(size, kMaxSegmentBytes));
  {
    shm::Segment segment = shm::Segment::create(name, size, {});
    if (const std::size_t n = std::min(size, content.size()); n > 0) {
      std::memcpy(segment.base(), content.data(), n);
    }
  }  // unmapped: the segment is only what the bytes say
  open_and_inspect(name);
}

void overlay(const std::string& name, FuzzInput& in, bool patches) {
  st::ChannelConfig config = config_from_byte(in.u8());
  const std::uint8_t flags = in.u8();
  if ((flags & 16U) != 0) {
    config.partitioner = st::Partitioner::kBroadcast;
  }
  std::optional<st::Producer> producer;
  try {
    producer.emplace(st::Producer::create(name, config));
  } catch (const shm::SetupError&) {
    return;  // e.g. /dev/shm full: nothing to fuzz
  }
  std::optional<st::Consumer> first_consumer;
  if ((flags & 4U) != 0) {
    first_consumer.emplace(st::Consumer::open(name));
  }
  if ((flags & 2U) != 0) {
    producer->close();
  }
  // A separate mapping, as a hostile process would have; stays valid when
  // the producer goes away.
  shm::Segment raw = shm::Segment::open(name);
  auto write_at = [&raw](std::size_t offset, std::span<const std::uint8_t> bytes) {
    if (raw.size() == 0) {
      return;
    }
    offset %= raw.size();
    const std::size_t n = std::min(bytes.size(), raw.size() - offset);
    if (n > 0) {
      std::memcpy(raw.base() + offset, bytes.data(), n);
    }
  };
  if (!patches) {
    const std::size_t offset = in.u16();
    write_at(offset, in.rest());
  } else {
    while (!in.empty()) {
      const std::size_t offset = in.u16();
      const std::size_t length = in.u8();
      write_at(offset, in.bytes(length));
    }
  }
  if ((flags & 1U) == 0) {
    producer.reset();
    if ((flags & 8U) != 0) {
      take_over(name);
    }
  }
  open_and_inspect(name);
  first_consumer.reset();
  producer.reset();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string name = sluice::fuzz::process_channel_name("open");
  sluice::fuzz::NameGuard guard(name);
  FuzzInput in(data, size);
  switch (in.u8() % 4) {
    case 0: {
      const auto content = in.rest();
      raw_segment(name, content.size(), content);
      break;
    }
    case 1: {
      const std::size_t bytes = std::size_t{in.u16()} + 1;
      raw_segment(name, bytes, in.rest());
      break;
    }
    case 2: overlay(name, in, false); break;
    default: overlay(name, in, true); break;
  }
  return 0;
}
