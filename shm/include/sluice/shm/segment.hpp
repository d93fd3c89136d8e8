#pragma once

#include <sys/types.h>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::shm {

struct CreateOptions {
  // Permission bits of the new object; owner-only unless the caller widens it.
  mode_t mode = 0600;
  // Ask for 2 MiB pages (transparent huge pages of tmpfs). Whether they are
  // given depends on how /dev/shm is mounted: huge=always or within_size give
  // them to every object anyway; huge=advise only to memory first touched
  // through a mapping marked MADV_HUGEPAGE, which is what this does (the pages
  // are then allocated by faulting the mapping instead of posix_fallocate,
  // which would take small pages); huge=never (the default) gives none.
  // Best effort: huge_page_bytes() says what was given, and
  // huge_page_setup_error() why the kernel refused to help.
  bool huge_pages = false;
  // A role lock (see role_lock.hpp) taken through the new object's file
  // description right after it exists, before it has a size: from then on
  // nobody can take the half-made object for an abandoned one and replace it.
  std::optional<std::uint32_t> lock_slot;
};

inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

// One named shared-memory object mapped into this process. Owns the file
// descriptor (which carries this endpoint's liveness locks) and the mapping;
// both go away with the object. Move-only.
class Segment {
 public:
  // Creates a new object of exactly `bytes` bytes, backed by real memory
  // (posix_fallocate), so a full /dev/shm is reported here and never turns into
  // SIGBUS later. Fails if the name exists. The new bytes are zero.
  static Segment create(std::string_view name, std::size_t bytes, const CreateOptions& options);
  // Maps an existing object read-write. Fails if it does not exist, is not a
  // regular file, or is empty.
  static Segment open(std::string_view name);
  // Like open(), but returns nothing (instead of failing) while the object does
  // not exist yet or its creator has not sized it yet.
  static std::optional<Segment> open_if_present(std::string_view name);
  // Whether an object with this name exists.
  static bool exists(std::string_view name);
  // Removes the name; mappings that exist stay valid. False if it did not exist.
  static bool remove(std::string_view name);
  // The huge= option of the mount that holds /dev/shm ("never" when it has
  // none, as by default; empty if that mount cannot be found).
  static std::string huge_page_mount_option();
  // The kernel's policy for huge pages in shared memory, the bracketed word of
  // /sys/kernel/mm/transparent_hugepage/shmem_enabled: "deny" and "force"
  // override every mount's huge= option. Empty if it cannot be read.
  static std::string shmem_huge_page_policy();
  // Names (without prefix) of all Sluice objects on this host.
  static std::vector<std::string> list();

  Segment(Segment&&) noexcept;
  Segment& operator=(Segment&&) noexcept;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  // Maps every page now (MADV_POPULATE_WRITE), so the first pass over the
  // segment takes no page faults. Best effort: on a kernel without it (before
  // 5.14) pages are mapped on first touch as usual. Never faults: a page the
  // object no longer backs (a peer shrank it) makes this return false.
  bool prefault() const noexcept;

  // Bytes of this process's mapping that are mapped by 2 MiB pages (from
  // /proc/self/smaps; nothing if it cannot be read). Another process mapping
  // the same object gets them as well when its mapping is 2 MiB aligned,
  // which the kernel arranges for tmpfs objects that may hold huge pages.
  [[nodiscard]] std::optional<std::size_t> huge_page_bytes() const noexcept;
  // The errno with which madvise refused MADV_HUGEPAGE or MADV_POPULATE_WRITE
  // when this object was created with huge_pages (EINVAL: a kernel without
  // transparent huge pages, or older than 5.14); 0 if it did not.
  [[nodiscard]] int huge_page_setup_error() const noexcept { return huge_page_setup_error_; }
  // Removes the name if it still refers to this object (and not to one that
  // replaced it). False if it did not.
  bool remove_own_name() const noexcept;

  // Copies bytes at `offset` with pread, without touching the mapping: a page
  // first touched through this process's mapping is allocated by that fault,
  // as a small page unless this mapping asked for huge ones. False if the
  // object is shorter or cannot be read.
  bool read_unmapped(std::size_t offset, std::span<std::byte> out) const noexcept;

  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {base_, size_}; }
  [[nodiscard]] std::byte* base() const noexcept { return base_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] int fd() const noexcept;
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] uid_t owner() const noexcept { return owner_; }
  [[nodiscard]] mode_t mode() const noexcept { return mode_; }

 private:
  struct Impl;
  explicit Segment(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  std::string name_;
  uid_t owner_ = 0;
  mode_t mode_ = 0;
  int huge_page_setup_error_ = 0;
};

}  // namespace sluice::shm
