// Torch runtime configuration shared by every executable.
#include "core/runtime.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <cstdlib>
#include <thread>

namespace berth {

void PrepareTorchEnvironment() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    setenv("ATEN_CPU_CAPABILITY", "avx512", /*overwrite=*/0);
  }
#endif
}

int ConfigureThreads(int num_threads) {
  if (num_threads <= 0) {
    cpu_set_t set;
    num_threads = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
                                                               : static_cast<int>(std::thread::hardware_concurrency());
    if (num_threads <= 0) num_threads = 1;
  }
  at::set_num_threads(num_threads);
  return at::get_num_threads();
}

}  // namespace berth
