// The optimizer of fine-tuning: torch.optim.AdamW as the Trainer sets it up (decay on every
// weight but biases and LayerNorm parameters) and steps it (fused).
#ifndef BERTH_CORE_TRAIN_OPTIMIZER_H_
#define BERTH_CORE_TRAIN_OPTIMIZER_H_

#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include <memory>

#include "core/data/training_spec.h"

namespace berth::train {

// Two parameter groups, as the Trainer's get_decay_parameter_names: weight_decay on every
// parameter except biases and LayerNorm weights, 0 on those; betas, eps and lr from `spec`.
std::unique_ptr<torch::optim::AdamW> MakeAdamW(const torch::nn::Module& model,
                                               const data::TrainingSpec& spec);

// Sets every group's learning rate (the schedule's value for this update).
void SetLearningRate(torch::optim::AdamW& opt, double lr);

// One AdamW update over the parameters that have a gradient: torch.optim.AdamW with
// fused=True (the Trainer's default optim, "adamw_torch_fused"), through torch's own fused
// kernel: one vectorised pass per parameter on the CPU, one launch per group on a GPU. The
// moments and step count live in the optimizer's state, so torch::save / torch::load of the
// optimizer keep working.
void AdamWStep(torch::optim::AdamW& opt);

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_OPTIMIZER_H_
