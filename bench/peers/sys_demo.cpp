// The "sluice-demo" row: the same work through the demo programs a user runs
// first (sluice-producer, sluice-consumer), each started after the harness's
// go and waited for, so their start-up, argument parsing, pacing checks,
// progress and record checks are all in the time. The consumer program checks
// every record's sequence and bytes, as the other rows do in process; its
// exit status says whether all arrived intact.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <system_error>
#include <vector>

#include "harness.hpp"
#include "sluice/transport/channel.hpp"

namespace cmp {
namespace {

namespace st = sluice::transport;

#ifdef SLUICE_COMPARE_TOOLS_DIR
constexpr const char* kToolsDir = SLUICE_COMPARE_TOOLS_DIR;
#else
constexpr const char* kToolsDir = "";
#endif

// Runs `program` with `arguments`, its stdout discarded (the summaries), its
// stderr kept (errors); throws unless it exits 0. Started with posix_spawn
// (a vfork: the child shares this process's memory until it execs) rather
// than fork, which copies the page tables of this large process first: that
// copy is the harness's cost, not the programs', and a shell that starts
// them is small.
void run_program(const std::string& program, const std::vector<std::string>& arguments) {
  std::vector<char*> argv;
  std::string path = std::string(kToolsDir) + "/" + program;
  argv.push_back(path.data());
  std::vector<std::string> owned = arguments;
  for (std::string& argument : owned) {
    argv.push_back(argument.data());
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  if (const int error = ::posix_spawn_file_actions_init(&actions); error != 0) {
    fail("posix_spawn_file_actions_init: " + std::generic_category().message(error));
  }
  ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t child = -1;
  const int spawned = ::posix_spawn(&child, path.c_str(), &actions, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    fail("posix_spawn " + path + ": " + std::generic_category().message(spawned));
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) {
      fail("waitpid: " + std::generic_category().message(errno));
    }
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fail(program + (WIFEXITED(status) ? " exited " + std::to_string(WEXITSTATUS(status))
                                      : " killed by signal " + std::to_string(WTERMSIG(status))));
  }
}

class DemoSystem final : public System {
 public:
  [[nodiscard]] std::string name() const override { return "sluice-demo"; }
  [[nodiscard]] std::string unavailable() const override {
    if (std::string(kToolsDir).empty()) {
      return "built without the tools (SLUICE_BUILD_TOOLS=OFF)";
    }
    if (::access((std::string(kToolsDir) + "/sluice-producer").c_str(), X_OK) != 0 ||
        ::access((std::string(kToolsDir) + "/sluice-consumer").c_str(), X_OK) != 0) {
      return std::string("sluice-producer/sluice-consumer not built in ") + kToolsDir;
    }
    return {};
  }
  [[nodiscard]] bool has_ping() const override { return false; }

  void prepare(const std::string& tag, bool /*ping*/) override {
    channel_ = "cmp-" + tag + "-demo";
  }
  void cleanup() override { st::remove_channel(channel_); }

  void produce(Link& link, const Work& work) override {
    link.ready();
    run_program("sluice-producer", common(work));
    link.done();
  }
  void consume(Link& link, const Work& work) override {
    link.ready();
    run_program("sluice-consumer", common(work));
    link.done();
  }
  void ping(Link&, const PingWork&) override { fail("sluice-demo has no ping-pong"); }
  void pong(Link&, const PingWork&) override { fail("sluice-demo has no ping-pong"); }

 private:
  [[nodiscard]] std::vector<std::string> common(const Work& work) const {
    return {"--channel", channel_,
            "--records", std::to_string(work.records),
            "--size",    std::to_string(work.size)};
  }
  std::string channel_;
};

}  // namespace

std::unique_ptr<System> make_sluice_demo() {
  return std::make_unique<DemoSystem>();
}

}  // namespace cmp
