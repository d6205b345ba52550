// AdamW on its own: the fused step against libtorch's own (unfused) torch::optim::AdamW over
// several updates with weight decay, and the Trainer's parameter groups.
#include "core/train/optimizer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <vector>

namespace berth::train {
namespace {

struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    dense = register_module("dense", torch::nn::Linear(4, 3));
    norm = register_module("LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({3})));
  }
  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(Tiny);

TEST(OptimizerTest, DecayOnWeightsOnlyNotOnBiasesOrLayerNorm) {
  Tiny model;
  data::TrainingSpec s;
  s.weight_decay = 0.01;
  auto opt = MakeAdamW(*model, s);
  ASSERT_EQ(opt->param_groups().size(), 2u);
  const auto& decay = opt->param_groups()[0];
  const auto& none = opt->param_groups()[1];
  EXPECT_EQ(static_cast<const torch::optim::AdamWOptions&>(decay.options()).weight_decay(), 0.01);
  EXPECT_EQ(static_cast<const torch::optim::AdamWOptions&>(none.options()).weight_decay(), 0.0);
  ASSERT_EQ(decay.params().size(), 1u);  // dense.weight
  EXPECT_TRUE(decay.params()[0].is_same(model->dense->weight));
  EXPECT_EQ(none.params().size(), 3u);  // dense.bias, LayerNorm weight and bias
}

// The fused kernel and torch's reference loop compute the same update; they may round
// differently in the last place (fused evaluates the bias corrections and the denominator in
// another order), and 5 updates of O(lr) = 1e-2 steps accumulate a few float ulps of values
// near 1: 1e-6 absolute is ~8 ulps of 1.0f (measured: at most 1.3e-7), far below one update's
// 1e-2 and below what leaving out the weight decay would change (~2.5e-4 per update here).
TEST(OptimizerTest, FusedStepEqualsTorchAdamW) {
  at::manual_seed(0);
  data::TrainingSpec s;
  s.learning_rate = 1e-2;
  s.weight_decay = 0.05;
  s.adam_beta1 = 0.8;
  s.adam_beta2 = 0.95;
  s.adam_epsilon = 1e-6;
  Tiny fused_model, reference_model;
  {
    at::NoGradGuard no_grad;
    auto a = fused_model->parameters(), b = reference_model->parameters();
    for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
  }
  std::vector<at::Tensor> initial;
  for (const at::Tensor& p : fused_model->parameters()) initial.push_back(p.detach().clone());
  auto fused = MakeAdamW(*fused_model, s);
  auto reference = MakeAdamW(*reference_model, s);
  for (int step = 0; step < 5; ++step) {
    const at::Tensor x = at::randn({8, 4});
    for (Tiny* m : {&fused_model, &reference_model}) {
      (*m)->zero_grad();
      (*m)->norm((*m)->dense(x)).pow(2).sum().backward();
    }
    const double lr = s.learning_rate * (1.0 - 0.1 * step);  // a schedule changes lr between steps
    SetLearningRate(*fused, lr);
    SetLearningRate(*reference, lr);
    AdamWStep(*fused);
    reference->step();
  }
  auto a = fused_model->parameters(), b = reference_model->parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(at::allclose(a[i], b[i], /*rtol=*/0, /*atol=*/1e-6))
        << i << ": " << (a[i] - b[i]).abs().max();
    // Every parameter moved by about lr per update, so the comparison is not between two
    // untouched copies.
    EXPECT_GT((a[i] - initial[i]).abs().max().item<double>(), 1e-3) << i;
  }
}

}  // namespace
}  // namespace berth::train
