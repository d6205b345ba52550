// Ranks 1..N-1 of a local data-parallel group as child processes, for a parent that is rank 0
// itself (berth-server running a job with workers: N). Each child runs
// `BINARY train-rank --job FILE` with torchrun's variables set and its output in a log file.
#ifndef BERTH_CORE_TRAIN_RANK_PROCESSES_H_
#define BERTH_CORE_TRAIN_RANK_PROCESSES_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace berth::train {

class RankProcesses {
 public:
  // Starts ranks 1..world-1 (rendezvous at 127.0.0.1:port); their output goes to
  // log_dir/rank-R.log. Errors: the binary cannot be started.
  static absl::StatusOr<std::unique_ptr<RankProcesses>> Start(const std::string& binary,
                                                              const std::string& job_file, int world, int port,
                                                              const std::string& log_dir);
  ~RankProcesses();  // kills and reaps what is still running

  // Waits up to `grace` for every rank to exit, then kills the rest. OK if all exited 0 (or
  // 130: cancelled with the group); otherwise the first failure, naming the rank, how it
  // ended and its log.
  absl::Status Wait(std::chrono::milliseconds grace);

 private:
  RankProcesses() = default;
  std::vector<pid_t> pids_;  // index r-1 is rank r; -1 once reaped
  std::string log_dir_;
};

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_RANK_PROCESSES_H_
