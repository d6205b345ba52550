// The fine-tuning loop. Numerics follow transformers' Trainer (4.36) with torch.optim.AdamW:
// update k uses lr_lambda(k-1) of get_linear_schedule_with_warmup, gradients are clipped to a
// total L2 norm (reported before clipping), the loss of an update is the mean of its
// micro-batch losses.
#include "core/train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>
#include <torch/utils.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <numeric>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/device.h"
#include "core/model/bert.h"
#include "core/model/hub.h"
#include "core/model/model_dir.h"
#include "core/model/presets.h"
#include "core/util/data_dir.h"
#include "core/runtime.h"
#include "core/text/wordpiece.h"
#include "core/train/distributed_ops.h"
#include "core/train/optimizer.h"
#include "core/train/schedule.h"
#include "core/train/sharding.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/status_macros.h"
#include "core/util/log.h"

namespace berth::train {
namespace {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Model set-up

// Loads (or creates) the base model and fits its head to `labels`: the base head is kept when
// its id2label is exactly this label set (its order is kept too), else a fresh head is
// initialised as transformers does.
absl::StatusOr<LoadedModel> PrepareModel(const std::string& base, std::vector<std::string>* labels,
                                         bool multi_label, uint64_t seed) {
  at::manual_seed(seed);
  LoadedModel m;
  std::unique_ptr<SafetensorsFile> weights;
  if (std::optional<std::string> preset = PresetNameOf(base)) {
    ASSIGN_OR_RETURN(m, CreateRandomModel(*preset, berth::BerthDataDir()));
  } else {
    // A local directory, or a Hub id fetched into the Hugging Face cache.
    ASSIGN_OR_RETURN(std::string dir, ResolveModelPath(base, HubOptions::FromEnvironment()));
    ASSIGN_OR_RETURN(m.config, ModelConfig::Load(JoinPath(dir, "config.json")));
    ASSIGN_OR_RETURN(m.tokenizer, text::LoadTokenizer(dir));
    ASSIGN_OR_RETURN(weights, SafetensorsFile::Open(JoinPath(dir, "model.safetensors")));
  }
  const std::vector<std::string> base_labels = m.config.id2label;
  std::vector<std::string> sorted_base = base_labels, sorted_data = *labels;
  std::sort(sorted_base.begin(), sorted_base.end());
  std::sort(sorted_data.begin(), sorted_data.end());
  m.config.id2label = *labels;  // the head's shape depends only on the number of labels
  m.config.problem_type = multi_label ? kMultiLabel : kSingleLabel;
  try {
    ASSIGN_OR_RETURN(m.module, CreateSequenceClassifier(m.config));
    m.module->InitWeights(m.config.initializer_range);
    // The base's head is kept when it has every head tensor and exactly this label set.
    bool keep_head = weights != nullptr && sorted_base == sorted_data;
    for (const auto& p : m.module->named_parameters()) {
      for (const std::string& prefix : m.module->HeadPrefixes()) {
        if (keep_head && absl::StartsWith(p.key(), prefix) && weights->Find(p.key()) == nullptr) keep_head = false;
      }
    }
    if (keep_head) {
      *labels = base_labels;
      m.config.id2label = base_labels;
    }
    if (weights != nullptr) {
      LoadWeightsOptions o;
      o.allow_unexpected = true;  // e.g. the pre-training head "cls." of bert-base-uncased
      if (!keep_head) o.skip_prefixes = m.module->HeadPrefixes();
      RETURN_IF_ERROR(LoadWeights(*m.module, *weights, o, &m.report));
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("building the model failed: ", e.what_without_backtrace()));
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Data

struct Encoded {
  std::vector<text::Encoding> enc;
  std::vector<std::vector<int64_t>> labels;  // class ids per example
};

absl::StatusOr<Encoded> EncodeDataset(const Dataset& d, const std::vector<std::string>& labels,
                                      const text::Tokenizer& tok, int64_t max_length, bool pairs) {
  std::map<std::string, int64_t> ids;
  for (size_t i = 0; i < labels.size(); ++i) ids[labels[i]] = static_cast<int64_t>(i);
  Encoded out;
  out.enc.reserve(d.examples.size());
  text::EncodeOptions o;
  o.max_length = static_cast<int>(max_length);
  for (const Example& e : d.examples) {
    std::vector<int64_t> y;
    for (const std::string& l : e.labels) {
      auto it = ids.find(l);
      if (it == ids.end()) {
        return absl::InvalidArgumentError(absl::StrCat(d.source, ":", e.line, ": label '", l,
                                                       "' does not occur in the training data"));
      }
      y.push_back(it->second);
    }
    auto enc = pairs ? tok.EncodePair(e.text, e.text_pair, o) : tok.Encode(e.text, o);
    if (!enc.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(d.source, ":", e.line, ": ", enc.status().message()));
    }
    out.enc.push_back(std::move(*enc));
    out.labels.push_back(std::move(y));
  }
  return out;
}

struct Batch {
  at::Tensor ids, types, mask, targets;
  int64_t rows = 0;
  bool padded = false;  // some row is shorter than the batch (the host knows; see ModelAttentionMask)
};

Batch MakeBatch(const Encoded& data, const std::vector<int64_t>& rows, int32_t pad_id,
                int64_t pad_to, bool multi_label, int64_t num_labels) {
  int64_t seq = pad_to;
  for (int64_t r : rows) seq = std::max<int64_t>(seq, static_cast<int64_t>(data.enc[r].input_ids.size()));
  const int64_t n = static_cast<int64_t>(rows.size());
  Batch b;
  b.rows = n;
  b.ids = at::full({n, seq}, pad_id, at::kLong);
  b.types = at::zeros({n, seq}, at::kLong);
  b.mask = at::zeros({n, seq}, at::kLong);
  auto ids = b.ids.accessor<int64_t, 2>();
  auto types = b.types.accessor<int64_t, 2>();
  auto mask = b.mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const text::Encoding& e = data.enc[rows[i]];
    for (size_t t = 0; t < e.input_ids.size(); ++t) {
      ids[i][t] = e.input_ids[t];
      types[i][t] = e.token_type_ids[t];
      mask[i][t] = e.attention_mask[t];
      b.padded = b.padded || e.attention_mask[t] == 0;
    }
    b.padded = b.padded || static_cast<int64_t>(e.input_ids.size()) < seq;
  }
  if (multi_label) {
    b.targets = at::zeros({n, num_labels}, at::kFloat);
    auto tg = b.targets.accessor<float, 2>();
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t c : data.labels[rows[i]]) tg[i][c] = 1.0f;
    }
  } else {
    b.targets = at::empty({n}, at::kLong);
    auto tg = b.targets.accessor<int64_t, 1>();
    for (int64_t i = 0; i < n; ++i) tg[i] = data.labels[rows[i]].at(0);
  }
  return b;
}


