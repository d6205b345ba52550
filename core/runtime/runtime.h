// Process-wide torch runtime settings: CPU kernel capability and intra-op threads.
#ifndef BERTH_CORE_RUNTIME_RUNTIME_H_
#define BERTH_CORE_RUNTIME_RUNTIME_H_

#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace berth {

// Call first thing in main(), before torch initialises: tunes glibc malloc for large tensor
// churn, selects AVX-512 element-wise kernels when the CPU has them (unless
// ATEN_CPU_CAPABILITY is already set), and loads LibTorch's CUDA libraries when an NVIDIA
// driver is installed (LoadCudaLibraries).
void PrepareTorchEnvironment();

// Loads LibTorch's CUDA half into the process, once: libtorch_cuda.so from the directory of the
// libtorch_cpu.so in use, with cuBLAS, cuDNN and the rest it needs. Berth's programs link only
// the CPU half, because on a machine without a GPU the CUDA libraries cost start-up time for
// nothing (0.2-0.25 s of a one-line `berth predict` on a 2-core VM, loading and unloading them).
// PrepareTorchEnvironment calls this when a driver is installed; ParseDevice and
// DescribeRuntime call it when asked about CUDA. It must come before anything asks torch about
// CUDA: torch settles its CUDA hooks on first use, for the life of the process.
// An error says why the libraries could not be loaded (a CPU-only LibTorch has none).
absl::Status LoadCudaLibraries();

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

// The CPU features that decide Berth's kernels. Without avx512_bf16 (or AMX) torch emulates
// bf16 matmuls, about 150x slower than fp32 (measured on an AVX2-only AMD EPYC); fbgemm's int8
// linear accumulates in 32 bits only with avx512_vnni.
struct CpuFeatures {
  bool avx2 = false, avx512 = false, avx512_vnni = false, avx_vnni = false, avx512_bf16 = false,
       amx = false;
  // "avx2 avx512 avx512_vnni ..." (the ones present), or "none".
  std::string Summary() const;
};
// This machine's, from the kernel's flags in /proc/cpuinfo (none elsewhere). Computed once.
const CpuFeatures& HostCpuFeatures();

// What this process's LibTorch is and can do: `berth version` prints it, and the CI check that
// CUDA is compiled in reads it.
struct RuntimeInfo {
  std::string torch_version;  // the headers built against, e.g. "2.11.0"
  bool cuda_built = false;    // libtorch_cuda is loaded and its hooks registered
  long cuda_runtime = 0;      // CUDA runtime version torch was built with (13000 = 13.0), 0 if none
  long cudnn = 0;             // cuDNN version (91900 = 9.19.0), 0 if none
  int cuda_devices = 0;       // GPUs visible now (0 on a machine without one)
  bool mkl = false, mkldnn = false;
  int threads = 0;  // intra-op threads in effect
};
RuntimeInfo DescribeRuntime();

// f(b, e) over [begin, end) split into contiguous ranges of whole grains (the last range may end
// short) on ATen's intra-op threads, as at::parallel_for would. at::parallel_for itself is
// compiled into its caller and Berth builds without -fopenmp, so there it runs on one thread;
// this goes through TensorIterator::for_each, which libtorch compiled with OpenMP. Runs f on the
// calling thread alone when the range is one grain, there is one thread, or it is called from
// inside a parallel region.
void ParallelFor(int64_t begin, int64_t end, int64_t grain,
                 absl::FunctionRef<void(int64_t, int64_t)> f);

}  // namespace berth

#endif  // BERTH_CORE_RUNTIME_RUNTIME_H_
