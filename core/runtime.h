// Process-wide torch runtime settings: CPU kernel capability and intra-op threads.
#ifndef BERTH_CORE_RUNTIME_H_
#define BERTH_CORE_RUNTIME_H_

#include <string>

namespace berth {

// Call first thing in main(), before torch initialises: tunes glibc malloc for large tensor
// churn and selects AVX-512 element-wise kernels when the CPU has them (unless
// ATEN_CPU_CAPABILITY is already set).
void PrepareTorchEnvironment();

// Sets torch's intra-op threads; 0 means one per available core. (torch 1.13 would otherwise
// pick a single thread on small VMs.) Returns the number in effect.
int ConfigureThreads(int num_threads);

// Frees the calling thread's OpenMP worker threads (omp_pause_resource_all, OpenMP 5.0: GNU
// libgomp frees that thread's pool). Every thread that runs torch owns a team of intra-op
// threads, and once a process holds more OpenMP threads than cores libgomp stops spinning
// between parallel regions, so each region of the team that works pays for waking its threads.
// A thread that is done with torch for a while (one that loaded a model for a batcher thread)
// calls this. Harmless otherwise: the thread's next parallel region starts a new team.
void ReleaseThreadPool();

// Whether this CPU has bf16 instructions (avx512_bf16). Without them torch emulates bf16
// matmuls, about 150x slower than fp32 (measured on an AVX2-only AMD EPYC).
bool CpuHasBf16Instructions();

// What this process's LibTorch is and can do: `berth version` prints it, and the CI check that
// CUDA is compiled in reads it.
struct RuntimeInfo {
  std::string torch_version;  // the headers built against, e.g. "2.11.0"
  bool cuda_built = false;    // libtorch_cuda is linked and its hooks registered
  long cuda_runtime = 0;      // CUDA runtime version torch was built with (13000 = 13.0), 0 if none
  long cudnn = 0;             // cuDNN version (91900 = 9.19.0), 0 if none
  int cuda_devices = 0;       // GPUs visible now (0 on a machine without one)
  bool mkl = false, mkldnn = false;
  int threads = 0;  // intra-op threads in effect
};
RuntimeInfo DescribeRuntime();

}  // namespace berth

#endif  // BERTH_CORE_RUNTIME_H_
