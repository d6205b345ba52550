// Torch runtime configuration shared by every executable.
#include "core/runtime/runtime.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/TensorIterator.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <sched.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"

namespace berth {

absl::Status LoadCudaLibraries() {
  static const absl::Status loaded = [] {
    std::string dir;
    if (void* cpu = dlopen("libtorch_cpu.so", RTLD_LAZY | RTLD_NOLOAD)) {
      link_map* map = nullptr;
      if (dlinfo(cpu, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr && map->l_name != nullptr) {
        const std::string path = map->l_name;
        if (const size_t slash = path.rfind('/'); slash != std::string::npos)
          dir = path.substr(0, slash + 1);
      }
      dlclose(cpu);  // gives back the reference RTLD_NOLOAD took
    }
    const std::string path = dir + "libtorch_cuda.so";
    if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) != nullptr) return absl::OkStatus();
    const char* why = dlerror();
    return absl::FailedPreconditionError("LibTorch's CUDA libraries could not be loaded (" + path +
                                         "): " + (why != nullptr ? why : "unknown error") +
                                         "; a CPU-only LibTorch has none, see `berth version`");
  }();
  return loaded;
}

void PrepareTorchEnvironment() {
  // An installed NVIDIA driver means CUDA may be asked for: load LibTorch's CUDA half now, as
  // linking it would have, before anything asks torch about CUDA.
  if (dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL) != nullptr) (void)LoadCudaLibraries();
  // Tensors of megabytes (up to the 94 MB word-embedding gradient) are allocated and freed for
  // every layer of every step. With glibc's defaults the large ones are mmap'ed and unmapped
  // each time and every page faults again on first touch, and freed heap memory is trimmed
  // back to the OS. Serving everything from the heap and keeping it makes a bert-base training
  // step ~25% faster; the price is that the process keeps its peak heap.
  // BERTH_DEFAULT_MALLOC=1 keeps glibc's defaults.
  const char* keep = std::getenv("BERTH_DEFAULT_MALLOC");
  if (keep == nullptr || std::string(keep) != "1") {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
  }
  // Attention on CUDA without cuDNN's kernels (flash and memory-efficient attention remain):
  // cuDNN builds an execution plan for every new shape, and batches of real text keep bringing
  // new shapes. Measured on an H200 (bert-base bf16, 16 clients sending one SST-2 sentence
  // each): a batch of ~16 took 24 ms with cuDNN allowed and 4.4 ms without, 636 -> 3,262
  // sentences/s. BERTH_CUDNN_SDPA=1 allows it again.
  const char* cudnn_sdpa = std::getenv("BERTH_CUDNN_SDPA");
  if (cudnn_sdpa == nullptr || std::string(cudnn_sdpa) != "1")
    at::globalContext().setSDPUseCuDNN(false);
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
    num_threads = sched_getaffinity(0, sizeof(set), &set) == 0
                      ? CPU_COUNT(&set)
                      : static_cast<int>(std::thread::hardware_concurrency());
    if (num_threads <= 0) num_threads = 1;
  }
  at::set_num_threads(num_threads);
  return at::get_num_threads();
}

void ReleaseThreadPool() {
  // Looked up rather than linked: Berth compiles nothing with -fopenmp, and the OpenMP runtime
  // is the one libtorch_cpu loads (the wheel's libgomp exports it since OpenMP 5.0).
  using Pause = int (*)(int);
  static const Pause pause = reinterpret_cast<Pause>(dlsym(RTLD_DEFAULT, "omp_pause_resource_all"));
  constexpr int kOmpPauseSoft = 1;  // omp_pause_soft in omp.h
  if (pause != nullptr) pause(kOmpPauseSoft);
}

std::string CpuFeatures::Summary() const {
  std::vector<std::string> on;
  if (avx2) on.push_back("avx2");
  if (avx512) on.push_back("avx512");
  if (avx512_vnni) on.push_back("avx512_vnni");
  if (avx_vnni) on.push_back("avx_vnni");
  if (avx512_bf16) on.push_back("avx512_bf16");
  if (amx) on.push_back("amx");
  return on.empty() ? "none" : absl::StrJoin(on, " ");
}

const CpuFeatures& HostCpuFeatures() {
  // The kernel's flag names, from the first processor's "flags" line (Linux; elsewhere none).
  static const CpuFeatures features = [] {
    CpuFeatures f;
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream words(line.substr(line.find(':') + 1));
      std::string w;
      while (words >> w) {
        if (w == "avx2") f.avx2 = true;
        if (w == "avx512f") f.avx512 = true;
        if (w == "avx512_vnni") f.avx512_vnni = true;
        if (w == "avx_vnni") f.avx_vnni = true;
        if (w == "avx512_bf16") f.avx512_bf16 = true;
        if (w == "amx_tile") f.amx = true;
      }
      break;
    }
    return f;
  }();
  return features;
}

RuntimeInfo DescribeRuntime() {
  RuntimeInfo r;
  r.torch_version = TORCH_VERSION;
  (void)LoadCudaLibraries();  // cuda_built below says whether it worked
  const at::CUDAHooksInterface& cuda = at::detail::getCUDAHooks();
  r.cuda_built = cuda.hasCUDART();
  if (r.cuda_built) {
    r.cuda_runtime = cuda.versionCUDART();
    r.cudnn = cuda.versionCuDNN();
    r.cuda_devices = static_cast<int>(torch::cuda::device_count());
  }
  r.mkl = at::hasMKL();
  r.mkldnn = at::hasMKLDNN();
  r.threads = at::get_num_threads();
  return r;
}

void ParallelFor(int64_t begin, int64_t end, int64_t grain,
                 absl::FunctionRef<void(int64_t, int64_t)> f) {
  if (begin >= end) return;
  grain = std::max<int64_t>(grain, 1);
  if (end - begin <= grain || at::get_num_threads() == 1 || at::in_parallel_region()) {
    f(begin, end);
    return;
  }
  // The iterator's one operand holds one index per grain (chunk), each its own value, so a
  // range of chunks' first element names where it starts; an index per element would write the
  // whole range out first. It only reads it: declared an output, as an iterator needs one.
  const int64_t chunks = (end - begin + grain - 1) / grain;
  at::Tensor index = at::arange(chunks, at::kLong);
  at::TensorIterator iter = at::TensorIteratorConfig()
                                .add_output(index)
                                .resize_outputs(false)
                                .check_all_same_dtype(false)
                                .build();
  iter.for_each(
      [&](char** data, const int64_t* strides, int64_t size0, int64_t size1) {
        for (int64_t j = 0; j < size1; ++j) {
          const char* row = data[0] + j * strides[1];
          TORCH_INTERNAL_ASSERT(size0 == 1 || strides[0] == sizeof(int64_t));
          const int64_t first = *reinterpret_cast<const int64_t*>(row);
          f(begin + first * grain, std::min(end, begin + (first + size0) * grain));
        }
      },
      /*grain_size=*/1);
}

}  // namespace berth
