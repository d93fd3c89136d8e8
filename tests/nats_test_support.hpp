#pragma once

// What the NATS tests share: the scripts in tests/nats/, a temporary
// directory, a three-node cluster for one test, and small text helpers.

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tool_run.hpp"

namespace sluice::test::nats {

using sluice::test::run_tool;
using sluice::test::ToolRun;

inline std::string script(const std::string& name) {
  return std::string(SLUICE_TESTS_SOURCE_DIR) + "/nats/" + name;
}

inline bool have_nats_server() {
  return run_tool("command -v nats-server >/dev/null").status == 0;
}

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/sluice-nats-test-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) {
      std::abort();
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// tests/nats/cluster.sh for one test: started here, stopped at the end.
class Cluster {
 public:
  explicit Cluster(const TempDir& dir) : dir_(dir.path()) {
    started_ = run_tool(script("cluster.sh") + " start " + dir_);
    std::string line = started_.out;
    while (!line.empty() && line.back() == '\n') {
      line.pop_back();
    }
    urls_ = line.substr(line.rfind('\n') == std::string::npos ? 0 : line.rfind('\n') + 1);
  }
  ~Cluster() { (void)run_tool(script("cluster.sh") + " stop " + dir_); }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  [[nodiscard]] const ToolRun& started() const { return started_; }
  [[nodiscard]] const std::string& urls() const { return urls_; }
  ToolRun command(const std::string& arguments) const {
    return run_tool(script("cluster.sh") + " " + arguments.substr(0, arguments.find(' ')) + " " +
                    dir_ + arguments.substr(arguments.find(' ')));
  }

 private:
  std::string dir_;
  ToolRun started_;
  std::string urls_;
};

inline std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, separator)) {
    if (!part.empty()) {
      parts.push_back(part);
    }
  }
  return parts;
}

inline std::string last_line(const std::string& text) {
  const auto lines = split(text, '\n');
  return lines.empty() ? "" : lines.back();
}

// Polls `condition` every `period` until true or `timeout`.
template <class Condition>
bool eventually_every(Condition condition, std::chrono::milliseconds period,
                      std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(period);
  }
  return true;
}

}  // namespace sluice::test::nats
