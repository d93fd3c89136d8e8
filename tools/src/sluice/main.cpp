// sluice: inspect and manage the channels on this host.

#include <cstdio>
#include <string>

#include "commands.hpp"

namespace {

constexpr const char* kUsage =
    "usage: sluice COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  ls [--json]                 channels on this host: configuration, endpoints, state\n"
    "  stat NAME [--json] [--interval S]\n"
    "                              one channel: configuration, endpoints, counters and\n"
    "                              rates over the last interval (default 1 s)\n"
    "  stat [NAME...] [--json | --prometheus] [--interval S]\n"
    "                              no NAME: every channel; the stages (processes), the\n"
    "                              links between them and the bottleneck\n"
    "  top [--interval S] [--iterations N]\n"
    "                              live view of every channel; q quits\n"
    "  check NAME                  prove every buffer is in exactly one place\n"
    "  experiment [options]        the Flink backpressure experiment across processes\n"
    "                              (sluice experiment --help)\n"
    "  export [--listen [ADDR:]PORT] [--interval S] [--max-requests N]\n"
    "                              serve the --prometheus text at http://ADDR:PORT/metrics\n"
    "                              (default 127.0.0.1:9464; port 0 picks a free one)\n"
    "  rm NAME...                  remove channels (processes using them keep working)\n"
    "  rm --stale                  remove every channel with no living endpoint\n"
    "  help                        show this text\n"
    "\n"
    "exit status: 0 success; 1 a channel is missing, unsound (check) or could not be\n"
    "removed; 2 bad arguments, or export cannot listen on its address\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string command = argv[1];
  try {
    if (command == "help" || command == "--help" || command == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (command == "ls") return sluice::tools::run_ls(argc, argv);
    if (command == "rm") return sluice::tools::run_rm(argc, argv);
    if (command == "stat") return sluice::tools::run_stat(argc, argv);
    if (command == "top") return sluice::tools::run_top(argc, argv);
    if (command == "check") return sluice::tools::run_check(argc, argv);
    if (command == "experiment") return sluice::tools::run_experiment(argc, argv);
    if (command == "export") return sluice::tools::run_export(argc, argv);
    throw sluice::tools::UsageError("unknown command \"" + command + "\"");
  } catch (const sluice::tools::UsageError& e) {
    std::fprintf(stderr, "sluice: %s\n\n%s", e.what(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice: %s\n", e.what());
    return 1;
  }
}
