// `berth tokenize` and `berth predict`: offline commands that use berth::core on a model directory.
#ifndef BERTH_CLIENT_CLI_OFFLINE_COMMANDS_H_
#define BERTH_CLIENT_CLI_OFFLINE_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>

#include "core/infer/engine.h"

namespace berth::cli {

// The inference engine's flags, shared by `berth predict` and `berth eval` so that both take
// the same options with the same defaults.
struct EngineFlags {
  int batch_size = 64;
  int64_t max_batch_tokens = 8192;
  int window = 4096;
  int threads = 0;
  std::string precision = "fp32";
  std::string device = "cpu";
};

// --batch-size, --max-batch-tokens, --window, --threads, --precision, --device; `items` names
// what is batched ("lines", "examples").
void AddEngineFlags(CLI::App* cmd, EngineFlags* f, const std::string& items);
// The engine for one caller that hands over a window at a time: no waiting for company, room
// in the queue for a window. Also sets the process's intra-op threads.
EngineOptions MakeEngineOptions(const EngineFlags& f);

// Registers the offline subcommands on `app`. The selected one's action is stored in `*run`
// and returns the process exit code.
void AddOfflineCommands(CLI::App& app, std::function<int()>* run);

}  // namespace berth::cli

#endif  // BERTH_CLIENT_CLI_OFFLINE_COMMANDS_H_
