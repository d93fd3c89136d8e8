#include "sluice/shm/segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "sluice/shm/role_lock.hpp"
#include "sluice/shm/segment_name.hpp"
#include "sluice/shm/setup_error.hpp"

namespace sluice::shm {

namespace bip = boost::interprocess;

struct Segment::Impl {
  bip::shared_memory_object object;
  bip::mapped_region region;
};

namespace {

[[noreturn]] void fail(std::string_view name, const std::string& what) {
  throw SetupError("channel \"" + std::string(name) + "\" (" + object_path(name) + "): " + what);
}

std::string describe(const bip::interprocess_exception& e) {
  const int native = e.get_native_error();
  if (native != 0) {
    return std::generic_category().message(native);
  }
  return e.what();
}

// Returns 0 or the errno of the madvise that failed. Not an error here: EINVAL
// from MADV_HUGEPAGE means a kernel without transparent huge pages, and a
// populate that fails for want of memory is reported by the posix_fallocate
// that follows.
int advise_huge_pages_and_populate(void* base, std::size_t bytes) noexcept {
  if (::madvise(base, bytes, MADV_HUGEPAGE) != 0) {
    return errno;
  }
#ifdef MADV_POPULATE_WRITE
  if (::madvise(base, bytes, MADV_POPULATE_WRITE) != 0) {
    return errno;
  }
  return 0;
#else
  return EINVAL;
#endif
}

std::string free_space_hint() {
  struct stat st {};
  return ::stat("/dev/shm", &st) == 0 ? "" : " (/dev/shm is not mounted)";
}

}  // namespace

Segment::Segment(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  base_ = static_cast<std::byte*>(impl_->region.get_address());
  size_ = impl_->region.get_size();
  struct stat st {};
  if (::fstat(fd(), &st) == 0) {
    owner_ = st.st_uid;
    mode_ = st.st_mode & 07777;
  }
}

Segment::Segment(Segment&&) noexcept = default;
Segment& Segment::operator=(Segment&&) noexcept = default;
Segment::~Segment() = default;

int Segment::fd() const noexcept {
  return impl_ ? impl_->object.get_mapping_handle().handle : -1;
}

Segment Segment::create(std::string_view name, std::size_t bytes, const CreateOptions& options) {
  require_valid_name(name);
  const std::string object = object_name(name);
  auto impl = std::make_unique<Impl>();
  try {
    // create_only is O_CREAT|O_EXCL: it never opens an existing object and
    // never follows a symlink planted under the name. Boost applies the mode
    // with fchmod, so the umask cannot widen or narrow it.
    impl->object = bip::shared_memory_object(bip::create_only, object.c_str(), bip::read_write,
                                             bip::permissions(static_cast<int>(options.mode)));
  } catch (const bip::interprocess_exception& e) {
    if (e.get_native_error() == EEXIST) {
      fail(name, "already exists; remove it with `sluice rm " + std::string(name) +
                     "` if no process uses it");
    }
    fail(name, "cannot create: " + describe(e) + free_space_hint());
  }
  const int fd = impl->object.get_mapping_handle().handle;
  if (options.lock_slot && !try_lock_slot(fd, *options.lock_slot)) {
    bip::shared_memory_object::remove(object.c_str());
    fail(name, "was replaced while being created; try again");
  }
  int huge_page_setup_error = 0;
  if (options.huge_pages) {
    // Sized and mapped first, so that the pages are allocated by faults
    // through a mapping marked MADV_HUGEPAGE: only those get 2 MiB pages on
    // a huge=advise mount. Best effort all the way: posix_fallocate below
    // still reserves (and reports the lack of) whatever this did not touch.
    try {
      impl->object.truncate(static_cast<bip::offset_t>(bytes));
      impl->region = bip::mapped_region(impl->object, bip::read_write);
      huge_page_setup_error =
          advise_huge_pages_and_populate(impl->region.get_address(), impl->region.get_size());
    } catch (const bip::interprocess_exception& e) {
      bip::shared_memory_object::remove(object.c_str());
      fail(name, "cannot size or map: " + describe(e));
    }
  }
  // Reserve the memory now: tmpfs accepts any ftruncate, and a segment larger
  // than the free space would otherwise fail later with SIGBUS on first touch.
  if (int err = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes)); err != 0) {
    bip::shared_memory_object::remove(object.c_str());
    if (err == ENOSPC) {
      fail(name, "not enough free space in /dev/shm for " + std::to_string(bytes) +
                     " bytes; free some or use fewer/smaller buffers");
    }
    fail(name, "cannot reserve memory: " + std::generic_category().message(err));
  }
  if (impl->region.get_address() == nullptr) {
    try {
      impl->region = bip::mapped_region(impl->object, bip::read_write);
    } catch (const bip::interprocess_exception& e) {
      bip::shared_memory_object::remove(object.c_str());
      fail(name, "cannot map: " + describe(e));
    }
  }
  Segment segment(std::move(impl));
  segment.name_ = std::string(name);
  segment.huge_page_setup_error_ = huge_page_setup_error;
  return segment;
}

bool Segment::prefault() const noexcept {
#ifdef MADV_POPULATE_WRITE
  return base_ != nullptr && ::madvise(base_, size_, MADV_POPULATE_WRITE) == 0;
#else
  return false;
#endif
}

