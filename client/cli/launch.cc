#include "client/cli/launch.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/train/distributed.h"

namespace berth::cli {
namespace {

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

std::string Describe(int status) {
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  return absl::StrCat("exited with status ", WEXITSTATUS(status));
}

volatile sig_atomic_t g_forward_signal = 0;
extern "C" void OnLauncherSignal(int sig) { g_forward_signal = sig; }

}  // namespace

int LaunchLocalRanks(int nproc) {
  const int port = train::FreeLoopbackPort();
  if (port == 0) {
    std::cerr << "berth: no free port on 127.0.0.1 for the ranks' rendezvous\n";
    return 1;
  }
  std::vector<std::string> args = OwnCommandLine();
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cerr << "berth: starting " << nproc << " ranks (gloo, rendezvous 127.0.0.1:" << port << ")\n";

  // Ctrl-C reaches the ranks directly (same process group); the launcher waits for them.
  // SIGTERM sent to the launcher alone is passed on.
  struct sigaction sa {};
  sa.sa_handler = OnLauncherSignal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  std::vector<pid_t> pids(nproc, -1);
  for (int r = 0; r < nproc; ++r) {
    pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("berth: fork");
      for (pid_t p : pids) {
        if (p > 0) ::kill(p, SIGKILL);
      }
      return 1;
    }
    if (pid == 0) {
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::execv("/proc/self/exe", argv.data());
      std::perror("berth: exec");
      ::_exit(127);
    }
    pids[r] = pid;
  }

  int result = 0;
  int alive = nproc;
  bool stopping = false;
  auto stop_deadline = std::chrono::steady_clock::now();
  int forwarded = 0;
  while (alive > 0) {
    if (g_forward_signal == SIGTERM && forwarded != SIGTERM) {
      forwarded = SIGTERM;
      for (pid_t p : pids) {
        if (p > 0) ::kill(p, SIGTERM);
      }
    }
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      int rank = -1;
      for (int r = 0; r < nproc; ++r) {
        if (pids[r] == pid) rank = r, pids[r] = -1;
      }
      --alive;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      const bool cancelled = WIFEXITED(status) && WEXITSTATUS(status) == 130;
      if (cancelled && result == 0) result = 130;
      if (!ok && !cancelled && !stopping) {
        std::cerr << "berth: rank " << rank << " " << Describe(status) << "; stopping the other ranks. "
                  << "Rerun the same command with --resume to continue from the last checkpoint.\n";
        result = 1;
        stopping = true;
        stop_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (pid_t p : pids) {
          if (p > 0) ::kill(p, SIGTERM);
        }
      }
      continue;
    }
    if (stopping && std::chrono::steady_clock::now() > stop_deadline) {
      for (pid_t p : pids) {
        if (p > 0) ::kill(p, SIGKILL);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return result;
}

}  // namespace berth::cli
