#pragma once

// The subcommands of the `sluice` tool. Each returns the process exit status
// and throws UsageError for bad arguments.

#include <string>

#include "../../common/arguments.hpp"
#include "sluice/transport/channel_info.hpp"

namespace sluice::tools {

int run_ls(int argc, char** argv);
int run_rm(int argc, char** argv);
int run_stat(int argc, char** argv);
int run_top(int argc, char** argv);
int run_check(int argc, char** argv);
int run_experiment(int argc, char** argv);
int run_pipeline_experiment(int argc, char** argv);  // sluice experiment --pipeline
int run_export(int argc, char** argv);

// Throws UsageError (exit status 2) when `name` cannot be a channel name.
void require_channel_name(const std::string& name);

// "1234 alive", "1234 dead", "-" (never attached), ...
std::string endpoint_text(const sluice::transport::EndpointInfo& endpoint);

}  // namespace sluice::tools
