// The `berth` command line tool.
#include <CLI/CLI.hpp>

#include <functional>
#include <iostream>

#include "client/cli/offline_commands.h"
#ifdef BERTH_WITH_REMOTE
#include "client/cli/loadtest.h"
#include "client/cli/remote_commands.h"
#endif
#include "client/cli/train_commands.h"
#include "core/runtime.h"

int main(int argc, char** argv) {
  berth::PrepareTorchEnvironment();
  CLI::App app{"berth: fine-tune BERT-family text classifiers and serve them"};
  app.set_version_flag("--version", std::string("berth " BERTH_VERSION));
  app.require_subcommand(1);
  std::function<int()> run;
  berth::cli::AddOfflineCommands(app, &run);
  berth::cli::AddTrainCommands(app, &run);
#ifdef BERTH_WITH_REMOTE
  berth::cli::AddRemoteCommands(app, &run);
  berth::cli::AddLoadtestCommand(app, &run);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return run ? run() : 2;
}
