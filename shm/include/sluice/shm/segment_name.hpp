#pragma once

#include <string>
#include <string_view>

namespace sluice::shm {

// Every Sluice segment lives in /dev/shm under this prefix, so that listing
// finds ours and never touches anybody else's objects.
inline constexpr std::string_view kSegmentPrefix = "sluice.";
inline constexpr std::size_t kMaxNameLength = 200;

// Returns an empty string when `name` is acceptable, otherwise why it is not.
// Allowed: 1..200 characters of [A-Za-z0-9._-], not starting with '.'.
std::string name_problem(std::string_view name);

// Throws SetupError naming `name` when it is not acceptable.
void require_valid_name(std::string_view name);

// The object name under /dev/shm for a channel name ("orders" -> "sluice.orders").
std::string object_name(std::string_view name);

// Full path of the object, for diagnostics ("/dev/shm/sluice.orders").
std::string object_path(std::string_view name);

}  // namespace sluice::shm
