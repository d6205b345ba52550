// `berth finetune` and `berth eval`: offline training and evaluation over berth::core.
#ifndef BERTH_CLIENT_CLI_TRAIN_COMMANDS_H_
#define BERTH_CLIENT_CLI_TRAIN_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <functional>

namespace berth::cli {

void AddTrainCommands(CLI::App& app, std::function<int()>* run);

}  // namespace berth::cli

#endif  // BERTH_CLIENT_CLI_TRAIN_COMMANDS_H_