// The group's last collective: every rank returns only once rank 0 has saved the model.
absl::Status EndBarrier(DistributedGroup* group) {
  if (group == nullptr) return absl::OkStatus();
  try {
    at::Tensor done = at::zeros({1}, at::kDouble);
    AllReduceSum(*group, done);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("rank ", group->rank(), ": the group broke up at the end: ", e.what()));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Loss and evaluation

at::Tensor ComputeLoss(const at::Tensor& logits, const Batch& b, const TrainingSpec& s,
                       const at::Tensor& class_weights) {
  at::Tensor x = logits.to(at::kFloat);
  if (s.multi_label) {
    return at::binary_cross_entropy_with_logits(x, b.targets, {}, class_weights);
  }
  return at::cross_entropy_loss(x, b.targets, class_weights, at::Reduction::Mean, -100,
                                s.label_smoothing);
}

// A batch on the training device: pinned host memory and copies that do not wait, so the copy
// overlaps whatever the device is still doing. On the CPU, the batch as it is.
Batch ToDevice(Batch b, const c10::Device& device) {
  if (device.is_cpu()) return b;
  for (at::Tensor* t : {&b.ids, &b.types, &b.mask, &b.targets}) *t = t->pin_memory().to(device, /*non_blocking=*/true);
  return b;
}

// RAII: autocast to bf16 for the forward pass when asked for (CPU or CUDA autocast).
class AutocastGuard {
 public:
  AutocastGuard(bool on, const c10::Device& device) : on_(on), type_(device.type()) {
    if (!on_) return;
    prev_ = at::autocast::is_autocast_enabled(type_);
    at::autocast::set_autocast_enabled(type_, true);
    at::autocast::set_autocast_dtype(type_, at::kBFloat16);
  }
  ~AutocastGuard() {
    if (!on_) return;
    at::autocast::set_autocast_enabled(type_, prev_);
    at::autocast::clear_cache();
  }

 private:
  bool on_;
  at::DeviceType type_;
  bool prev_ = false;
};

// The total L2 norm of the gradients (returned, before clipping), and the gradients scaled by
// min(max_norm / (norm + 1e-6), 1) when max_norm > 0: torch.nn.utils.clip_grad_norm_ with its
// multi-tensor (foreach) kernels, the norm of the per-tensor norms. On the CPU the factor is read
// on the host and a factor of exactly 1 skipped (multiplying by 1 changes nothing); on a GPU it
// stays on the device, the same float division and clamp, so nothing waits for the device.
at::Tensor ClipGradNorm(const std::vector<at::Tensor>& params, double max_norm, const c10::Device& device) {
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return at::zeros({}, at::TensorOptions().device(device));
  const at::Tensor total = at::stack(at::_foreach_norm(grads, 2)).norm(2);
  if (max_norm <= 0) return total;
  if (device.is_cpu()) {
    const float coef = static_cast<float>(max_norm) / (total.item<float>() + 1e-6f);
    if (coef < 1.0f) at::_foreach_mul_(grads, coef);
  } else {
    const at::Tensor coef =
        at::div(at::full({}, static_cast<float>(max_norm), total.options()), total + 1e-6f).clamp_max(1.0f);
    at::_foreach_mul_(grads, coef);
  }
  return total;
}

// With a group, rank r evaluates batches r, r + world, ... and the per-example results are
// summed across ranks (each example is filled in by exactly one rank), so every rank ends with
// the metrics one process would compute.
EvalMetrics Evaluate(SequenceClassifierModule& model, const Encoded& data,
                     const std::vector<std::string>& labels, const TrainingSpec& s, int32_t pad_id,
                     const at::Tensor& class_weights, const c10::Device& device,
                     DistributedGroup* group = nullptr) {
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
      AutocastGuard autocast(s.precision == Precision::kBf16, device);
      logits = model.forward(b.ids, b.types, ModelAttentionMask(b.mask, b.padded, device));
    }
    logits = logits.to(at::kFloat);
    loss_sum += ComputeLoss(logits, b, s, class_weights).item<double>() * static_cast<double>(b.rows);
    at::Tensor per_example =
        s.multi_label ? at::binary_cross_entropy_with_logits(logits, b.targets, {}, class_weights,
                                                             at::Reduction::None)
                            .mean(1)
                      : at::cross_entropy_loss(logits, b.targets, class_weights, at::Reduction::None,
                                               -100, s.label_smoothing);
    const at::Tensor arg = logits.argmax(1).cpu().contiguous();
    const at::Tensor probs = at::sigmoid(logits).cpu().contiguous();
    const at::Tensor losses = per_example.to(at::kDouble).cpu().contiguous();
    auto arg_a = arg.accessor<int64_t, 1>();
    auto probs_a = probs.accessor<float, 2>();
    auto losses_a = losses.accessor<double, 1>();
    for (int64_t r = 0; r < b.rows; ++r) {
      const int64_t idx = rows[r];
      example_losses[idx] = losses_a[r];
      if (s.multi_label) {
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
        for (int64_t c = 0; c < static_cast<int64_t>(mpred[i].size()); ++c) pa[i * k + c] = mpred[i][c];
      } else {
        pa[i] = pred[i];
      }
    }
    at::Tensor sum = at::full({1}, loss_sum, at::kDouble);
    AllReduceSum(*group, losses);
    AllReduceSum(*group, preds);
    AllReduceSum(*group, sum);
    loss_sum = sum.item<double>();
    auto la = losses.accessor<double, 1>();
    for (int64_t i = 0; i < n; ++i) {
      example_losses[i] = la[i];
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
  EvalMetrics m = s.multi_label ? ComputeMultiLabelMetrics(mtruth, mpred, labels)
                                : ComputeSingleLabelMetrics(truth, pred, labels);
  m.loss = data.enc.empty() ? 0 : loss_sum / static_cast<double>(data.enc.size());
  m.example_losses = std::move(example_losses);
  if (was_training) model.train();
  return m;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

struct TrainState {
  int64_t update = 0;         // optimizer updates done
  int64_t epoch = 0;          // epoch of the next micro-batch
  int64_t next_batch = 0;     // index in that epoch's batch list
  double loss_sum = 0;        // over all updates, for the mean train loss
  int64_t samples = 0;        // examples processed
  double best_metric = 0;
  bool has_best = false;
  int64_t best_update = 0;
  int evals_without_improvement = 0;
  std::vector<Json> evals;
  int64_t last_eval_update = -1;

  Json ToJson() const {
    return {{"update", update}, {"epoch", epoch}, {"next_batch", next_batch},
            {"loss_sum", loss_sum}, {"samples", samples}, {"best_metric", best_metric},
            {"has_best", has_best}, {"best_update", best_update},
            {"evals_without_improvement", evals_without_improvement}, {"evals", evals},
            {"last_eval_update", last_eval_update}, {"format", 1}};
  }
  static absl::StatusOr<TrainState> FromJson(const Json& j, const std::string& what) {
    TrainState s;
    try {
      s.update = j.at("update");
      s.epoch = j.at("epoch");
      s.next_batch = j.at("next_batch");
      s.loss_sum = j.at("loss_sum");
      s.samples = j.at("samples");
      s.best_metric = j.at("best_metric");
      s.has_best = j.at("has_best");
      s.best_update = j.at("best_update");
      s.evals_without_improvement = j.at("evals_without_improvement");
      s.evals = j.at("evals").get<std::vector<Json>>();
      s.last_eval_update = j.at("last_eval_update");
    } catch (const Json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": damaged trainer state: ", e.what()));
    }
    return s;
  }
};

