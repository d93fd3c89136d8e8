// sluice: inspect and manage the channels on this host.

#include <cstdio>
#include <cstring>
#include <string>

#include "../../common/json_line.hpp"
#include "commands.hpp"
#include "usage.hpp"

namespace {

using sluice::tools::kSluiceUsage;

bool asks_for_help(int argc, char** argv) {
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      return true;
    }
  }
  return false;
}

// `sluice experiment --pipeline --help` shows the pipeline experiment's own usage.
bool has_pipeline_flag(int argc, char** argv) {
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--pipeline") == 0) {
      return true;
    }
  }
  return false;
}

bool wants_json(int argc, char** argv) {
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) {
      return true;
    }
  }
  return false;
}

// `sluice help [COMMAND]` and `sluice COMMAND --help`.
int print_help(const std::string& command) {
  if (command.empty()) {
    std::fputs(kSluiceUsage, stdout);
    return 0;
  }
  if (command == "experiment") {
    char program[] = "sluice";
    char name[] = "experiment";
    char help[] = "--help";
    char* args[] = {program, name, help, nullptr};
    return sluice::tools::run_experiment(3, args);
  }
  if (const char* text = sluice::tools::subcommand_usage(command)) {
    std::fputs(text, stdout);
    return 0;
  }
  std::fprintf(stderr, "sluice: no help for unknown command \"%s\"\n\n%s", command.c_str(),
               kSluiceUsage);
  return 2;
}

// On stderr always; with --json also as one JSON line on stdout, so that a
// script reading stdout sees every failure.
void report(bool json, const std::string& command, const std::string& message) {
  if (json) {
    std::printf("%s\n", sluice::tools::JsonLine()
                            .add("role", "sluice")
                            .add("type", "error")
                            .add("command", command)
                            .add("error", message)
                            .str()
                            .c_str());
    std::fflush(stdout);
  }
  std::fprintf(stderr, "sluice: %s\n", message.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kSluiceUsage, stderr);
    return 2;
  }
  const std::string command = argv[1];
  const bool json = wants_json(argc, argv);
  try {
    if (command == "help" || command == "--help" || command == "-h") {
      return print_help(argc > 2 ? argv[2] : "");
    }
    if (asks_for_help(argc, argv) && command == "experiment" && has_pipeline_flag(argc, argv)) {
      char program[] = "sluice";
      char name[] = "experiment";
      char pipeline[] = "--pipeline";
      char help[] = "--help";
      char* args[] = {program, name, pipeline, help, nullptr};
      return sluice::tools::run_experiment(4, args);
    }
    if (asks_for_help(argc, argv) &&
        (sluice::tools::subcommand_usage(command) != nullptr || command == "experiment")) {
      return print_help(command);
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
    report(json, command, e.what());
    const char* usage = sluice::tools::subcommand_usage(command);
    std::fprintf(stderr, "\n%s", usage != nullptr ? usage : kSluiceUsage);
    return 2;
  } catch (const std::exception& e) {
    report(json, command, e.what());
    return 1;
  }
}
