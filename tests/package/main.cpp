// Sends three records through a channel and reads them back, using only the
// installed headers and libraries.
#include <sluice/transport/consumer.hpp>
#include <sluice/transport/producer.hpp>
#include <sluice/transport/record_reader.hpp>
#include <sluice/transport/record_writer.hpp>

#include <cstdio>
#include <string>
#include <unistd.h>

namespace st = sluice::transport;

int main() {
  const std::string name = "package-user-" + std::to_string(getpid());
  auto producer = st::Producer::create(name);
  auto consumer = st::Consumer::open(name);
  st::RecordWriter writer(producer);
  const std::string words[] = {"one", "two", "three"};
  for (const auto& word : words) {
    if (writer.write(std::as_bytes(std::span(word))) != st::Status::kOk) return 1;
  }
  writer.close();
  st::RecordReader reader(consumer);
  std::span<const std::byte> record;
  int matched = 0;
  for (const auto& word : words) {
    if (reader.next(record) == st::Status::kOk &&
        std::string(reinterpret_cast<const char*>(record.data()), record.size()) == word) {
      ++matched;
    }
  }
  const bool closed = reader.next(record) == st::Status::kClosed;
  st::remove_channel(name);
  std::printf("matched %d of 3, closed %s\n", matched, closed ? "yes" : "no");
  return matched == 3 && closed ? 0 : 1;
}
