// Process-wide torch runtime settings: CPU kernel capability and intra-op threads.
#ifndef BERTH_CORE_RUNTIME_H_
#define BERTH_CORE_RUNTIME_H_

namespace berth {

// Call first thing in main(), before torch initialises: tunes glibc malloc for large tensor
// churn and selects AVX-512 element-wise kernels when the CPU has them (unless
// ATEN_CPU_CAPABILITY is already set).
void PrepareTorchEnvironment();

// Sets torch's intra-op threads; 0 means one per available core. (torch 1.13 would otherwise
// pick a single thread on small VMs.) Returns the number in effect.
int ConfigureThreads(int num_threads);

}  // namespace berth

#endif  // BERTH_CORE_RUNTIME_H_