at::Tensor CpuRngState() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state().clone();
}

void SetCpuRngState(const at::Tensor& state) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

absl::Status WriteCheckpoint(const std::string& root, const TrainState& state,
                             const SequenceClassifierModule& model, torch::optim::AdamW& opt,
                             const at::Tensor& rng_state, const FineTuneJob& job,
                             const std::vector<std::string>& labels) {
  const std::string name = absl::StrCat("ckpt-", state.update);
  const std::string final_dir = JoinPath(root, name);
  const std::string tmp = final_dir + ".partial";
  RETURN_IF_ERROR(RemoveAll(tmp));
  RETURN_IF_ERROR(MakeDirectories(tmp));
  RETURN_IF_ERROR(SaveWeights(model, JoinPath(tmp, "model.safetensors")));
  try {
    torch::save(opt, JoinPath(tmp, "optimizer.pt"));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("cannot save optimizer state: ", e.what_without_backtrace()));
  }
  const at::Tensor rng = rng_state.contiguous();
  RETURN_IF_ERROR(WriteFileAtomically(
      JoinPath(tmp, "rng.bin"),
      absl::string_view(static_cast<const char*>(rng.data_ptr()), static_cast<size_t>(rng.numel()))));
  Json st = state.ToJson();
  st["labels"] = labels;
  st["base_model"] = job.base_model;
  st["train_path"] = job.train_path;
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(tmp, "state.json"), DumpJson(st)));
  RETURN_IF_ERROR(RemoveAll(final_dir));
  if (std::rename(tmp.c_str(), final_dir.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename checkpoint into ", final_dir));
  }
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(root, "latest"), name + "\n"));
  // Older checkpoints are no longer needed.
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(root));
  for (const std::string& n : names) {
    if (absl::StartsWith(n, "ckpt-") && n != name) {
      LogIfError(RemoveAll(JoinPath(root, n)), "checkpoint.cleanup_failed", {{"path", JoinPath(root, n)}});
    }
  }
  return absl::OkStatus();
}

