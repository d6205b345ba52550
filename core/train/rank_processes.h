// Local ranks of a data-parallel group as child processes, with torchrun's variables set
// (rendezvous on 127.0.0.1). Two users share it through LaunchLocalRanks: `berth finetune
// --nproc-per-node N` starts ranks 0..N-1 (copies of its own command line) and supervises them;
// berth-server, itself rank 0 of a job with workers: N, starts ranks 1..N-1 as `berth
// train-rank --job FILE`.
//
// When a group breaks, one rank's end is its cause and the others' follow from it: a rank whose
// peer vanished fails too, and may well exit first. The cause is a rank killed by a signal this
// process did not send, else the rank that failed first; a failure after this process began
// stopping the group is never the cause. Each rank has a thread blocked in waitpid, so exits are
// ordered as they happen, not as a poll happens to find them.
#ifndef BERTH_CORE_TRAIN_RANK_PROCESSES_H_
#define BERTH_CORE_TRAIN_RANK_PROCESSES_H_

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace berth::train {

class RankProcesses {
 public:
  // Starts ranks first_rank..world-1, each running `argv` (argv[0]: the executable). With a
  // log_dir their output goes to log_dir/rank-R.log and the ranks end when this process dies;
  // without, they share this process's terminal. Errors: a rank cannot be started.
  static absl::StatusOr<std::unique_ptr<RankProcesses>> Start(const std::vector<std::string>& argv,
                                                              int world, int first_rank, int port,
                                                              const std::string& log_dir);
  ~RankProcesses();  // kills and reaps what is still running

  // Waits up to `grace` for every rank to exit, then kills the rest. OK if all exited 0 (or
  // 130: cancelled with the group); otherwise the cause (above), naming the rank, how it ended
  // and the end of its log.
  absl::Status Wait(std::chrono::milliseconds grace);

  // Waits for every rank; once one fails, the others get `settle` to end on their own (so that a
  // rank killed at the same moment is seen as such), then are stopped (SIGTERM, SIGKILL after
  // `stop_grace`). A SIGTERM noted in `*forward` is passed on to the ranks. Returns the cause,
  // or OK; `cancelled` tells whether a rank exited 130 (interrupted).
  absl::Status Supervise(const volatile sig_atomic_t* forward, std::chrono::milliseconds stop_grace,
                         bool* cancelled,
                         std::chrono::milliseconds settle = std::chrono::milliseconds(2000));

  // For a process that is itself a rank of the group (berth-server is rank 0): its own rank
  // failed with `own`. Waits up to `grace` for the child ranks, then returns the cause: a child
  // killed by a signal, else a child that failed before `own` did, else `own`.
  absl::Status CauseAfterOwnFailure(const absl::Status& own, std::chrono::milliseconds grace);

 private:
  struct Exit {
    int rank = 0;
    int status = 0;           // as waitpid gives it
    bool after_stop = false;  // this process had already begun stopping the group
    std::chrono::steady_clock::time_point when;
  };
  RankProcesses() = default;
  // Blocks in waitpid for child index i and records its exit.
  void Reap(size_t i);
  void SignalAll(int sig) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits until every rank has exited or `deadline`; whether all have.
  bool AwaitAll(std::chrono::steady_clock::time_point deadline) ABSL_LOCKS_EXCLUDED(mu_);
  // The exit that broke the group (nullopt: none failed).
  std::optional<Exit> CauseLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Describe(const Exit& e) const;
  static bool Failed(int status);

  std::vector<pid_t> pids_;  // index i is rank first_rank_ + i
  int first_rank_ = 0;
  std::string log_dir_;
  std::vector<std::thread> reapers_;  // one per rank

  mutable absl::Mutex mu_;
  std::vector<bool> exited_ ABSL_GUARDED_BY(mu_);
  std::vector<Exit> exits_ ABSL_GUARDED_BY(mu_);  // in the order they happened
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;    // SignalAll was called
};

// A group of local ranks on a free loopback port: what both launchers start.
struct LocalRanks {
  int port = 0;  // the rendezvous, 127.0.0.1:port
  std::unique_ptr<RankProcesses> processes;
};

// Picks a free port and starts ranks first_rank..world-1 of `argv` (see RankProcesses::Start).
absl::StatusOr<LocalRanks> LaunchLocalRanks(const std::vector<std::string>& argv, int world,
                                            int first_rank, const std::string& log_dir);

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_RANK_PROCESSES_H_
