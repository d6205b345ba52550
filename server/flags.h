// berth-server's command line: every option with its BERTH_* environment variable and its
// default, in one place that tests can parse without starting a server.
#ifndef BERTH_SERVER_FLAGS_H_
#define BERTH_SERVER_FLAGS_H_

#include <optional>
#include <string>

#include "server/server.h"

namespace berth::server {

// What berth-server runs with.
struct ServerCommand {
  ServerOptions options;
  std::string port_file;          // the bound port is written here once serving
  std::string metrics_port_file;  // the bound metrics port
  std::string http_port_file;     // the bound HTTP port
  bool json_logs = false;         // --log-format json
};

struct ParsedCommand {
  ServerCommand command;
  // Set when the process should exit instead of serving: after --help or --version (0), or a
  // usage error (non-zero). What the user should see has been printed.
  std::optional<int> exit_code;
};

// Parses `argv` (argv[0] is the program) and the BERTH_* environment. `version` is what
// --version prints.
ParsedCommand ParseServerCommand(int argc, const char* const* argv, const std::string& version);

}  // namespace berth::server

#endif  // BERTH_SERVER_FLAGS_H_
