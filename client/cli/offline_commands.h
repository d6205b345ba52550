// `berth tokenize` and `berth predict`: offline commands that use berth::core on a model directory.
#ifndef BERTH_CLIENT_CLI_OFFLINE_COMMANDS_H_
#define BERTH_CLIENT_CLI_OFFLINE_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <functional>

namespace berth::cli {

// Registers the offline subcommands on `app`. The selected one's action is stored in `*run`
// and returns the process exit code.
void AddOfflineCommands(CLI::App& app, std::function<int()>* run);

}  // namespace berth::cli

#endif  // BERTH_CLIENT_CLI_OFFLINE_COMMANDS_H_
