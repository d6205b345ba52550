// berth-server: the Berth gRPC service.
#include <pthread.h>
#include <signal.h>

#include <iostream>

#include "core/runtime/runtime.h"
#include "core/util/files.h"
#include "core/util/log.h"
#include "server/flags.h"
#include "server/server.h"

int main(int argc, char** argv) {
  berth::PrepareTorchEnvironment();
  berth::server::ParsedCommand parsed =
      berth::server::ParseServerCommand(argc, argv, "berth-server " BERTH_VERSION);
  if (parsed.exit_code) return *parsed.exit_code;
  const berth::server::ServerCommand& command = parsed.command;
  berth::SetLogFormat(command.json_logs ? berth::LogFormat::kJson : berth::LogFormat::kText);

  // Signals are taken by this thread alone (sigwait), so every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = berth::server::Server::Start(command.options);
  if (!server.ok()) {
    std::cerr << "berth-server: " << server.status().message() << "\n";
    return 1;
  }
  // --port-file last: scripts wait for it, and by then the other doors' files are written too.
  for (const auto& [file, port] :
       {std::make_pair(command.metrics_port_file, (*server)->metrics_port()),
        std::make_pair(command.http_port_file, (*server)->http_port()),
        std::make_pair(command.port_file, (*server)->port())}) {
    if (file.empty()) continue;
    absl::Status s = berth::WriteFileAtomically(file, std::to_string(port) + "\n");
    if (!s.ok()) std::cerr << "berth-server: " << s.message() << "\n";
  }
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    // Each logs its outcome; on an error the previous tokens or certificates stay in force.
    if (!command.options.auth_tokens_file.empty()) (void)(*server)->ReloadAuth();
    if (!command.options.tls_cert.empty()) (void)(*server)->ReloadTls();
  }
  berth::LogEvent("server.signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*server)->Shutdown();
  server->reset();  // closes the store
  return 0;
}