absl::Status ReadCheckpoint(const std::string& root, TrainState* state, SequenceClassifierModule& model,
                            torch::optim::AdamW& opt, std::vector<std::string>* labels) {
  ASSIGN_OR_RETURN(std::string latest, ReadFileToString(JoinPath(root, "latest")));
  while (!latest.empty() && (latest.back() == '\n' || latest.back() == ' ')) latest.pop_back();
  const std::string dir = JoinPath(root, latest);
  ASSIGN_OR_RETURN(Json st, ReadJsonFile(JoinPath(dir, "state.json")));
  ASSIGN_OR_RETURN(*state, TrainState::FromJson(st, dir));
  if (st.contains("labels") && st["labels"].get<std::vector<std::string>>() != *labels) {
    return absl::FailedPreconditionError(absl::StrCat(dir, ": the checkpoint was made with labels [",
                                                      absl::StrJoin(st["labels"].get<std::vector<std::string>>(), ", "),
                                                      "], not these"));
  }
  ASSIGN_OR_RETURN(auto weights, SafetensorsFile::Open(JoinPath(dir, "model.safetensors")));
  RETURN_IF_ERROR(LoadWeights(model, *weights, {}, nullptr));
  try {
    torch::load(opt, JoinPath(dir, "optimizer.pt"));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(dir, ": cannot load optimizer state: ", e.what_without_backtrace()));
  }
  ASSIGN_OR_RETURN(std::string rng, ReadFileToString(JoinPath(dir, "rng.bin")));
  at::Tensor t = at::empty({static_cast<int64_t>(rng.size())}, at::kByte);
  std::memcpy(t.data_ptr(), rng.data(), rng.size());
  try {
    SetCpuRngState(t);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(dir, ": bad RNG state: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

}  // namespace


absl::Status ValidateSpec(const TrainingSpec& s) {
  auto bad = [](absl::string_view field, absl::string_view rule) {
    return absl::InvalidArgumentError(absl::StrCat(field, " ", rule));
  };
  if (auto d = ParseDevice(s.device, "device"); !d.ok()) return d.status();
  if (!(s.epochs > 0) && s.max_steps <= 0) return bad("epochs", "must be positive (or set max_steps)");
  if (s.max_steps < 0) return bad("max_steps", "must not be negative");
  if (s.batch_size < 1 || s.batch_size > 65536) return bad("batch_size", "must be in [1, 65536]");
  if (s.eval_batch_size < 1 || s.eval_batch_size > 65536) return bad("eval_batch_size", "must be in [1, 65536]");
  if (!(s.learning_rate > 0 && s.learning_rate < 1)) return bad("learning_rate", "must be in (0, 1)");
  if (!(s.weight_decay >= 0 && s.weight_decay < 1)) return bad("weight_decay", "must be in [0, 1)");
  if (!(s.adam_beta1 >= 0 && s.adam_beta1 < 1)) return bad("adam_beta1", "must be in [0, 1)");
  if (!(s.adam_beta2 >= 0 && s.adam_beta2 < 1)) return bad("adam_beta2", "must be in [0, 1)");
  if (!(s.adam_epsilon > 0)) return bad("adam_epsilon", "must be positive");
  if (s.warmup_steps < 0) return bad("warmup_steps", "must not be negative");
  if (!(s.warmup_ratio >= 0 && s.warmup_ratio <= 1)) return bad("warmup_ratio", "must be in [0, 1]");
  if (s.grad_accum < 1 || s.grad_accum > 4096) return bad("grad_accum", "must be in [1, 4096]");
  if (s.max_length < 3 || s.max_length > 8192) return bad("max_length", "must be in [3, 8192]");
  if (s.eval_steps < 0) return bad("eval_steps", "must not be negative");
  if (s.save_steps < 0) return bad("save_steps", "must not be negative");
  if (s.early_stopping_patience < 0) return bad("early_stopping_patience", "must not be negative");
  if (!(s.label_smoothing >= 0 && s.label_smoothing < 1)) return bad("label_smoothing", "must be in [0, 1)");
  if (!(s.multi_label_threshold > 0 && s.multi_label_threshold < 1)) return bad("multi_label_threshold", "must be in (0, 1)");
  for (double w : s.class_weights) {
    if (!(w > 0)) return bad("class_weights", "must all be positive");
  }
  if (!s.metric_for_best.empty()) {
    EvalMetrics m;
    double v;
    if (!m.Get(s.metric_for_best, &v)) return bad("metric_for_best", "names no known metric");
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainResult> RunFineTune(const FineTuneJob& job, const ProgressCallback& progress,
                                        const std::atomic<bool>* cancel) {
  const TrainingSpec& s = job.spec;
  RETURN_IF_ERROR(ValidateSpec(s));
  if (job.output_dir.empty()) return absl::InvalidArgumentError("output_dir must be set");
  DistributedGroup* group = job.group != nullptr && job.group->world_size() > 1 ? job.group : nullptr;
  const int world = group != nullptr ? group->world_size() : 1;
  const int rank = group != nullptr ? group->rank() : 0;
  const bool writer = rank == 0;  // only rank 0 writes files
  int threads = s.num_threads;
  if (threads <= 0 && group != nullptr) {
    // The ranks on one host share its cores.
    threads = std::max(1, ConfigureThreads(0) / std::max(1, group->options().local_world_size));
  }
  ConfigureThreads(threads);

  // Data.
  ASSIGN_OR_RETURN(Dataset train, ReadDataset(job.train_path, job.data));
  Dataset validation;
  if (!job.validation_path.empty()) {
    ASSIGN_OR_RETURN(validation, ReadDataset(job.validation_path, job.data));
  } else if (job.validation_split > 0) {
    ASSIGN_OR_RETURN(auto split, SplitDataset(train, job.validation_split, s.seed));
    train = std::move(split.first);
    validation = std::move(split.second);
  }
  std::vector<std::string> labels = CollectLabels(train);
  if (labels.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        job.train_path, ": only one label (", labels.empty() ? "" : labels[0],
        ") occurs; a classifier needs at least two"));
  }
  if (!s.class_weights.empty() && s.class_weights.size() != labels.size()) {
    return absl::InvalidArgumentError(absl::StrCat("class_weights has ", s.class_weights.size(),
                                                   " values for ", labels.size(), " labels"));
  }

  // Model.
  ASSIGN_OR_RETURN(const c10::Device device, ParseDevice(s.device, "device"));
  if (group != nullptr && device.is_cuda()) {
    return absl::UnimplementedError("device: data-parallel training on CUDA needs NCCL, which Berth does not build yet");
  }
  ASSIGN_OR_RETURN(LoadedModel m, PrepareModel(job.base_model, &labels, s.multi_label, s.seed));
  try {
    m.module->to(device);
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(absl::StrCat("moving the model to ", s.device, ": ", e.what_without_backtrace()));
  }
  const bool pairs = !job.data.text_pair_column.empty();
  ASSIGN_OR_RETURN(Encoded train_data, EncodeDataset(train, labels, *m.tokenizer, s.max_length, pairs));
  Encoded val_data;
  const bool has_validation = !validation.examples.empty();
  if (has_validation) {
    ASSIGN_OR_RETURN(val_data, EncodeDataset(validation, labels, *m.tokenizer, s.max_length, pairs));
  }
  std::vector<int64_t> train_lengths;
  for (const auto& e : train_data.enc) train_lengths.push_back(static_cast<int64_t>(e.input_ids.size()));
  const std::string metric = !s.metric_for_best.empty() ? s.metric_for_best
                             : s.multi_label             ? "micro_f1"
                                                         : "accuracy";
  const bool greater_is_better = EvalMetrics::GreaterIsBetter(metric);
  const int32_t pad_id = m.tokenizer->layout().pad_id;
  const int64_t num_labels = static_cast<int64_t>(labels.size());
  at::Tensor class_weights;
  if (!s.class_weights.empty()) {
    class_weights = at::tensor(std::vector<float>(s.class_weights.begin(), s.class_weights.end())).to(device);
  }

  const Schedule plan = PlanSchedule(s, static_cast<int64_t>(train_data.enc.size()), world);
  const int64_t total_updates = plan.total_updates;
  const int64_t warmup = plan.warmup_updates;
  std::unique_ptr<torch::optim::AdamW> optimizer = MakeAdamW(*m.module, s);
  torch::optim::AdamW& opt = *optimizer;
  std::vector<at::Tensor> params = m.module->parameters();

  // Resume.
  const std::string ckpt_root = job.checkpoint_dir.empty() ? job.output_dir + ".checkpoints" : job.checkpoint_dir;
  TrainState state;
  if (job.resume) {
    if (!IsRegularFile(JoinPath(ckpt_root, "latest"))) {
      return absl::FailedPreconditionError(absl::StrCat("nothing to resume: no checkpoint in ", ckpt_root));
    }
    RETURN_IF_ERROR(ReadCheckpoint(ckpt_root, &state, *m.module, opt, &labels));
  }
  if (group != nullptr) {
    // Every rank starts from rank 0's weights (a fresh head is drawn per process).
    std::vector<at::Tensor> state_tensors = m.module->parameters();
    for (const at::Tensor& b : m.module->buffers()) state_tensors.push_back(b);
    try {
      BroadcastFromRank0(*group, state_tensors);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat("rank ", rank, ": broadcasting the weights failed: ", e.what()));
    }
  }
  if (writer) RETURN_IF_ERROR(MakeDirectories(ckpt_root));
  std::ofstream log;
  if (writer && !job.log_jsonl.empty()) {
    log.open(job.log_jsonl, job.resume ? std::ios::app : std::ios::trunc);
    if (!log.good()) return absl::PermissionDeniedError(absl::StrCat("cannot write ", job.log_jsonl));
  }

  TrainResult result;
  result.labels = labels;
  result.total_updates = total_updates;
  result.output_dir = job.output_dir;
  at::Tensor rng_at_boundary = CpuRngState();
  int64_t last_checkpoint_update = state.update;
  const auto start = Clock::now();
  const int64_t start_update = state.update;
  int64_t samples_since_start = 0;

  auto checkpoint = [&]() -> absl::Status {
    if (!writer) return absl::OkStatus();
    if (state.update == last_checkpoint_update && IsRegularFile(JoinPath(ckpt_root, "latest"))) {
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(WriteCheckpoint(ckpt_root, state, *m.module, opt, rng_at_boundary, job, labels));
    last_checkpoint_update = state.update;
    return absl::OkStatus();
  };

  auto evaluate = [&](Progress& p) -> absl::Status {
    EvalMetrics em = Evaluate(*m.module, val_data, labels, s, pad_id, class_weights, device, group);
    double value = 0;
    em.Get(metric, &value);
    Json ej = em.ToJson();
    ej["update"] = state.update;
    ej["epoch"] = p.epoch;
    state.evals.push_back(ej);
    state.last_eval_update = state.update;
    result.evals.push_back(em);
    const bool improved = !state.has_best || (greater_is_better ? value > state.best_metric
                                                                : value < state.best_metric);
    if (improved) {
      state.has_best = true;
      state.best_metric = value;
      state.best_update = state.update;
      state.evals_without_improvement = 0;
      if (writer) RETURN_IF_ERROR(SaveWeights(*m.module, JoinPath(ckpt_root, "best.safetensors")));
    } else {
      ++state.evals_without_improvement;
    }
    p.eval = &result.evals.back();
    if (progress) progress(p);
    p.eval = nullptr;
    return absl::OkStatus();
  };

  m.module->train();
  bool stop = false;
  try {
    while (!stop && state.update < total_updates) {
      std::vector<std::vector<int64_t>> batches = RankBatches(train_lengths, s, state.epoch, world, rank);
      while (state.next_batch < static_cast<int64_t>(batches.size()) && state.update < total_updates) {
        // One optimizer update over up to grad_accum micro-batches.
        const int64_t first = state.next_batch;
        const int64_t count = std::min<int64_t>(s.grad_accum, static_cast<int64_t>(batches.size()) - first);
        const double lr = s.learning_rate * LrLambda(state.update, warmup, total_updates);
        // The loss stays on the device until the update is done (one host synchronisation per
        // update, for the progress report).
        at::Tensor loss_acc = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device));
        double loss_sum = 0;
        int64_t rows = 0;
        const auto update_start = Clock::now();
        const double allreduce_before = group != nullptr ? group->allreduce_seconds() : 0;
        if (group != nullptr) {
          // The ranks stop together: a cancel on any rank stops all at this update boundary.
          at::Tensor flag = at::full({1}, cancel != nullptr && cancel->load() ? 1.0 : 0.0, at::kDouble);
          AllReduceSum(*group, flag);
          if (flag.item<double>() > 0) {
            RETURN_IF_ERROR(checkpoint());
            result.cancelled = true;
            stop = true;
            break;
          }
          // Each rank's own dropout stream, a function of the update so that a resumed run
          // draws what the uninterrupted one would have.
          at::manual_seed(Mix(Mix(s.seed, static_cast<uint64_t>(state.update)), static_cast<uint64_t>(rank)));
        }
        for (int64_t k = 0; k < count; ++k) {
          if (group == nullptr && cancel != nullptr && cancel->load()) {
            for (at::Tensor& p : params) p.mutable_grad().reset();
            RETURN_IF_ERROR(checkpoint());
            result.cancelled = true;
            stop = true;
            break;
          }
          Batch b = ToDevice(MakeBatch(train_data, batches[first + k], pad_id,
                                       s.pad_to_max_length ? s.max_length : 0, s.multi_label, num_labels),
                             device);
          at::Tensor logits;
          {
            AutocastGuard autocast(s.precision == Precision::kBf16, device);
            logits = m.module->forward(b.ids, b.types, ModelAttentionMask(b.mask, b.padded, device));  // [batch, labels]
          }
          at::Tensor loss = ComputeLoss(logits, b, s, class_weights);
          (loss / static_cast<double>(count)).backward();
          loss_acc += loss.detach().to(at::kDouble);
          rows += b.rows;
        }
        if (stop) break;
        if (group != nullptr) {
          loss_sum = loss_acc.item<double>();
          AverageGradients(*group, params);
          at::Tensor stats = at::tensor({loss_sum, static_cast<double>(rows)}, at::kDouble);
          AllReduceSum(*group, stats);
          loss_sum = stats[0].item<double>() / static_cast<double>(world);
          rows = static_cast<int64_t>(stats[1].item<double>());
        }
        // Total gradient norm and clipping, as torch.nn.utils.clip_grad_norm_ does them.
        const at::Tensor total = ClipGradNorm(params, s.max_grad_norm, device);
        SetLearningRate(opt, lr);
        AdamWStep(opt);
        for (at::Tensor& p : params) p.mutable_grad().reset();  // set_to_none, as HF does
        // The update's one host synchronisation, for the progress report: the loss and the
        // gradient norm come back together, after the optimizer's kernels are queued.
        const at::Tensor reported = at::stack({loss_acc, total.to(at::kDouble)}).cpu();
        if (group == nullptr) loss_sum = reported[0].item<double>();
        const double grad_norm = reported[1].item<double>();

        state.update += 1;
        state.next_batch = first + count;
        state.loss_sum += loss_sum / static_cast<double>(count);
        state.samples += rows;
        samples_since_start += rows;
        rng_at_boundary = CpuRngState();

        Progress p;
        p.update = state.update;
        p.total_updates = total_updates;
        p.epoch = static_cast<double>(state.epoch) +
                  static_cast<double>(state.next_batch) / static_cast<double>(batches.size());
        p.loss = loss_sum / static_cast<double>(count);
        p.lr = lr;
        p.grad_norm = grad_norm;
        p.world_size = world;
        if (group != nullptr) {
          const double step = std::chrono::duration<double>(Clock::now() - update_start).count();
          p.allreduce_share = step > 0 ? (group->allreduce_seconds() - allreduce_before) / step : 0;
        }
        const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
        p.samples_per_second = elapsed > 0 ? static_cast<double>(samples_since_start) / elapsed : 0;
        const int64_t done = state.update - start_update;
        p.eta_seconds = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(total_updates - state.update) : 0;
        if (log.is_open()) {
          log << Json{{"update", p.update}, {"epoch", p.epoch}, {"loss", p.loss}, {"lr", p.lr},
                      {"grad_norm", p.grad_norm}}
                     .dump()
              << "\n";
          log.flush();
        }
        const bool epoch_end = state.next_batch >= static_cast<int64_t>(batches.size());
        const bool last = state.update >= total_updates;
        const bool eval_now = has_validation && ((s.eval_steps > 0 && state.update % s.eval_steps == 0) ||
                                                 (s.eval_steps == 0 && epoch_end) || last);
        const bool save_now = (s.save_steps > 0 && state.update % s.save_steps == 0) ||
                              (s.save_steps == 0 && (eval_now || epoch_end));
        if (epoch_end) {
          state.epoch += 1;
          state.next_batch = 0;
        }
        if (progress) progress(p);
        if (eval_now && state.last_eval_update != state.update) {
          RETURN_IF_ERROR(evaluate(p));
          if (s.early_stopping_patience > 0 && state.evals_without_improvement >= s.early_stopping_patience) {
            result.early_stopped = true;
            stop = true;
          }
        }
        if (save_now && !last && !stop) {
          RETURN_IF_ERROR(checkpoint());
          p.checkpointed = true;
        }
        if (stop || epoch_end) break;
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("training failed at update ", state.update + 1, ": ",
                                            e.what_without_backtrace()));
  } catch (const std::exception& e) {
    // Gloo reports a lost peer (a rank that died) with its own exceptions.
    return absl::UnavailableError(absl::StrCat("rank ", rank, ": training stopped at update ", state.update + 1,
                                               ": ", e.what()));
  }

  result.updates = state.update;
  result.epochs_completed = static_cast<double>(state.epoch) +
                            static_cast<double>(state.next_batch) / std::max<int64_t>(1, plan.batches_per_epoch);
  result.train_loss = state.update > 0 ? state.loss_sum / static_cast<double>(state.update) : 0;
  result.train_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.samples_per_second = result.train_seconds > 0 ? static_cast<double>(samples_since_start) / result.train_seconds : 0;
  result.world_size = world;
  result.allreduce_seconds = group != nullptr ? group->allreduce_seconds() : 0;
  if (result.cancelled) return result;
  if (!writer) {
    // Wait for rank 0 to have saved the model, so the whole group ends with it on disk.
    RETURN_IF_ERROR(EndBarrier(group));
    return result;
  }

  // The saved model: the best evaluation's weights when there was a validation set.
  if (has_validation && state.has_best && state.best_update != state.update) {
    ASSIGN_OR_RETURN(auto best, SafetensorsFile::Open(JoinPath(ckpt_root, "best.safetensors")));
    RETURN_IF_ERROR(LoadWeights(*m.module, *best, {}, nullptr));
  }
  for (const Json& e : state.evals) {
    if (e.value("update", int64_t{-1}) == state.best_update) result.best = EvalMetrics::FromJson(e);
  }
  result.best_update = state.best_update;
  m.module->eval();
  RETURN_IF_ERROR(SaveModelDirectory(job.output_dir, m.config, *m.module, *m.tokenizer));
  Json metrics = {{"train", {{"updates", result.updates}, {"epochs", result.epochs_completed},
                             {"loss", result.train_loss}, {"seconds", result.train_seconds},
                             {"samples_per_second", result.samples_per_second}}},
                  {"evals", state.evals},
                  {"metric_for_best", metric},
                  {"best_update", state.best_update},
                  {"early_stopped", result.early_stopped}};
  for (const Json& e : state.evals) {
    if (e.value("update", int64_t{-1}) == state.best_update) metrics["best"] = e;
  }
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(job.output_dir, "metrics.json"), DumpJson(metrics)));
  Json args = {{"base_model", job.base_model}, {"train", job.train_path}, {"validation", job.validation_path},
               {"precision", s.precision == Precision::kBf16 ? "bf16" : "fp32"}, {"multi_label", s.multi_label},
               {"metric_for_best", metric}, {"class_weights", s.class_weights}, {"device", s.device},
               {"total_updates", total_updates}};
