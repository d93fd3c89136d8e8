#pragma once

// Running the built programs from tests: a shell command's exit status and
// output, and the path of a program in the build tree.

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <string>

namespace sluice::test {

// SLUICE_TOOLS_DIR is the build directory of the programs (tests/CMakeLists.txt).
inline std::string tool(const char* name) {
  return std::string(SLUICE_TOOLS_DIR) + "/" + name;
}

inline std::string read_file(const std::string& path) {
  std::string text;
  if (FILE* file = std::fopen(path.c_str(), "r")) {
    std::array<char, 4096> chunk{};
    std::size_t n = 0;
    while ((n = std::fread(chunk.data(), 1, chunk.size(), file)) > 0) {
      text.append(chunk.data(), n);
    }
    std::fclose(file);
  }
  return text;
}

struct ToolRun {
  int status = -1;  // exit status, or -1 if it did not exit normally
  std::string out;
  std::string err;  // empty unless asked for apart from out
};

enum class Stderr { kMerged, kApart, kLeftAlone };

// Runs `command` in a shell. kMerged: stderr joins `out`; kApart: stderr in
// `err`; kLeftAlone: stderr goes where the test's own goes.
inline ToolRun run_tool(const std::string& command, Stderr stderr_to = Stderr::kMerged) {
  static int counter = 0;
  const std::string err_path =
      "/tmp/sluice-test-stderr-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  const std::string redirect = stderr_to == Stderr::kMerged  ? " 2>&1"
                               : stderr_to == Stderr::kApart ? " 2>" + err_path
                                                             : "";
  ToolRun result;
  FILE* pipe = popen((command + redirect).c_str(), "r");
  if (pipe == nullptr) {
    return result;
  }
  std::array<char, 4096> chunk{};
  while (std::fgets(chunk.data(), chunk.size(), pipe) != nullptr) {
    result.out += chunk.data();
  }
  const int status = pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (stderr_to == Stderr::kApart) {
    result.err = read_file(err_path);
    std::remove(err_path.c_str());
  }
  return result;
}

}  // namespace sluice::test
