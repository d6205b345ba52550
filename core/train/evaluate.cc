// Loss and evaluation.
#include "core/train/evaluate.h"

#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>
#include <torch/utils.h>

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/model/model_dir.h"
#include "core/runtime/device.h"
#include "core/train/distributed_ops.h"
#include "core/util/files.h"
#include "core/util/status_macros.h"

namespace berth::train {

at::Tensor ComputeLoss(const at::Tensor& logits, const Batch& b, const data::TrainingSpec& s,
                       const at::Tensor& class_weights) {
  at::Tensor x = logits.to(at::kFloat);
  // A scorer: sentence-transformers' CrossEncoder (BCEWithLogitsLoss on the one logit) or
  // transformers' regression (MSELoss of the logit), both averaged over the rows.
  if (s.score_loss == "bce") return at::binary_cross_entropy_with_logits(x, b.targets);
  if (s.score_loss == "mse") return at::mse_loss(x, b.targets);
  if (s.multi_label) {
    return at::binary_cross_entropy_with_logits(x, b.targets, {}, class_weights);
  }
  return at::cross_entropy_loss(x, b.targets, class_weights, at::Reduction::Mean, -100,
                                s.label_smoothing);
}

AutocastGuard::AutocastGuard(bool on, const c10::Device& device) : on_(on), type_(device.type()) {
  if (!on_) return;
  prev_ = at::autocast::is_autocast_enabled(type_);
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(type_, at::kBFloat16);
}

AutocastGuard::~AutocastGuard() {
  if (!on_) return;
  at::autocast::set_autocast_enabled(type_, prev_);
  at::autocast::clear_cache();
}

data::EvalMetrics Evaluate(SequenceClassifierModule& model, const Encoded& data,
                           const std::vector<std::string>& labels, const data::TrainingSpec& s,
                           int32_t pad_id, const at::Tensor& class_weights,
                           const c10::Device& device, DistributedGroup* group) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  std::vector<int64_t> order(data.enc.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return data.enc[a].input_ids.size() < data.enc[b].input_ids.size();
  });
  const int64_t k = static_cast<int64_t>(labels.size());
  std::vector<int64_t> truth(data.enc.size()), pred(data.enc.size());
  std::vector<std::vector<uint8_t>> mtruth(data.enc.size()), mpred(data.enc.size());
  double loss_sum = 0;
  std::vector<double> example_losses(data.enc.size(), 0.0);
  const bool scorer = !s.score_loss.empty();
  std::vector<double> score_pred(scorer ? data.enc.size() : 0, 0.0);
  const int world = group != nullptr ? group->world_size() : 1;
  const int rank = group != nullptr ? group->rank() : 0;
  int64_t batch_index = -1;
  for (size_t i = 0; i < order.size(); i += s.eval_batch_size) {
    if (++batch_index % world != rank) continue;
    std::vector<int64_t> rows(order.begin() + i,
                              order.begin() + std::min(order.size(), i + s.eval_batch_size));
    Batch b = ToDevice(MakeBatch(data, rows, pad_id, 0, s.multi_label, k), device);
    at::Tensor logits;
    {
      AutocastGuard autocast(s.precision == data::Precision::kBf16, device);
      logits = model.forward(b.ids, b.types, ModelAttentionMask(b.mask, b.padded, device));
    }
    logits = logits.to(at::kFloat);
    loss_sum +=
        ComputeLoss(logits, b, s, class_weights).item<double>() * static_cast<double>(b.rows);
    at::Tensor per_example =
        s.score_loss == "bce"
            ? at::binary_cross_entropy_with_logits(logits, b.targets, {}, {}, at::Reduction::None)
                  .mean(1)
        : s.score_loss == "mse" ? at::mse_loss(logits, b.targets, at::Reduction::None).mean(1)
        : s.multi_label ? at::binary_cross_entropy_with_logits(logits, b.targets, {}, class_weights,
                                                               at::Reduction::None)
                              .mean(1)
                        : at::cross_entropy_loss(logits, b.targets, class_weights,
                                                 at::Reduction::None, -100, s.label_smoothing);
    const at::Tensor arg = logits.argmax(1).cpu().contiguous();
    const at::Tensor probs = at::sigmoid(logits).cpu().contiguous();
    const at::Tensor losses = per_example.to(at::kDouble).cpu().contiguous();
    // A regression scorer's answer is its logit ([rows, 1]); nothing else reads the logits here.
    const at::Tensor host_logits = s.score_loss == "mse" ? logits.cpu().contiguous() : at::Tensor();
    auto arg_a = arg.accessor<int64_t, 1>();
    auto probs_a = probs.accessor<float, 2>();
    auto losses_a = losses.accessor<double, 1>();
    for (int64_t r = 0; r < b.rows; ++r) {
      const int64_t idx = rows[r];
      example_losses[idx] = losses_a[r];
      if (scorer) {
        // What the served model answers: the sigmoid for "bce", the logit itself for "mse".
        score_pred[idx] = s.score_loss == "bce" ? probs_a[r][0] : host_logits.data_ptr<float>()[r];
      } else if (s.multi_label) {
        mtruth[idx].assign(k, 0);
        mpred[idx].assign(k, 0);
        for (int64_t c : data.labels[idx]) mtruth[idx][c] = 1;
        for (int64_t c = 0; c < k; ++c) mpred[idx][c] = probs_a[r][c] > s.multi_label_threshold;
      } else {
        truth[idx] = data.labels[idx][0];
        pred[idx] = arg_a[r];
      }
    }
  }
  if (world > 1) {
    const int64_t n = static_cast<int64_t>(data.enc.size());
    at::Tensor losses = at::from_blob(example_losses.data(), {n}, at::kDouble).clone();
    at::Tensor preds = at::zeros({s.multi_label ? n * k : n}, at::kLong);
    auto pa = preds.accessor<int64_t, 1>();
    for (int64_t i = 0; i < n; ++i) {
      if (s.multi_label) {
        for (int64_t c = 0; c < static_cast<int64_t>(mpred[i].size()); ++c)
          pa[i * k + c] = mpred[i][c];
      } else {
        pa[i] = pred[i];
      }
    }
    at::Tensor sum = at::full({1}, loss_sum, at::kDouble);
    if (scorer) {  // each rank filled its own rows and left the others 0
      at::Tensor scores =
          at::from_blob(score_pred.data(), {static_cast<int64_t>(score_pred.size())}, at::kDouble)
              .clone();
      AllReduceSum(*group, scores);
      std::copy(scores.data_ptr<double>(), scores.data_ptr<double>() + scores.numel(),
                score_pred.begin());
    }
    AllReduceSum(*group, losses);
    AllReduceSum(*group, preds);
    AllReduceSum(*group, sum);
    loss_sum = sum.item<double>();
    auto la = losses.accessor<double, 1>();
    for (int64_t i = 0; i < n; ++i) {
      example_losses[i] = la[i];
      if (scorer) continue;
      if (s.multi_label) {
        mtruth[i].assign(k, 0);
        mpred[i].assign(k, 0);
        for (int64_t c : data.labels[i]) mtruth[i][c] = 1;
        for (int64_t c = 0; c < k; ++c) mpred[i][c] = static_cast<uint8_t>(pa[i * k + c]);
      } else {
        truth[i] = data.labels[i][0];
        pred[i] = pa[i];
      }
    }
  }
  data::EvalMetrics m =
      scorer ? data::ComputeScoreMetrics(
                   std::vector<double>(data.scores.begin(), data.scores.end()), score_pred)
      : s.multi_label ? data::ComputeMultiLabelMetrics(mtruth, mpred, labels)
                      : data::ComputeSingleLabelMetrics(truth, pred, labels);
  m.loss = data.enc.empty() ? 0 : loss_sum / static_cast<double>(data.enc.size());
  m.example_losses = std::move(example_losses);
  if (was_training) model.train();
  return m;
}

}  // namespace berth::train