bool Segment::read_unmapped(std::size_t offset, std::span<std::byte> out) const noexcept {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t got =
        ::pread(fd(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      return false;
    }
    done += static_cast<std::size_t>(got);
  }
  return true;
}

std::optional<std::size_t> Segment::huge_page_bytes() const noexcept {
  try {
    std::ifstream smaps("/proc/self/smaps");
    if (!smaps) {
      return std::nullopt;
    }
    const auto first = reinterpret_cast<std::uintptr_t>(base_);
    const std::uintptr_t last = first + size_;
    bool inside = false;
    bool seen = false;
    std::size_t kib = 0;
    std::string line;
    while (std::getline(smaps, line)) {
      // A mapping starts with "start-end perms ..." in hex; its fields follow
      // ("Name:   value kB", no field name being hex digits and a dash).
      std::uintptr_t start = 0;
      std::uintptr_t end = 0;
      char dash = 0;
      std::istringstream head(line);
      if (head >> std::hex >> start >> dash >> end && dash == '-') {
        inside = start >= first && end <= last;
        continue;
      }
      constexpr std::string_view kField = "ShmemPmdMapped:";
      if (inside && std::string_view(line).starts_with(kField)) {
        std::istringstream value(line.substr(kField.size()));
        std::size_t field_kib = 0;
        if (value >> field_kib) {
          kib += field_kib;
          seen = true;
        }
      }
    }
    if (!seen) {
      return std::nullopt;  // no mapping of ours, or a kernel without the field
    }
    return kib * 1024;
  } catch (...) {
    return std::nullopt;
  }
}

bool Segment::remove_own_name() const noexcept {
  struct stat own {};
  struct stat named {};
  if (::fstat(fd(), &own) != 0 || ::stat(object_path(name_).c_str(), &named) != 0 ||
      own.st_dev != named.st_dev || own.st_ino != named.st_ino) {
    return false;
  }
  return bip::shared_memory_object::remove(object_name(name_).c_str());
}

Segment Segment::open(std::string_view name) {
  std::optional<Segment> segment = open_if_present(name);
  if (!segment) {
    fail(name, exists(name)
                   ? "is empty (its creator has not sized it yet, or died while creating it)"
                   : "does not exist");
  }
  return std::move(*segment);
}

std::optional<Segment> Segment::open_if_present(std::string_view name) {
  require_valid_name(name);
  const std::string object = object_name(name);
  auto impl = std::make_unique<Impl>();
  try {
    impl->object = bip::shared_memory_object(bip::open_only, object.c_str(), bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    const int native = e.get_native_error();
    if (native == ENOENT) {
      return std::nullopt;
    }
    if (native == EACCES) {
      fail(name, "permission denied: it belongs to another user or does not allow access");
    }
    fail(name, "cannot open: " + describe(e));
  }
  struct stat st {};
  const int fd = impl->object.get_mapping_handle().handle;
  if (::fstat(fd, &st) != 0) {
    fail(name, "cannot stat: " + std::generic_category().message(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    fail(name, "is not a regular shared-memory object");
  }
  if (st.st_size == 0) {
    return std::nullopt;
  }
  try {
    impl->region = bip::mapped_region(impl->object, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    fail(name, "cannot map: " + describe(e));
  }
  std::optional<Segment> segment(Segment(std::move(impl)));
  segment->name_ = std::string(name);
  return segment;
}

bool Segment::exists(std::string_view name) {
  if (!name_problem(name).empty()) {
    return false;
  }
  struct stat st {};
  return ::stat(object_path(name).c_str(), &st) == 0;
}

bool Segment::remove(std::string_view name) {
  require_valid_name(name);
  return bip::shared_memory_object::remove(object_name(name).c_str());
}

std::string Segment::huge_page_mount_option() {
  // /dev/shm may be a link to the mount (/run/shm on some systems).
  std::error_code error;
  const std::filesystem::path resolved = std::filesystem::canonical("/dev/shm", error);
  const std::string shm_dir = error ? std::string("/dev/shm") : resolved.string();
  std::ifstream mounts("/proc/mounts");
  std::string option;
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string device;
    std::string mount_point;
    std::string type;
    std::string options;
    if (!(fields >> device >> mount_point >> type >> options) || mount_point != shm_dir) {
      continue;
    }
    // The last entry wins: a later mount on the same point hides earlier ones.
    option = "never";
    std::istringstream list(options);
    std::string item;
    while (std::getline(list, item, ',')) {
      if (item.starts_with("huge=")) {
        option = item.substr(5);
      }
    }
  }
  return option;
}

std::string Segment::shmem_huge_page_policy() {
  std::ifstream file("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  std::string line;
  std::getline(file, line);
  const auto open = line.find('[');
  const auto close = line.find(']', open);
  if (open == std::string::npos || close == std::string::npos) {
    return {};
  }
  return line.substr(open + 1, close - open - 1);
}

std::vector<std::string> Segment::list() {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", error)) {
    const std::string file = entry.path().filename().string();
    if (std::string_view(file).starts_with(kSegmentPrefix)) {
      auto name = std::string_view(file).substr(kSegmentPrefix.size());
      if (name_problem(name).empty()) {
        names.emplace_back(name);
      }
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace sluice::shm
