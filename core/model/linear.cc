// Linear: at::linear for training and autograd, oneDNN (mkldnn_linear) for fp32 CPU inference.
// (Training through oneDNN inner products paid under torch 1.13; under 2.11 it made a bert-mini
// fine-tune ~20% slower than at::linear's MKL path, so training takes at::linear.)
#include "core/model/linear.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "absl/synchronization/mutex.h"

namespace berth {

bool OneDnnLinearEnabled() {
  static const bool enabled = [] {
    const char* off = std::getenv("BERTH_NO_ONEDNN");
    return at::hasMKLDNN() && !(off != nullptr && std::string(off) == "1");
  }();
  return enabled;
}

namespace {
thread_local bool skip_parameter_init = false;
}  // namespace

SkipParameterInit::SkipParameterInit() : previous_(skip_parameter_init) {
  skip_parameter_init = true;
}
SkipParameterInit::~SkipParameterInit() { skip_parameter_init = previous_; }
bool SkipParameterInit::active() { return skip_parameter_init; }

torch::nn::EmbeddingOptions EmbeddingOptionsFor(int64_t num_embeddings, int64_t dim) {
  torch::nn::EmbeddingOptions o(num_embeddings, dim);
  if (skip_parameter_init) o._weight(at::empty({num_embeddings, dim}));
  return o;
}

LinearImpl::LinearImpl(int64_t in, int64_t out) : in_features(in), out_features(out) {
  weight = register_parameter("weight", at::empty({out, in}));
  bias = register_parameter("bias", at::empty({out}));
  if (skip_parameter_init) return;
  // torch.nn.Linear's default initialisation; models re-initialise as transformers does.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  torch::NoGradGuard no_grad;
  weight.uniform_(-bound, bound);
  bias.uniform_(-bound, bound);
}

void LinearImpl::DropPackedWeight() {
  absl::MutexLock lock(&mu_);
  packed_ = torch::Tensor();
}

void LinearImpl::train(bool on) {
  DropPackedWeight();
  torch::nn::Module::train(on);
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  const bool fast = !is_training() && !c10::GradMode::is_enabled() && x.device().is_cpu() &&
                    x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat &&
                    in_features >= kOneDnnMinFeatures && out_features >= kOneDnnMinFeatures &&
                    OneDnnLinearEnabled();
  if (!fast) return at::linear(x, weight, bias);
  at::Tensor packed;
  {
    absl::MutexLock lock(&mu_);
    if (!packed_.defined()) packed_ = weight.contiguous().to_mkldnn();
    packed = packed_;
  }
  std::vector<int64_t> shape = x.sizes().vec();
  at::Tensor x2 = x.reshape({-1, in_features}).contiguous();
  at::Tensor y = at::mkldnn_linear(x2.to_mkldnn(), packed, bias).to_dense();
  shape.back() = out_features;
  return y.view(shape);
}

}  // namespace berth
