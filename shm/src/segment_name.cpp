#include "sluice/shm/segment_name.hpp"

#include "sluice/shm/setup_error.hpp"

namespace sluice::shm {

std::string name_problem(std::string_view name) {
  if (name.empty()) {
    return "the name is empty";
  }
  if (name.size() > kMaxNameLength) {
    return "the name is longer than " + std::to_string(kMaxNameLength) + " characters";
  }
  if (name.front() == '.') {
    return "the name starts with '.'";
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return std::string("the name contains '") + c +
             "'; only letters, digits, '.', '_' and '-' are allowed";
    }
  }
  return {};
}

void require_valid_name(std::string_view name) {
  if (auto problem = name_problem(name); !problem.empty()) {
    throw SetupError("invalid channel name \"" + std::string(name) + "\": " + problem);
  }
}

std::string object_name(std::string_view name) {
  return std::string(kSegmentPrefix) + std::string(name);
}

std::string object_path(std::string_view name) {
  return "/dev/shm/" + object_name(name);
}

}  // namespace sluice::shm
