#include "sluice/shm/process_identity.hpp"

#include <unistd.h>
#include <fstream>
#include <sstream>
#include <string>

namespace sluice::shm {

ProcessIdentity ProcessIdentity::self() {
  return {getpid(), start_ticks_of(getpid())};
}

std::uint64_t ProcessIdentity::start_ticks_of(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) {
    return 0;
  }
  // The command name (field 2) may hold spaces and parentheses; fields after
  // the last ')' are plain. starttime is field 22, i.e. the 20th after ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) {
    return 0;
  }
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  for (int i = 0; i < 20 && rest >> field; ++i) {
  }
  try {
    return std::stoull(field);
  } catch (...) {
    return 0;
  }
}

}  // namespace sluice::shm
