// The README's "Using the library" example, as written there (only the
// channel name differs, so that runs do not meet), run as two processes and
// twice in a row: the second run must find no leftover of the first.
#include <sluice/shm/setup_error.hpp>
#include <sluice/transport/channel_remover.hpp>
#include <sluice/transport/consumer.hpp>
#include <sluice/transport/producer.hpp>
#include <sluice/transport/record_reader.hpp>
#include <sluice/transport/record_writer.hpp>

#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace st = sluice::transport;

namespace {

const std::string kChannel = "package-readme-" + std::to_string(getpid());
int handled = 0;
void handle(std::span<const std::byte> /*record*/) {
  ++handled;
}

// --- from the README ---
// Producer process.
int produce(const std::vector<std::string>& records) {
  try {
    // replace_stale: a channel left by a run that crashed is replaced; one in use is refused.
    auto producer = st::Producer::create(kChannel, {.buffer_bytes = 32 * 1024, .buffer_count = 64},
                                         {.replace_stale = true});
    st::RecordWriter writer(producer);
    for (const auto& record : records) {
      // Blocks while the pool is empty (backpressure).
      if (writer.write(std::as_bytes(std::span(record))) != st::Status::kOk) return 1;
    }
    return writer.close() == st::Status::kOk ? 0 : 1;  // the consumer gets everything, then kClosed
  } catch (const sluice::shm::SetupError& e) {  // name in use, /dev/shm full, bad configuration...
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
}

// Consumer process.
int consume() {
  try {
    auto consumer = st::Consumer::open(kChannel, {.wait_for_channel = std::chrono::seconds(10)});
    st::ChannelRemover remove_at_end(consumer.mapping());  // the name goes when this scope ends
    st::RecordReader reader(consumer);
    std::span<const std::byte> record;
    st::Status status;
    while ((status = reader.next(record)) == st::Status::kOk) {
      handle(record);  // a view into shared memory, valid until the next call
    }
    return status == st::Status::kClosed ? 0 : 1;  // kPeerDied: the producer died mid-stream
  } catch (const sluice::shm::SetupError& e) {     // no such channel after 10 s, not a channel...
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
}
// --- end ---

int run_once() {
  const pid_t child = fork();
  if (child == 0) {
    const int status = consume();
    std::fflush(stderr);
    _exit(status == 0 && handled == 3 ? 0 : 1);
  }
  const int produced = produce({"one", "two", "three"});
  int consumed = 0;
  waitpid(child, &consumed, 0);
  return produced == 0 && WIFEXITED(consumed) && WEXITSTATUS(consumed) == 0 ? 0 : 1;
}

}  // namespace

int main() {
  for (int run = 1; run <= 2; ++run) {
    if (run_once() != 0) {
      std::printf("README example: run %d failed\n", run);
      return 1;
    }
  }
  std::printf("README example: two runs, 3 records each, nothing left behind\n");
  return 0;
}
