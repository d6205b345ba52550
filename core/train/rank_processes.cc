#include "core/train/rank_processes.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/train/distributed.h"
#include "core/util/files.h"

extern char** environ;

namespace berth::train {
namespace {

// This process's environment without the variables that place a rank, plus those of rank `r`.
std::vector<std::string> RankEnvironment(int world, int r, int port, bool tie_to_parent) {
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
  if (tie_to_parent) env.push_back(absl::StrCat("BERTH_PARENT_PID=", ::getpid()));  // ends with us
  return env;
}

}  // namespace

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
  absl::Status failed;
  for (int r = first_rank; r < world; ++r) {
    std::vector<std::string> env = RankEnvironment(world, r, port, !log_dir.empty());
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
      failed = absl::FailedPreconditionError(
          absl::StrCat("cannot start rank ", r, " (", argv[0], "): ", std::strerror(err)));
      break;
    }
    rp->pids_.push_back(pid);
  }
  // The ranks that started are watched (and, on an error, killed by the destructor).
  {
    absl::MutexLock lock(&rp->mu_);
    rp->exited_.assign(rp->pids_.size(), false);
  }
  for (size_t i = 0; i < rp->pids_.size(); ++i) {
    RankProcesses* self = rp.get();
    rp->reapers_.emplace_back([self, i] { self->Reap(i); });
  }
  if (!failed.ok()) return failed;
  return rp;
}

void RankProcesses::Reap(size_t i) {
  // Wait without reaping, so that the pid stays this rank's until exited_ says it has gone:
  // SignalAll never signals a pid the system may have given to another process.
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pids_[i]), &info, WEXITED | WNOWAIT) != 0 &&
         errno == EINTR) {
  }
  absl::MutexLock lock(&mu_);
  int status = 0;
  while (::waitpid(pids_[i], &status, 0) < 0 && errno == EINTR) {
  }
  exited_[i] = true;
  exits_.push_back(
      Exit{first_rank_ + static_cast<int>(i), status, stopping_, std::chrono::steady_clock::now()});
}

bool RankProcesses::Failed(int status) {
  return !(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 130));
}

void RankProcesses::SignalAll(int sig) {
  stopping_ = true;
  for (size_t i = 0; i < pids_.size(); ++i) {
    if (!exited_[i]) ::kill(pids_[i], sig);
  }
}

bool RankProcesses::AwaitAll(std::chrono::steady_clock::time_point deadline) {
  auto all_exited = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::all_of(exited_.begin(), exited_.end(), [](bool e) { return e; });
  };
  absl::MutexLock lock(&mu_);
  const absl::Condition done(&all_exited);
  if (deadline == std::chrono::steady_clock::time_point::max()) {
    mu_.Await(done);
    return true;
  }
  const auto left = deadline - std::chrono::steady_clock::now();
  return mu_.AwaitWithTimeout(done, absl::FromChrono(std::max(left, decltype(left)::zero())));
}

std::optional<RankProcesses::Exit> RankProcesses::CauseLocked() const {
  std::optional<Exit> first;
  for (const Exit& e : exits_) {
    if (!Failed(e.status) || e.after_stop) continue;
    if (WIFSIGNALED(e.status)) return e;  // killed from outside: nothing else explains it
    if (!first) first = e;
  }
  if (first) return first;
  // Every failure followed this process's own stop (a rank killed after its grace ran out).
  for (const Exit& e : exits_) {
    if (Failed(e.status)) return e;
  }
  return std::nullopt;
}

absl::Status RankProcesses::Describe(const Exit& e) const {
  const std::string how = WIFSIGNALED(e.status)
                              ? absl::StrCat("was killed by signal ", WTERMSIG(e.status), " (",
                                             strsignal(WTERMSIG(e.status)), ")")
                              : absl::StrCat("exited with status ", WEXITSTATUS(e.status));
  // The end of its log says why (the log goes away with a failed job's directory).
  std::string tail;
  if (!log_dir_.empty()) {
    if (auto log = ReadFileToString(JoinPath(log_dir_, absl::StrCat("rank-", e.rank, ".log")));
        log.ok()) {
      tail = std::string(absl::StripAsciiWhitespace(*log));
      if (tail.size() > 400) tail = "…" + tail.substr(tail.size() - 400);
    }
  }
  return absl::UnavailableError(
      absl::StrCat("rank ", e.rank, " ", how, tail.empty() ? "" : ": ", tail));
}

