#include "sluice/transport/channel.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <new>
#include <optional>
#include <span>
#include <system_error>
#include <thread>

#include "sluice/shm/segment_name.hpp"
#include "sluice/shm/setup_error.hpp"

namespace sluice::transport {

namespace shm = sluice::shm;

namespace {

[[noreturn]] void fail(std::string_view name, const std::string& what) {
  throw shm::SetupError("channel \"" + std::string(name) + "\": " + what);
}

std::uint64_t unix_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// Why a segment created with huge pages asked for has fewer than it should.
std::string huge_pages_missing(const shm::Segment& segment, std::optional<std::size_t> given,
                               std::size_t wanted) {
  std::string why = "huge pages were required, but ";
  if (!given) {
    return why + "how the segment is mapped cannot be read (/proc/self/smaps)";
  }
  why += std::to_string(*given >> 20) + " MiB of the segment are in 2 MiB pages (it could have " +
         std::to_string(wanted >> 20) + " MiB): ";
  if (const int error = segment.huge_page_setup_error(); error != 0) {
    return why + "the kernel refused (" + std::generic_category().message(error) +
           "; transparent huge pages and Linux 5.14 or later are needed)";
  }
  const std::string policy = shm::Segment::shmem_huge_page_policy();
  if (policy == "deny") {
    return why + "/sys/kernel/mm/transparent_hugepage/shmem_enabled is set to deny";
  }
  const std::string mount = shm::Segment::huge_page_mount_option();
  if (mount == "never" && policy != "force") {
    return why + "/dev/shm is mounted with huge=never; as root, " +
           "`mount -o remount,huge=advise /dev/shm` allows them";
  }
  return why + "/dev/shm (huge=" + (mount.empty() ? "?" : mount) +
         ") allows them, so the kernel found no free 2 MiB of memory (fragmented); "
         "try again, or free memory";
}

// Whether the creator has stored the magic, read without touching the
// mapping: a creator asking for huge pages on a huge=advise mount sizes the
// object before it allocates its pages by faulting them through its own
// mapping; a fault through ours in between would allocate small pages there.
// Only a hint: check_header() then loads the magic through the mapping with
// the acquire that orders everything after it.
bool magic_stored(const shm::Segment& segment) {
  std::uint64_t magic = 0;
  static_assert(offsetof(shm::SegmentHeader, magic) == 0);
  return segment.read_unmapped(0, std::as_writable_bytes(std::span(&magic, 1))) && magic != 0;
}

// Removes `name` if nobody holds either role lock on it; fails otherwise.
// Both locks are held while removing, so nobody can attach in between.
void remove_if_stale(std::string_view name) {
  shm::Segment existing = shm::Segment::open(name);
  // Every byte any role of any layout may lock: the producer's and those of
  // the consumers of up to kMaxSubpartitions subpartitions.
  for (std::uint32_t slot = 0; slot <= ChannelConfig::kMaxSubpartitions; ++slot) {
    if (!shm::try_lock_slot(existing.fd(), slot)) {
      fail(name, std::string("exists and its ") + (slot == 0 ? "producer" : "consumer") +
                     " is alive; it is not stale and will not be replaced");
    }
  }
  shm::Segment::remove(name);
  // The locks go with `existing`'s file description.
}

// Compares a segment's channel part with what its recorded configuration
// implies. Returns what differs, or empty.
std::string channel_problem(const ChannelHeaderImage& header, std::uint64_t mapped_bytes) {
  const ChannelConfigRecord& rec = header.config;
  if (rec.buffer_bytes < ChannelConfig::kMinBufferBytes ||
      rec.buffer_bytes > ChannelConfig::kMaxBufferBytes ||
      rec.buffer_count < ChannelConfig::kMinBufferCount ||
      rec.buffer_count > ChannelConfig::kMaxBufferCount) {
    return "corrupt configuration: buffer size " + std::to_string(rec.buffer_bytes) +
           ", buffer count " + std::to_string(rec.buffer_count);
  }
  if (rec.subpartitions < 1 || rec.subpartitions > ChannelConfig::kMaxSubpartitions ||
      rec.subpartitions > rec.buffer_count) {
    return "corrupt configuration: " + std::to_string(rec.subpartitions) + " subpartitions (1.." +
           std::to_string(ChannelConfig::kMaxSubpartitions) +
           " and at most the buffer count are possible)";
  }
  if (rec.partitioner >= kPartitionerCount) {
    return "corrupt configuration: partitioner " + std::to_string(rec.partitioner) +
           " (0 round-robin, 1 key, 2 least-loaded and 3 broadcast are possible)";
  }
  if (rec.max_queued_buffers < 1 || rec.max_queued_buffers > rec.buffer_count ||
      rec.reserved != 0) {
    return "corrupt configuration: at most " + std::to_string(rec.max_queued_buffers) +
           " queued buffers per subpartition (1.." + std::to_string(rec.buffer_count) +
           " are possible), reserved field " + std::to_string(rec.reserved);
  }
  const ChannelLayout expected = compute_layout(config_from_record(rec));
  if (rec.max_queued_buffers != expected.config.max_queued_buffers) {
    return "corrupt configuration: queued-buffer cap " + std::to_string(rec.max_queued_buffers);
  }
  if (rec.buffer_stride != expected.config.buffer_stride ||
      rec.ring_capacity != expected.config.ring_capacity) {
    return "corrupt configuration: buffer stride " + std::to_string(rec.buffer_stride) +
           " and ring capacity " + std::to_string(rec.ring_capacity) + " do not match " +
           std::to_string(rec.buffer_count) + " buffers of " + std::to_string(rec.buffer_bytes) +
           " bytes";
  }
  if (header.segment.region_count != kRegionCount) {
    return "corrupt header: " + std::to_string(header.segment.region_count) +
           " regions instead of " + std::to_string(kRegionCount);
  }
  static constexpr const char* kRegionNames[kRegionCount] = {
      "control block",  "data ring",   "return ring",   "buffer states",
      "buffer commits", "buffer pool", "buffer holders"};
  for (std::uint32_t i = 0; i < kRegionCount; ++i) {
    if (!(header.segment.regions[i] == expected.regions[i])) {
      return std::string("corrupt header: ") + kRegionNames[i] + " at offset " +
             std::to_string(header.segment.regions[i].offset) + " (" +
             std::to_string(header.segment.regions[i].bytes) + " bytes), expected " +
             std::to_string(expected.regions[i].offset) + " (" +
             std::to_string(expected.regions[i].bytes) + " bytes)";
    }
  }
  if (header.segment.segment_bytes != expected.total_bytes ||
      mapped_bytes != expected.total_bytes) {
    return "size " + std::to_string(mapped_bytes) + " does not match its " +
           "configuration, which needs " + std::to_string(expected.total_bytes) + " bytes";
  }
  return {};
}

}  // namespace

ChannelMapping ChannelMapping::create(std::string_view name, const ChannelConfig& config,
                                      const CreateOptions& options) {
  shm::require_valid_name(name);
  if (auto problem = config_problem(config); !problem.empty()) {
    fail(name, "bad configuration: " + problem);
  }
  const ChannelLayout layout = compute_layout(config);
  // Whole 2 MiB stretches of the segment: what kRequired must get in 2 MiB
  // pages (a mapping of a huge-page object starts 2 MiB aligned).
  const std::size_t huge_wanted = layout.total_bytes / shm::kHugePageBytes * shm::kHugePageBytes;
  if (options.huge_pages == HugePages::kRequired && huge_wanted == 0) {
    fail(name, "huge pages were required, but the segment (" + std::to_string(layout.total_bytes) +
                   " bytes) is smaller than one 2 MiB page; use more or larger buffers");
  }
  if (options.replace_stale && shm::Segment::exists(name)) {
    remove_if_stale(name);
  }
  // The creator is the first producer: it holds the role from the moment the
  // object exists, so no other producer can slip in and nobody can take the
  // half-made segment for a stale one.
  shm::CreateOptions create;
  create.mode = options.mode;
  create.huge_pages = options.huge_pages != HugePages::kNo;
  create.lock_slot = role_lock_slot(Role::kProducer);
  ChannelMapping mapping(shm::Segment::create(name, layout.total_bytes, create), layout, 0);
  if (options.huge_pages == HugePages::kRequired) {
    const std::optional<std::size_t> given = mapping.segment_.huge_page_bytes();
    if (!given || *given < huge_wanted) {
      const std::string why = huge_pages_missing(mapping.segment_, given, huge_wanted);
      mapping.segment_.remove_own_name();
      fail(name, why);
    }
  }
  std::byte* base = mapping.segment_.base();

  // Fresh tmpfs memory is zero: every atomic starts at 0, every buffer kFree.
  // Construct the header in place; the magic stays 0 until the end.
  auto* header = new (base) ChannelHeader{};
  header->segment.layout_version = kLayoutVersion;
  header->segment.kind = kChannelKind;
  header->segment.segment_bytes = layout.total_bytes;
  header->segment.abi = shm::AbiFacts::of_this_build(sizeof(ChannelHeader));
  header->segment.region_count = kRegionCount;
  for (std::uint32_t i = 0; i < kRegionCount; ++i) {
    header->segment.regions[i] = layout.regions[i];
  }
  header->config = layout.config;
  header->config.created_unix_ns = unix_now_ns();
  mapping.config_.created_unix_ns = header->config.created_unix_ns;

  for (std::uint32_t s = 0; s < config.subpartitions; ++s) {
    new (&mapping.control(s)) ChannelControl{};
    new (&mapping.data_ring(s)) RingIndices{};
    new (&mapping.return_ring(s)) RingIndices{};
  }

  // Every buffer starts free (kFree of subpartition 0) in return ring 0, as
  // if the consumer of subpartition 0 had just given it back; the producer's
  // acquire path is then one path.
  RingSlot* return_slots = mapping.return_slots(0);
  for (std::uint32_t i = 0; i < config.buffer_count; ++i) {
    return_slots[i].store(i, std::memory_order_relaxed);
  }
  mapping.return_ring(0).tail.store(config.buffer_count, std::memory_order_relaxed);

  // Release: whoever acquires a valid magic sees everything above.
  header->segment.magic.store(shm::kSegmentMagic, std::memory_order_release);
  return mapping;
}

ChannelMapping ChannelMapping::open(std::string_view name, const OpenOptions& options) {
  shm::require_valid_name(name);
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + options.wait_for_channel;
  std::string last_problem;
  // Each look comes at most an eighth of the wait so far after the channel
  // is ready (50 us at least, 5 ms at most): a consumer started beside its
  // producer is at most a few hundred microseconds late, one that waits
  // long looks every 5 ms. (Doubling pauses from 50 us came up to 1.6 ms
  // late for a producer that took 3 ms to start.)
  constexpr std::chrono::microseconds kShortestPause{50};
  constexpr std::chrono::microseconds kLongestPause{5000};
  for (;;) {
    const bool may_retry = std::chrono::steady_clock::now() < deadline;
    std::optional<shm::Segment> segment = shm::Segment::open_if_present(name);
    if (!segment) {
      last_problem = shm::Segment::exists(name)
                         ? "is empty (its creator has not sized it yet, or died while creating it)"
                         : "does not exist";
    } else if (segment->size() >= sizeof(shm::SegmentHeader) && !magic_stored(*segment)) {
      last_problem = "its creator has not finished initialising it";
    } else {
      const shm::HeaderCheck check = shm::check_header(
          segment->base(), segment->size(), kLayoutVersion, kChannelKind, sizeof(ChannelHeader));
      if (check.state == shm::HeaderState::kInvalid) {
        fail(name, check.problem);
      }
      if (check.state == shm::HeaderState::kValid) {
        ChannelHeaderImage image{};
        std::memcpy(&image, segment->base(), sizeof(image));
        if (auto problem = channel_problem(image, segment->size()); !problem.empty()) {
          fail(name, problem);
        }
        ChannelLayout layout = compute_layout(config_from_record(image.config));
        layout.config.created_unix_ns = image.config.created_unix_ns;
        if (options.subpartition >= layout.config.subpartitions) {
          fail(name, "has " + std::to_string(layout.config.subpartitions) +
                         " subpartition(s), numbered 0.." +
                         std::to_string(layout.config.subpartitions - 1) + "; subpartition " +
                         std::to_string(options.subpartition) + " does not exist");
        }
        return ChannelMapping(std::move(*segment), layout, options.subpartition);
      }
      last_problem = check.problem;
    }
    if (!may_retry) {
      std::string waited;
      if (options.wait_for_channel.count() > 0) {
        waited = " after waiting " +
                 std::to_string(
                     std::chrono::duration_cast<std::chrono::milliseconds>(options.wait_for_channel)
                         .count()) +
                 " ms";
      }
      fail(name, last_problem + waited);
    }
    const auto waited = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started);
    std::this_thread::sleep_for(std::clamp(waited / 8, kShortestPause, kLongestPause));
  }
}

bool ChannelMapping::try_lock_role(Role role) const noexcept {
  return shm::try_lock_slot(segment_.fd(), role_lock_slot(role, subpartition_));
}

void ChannelMapping::unlock_role(Role role) const noexcept {
  shm::unlock_slot(segment_.fd(), role_lock_slot(role, subpartition_));
}

shm::LockProbe ChannelMapping::probe_role(Role role) const noexcept {
  return probe_role(role, subpartition_);
}

shm::LockProbe ChannelMapping::probe_role(Role role, std::uint32_t subpartition) const noexcept {
  return shm::probe_slot(segment_.fd(), role_lock_slot(role, subpartition));
}

bool remove_channel(std::string_view name) {
  return shm::Segment::remove(name);
}

}  // namespace sluice::transport
