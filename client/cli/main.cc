// The `berth` command line tool, and `berth-client` (the same main without BERTH_WITH_OFFLINE:
// the remote commands only, no LibTorch).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>

#ifdef BERTH_WITH_OFFLINE
#include "client/cli/embed_command.h"
#include "client/cli/offline_commands.h"
#include "client/cli/train_commands.h"
#include "core/runtime/runtime.h"
#endif
#ifdef BERTH_WITH_REMOTE
#include "client/cli/loadtest.h"
#include "client/cli/remote_commands.h"
#endif

int main(int argc, char** argv) {
#ifdef BERTH_WITH_OFFLINE
  berth::PrepareTorchEnvironment();
  CLI::App app{"berth: fine-tune BERT-family text classifiers and serve them"};
  app.set_version_flag("--version", std::string("berth " BERTH_VERSION));
#else
  CLI::App app{
      "berth-client: the remote commands of berth (a Berth server's jobs, models and "
      "classification)"};
  app.set_version_flag("--version", std::string("berth-client " BERTH_VERSION));
#endif
  app.require_subcommand(1);
  std::function<int()> run;
#ifdef BERTH_WITH_OFFLINE
  berth::cli::AddOfflineCommands(app, &run);
  berth::cli::AddEmbedCommand(app, &run);
  berth::cli::AddSimilarCommand(app, &run);
  berth::cli::AddTrainCommands(app, &run);
#endif
#ifdef BERTH_WITH_REMOTE
  berth::cli::AddRemoteCommands(app, &run);
  berth::cli::AddLoadtestCommand(app, &run);
#endif
  int rc = 2;
  bool parsed = false;
  try {
    app.parse(argc, argv);
    parsed = true;
  } catch (const CLI::ParseError& e) {
    rc = app.exit(e);  // --help, --version, or a usage error
  }
  if (parsed && run) rc = run();
  // The command is done and its files are closed. Leave without running the static destructors:
  // LibTorch's unregister thousands of operators, which took 0.2-0.3 s of a one-line
  // `berth predict` (with CUDA's libraries' exit handlers).
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(rc);
}
