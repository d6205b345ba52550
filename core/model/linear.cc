// Linear: at::linear for training and autograd, oneDNN (mkldnn_linear) for fp32 CPU inference.
#include "core/model/linear.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstdlib>
#include <string>

namespace berth {
namespace {

// fp32 training through oneDNN: y = x W^T + b and dx = dy W run as oneDNN inner products
// (the weight is re-packed every call, as it changes every step); dW = dy^T x stays a BLAS mm.
class OneDnnLinearFunction : public torch::autograd::Function<OneDnnLinearFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& w, const at::Tensor& b) {
    ctx->save_for_backward({x, w});
    std::vector<int64_t> shape = x.sizes().vec();
    at::Tensor y = at::mkldnn_linear(x.reshape({-1, w.size(1)}).contiguous().to_mkldnn(),
                                     w.contiguous().to_mkldnn(), b)
                       .to_dense();
    shape.back() = w.size(0);
    return y.view(shape);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& w = saved[1];
    at::Tensor g = grads[0].reshape({-1, w.size(0)}).contiguous();      // [rows, out]
    at::Tensor x2 = x.reshape({-1, w.size(1)});                          // [rows, in]
    at::Tensor dx = at::mkldnn_linear(g.to_mkldnn(), w.t().contiguous().to_mkldnn(), c10::nullopt)
                        .to_dense()
                        .view(x.sizes());
    at::Tensor dw = g.t().mm(x2);
    at::Tensor db = g.sum(0);
    return {dx, dw, db};
  }
};

}  // namespace

bool OneDnnLinearEnabled() {
  static const bool enabled = [] {
    const char* off = std::getenv("BERTH_NO_ONEDNN");
    return at::hasMKLDNN() && !(off != nullptr && std::string(off) == "1");
  }();
  return enabled;
}

LinearImpl::LinearImpl(int64_t in, int64_t out) : in_features(in), out_features(out) {
  weight = register_parameter("weight", at::empty({out, in}));
  bias = register_parameter("bias", at::empty({out}));
  // torch.nn.Linear's default initialisation; models re-initialise as transformers does.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  torch::NoGradGuard no_grad;
  weight.uniform_(-bound, bound);
  bias.uniform_(-bound, bound);
}

void LinearImpl::DropPackedWeight() {
  std::lock_guard<std::mutex> lock(mu_);
  packed_ = torch::Tensor();
}

void LinearImpl::train(bool on) {
  DropPackedWeight();
  torch::nn::Module::train(on);
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  const bool fast = !is_training() && !c10::GradMode::is_enabled() && x.device().is_cpu() &&
                    x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat &&
                    OneDnnLinearEnabled();
  if (!fast) {
    const bool train_fast = c10::GradMode::is_enabled() && x.device().is_cpu() &&
                            x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat &&
                            !at::autocast::is_autocast_enabled(at::kCPU) && OneDnnLinearEnabled();
    if (train_fast) return OneDnnLinearFunction::apply(x, weight, bias);
    return at::linear(x, weight, bias);
  }
  at::Tensor packed;
  {
    std::lock_guard<std::mutex> lock(mu_);
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
