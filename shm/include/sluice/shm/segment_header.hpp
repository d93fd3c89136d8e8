#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::shm {

// "SLUICE" followed by a format generation byte; any other value is not ours.
inline constexpr std::uint64_t kSegmentMagic =
    0x0100454349554C53ULL;  // "SLUICE\0\1", little-endian
inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::size_t kMaxRegions = 8;

// Facts about the build that wrote the segment. Two builds may share a segment
// only if all of them match; a mismatch is reported field by field.
struct AbiFacts {
  std::uint16_t pointer_bytes;
  std::uint16_t cache_line_bytes;
  std::uint16_t atomic64_bytes;
  std::uint16_t atomic64_align;
  std::uint32_t byte_order_tag;     // 0x01020304 as written by the creator
  std::uint32_t full_header_bytes;  // sizeof of the complete header of this kind

  static AbiFacts of_this_build(std::uint32_t full_header_bytes) noexcept;
  bool operator==(const AbiFacts&) const = default;
};

struct RegionEntry {
  std::uint64_t offset;
  std::uint64_t bytes;
  bool operator==(const RegionEntry&) const = default;
};

// The first bytes of every Sluice segment. Immutable after creation except
// `magic`, which the creator stores last (release) once every other byte of the
// segment is initialised; an opener that loads the magic (acquire) and finds it
// valid therefore sees a complete header. An all-zero magic means the creator
// has not finished (or died before finishing).
struct SegmentHeader {
  std::atomic<std::uint64_t> magic;
  std::uint32_t layout_version;
  std::uint32_t kind;  // what the segment holds; see the layer above
  std::uint64_t segment_bytes;
  AbiFacts abi;
  std::uint32_t region_count;
  std::uint32_t reserved;
  std::array<RegionEntry, kMaxRegions> regions;
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint64_t>) == 8);

// A private copy of a SegmentHeader. Validation works on the copy only, so a
// peer rewriting the shared header during or after the check cannot make a
// checked value differ from the value used.
struct SegmentHeaderImage {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t kind;
  std::uint64_t segment_bytes;
  AbiFacts abi;
  std::uint32_t region_count;
  std::uint32_t reserved;
  std::array<RegionEntry, kMaxRegions> regions;
};
static_assert(sizeof(SegmentHeaderImage) == sizeof(SegmentHeader));
static_assert(offsetof(SegmentHeaderImage, regions) == offsetof(SegmentHeader, regions));

enum class HeaderState { kValid, kInitialising, kInvalid };

struct HeaderCheck {
  HeaderState state;
  std::string problem;  // empty when valid
};

// Validates the generic part of a segment that is `mapped_bytes` long:
// magic, layout version, kind, ABI facts, recorded size and region bounds
// (inside the segment, aligned to a cache line, not overlapping).
HeaderCheck check_header(const std::byte* base, std::size_t mapped_bytes,
                         std::uint32_t expected_version, std::uint32_t expected_kind,
                         std::uint32_t expected_full_header_bytes) noexcept;

}  // namespace sluice::shm
