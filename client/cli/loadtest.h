// `berth loadtest`: an open-loop load generator for Classify.
#ifndef BERTH_CLIENT_CLI_LOADTEST_H_
#define BERTH_CLIENT_CLI_LOADTEST_H_

#include <CLI/CLI.hpp>
#include <functional>

namespace berth::cli {

void AddLoadtestCommand(CLI::App& app, std::function<int()>* run);

}  // namespace berth::cli

#endif  // BERTH_CLIENT_CLI_LOADTEST_H_
