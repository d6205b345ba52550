// The `berth` commands that talk to a Berth server over gRPC (berth::client): upload, train,
// status, watch, cancel, jobs, classify, models, model, alias, delete-model, demo.
#ifndef BERTH_CLIENT_CLI_REMOTE_COMMANDS_H_
#define BERTH_CLIENT_CLI_REMOTE_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <functional>

namespace berth::cli {

void AddRemoteCommands(CLI::App& app, std::function<int()>* run);

}  // namespace berth::cli

#endif  // BERTH_CLIENT_CLI_REMOTE_COMMANDS_H_
