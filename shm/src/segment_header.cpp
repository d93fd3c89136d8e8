#include "sluice/shm/segment_header.hpp"

#include <algorithm>
#include <cstring>

namespace sluice::shm {

AbiFacts AbiFacts::of_this_build(std::uint32_t full_header_bytes) noexcept {
  return AbiFacts{
      .pointer_bytes = sizeof(void*),
      .cache_line_bytes = kCacheLine,
      .atomic64_bytes = sizeof(std::atomic<std::uint64_t>),
      .atomic64_align = alignof(std::atomic<std::uint64_t>),
      .byte_order_tag = 0x01020304U,
      .full_header_bytes = full_header_bytes,
  };
}

namespace {

std::string describe_abi_difference(const AbiFacts& found, const AbiFacts& expected) {
  std::string out;
  auto field = [&out](const char* what, std::uint64_t f, std::uint64_t e) {
    if (f != e) {
      out += std::string(out.empty() ? "" : ", ") + what + " is " + std::to_string(f) +
             " in the segment but " + std::to_string(e) + " in this build";
    }
  };
  field("pointer size", found.pointer_bytes, expected.pointer_bytes);
  field("cache line size", found.cache_line_bytes, expected.cache_line_bytes);
  field("64-bit atomic size", found.atomic64_bytes, expected.atomic64_bytes);
  field("64-bit atomic alignment", found.atomic64_align, expected.atomic64_align);
  field("byte order tag", found.byte_order_tag, expected.byte_order_tag);
  field("header size", found.full_header_bytes, expected.full_header_bytes);
  return out;
}

}  // namespace

HeaderCheck check_header(const std::byte* base, std::size_t mapped_bytes,
                         std::uint32_t expected_version, std::uint32_t expected_kind,
                         std::uint32_t expected_full_header_bytes) noexcept {
  try {
    if (mapped_bytes < sizeof(SegmentHeader)) {
      return {HeaderState::kInvalid, "truncated: " + std::to_string(mapped_bytes) +
                                         " bytes, smaller than a segment header"};
    }
    const auto* live = reinterpret_cast<const SegmentHeader*>(base);
    // Acquire pairs with the creator's release of the magic: the copy taken
    // after it holds the complete header.
    const std::uint64_t magic = live->magic.load(std::memory_order_acquire);
    if (magic == 0) {
      return {HeaderState::kInitialising, "its creator has not finished initialising it"};
    }
    if (magic != kSegmentMagic) {
      return {HeaderState::kInvalid, "not a Sluice segment (bad magic number)"};
    }
    SegmentHeaderImage image{};
    std::memcpy(&image, base, sizeof(image));
    const SegmentHeaderImage* header = &image;
    if (header->layout_version != expected_version) {
      return {HeaderState::kInvalid, "layout version " + std::to_string(header->layout_version) +
                                         ", but this build reads version " +
                                         std::to_string(expected_version)};
    }
    if (header->kind != expected_kind) {
      return {HeaderState::kInvalid, "holds segment kind " + std::to_string(header->kind) +
                                         ", expected " + std::to_string(expected_kind)};
    }
    const AbiFacts expected_abi = AbiFacts::of_this_build(expected_full_header_bytes);
    if (!(header->abi == expected_abi)) {
      return {HeaderState::kInvalid, "made by an incompatible build: " +
                                         describe_abi_difference(header->abi, expected_abi)};
    }
    if (header->segment_bytes != mapped_bytes) {
      return {HeaderState::kInvalid,
              "truncated or resized: the header says " + std::to_string(header->segment_bytes) +
                  " bytes but the object has " + std::to_string(mapped_bytes)};
    }
    if (header->region_count == 0 || header->region_count > kMaxRegions) {
      return {HeaderState::kInvalid,
              "corrupt header: region count " + std::to_string(header->region_count)};
    }
    std::array<RegionEntry, kMaxRegions> sorted{};
    std::copy_n(header->regions.begin(), header->region_count, sorted.begin());
    std::sort(sorted.begin(), sorted.begin() + header->region_count,
              [](const RegionEntry& a, const RegionEntry& b) { return a.offset < b.offset; });
    std::uint64_t previous_end = expected_full_header_bytes;
    for (std::uint32_t i = 0; i < header->region_count; ++i) {
      const RegionEntry& r = sorted[i];
      const bool fits = r.offset >= previous_end && r.offset <= mapped_bytes &&
                        r.bytes <= mapped_bytes - r.offset && r.offset % kCacheLine == 0;
      if (!fits) {
        return {HeaderState::kInvalid, "corrupt header: region at offset " +
                                           std::to_string(r.offset) + " of " +
                                           std::to_string(r.bytes) +
                                           " bytes overlaps, is misaligned or lies outside the " +
                                           std::to_string(mapped_bytes) + "-byte segment"};
      }
      previous_end = r.offset + r.bytes;
    }
    return {HeaderState::kValid, {}};
  } catch (...) {
    return {HeaderState::kInvalid, "could not be validated (out of memory)"};
  }
}

}  // namespace sluice::shm