#define BERTH_TO_ARGS(field, flags, help) args[#field] = s.field;
  BERTH_TRAINING_SPEC_FIELDS(BERTH_TO_ARGS)
#undef BERTH_TO_ARGS
  args["warmup_steps"] = warmup;  // as resolved from warmup_ratio
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(job.output_dir, "training_args.json"), DumpJson(args)));
  if (!job.keep_checkpoints) LogIfError(RemoveAll(ckpt_root), "checkpoint.cleanup_failed", {{"path", ckpt_root}});
  RETURN_IF_ERROR(EndBarrier(group));
  return result;
}

absl::StatusOr<EvalMetrics> EvaluateExamples(const std::string& model_dir, const Dataset& d,
                                             bool pairs, int64_t max_length, int64_t batch_size,
                                             const std::string& device_name) {
  ASSIGN_OR_RETURN(const c10::Device device, ParseDevice(device_name, "device"));
  ASSIGN_OR_RETURN(LoadedModel m, LoadModelDirectory(model_dir));
  ASSIGN_OR_RETURN(Encoded enc, EncodeDataset(d, m.config.id2label, *m.tokenizer, max_length, pairs));
  TrainingSpec s;
  s.multi_label = m.config.multi_label();
  s.eval_batch_size = batch_size;
  try {
    m.module->to(device);
    return Evaluate(*m.module, enc, m.config.id2label, s, m.tokenizer->layout().pad_id, at::Tensor(), device);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("evaluation failed: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<EvalMetrics> EvaluateModel(const std::string& model_dir, const std::string& data_path,
                                          const DatasetOptions& data_options, int64_t max_length,
                                          int64_t batch_size, const std::string& device) {
  ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::Load(JoinPath(model_dir, "config.json")));
  DatasetOptions o = data_options;
  o.multi_label = config.multi_label();
  ASSIGN_OR_RETURN(Dataset d, ReadDataset(data_path, o));
  return EvaluateExamples(model_dir, d, !o.text_pair_column.empty(), max_length, batch_size, device);
}

}  // namespace berth::train
