// Dropout with a fast, parallel, counter-based mask generator (torch 1.13's CPU bernoulli_ is
// serial and took ~10% of a bert-base training step). Deterministic for a given state of
// torch's default generator, which supplies one 64-bit seed per call.
#ifndef BERTH_CORE_MODEL_DROPOUT_H_
#define BERTH_CORE_MODEL_DROPOUT_H_

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace berth {

// Zeroes each element with probability p and scales the rest by 1/(1-p); identity when p == 0
// or when not training. Differentiable.
torch::Tensor FastDropout(const torch::Tensor& x, double p, bool training);

class DropoutImpl : public torch::nn::Module {
 public:
  explicit DropoutImpl(double p) : p_(p) {}
  torch::Tensor forward(const torch::Tensor& x) { return FastDropout(x, p_, is_training()); }
  double p() const { return p_; }

 private:
  double p_;
};
TORCH_MODULE(Dropout);

}  // namespace berth

#endif  // BERTH_CORE_MODEL_DROPOUT_H_
