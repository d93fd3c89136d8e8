// Row (d) bridge: the whole chain as separate programs,
//   sluice-producer -> sluice-bridge out -> nats-server -> sluice-bridge in
//   -> sluice-consumer,
// timed from the producer's start to the consumer's exit. sluice-consumer
// checks every record (sequence and bytes) and its JSON summary says how many
// arrived; the row counts only a run where all arrived, none lost or doubled.
//
// The chain is set up before the producer starts where the bridge allows it
// (`out` creates its stream while waiting for its channel); otherwise the
// set-up is inside the timing and the row says so.

#include <fcntl.h>
#include <nats/nats.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../common/fd_io.hpp"
#include "rows.hpp"
#include "sluice/transport/channel.hpp"

extern char** environ;

namespace bridge_bench {

namespace {

using Clock = std::chrono::steady_clock;

// A program of the chain, its stdout in a file; killed if still running at the end.
class Program {
 public:
  Program(const std::string& path, const std::vector<std::string>& arguments,
          const std::string& output) {
    std::vector<std::string> text = {path};
    text.insert(text.end(), arguments.begin(), arguments.end());
    std::vector<char*> argv;
    for (std::string& a : text) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, (output + ".err").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (posix_spawn(&pid_, path.c_str(), &actions, nullptr, argv.data(), environ) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Program() { stop(std::chrono::seconds(10)); }
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  [[nodiscard]] bool started() const { return pid_ > 0; }
  // Exit status once it ended, -1 while running, 128+signal if killed.
  int poll() {
    if (pid_ > 0 && status_ < 0) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
    }
    return status_;
  }
  // Waits up to `timeout` for it to end by itself; its status or -1.
  int wait(std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (poll() < 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return poll();
  }
  // SIGTERM, then SIGKILL after `grace`.
  void stop(std::chrono::seconds grace) {
    if (pid_ <= 0 || poll() >= 0) {
      return;
    }
    ::kill(pid_, SIGTERM);
    if (wait(grace) < 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      status_ = 128 + SIGKILL;
    }
  }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string last_line(const std::string& text) {
  const auto end = text.find_last_not_of('\n');
  if (end == std::string::npos) {
    return "";
  }
  const auto start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1,
                     end - (start == std::string::npos ? 0 : start + 1) + 1);
}

std::uint64_t json_number(const std::string& line, const std::string& key) {
  const auto at = line.find("\"" + key + "\":");
  return at == std::string::npos ? 0
                                 : std::strtoull(line.c_str() + at + key.size() + 3, nullptr, 10);
}

// Asks the server whether the stream exists; the client library lives only
// in this (forked) process.
class StreamProbe {
 public:
  explicit StreamProbe(const std::string& url) {
    if (nats_Open(-1) == NATS_OK &&
        natsConnection_ConnectTo(&connection_, url.c_str()) == NATS_OK) {
      (void)natsConnection_JetStream(&js_, connection_, nullptr);
    }
  }
  ~StreamProbe() {
    jsCtx_Destroy(js_);
    natsConnection_Destroy(connection_);
    nats_Close();
  }
  StreamProbe(const StreamProbe&) = delete;
  StreamProbe& operator=(const StreamProbe&) = delete;
  bool exists(const std::string& stream) {
    jsStreamInfo* info = nullptr;
    if (js_ == nullptr ||
        js_GetStreamInfo(&info, js_, stream.c_str(), nullptr, nullptr) != NATS_OK) {
      return false;
    }
    jsStreamInfo_Destroy(info);
    return true;
  }
  void remove(const std::string& stream) {
    if (js_ != nullptr) {
      (void)js_DeleteStream(js_, stream.c_str(), nullptr, nullptr);
    }
  }

 private:
  natsConnection* connection_ = nullptr;
  jsCtx* js_ = nullptr;
};

// The chain, run in a forked process; writes what it measured into `result`.
void run_chain(const RowWork& work, const std::string& bin_dir, const std::string& bridge,
               RowResult& result) {
  char dir[] = "/tmp/sluice-bench-chain-XXXXXX";
  if (::mkdtemp(dir) == nullptr) {
    result.problem = "cannot create a temporary directory";
    return;
  }
  const std::string logs = dir;
  const std::string from = "bench-bridge-" + work.tag + "-a";
  const std::string to = "bench-bridge-" + work.tag + "-b";
  const std::string stream = "BRIDGE_" + work.tag;
  const std::string records = std::to_string(work.records);
  const std::string size = std::to_string(work.size);
  const auto timeout = std::chrono::seconds(work.timeout_s);
  StreamProbe probe(work.nats_url);

  Program consumer(bin_dir + "/sluice-consumer",
                   {"--channel", to, "--records", records, "--size", size, "--json", "--wait",
                    std::to_string(work.timeout_s)},
                   logs + "/consumer");
  const std::vector<std::string> out_arguments = {
      "out",    "--channel",   from,
      "--nats", work.nats_url, "--stream",
      stream,   "--max-bytes", std::to_string(std::uint64_t{1} << 30),
      "--json"};
  auto out = std::make_unique<Program>(bridge, out_arguments, logs + "/out");
  std::unique_ptr<Program> in;
  std::unique_ptr<Program> producer;
  const auto start_in = [&] {
    in = std::make_unique<Program>(
        bridge,
        std::vector<std::string>{"in", "--stream", stream, "--nats", work.nats_url, "--channel", to,
                                 "--json"},
        logs + "/in");
  };
  Clock::time_point t0;
  const auto start_producer = [&] {
    t0 = Clock::now();
    producer = std::make_unique<Program>(
        bin_dir + "/sluice-producer",
        std::vector<std::string>{"--channel", from, "--records", records, "--size", size, "--json",
                                 "--wait", std::to_string(work.timeout_s)},
        logs + "/producer");
  };
  const auto wait_for_stream = [&](std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline && out->poll() < 0) {
      if (probe.exists(stream)) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return probe.exists(stream);
  };

  if (wait_for_stream(std::chrono::seconds(5))) {
    start_in();
    start_producer();
  } else {
    result.note =
        "sluice-bridge out made its stream only once its channel existed: the chain's "
        "set-up is inside the timing";
    start_producer();
    if (out->poll() >= 0) {
      out = std::make_unique<Program>(bridge, out_arguments, logs + "/out");
    }
    if (wait_for_stream(timeout)) {
      start_in();
    }
  }
  if (in == nullptr) {
    result.problem = "sluice-bridge out never created stream " + stream + ": " +
                     last_line(read_text(logs + "/out.err"));
  } else {
    const int consumer_status = consumer.wait(timeout);
    const auto t1 = Clock::now();
    const std::string summary = last_line(read_text(logs + "/consumer"));
    result.received = json_number(summary, "records");
    result.seconds = std::chrono::duration<double>(t1 - t0).count();
    const int producer_status = producer->wait(std::chrono::seconds(30));
    if (consumer_status != 0 || producer_status != 0) {
      result.problem = "consumer exit " + std::to_string(consumer_status) + " (" + summary +
                       "), producer exit " + std::to_string(producer_status) +
                       "; out: " + last_line(read_text(logs + "/out.err")) +
                       "; in: " + last_line(read_text(logs + "/in.err"));
    } else if (result.received != work.records || json_number(summary, "lost") != 0 ||
               json_number(summary, "duplicated") != 0 || json_number(summary, "corrupt") != 0) {
      result.problem = "the consumer's summary does not show every record once: " + summary;
    } else {
      result.ok = true;
    }
  }
  producer.reset();
  in.reset();
  out.reset();
  probe.remove(stream);
  sluice::transport::remove_channel(from);
  sluice::transport::remove_channel(to);
  // in's resume state (sluice-bridge's default path), kept when in is
  // stopped by a signal, as at the run's end.
  std::remove(("/dev/shm/.sluice-bridge-in." + to).c_str());
  if (result.ok) {
    std::error_code ignored;
    for (const char* name : {"consumer", "producer", "out", "in"}) {
      std::remove((logs + "/" + name).c_str());
      std::remove((logs + "/" + name + ".err").c_str());
    }
    ::rmdir(logs.c_str());
  } else {
    result.problem += " (logs in " + logs + ")";
  }
}

}  // namespace

std::string bridge_missing(const std::string& bin_dir, const std::string& bridge) {
  std::string missing;
  for (const std::string& path :
       {bridge, bin_dir + "/sluice-producer", bin_dir + "/sluice-consumer"}) {
    if (::access(path.c_str(), X_OK) != 0) {
      missing += (missing.empty() ? "" : ", ") + path;
    }
  }
  return missing;
}

RowResult run_bridge_chain(const RowWork& work, const std::string& bin_dir,
                           const std::string& bridge) {
  // The orchestration starts the NATS client library (to see the stream
  // appear), so it runs in a child: this process stays free of it for the
  // forks of the other rows.
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    RowResult failed;
    failed.problem = "pipe2 failed";
    return failed;
  }
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // an interrupted benchmark leaves no orchestration behind
    ::close(pipe_fds[0]);
    RowResult result;
    run_chain(work, bin_dir, bridge, result);
    const std::string text =
        std::to_string(result.ok ? 1 : 0) + "\n" + std::to_string(result.seconds) + "\n" +
        std::to_string(result.received) + "\n" + result.note + "\n" + result.problem;
    (void)sluice::bench::write_all(pipe_fds[1], text.data(), text.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string text;
  char chunk[4096];
  ssize_t n = 0;
  while ((n = ::read(pipe_fds[0], chunk, sizeof(chunk))) > 0) {
    text.append(chunk, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  ::waitpid(pid, nullptr, 0);
  RowResult result;
  std::istringstream lines(text);
  std::string line;
  if (!std::getline(lines, line)) {
    result.problem = "the chain's orchestration ended without a result";
    return result;
  }
  result.ok = line == "1";
  std::getline(lines, line);
  result.seconds = std::strtod(line.c_str(), nullptr);
  std::getline(lines, line);
  result.received = std::strtoull(line.c_str(), nullptr, 10);
  std::getline(lines, result.note);
  std::getline(lines, result.problem, '\0');
  return result;
}

}  // namespace bridge_bench
