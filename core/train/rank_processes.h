// Local ranks of a data-parallel group as child processes, with torchrun's variables set
// (rendezvous on 127.0.0.1). Two users: `berth finetune --nproc-per-node N` starts ranks 0..N-1
// (copies of its own command line) and supervises them; berth-server, itself rank 0 of a job
// with workers: N, starts ranks 1..N-1 as `berth train-rank --job FILE`.
#ifndef BERTH_CORE_TRAIN_RANK_PROCESSES_H_
#define BERTH_CORE_TRAIN_RANK_PROCESSES_H_

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

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
  // 130: cancelled with the group); otherwise the first failure, naming the rank, how it
  // ended and the end of its log.
  absl::Status Wait(std::chrono::milliseconds grace);

  // Waits for every rank; the first that fails makes the others stop (SIGTERM, then SIGKILL
  // after `stop_grace`). A SIGTERM noted in `*forward` is passed on to the ranks. Returns the
  // first failure, or OK; `cancelled` tells whether a rank exited 130 (interrupted).
  absl::Status Supervise(const volatile sig_atomic_t* forward, std::chrono::milliseconds stop_grace,
                         bool* cancelled);

 private:
  RankProcesses() = default;
  // Reaps rank index i if it has exited (false while it runs); records the first failure.
  bool Reap(size_t i);
  void SignalAll(int sig);

  std::vector<pid_t> pids_;  // index i is rank first_rank_ + i; -1 once reaped
  int first_rank_ = 0;
  std::string log_dir_;
  absl::Status first_failure_;
  bool cancelled_ = false;
};

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_RANK_PROCESSES_H_
