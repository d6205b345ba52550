#include "core/train/rank_processes.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/util/files.h"

extern char** environ;

namespace berth::train {

absl::StatusOr<std::unique_ptr<RankProcesses>> RankProcesses::Start(
    const std::vector<std::string>& argv_in, int world, int first_rank, int port,
    const std::string& log_dir) {
  std::unique_ptr<RankProcesses> rp(new RankProcesses());
  rp->first_rank_ = first_rank;
  rp->log_dir_ = log_dir;
  std::vector<std::string> args = argv_in;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (int r = first_rank; r < world; ++r) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv = *e;
      const std::string key = kv.substr(0, kv.find('='));
      if (key == "WORLD_SIZE" || key == "RANK" || key == "LOCAL_RANK" ||
          key == "LOCAL_WORLD_SIZE" || key == "MASTER_ADDR" || key == "MASTER_PORT" ||
          key == "BERTH_PARENT_PID") {
        continue;
      }
      env.push_back(kv);
    }
    env.push_back(absl::StrCat("WORLD_SIZE=", world));
    env.push_back(absl::StrCat("RANK=", r));
    env.push_back(absl::StrCat("LOCAL_RANK=", r));
    env.push_back(absl::StrCat("LOCAL_WORLD_SIZE=", world));
    env.push_back("MASTER_ADDR=127.0.0.1");
    env.push_back(absl::StrCat("MASTER_PORT=", port));
    if (!log_dir.empty())
      env.push_back(absl::StrCat("BERTH_PARENT_PID=", ::getpid()));  // ends with us
    std::vector<char*> envp;
    for (std::string& kv : env) envp.push_back(kv.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (!log_dir.empty()) {
      const std::string log = JoinPath(log_dir, absl::StrCat("rank-", r, ".log"));
      posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
      posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                       O_WRONLY | O_CREAT | O_APPEND, 0644);
      posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    }
    pid_t pid = -1;
    const int err = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (err != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot start rank ", r, " (", argv[0], "): ", std::strerror(err)));
    }
    rp->pids_.push_back(pid);
  }
  return rp;
}

bool RankProcesses::Reap(size_t i) {
  if (pids_[i] < 0) return true;
  int status = 0;
  const pid_t got = ::waitpid(pids_[i], &status, WNOHANG);
  if (got == 0) return false;
  pids_[i] = -1;
  if (got < 0) return true;
  const int rank = first_rank_ + static_cast<int>(i);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 130) cancelled_ = true;
  const bool ok = WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 130);
  if (!ok && first_failure_.ok()) {
    const std::string how = WIFSIGNALED(status)
                                ? absl::StrCat("was killed by signal ", WTERMSIG(status), " (",
                                               strsignal(WTERMSIG(status)), ")")
                                : absl::StrCat("exited with status ", WEXITSTATUS(status));
    // The end of its log says why (the log goes away with a failed job's directory).
    std::string tail;
    if (!log_dir_.empty()) {
      if (auto log = ReadFileToString(JoinPath(log_dir_, absl::StrCat("rank-", rank, ".log")));
          log.ok()) {
        tail = std::string(absl::StripAsciiWhitespace(*log));
        if (tail.size() > 400) tail = "…" + tail.substr(tail.size() - 400);
      }
    }
    first_failure_ = absl::UnavailableError(
        absl::StrCat("rank ", rank, " ", how, tail.empty() ? "" : ": ", tail));
  }
  return true;
}

void RankProcesses::SignalAll(int sig) {
  for (pid_t p : pids_) {
    if (p > 0) ::kill(p, sig);
  }
}

absl::Status RankProcesses::Wait(std::chrono::milliseconds grace) {
  const auto deadline = std::chrono::steady_clock::now() + grace;
  for (;;) {
    bool running = false;
    for (size_t i = 0; i < pids_.size(); ++i) running |= !Reap(i);
    if (!running) return first_failure_;
    if (std::chrono::steady_clock::now() > deadline) SignalAll(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

absl::Status RankProcesses::Supervise(const volatile sig_atomic_t* forward,
                                      std::chrono::milliseconds stop_grace, bool* cancelled) {
  bool forwarded = false;
  for (;;) {
    if (!forwarded && forward != nullptr && *forward == SIGTERM) {
      forwarded = true;
      SignalAll(SIGTERM);
    }
    bool running = false;
    for (size_t i = 0; i < pids_.size(); ++i) running |= !Reap(i);
    if (!first_failure_.ok()) {
      SignalAll(SIGTERM);  // one failed: the group is broken, stop the others
      // first_failure_ is what the caller hears; how the stopped ranks ended adds nothing.
      Wait(stop_grace).IgnoreError();
      break;
    }
    if (!running) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (cancelled != nullptr) *cancelled = cancelled_;
  return first_failure_;
}

RankProcesses::~RankProcesses() {
  SignalAll(SIGKILL);
  Wait(std::chrono::milliseconds(0)).IgnoreError();  // only reaps: every rank was just killed
}

}  // namespace berth::train