absl::Status RankProcesses::Wait(std::chrono::milliseconds grace) {
  if (!AwaitAll(std::chrono::steady_clock::now() + grace)) {
    {
      absl::MutexLock lock(&mu_);
      SignalAll(SIGKILL);
    }
    AwaitAll(std::chrono::steady_clock::time_point::max());
  }
  absl::MutexLock lock(&mu_);
  std::optional<Exit> cause = CauseLocked();
  return cause ? Describe(*cause) : absl::OkStatus();
}

absl::Status RankProcesses::Supervise(const volatile sig_atomic_t* forward,
                                      std::chrono::milliseconds stop_grace, bool* cancelled,
                                      std::chrono::milliseconds settle) {
  using Clock = std::chrono::steady_clock;
  bool forwarded = false;
  std::optional<Clock::time_point> failed_at;
  for (;;) {
    if (!forwarded && forward != nullptr && *forward == SIGTERM) {
      forwarded = true;
      absl::MutexLock lock(&mu_);
      SignalAll(SIGTERM);  // asked to stop: what follows is no failure's cause
    }
    bool all = false, failed = false, killed = false;
    {
      absl::MutexLock lock(&mu_);
      all = std::all_of(exited_.begin(), exited_.end(), [](bool e) { return e; });
      for (const Exit& e : exits_) {
        failed |= Failed(e.status);
        killed |= Failed(e.status) && WIFSIGNALED(e.status) && !e.after_stop;
      }
    }
    if (all) break;
    if (failed && !failed_at) failed_at = Clock::now();
    // One failed: the group is broken. A rank killed from outside explains it at once; else
    // the others get `settle` to show whether one of them was killed, then are stopped.
    if (failed && (killed || Clock::now() - *failed_at >= settle)) {
      {
        absl::MutexLock lock(&mu_);
        SignalAll(SIGTERM);
      }
      Wait(stop_grace).IgnoreError();  // the cause is read below
      break;
    }
    AwaitAll(Clock::now() + std::chrono::milliseconds(20));
  }
  absl::MutexLock lock(&mu_);
  if (cancelled != nullptr) {
    *cancelled = std::any_of(exits_.begin(), exits_.end(), [](const Exit& e) {
      return WIFEXITED(e.status) && WEXITSTATUS(e.status) == 130;
    });
  }
  std::optional<Exit> cause = CauseLocked();
  return cause ? Describe(*cause) : absl::OkStatus();
}

absl::Status RankProcesses::CauseAfterOwnFailure(const absl::Status& own,
                                                 std::chrono::milliseconds grace) {
  const auto own_at = std::chrono::steady_clock::now();
  Wait(grace).IgnoreError();
  absl::MutexLock lock(&mu_);
  std::optional<Exit> cause = CauseLocked();
  if (cause && !cause->after_stop && (WIFSIGNALED(cause->status) || cause->when <= own_at))
    return Describe(*cause);
  return own;
}

RankProcesses::~RankProcesses() {
  {
    absl::MutexLock lock(&mu_);
    SignalAll(SIGKILL);
  }
  for (std::thread& t : reapers_) t.join();
}

absl::StatusOr<LocalRanks> LaunchLocalRanks(const std::vector<std::string>& argv, int world,
                                            int first_rank, const std::string& log_dir) {
  LocalRanks out;
  out.port = FreeLoopbackPort();
  if (out.port == 0) {
    return absl::UnavailableError("no free port on 127.0.0.1 for the ranks' rendezvous");
  }
  auto started = RankProcesses::Start(argv, world, first_rank, out.port, log_dir);
  if (!started.ok()) return started.status();
  out.processes = std::move(*started);
  return out;
}

}  // namespace berth::train
