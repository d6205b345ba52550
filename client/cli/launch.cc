#include "client/cli/launch.h"

#include <signal.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "core/train/rank_processes.h"

namespace berth::cli {
namespace {

// This process's argv, as the kernel has it (the ranks run the same command).
std::vector<std::string> OwnCommandLine() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  std::string cur;
  for (char c : all) {
    if (c == '\0') {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return args;
}

volatile sig_atomic_t g_forward_signal = 0;
extern "C" void OnLauncherSignal(int sig) { g_forward_signal = sig; }

}  // namespace

int LaunchLocalRanks(int nproc) {
  std::vector<std::string> args = OwnCommandLine();
  args[0] = "/proc/self/exe";
  // Ctrl-C reaches the ranks directly (same process group); the launcher waits for them.
  // SIGTERM sent to the launcher alone is passed on.
  struct sigaction sa {};
  sa.sa_handler = OnLauncherSignal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  auto ranks = train::LaunchLocalRanks(args, nproc, /*first_rank=*/0, /*log_dir=*/"");
  if (!ranks.ok()) {
    std::cerr << "berth: " << ranks.status().message() << "\n";
    return 1;
  }
  std::cerr << "berth: started " << nproc << " ranks (gloo, rendezvous 127.0.0.1:" << ranks->port
            << ")\n";
  bool cancelled = false;
  const absl::Status failed =
      ranks->processes->Supervise(&g_forward_signal, std::chrono::seconds(10), &cancelled);
  if (!failed.ok()) {
    std::cerr << "berth: " << failed.message() << "; stopped the other ranks. "
              << "Rerun the same command with --resume to continue from the last checkpoint.\n";
    return 1;
  }
  return cancelled ? 130 : 0;
}

}  // namespace berth::cli
