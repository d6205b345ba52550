#include "core/train/rank_processes.h"

#include <fcntl.h>
#include <signal.h>
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

absl::StatusOr<std::unique_ptr<RankProcesses>> RankProcesses::Start(const std::string& binary,
                                                                    const std::string& job_file, int world,
                                                                    int port, const std::string& log_dir) {
  std::unique_ptr<RankProcesses> rp(new RankProcesses());
  rp->log_dir_ = log_dir;
  const std::string parent = std::to_string(::getpid());
  for (int r = 1; r < world; ++r) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv = *e;
      const std::string key = kv.substr(0, kv.find('='));
      if (key == "WORLD_SIZE" || key == "RANK" || key == "LOCAL_RANK" || key == "LOCAL_WORLD_SIZE" ||
          key == "MASTER_ADDR" || key == "MASTER_PORT" || key == "BERTH_PARENT_PID") {
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
    env.push_back("BERTH_PARENT_PID=" + parent);  // the rank exits if this process dies
    std::vector<char*> envp;
    for (std::string& kv : env) envp.push_back(kv.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = {binary, "train-rank", "--job", job_file};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    const std::string log = JoinPath(log_dir, absl::StrCat("rank-", r, ".log"));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    pid_t pid = -1;
    const int err = ::posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (err != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot start rank ", r, " (", binary, "): ", std::strerror(err)));
    }
    rp->pids_.push_back(pid);
  }
  return rp;
}

absl::Status RankProcesses::Wait(std::chrono::milliseconds grace) {
  absl::Status first = absl::OkStatus();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  for (;;) {
    bool running = false;
    for (size_t i = 0; i < pids_.size(); ++i) {
      if (pids_[i] < 0) continue;
      int status = 0;
      const pid_t got = ::waitpid(pids_[i], &status, WNOHANG);
      if (got == 0) {
        running = true;
        continue;
      }
      pids_[i] = -1;
      if (got < 0) continue;
      const bool ok = WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 130);
      if (!ok && first.ok()) {
        const std::string how = WIFSIGNALED(status) ? absl::StrCat("was killed by signal ", WTERMSIG(status))
                                                    : absl::StrCat("exited with status ", WEXITSTATUS(status));
        // The end of its log says why (the log goes away with a failed job's directory).
        std::string tail;
        if (auto log = ReadFileToString(JoinPath(log_dir_, absl::StrCat("rank-", i + 1, ".log"))); log.ok()) {
          tail = std::string(absl::StripAsciiWhitespace(*log));
          if (tail.size() > 400) tail = "…" + tail.substr(tail.size() - 400);
        }
        first = absl::UnavailableError(absl::StrCat("rank ", i + 1, " ", how, tail.empty() ? "" : ": ", tail));
      }
    }
    if (!running) return first;
    if (std::chrono::steady_clock::now() > deadline) {
      for (pid_t p : pids_) {
        if (p > 0) ::kill(p, SIGKILL);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

RankProcesses::~RankProcesses() {
  for (pid_t p : pids_) {
    if (p > 0) ::kill(p, SIGKILL);
  }
  (void)Wait(std::chrono::milliseconds(0));
}

}  // namespace berth::train
