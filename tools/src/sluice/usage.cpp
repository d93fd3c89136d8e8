#include "usage.hpp"

namespace sluice::tools {

namespace {

#define SLUICE_NAME_RULES \
  "A channel NAME is 1 to 200 letters, digits, '.', '_' or '-', not starting with '.'.\n"

#define SLUICE_JSON_ERRORS                                                          \
  "With --json, a bad command line or a failure is also printed on stdout as one\n" \
  "JSON line: {\"role\":\"sluice\",\"type\":\"error\",\"command\":...,\"error\":...}.\n"

constexpr const char* kLs =
    "usage: sluice ls [--json]\n"
    "\n"
    "Lists the channels on this host: state (open, closed, stale, unreadable),\n"
    "configuration, producer and consumer (pid alive/dead/left, '-' never attached),\n"
    "mode, and what went through: records, buffers and bytes sent and received\n"
    "(the buffer API counts records only when commit() is told how many).\n"
    "\n"
    "options:\n"
    "  --json        one JSON object per channel\n"
    "  --help        show this text\n"
    "\n" SLUICE_JSON_ERRORS
    "\n"
    "exit status: 0 listed (also when there is none); 2 bad arguments\n";

constexpr const char* kStat =
    "usage: sluice stat NAME [--json] [--interval S]\n"
    "       sluice stat [NAME...] [--json | --prometheus] [--interval S]\n"
    "\n"
    "Shows one channel: configuration, endpoints, counters, pool, and the rates\n"
    "Flink derives (records/s, MB/s, buffers/s, backpressured/idle/busy ms per\n"
    "second, out-pool usage, fill) between two snapshots S seconds apart.\n"
    "With no NAME (every channel) or several: the channels, the stages (one per\n"
    "process) with their backpressured/idle/busy time, the links between them and\n"
    "the bottleneck (the first stage downstream that is busy but not backpressured).\n"
    "\n"
    "options:\n"
    "  --interval S  seconds between the two snapshots (0.01 to 3600, default 1)\n"
    "  --json        one JSON object (with stages, links and bottleneck)\n"
    "  --prometheus  the metrics in the Prometheus text format\n"
    "  --help        show this text\n"
    "\n" SLUICE_NAME_RULES SLUICE_JSON_ERRORS
    "\n"
    "exit status: 0 shown; 1 the channel does not exist or cannot be read;\n"
    "2 bad arguments (including an invalid name)\n";

constexpr const char* kTop =
    "usage: sluice top [--interval S] [--iterations N]\n"
    "\n"
    "A live view of every channel, refreshed every S seconds: rates, backpressure\n"
    "level, pool usage. In a terminal it redraws in place and q quits; when stdout\n"
    "is not a terminal it prints plain lines per refresh.\n"
    "\n"
    "options:\n"
    "  --interval S    seconds between refreshes (0.05 to 3600, default 1)\n"
    "  --iterations N  stop after N refreshes (default: until q or Ctrl-C)\n"
    "  --help          show this text\n"
    "\n"
    "exit status: 0 stopped; 2 bad arguments\n";

constexpr const char* kCheck =
    "usage: sluice check NAME\n"
    "\n"
    "Proves that every buffer of the channel is in exactly one place: the return\n"
    "ring (free), the producer, the data ring (queued) or the consumer. Reads\n"
    "without disturbing the endpoints and reports only what persists over several\n"
    "snapshots, so a buffer in flight on a live channel is never taken for a leak.\n"
    "\n"
    "options:\n"
    "  --help        show this text\n"
    "\n" SLUICE_NAME_RULES
    "\n"
    "exit status: 0 sound; 1 not sound, or the channel does not exist or cannot be\n"
    "read; 2 bad arguments (including an invalid name)\n";

constexpr const char* kRm =
    "usage: sluice rm NAME...\n"
    "       sluice rm --stale [--force] [NAME...]\n"
    "\n"
    "Removes channels by name. Processes that have a channel open keep using it;\n"
    "only the name goes, so a new producer can create the channel again.\n"
    "A named channel that still holds unread records is removed with a warning\n"
    "on stderr saying how many.\n"
    "\n"
    "--stale removes every channel (or every NAME given) with no living producer\n"
    "or consumer, except those that still hold records no consumer has read:\n"
    "for each of those it prints a warning with the count on stderr, keeps it\n"
    "and exits 1, unless --force is given, which removes them too and says how\n"
    "many records went.\n"
    "\n"
    "options:\n"
    "  --stale       remove every channel (or NAME) with no living endpoint\n"
    "  --force       with --stale: remove stale channels holding unread records too\n"
    "  --help        show this text\n"
    "\n" SLUICE_NAME_RULES
    "\n"
    "exit status: 0 all removed; 1 a channel did not exist or was kept (unread\n"
    "records, see --force); 2 bad arguments (including an invalid name; then\n"
    "nothing is removed)\n";

constexpr const char* kExport =
    "usage: sluice export [--listen [ADDR:]PORT] [--interval S] [--max-requests N]\n"
    "\n"
    "Serves what `sluice stat --prometheus` prints over HTTP for a Prometheus server\n"
    "to scrape: GET (or HEAD) /metrics answers 200 with the text format, any other\n"
    "path 404. Stage ratios cover the time since the previous scrape (at least S).\n"
    "\n"
    "options:\n"
    "  --listen [ADDR:]PORT  IPv4 address (or localhost) and port (default\n"
    "                        127.0.0.1:9464; port 0 picks a free one, printed at start)\n"
    "  --interval S          shortest window for the stage ratios (default 1)\n"
    "  --max-requests N      exit 0 after answering N requests\n"
    "  --help                show this text\n"
    "\n"
    "exit status: 0 stopped (SIGINT, SIGTERM or --max-requests); 2 bad arguments,\n"
    "or the address cannot be listened on (taken, not on this host)\n";

}  // namespace

const char* const kSluiceUsage =
    "usage: sluice COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  ls [--json]                 channels on this host: configuration, endpoints, state\n"
    "  stat NAME [--json] [--interval S]\n"
    "                              one channel: configuration, endpoints, counters and\n"
    "                              rates over the last interval (default 1 s)\n"
    "  top [--interval S] [--iterations N]\n"
    "                              live view of every channel; q quits\n"
    "  check NAME                  prove every buffer is in exactly one place\n"
    "  experiment [options]        the Flink backpressure experiment across processes\n"
    "  experiment --pipeline       the same through a source, two workers and a sink\n"
    "  stat [NAME...] [--json | --prometheus] [--interval S]\n"
    "                              no NAME: every channel; the stages (processes), the\n"
    "                              links between them and the bottleneck\n"
    "  export [--listen [ADDR:]PORT] [--interval S] [--max-requests N]\n"
    "                              serve the --prometheus text at http://ADDR:PORT/metrics\n"
    "                              (default 127.0.0.1:9464; port 0 picks a free one)\n"
    "  rm NAME...                  remove channels (processes using them keep working)\n"
    "  rm --stale [--force] [NAME...]\n"
    "                              remove every channel (or NAME) with no living endpoint\n"
    "                              (--force: also those still holding unread records)\n"
    "  help [COMMAND]              show this text, or one command's\n"
    "\n"
    "Every command takes --help (sluice COMMAND --help).\n" SLUICE_NAME_RULES
    "With --json, errors are also printed on stdout as one JSON line (type \"error\").\n"
    "\n"
    "exit status: 0 success; 1 a channel is missing, unsound (check) or could not be\n"
    "removed; 2 bad arguments, or export cannot listen on its address\n";

const char* subcommand_usage(std::string_view command) noexcept {
  if (command == "ls") return kLs;
  if (command == "stat") return kStat;
  if (command == "top") return kTop;
  if (command == "check") return kCheck;
  if (command == "rm") return kRm;
  if (command == "export") return kExport;
  return nullptr;
}

}  // namespace sluice::tools
