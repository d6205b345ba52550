// `berth embed`: sentence embeddings offline (a model directory) or remote (--server).
#ifndef BERTH_CLIENT_CLI_EMBED_COMMAND_H_
#define BERTH_CLIENT_CLI_EMBED_COMMAND_H_

#include <CLI/CLI.hpp>
#include <functional>

namespace berth::cli {

// Registers `embed` on `app`; its action goes to `*run` and returns the exit code.
void AddEmbedCommand(CLI::App& app, std::function<int()>* run);
// Registers `similar`: the corpus lines nearest a query by cosine, offline.
void AddSimilarCommand(CLI::App& app, std::function<int()>* run);

}  // namespace berth::cli

#endif  // BERTH_CLIENT_CLI_EMBED_COMMAND_H_
