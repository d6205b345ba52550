// `berth finetune --nproc-per-node N`: starts N copies of this command as ranks 0..N-1 of a
// local c10d group (torchrun's variables on 127.0.0.1) and supervises them.
#ifndef BERTH_CLIENT_CLI_LAUNCH_H_
#define BERTH_CLIENT_CLI_LAUNCH_H_

namespace berth::cli {

// Runs this process's own command line N times with WORLD_SIZE, RANK, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT set. If a rank fails (an exit
// status other than 0, or a signal), the others are stopped (SIGTERM, then SIGKILL after 10 s)
// and the launcher says which rank failed and how to resume. Ctrl-C reaches every rank, which
// checkpoint together. Returns the exit status for the command: 0, 130 when cancelled, else 1.
int LaunchLocalRanks(int nproc);

}  // namespace berth::cli

#endif  // BERTH_CLIENT_CLI_LAUNCH_H_
