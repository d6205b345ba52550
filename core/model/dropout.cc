// FastDropout: the mask is a pure function of (seed, element index), filled in parallel.
#include "core/model/dropout.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/custom_function.h>

#include <mutex>

#include "core/runtime/runtime.h"

namespace berth {
namespace {

inline uint64_t SplitMix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A float mask of x's shape: 0 with probability p, else 1/(1-p).
at::Tensor MakeMask(const at::Tensor& like, double p) {
  uint64_t seed;
  {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    seed = at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
  }
  at::Tensor mask = at::empty(like.sizes(), like.options().dtype(at::kFloat).device(at::kCPU));
  float* m = mask.data_ptr<float>();
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  // Keep when the top 24 bits of the hash fall below keep * 2^24.
  const uint64_t threshold = static_cast<uint64_t>((1.0 - p) * 16777216.0);
  ParallelFor(0, mask.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t h = SplitMix64(seed ^ (static_cast<uint64_t>(i) * 0xD1B54A32D192ED03ULL));
      m[i] = (h >> 40) < threshold ? scale : 0.0f;
    }
  });
  return mask;
}

class DropoutFunction : public torch::autograd::Function<DropoutFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, double p) {
    at::Tensor mask = MakeMask(x, p);
    if (mask.device() != x.device() || mask.scalar_type() != x.scalar_type()) {
      mask = mask.to(x.options());
    }
    ctx->save_for_backward({mask});
    return x * mask;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const at::Tensor mask = ctx->get_saved_variables()[0];
    return {grad[0] * mask, at::Tensor()};
  }
};

}  // namespace

torch::Tensor FastDropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p <= 0.0) return x;
  if (p >= 1.0) return x * 0.0;
  if (!x.device().is_cpu()) return at::dropout(x, p, training);  // torch's fused GPU kernel
  return DropoutFunction::apply(x, p);
}

}  // namespace berth
