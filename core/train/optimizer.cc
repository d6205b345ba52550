// AdamW set-up and the fused step.
#include "core/train/optimizer.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/normalization.h>

#include <map>
#include <set>
#include <vector>

#include "absl/strings/match.h"

namespace berth::train {

std::unique_ptr<torch::optim::AdamW> MakeAdamW(const torch::nn::Module& model,
                                               const data::TrainingSpec& s) {
  std::vector<at::Tensor> decay, no_decay;
  std::set<const void*> layer_norm_params;
  for (const auto& mod : model.named_modules()) {
    if (mod.value()->as<torch::nn::LayerNorm>() != nullptr) {
      for (const auto& p : mod.value()->parameters())
        layer_norm_params.insert(p.unsafeGetTensorImpl());
    }
  }
  for (const auto& p : model.named_parameters()) {
    const bool nd = absl::StrContains(p.key(), "bias") ||
                    layer_norm_params.count(p.value().unsafeGetTensorImpl());
    (nd ? no_decay : decay).push_back(p.value());
  }
  auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(s.learning_rate)
                                                            .betas({s.adam_beta1, s.adam_beta2})
                                                            .eps(s.adam_epsilon)
                                                            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(s.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  return std::make_unique<torch::optim::AdamW>(std::move(groups),
                                               torch::optim::AdamWOptions(s.learning_rate));
}

void SetLearningRate(torch::optim::AdamW& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

void AdamWStep(torch::optim::AdamW& opt) {
  for (auto& group : opt.param_groups()) {
    auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    // The kernel only reads the step counts, so parameters at the same count share one tensor
    // (one fill on the device per distinct count, not one per parameter).
    std::map<int64_t, at::Tensor> step_tensors;
    for (at::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      // torch 2.x keys the optimizer's state by the parameter's TensorImpl.
      auto& slot = opt.state()[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto st = std::make_unique<torch::optim::AdamWParamState>();
        st->step(0);
        st->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
        st->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
        slot = std::move(st);
      }
      auto& st = static_cast<torch::optim::AdamWParamState&>(*slot);
      st.step(st.step() + 1);  // torch increments before the kernel, which reads the new count
      params.push_back(p.detach());
      grads.push_back(p.grad());
      exp_avgs.push_back(st.exp_avg());
      exp_avg_sqs.push_back(st.exp_avg_sq());
      at::Tensor& step = step_tensors[st.step()];
      if (!step.defined())
        step = at::full({}, static_cast<float>(st.step()), p.options().dtype(at::kFloat));
      steps.push_back(step);
    }
    if (params.empty()) continue;
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, o.lr(),
                      std::get<0>(o.betas()), std::get<1>(o.betas()), o.weight_decay(), o.eps(),
                      /*amsgrad=*/false, /*maximize=*/false);
  }
}

}  // namespace berth::train
