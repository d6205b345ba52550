// The fine-tuning loop. Numerics follow transformers' Trainer (4.36) with torch.optim.AdamW:
// update k uses lr_lambda(k-1) of get_linear_schedule_with_warmup, gradients are clipped to a
// total L2 norm (reported before clipping), the loss of an update is the mean of its
// micro-batch losses.
#include "core/train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model/bert.h"
#include "core/model/hub.h"
#include "core/model/model_dir.h"
#include "core/model/presets.h"
#include "core/runtime/device.h"
#include "core/runtime/runtime.h"
#include "core/text/wordpiece.h"
#include "core/train/batches.h"
#include "core/train/checkpoint.h"
#include "core/train/distributed_ops.h"
#include "core/train/evaluate.h"
#include "core/train/optimizer.h"
#include "core/train/schedule.h"
#include "core/train/sharding.h"
#include "core/util/data_dir.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/log.h"
#include "core/util/status_macros.h"

namespace berth::train {
namespace {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Model set-up

// Loads (or creates) the base model and fits its head to `labels`: the base head is kept when
// its id2label is exactly this label set (its order is kept too), else a fresh head is
// initialised as transformers does.
absl::StatusOr<LoadedModel> PrepareModel(const std::string& base, std::vector<std::string>* labels,
                                         const data::TrainingSpec& s) {
  const uint64_t seed = s.seed;
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
    ASSIGN_OR_RETURN(weights, OpenModelWeights(dir));
  }
  const std::vector<std::string> base_labels = m.config.id2label;
  std::vector<std::string> sorted_base = base_labels, sorted_data = *labels;
  std::sort(sorted_base.begin(), sorted_base.end());
  std::sort(sorted_data.begin(), sorted_data.end());
  m.config.id2label = *labels;  // the head's shape depends only on the number of labels
  // A "bce" scorer leaves problem_type out, as sentence-transformers' CrossEncoder does (one
  // logit is served with the sigmoid); "mse" is transformers' regression.
  m.config.problem_type = s.score_loss == "mse"   ? kRegression
                          : !s.score_loss.empty() ? ""
                          : s.multi_label         ? kMultiLabel
                                                  : kSingleLabel;
  try {
    ASSIGN_OR_RETURN(m.module, CreateSequenceClassifier(m.config));
    m.module->InitWeights(m.config.initializer_range);
    // The base's head is kept when it has every head tensor and exactly this label set.
    bool keep_head = weights != nullptr && sorted_base == sorted_data;
    for (const auto& p : m.module->named_parameters()) {
      for (const std::string& prefix : m.module->HeadPrefixes()) {
        if (keep_head && absl::StartsWith(p.key(), prefix) && weights->Find(p.key()) == nullptr)
          keep_head = false;
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
    return absl::InternalError(
        absl::StrCat("building the model failed: ", e.what_without_backtrace()));
  }
  return m;
}

// The group's last collective: every rank returns only once rank 0 has saved the model.
absl::Status EndBarrier(DistributedGroup* group) {
  if (group == nullptr) return absl::OkStatus();
  try {
    at::Tensor done = at::zeros({1}, at::kDouble);
    AllReduceSum(*group, done);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("rank ", group->rank(), ": the group broke up at the end: ", e.what()));
  }
  return absl::OkStatus();
}

// The total L2 norm of the gradients (returned, before clipping), and the gradients scaled by
// min(max_norm / (norm + 1e-6), 1) when max_norm > 0: torch.nn.utils.clip_grad_norm_ with its
// multi-tensor (foreach) kernels, the norm of the per-tensor norms. On the CPU the factor is read
// on the host and a factor of exactly 1 skipped (multiplying by 1 changes nothing); on a GPU it
// stays on the device, the same float division and clamp, so nothing waits for the device.
at::Tensor ClipGradNorm(const std::vector<at::Tensor>& params, double max_norm,
                        const c10::Device& device) {
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
        at::div(at::full({}, static_cast<float>(max_norm), total.options()), total + 1e-6f)
            .clamp_max(1.0f);
    at::_foreach_mul_(grads, coef);
  }
  return total;
}

}  // namespace

absl::Status ValidateSpec(const data::TrainingSpec& s) {
  auto bad = [](absl::string_view field, absl::string_view rule) {
    return absl::InvalidArgumentError(absl::StrCat(field, " ", rule));
  };
  if (auto d = ParseDevice(s.device, "device"); !d.ok()) return d.status();
  if (!(s.epochs > 0) && s.max_steps <= 0)
    return bad("epochs", "must be positive (or set max_steps)");
  if (s.max_steps < 0) return bad("max_steps", "must not be negative");
  if (s.batch_size < 1 || s.batch_size > 65536) return bad("batch_size", "must be in [1, 65536]");
  if (s.eval_batch_size < 1 || s.eval_batch_size > 65536)
    return bad("eval_batch_size", "must be in [1, 65536]");
  if (!(s.learning_rate > 0 && s.learning_rate < 1))
    return bad("learning_rate", "must be in (0, 1)");
  if (!(s.weight_decay >= 0 && s.weight_decay < 1)) return bad("weight_decay", "must be in [0, 1)");
  if (!(s.adam_beta1 >= 0 && s.adam_beta1 < 1)) return bad("adam_beta1", "must be in [0, 1)");
  if (!(s.adam_beta2 >= 0 && s.adam_beta2 < 1)) return bad("adam_beta2", "must be in [0, 1)");
  if (!(s.adam_epsilon > 0)) return bad("adam_epsilon", "must be positive");
  if (s.warmup_steps < 0) return bad("warmup_steps", "must not be negative");
  if (!(s.warmup_ratio >= 0 && s.warmup_ratio <= 1))
    return bad("warmup_ratio", "must be in [0, 1]");
  if (s.grad_accum < 1 || s.grad_accum > 4096) return bad("grad_accum", "must be in [1, 4096]");
  if (s.max_length < 3 || s.max_length > 8192) return bad("max_length", "must be in [3, 8192]");
  if (s.eval_steps < 0) return bad("eval_steps", "must not be negative");
  if (s.save_steps < 0) return bad("save_steps", "must not be negative");
  if (s.early_stopping_patience < 0) return bad("early_stopping_patience", "must not be negative");
  if (!(s.label_smoothing >= 0 && s.label_smoothing < 1))
    return bad("label_smoothing", "must be in [0, 1)");
  if (!(s.multi_label_threshold > 0 && s.multi_label_threshold < 1))
    return bad("multi_label_threshold", "must be in (0, 1)");
  for (double w : s.class_weights) {
    if (!(w > 0)) return bad("class_weights", "must all be positive");
  }
  if (!s.score_loss.empty()) {
    if (s.score_loss != "bce" && s.score_loss != "mse")
      return bad("score_loss", "must be bce or mse");
    if (s.multi_label) return bad("score_loss", "a scorer has one logit, not several labels");
    if (!s.class_weights.empty()) return bad("class_weights", "a scorer has no classes to weigh");
    if (s.label_smoothing > 0) return bad("label_smoothing", "a scorer has no classes to smooth");
  }
  if (!s.metric_for_best.empty()) {
    data::EvalMetrics m;
    double v;
    if (!m.Get(s.metric_for_best, &v)) return bad("metric_for_best", "names no known metric");
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// The run

struct TrainerRun {
  FineTuneJob job;
  DistributedGroup* group = nullptr;  // null for a single process
  int world = 1;
  int rank = 0;
  bool writer = true;  // only rank 0 writes files
  c10::Device device{c10::kCPU};
  std::vector<std::string> labels;
  LoadedModel model;
  Encoded train_data, val_data;
  bool has_validation = false;
  std::vector<int64_t> train_lengths;
  std::string metric;  // metric_for_best, or its default
  bool greater_is_better = true;
  int32_t pad_id = 0;
  at::Tensor class_weights;  // undefined: none
  Schedule plan;
  std::unique_ptr<torch::optim::AdamW> opt;
  std::vector<at::Tensor> params;
  std::string ckpt_root;
  TrainState state;
  std::ofstream log;
  TrainResult result;
  RngState rng_at_boundary;  // the generators' states after the last completed update
  int64_t last_checkpoint_update = 0;
  Clock::time_point start;
  int64_t start_update = 0;
  int64_t samples_since_start = 0;
  std::vector<std::vector<int64_t>> batches;  // this rank's micro-batches of epoch batches_epoch
  int64_t batches_epoch = -1;

  const data::TrainingSpec& spec() const { return job.spec; }
};

namespace {

// Reads the data and encodes it with the model's tokenizer; the model's head is fitted to the
// training labels (PrepareModel).
absl::Status SetUpDataAndModel(TrainerRun& r) {
  const data::TrainingSpec& s = r.spec();
  const FineTuneJob& job = r.job;
  ASSIGN_OR_RETURN(data::Dataset train, data::ReadDataset(job.train_path, job.data));
  data::Dataset validation;
  if (!job.validation_path.empty()) {
    ASSIGN_OR_RETURN(validation, data::ReadDataset(job.validation_path, job.data));
  } else if (job.validation_split > 0) {
    ASSIGN_OR_RETURN(auto split, data::SplitDataset(train, job.validation_split, s.seed));
    train = std::move(split.first);
    validation = std::move(split.second);
  }
  const bool scorer = !s.score_loss.empty();
  // A scorer has one output, named as transformers names the label of a one-logit head.
  r.labels = scorer ? std::vector<std::string>{"LABEL_0"} : data::CollectLabels(train);
  if (!scorer && r.labels.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(job.train_path, ": only one label (",
                                                   r.labels.empty() ? "" : r.labels[0],
                                                   ") occurs; a classifier needs at least two"));
  }
  if (!s.class_weights.empty() && s.class_weights.size() != r.labels.size()) {
    return absl::InvalidArgumentError(absl::StrCat("class_weights has ", s.class_weights.size(),
                                                   " values for ", r.labels.size(), " labels"));
  }
  ASSIGN_OR_RETURN(r.device, ParseDevice(s.device, "device"));
  if (r.group != nullptr && r.device.is_cuda()) {
    return absl::UnimplementedError(
        "device: data-parallel training on CUDA needs NCCL, which Berth does not build yet");
  }
  ASSIGN_OR_RETURN(r.model, PrepareModel(job.base_model, &r.labels, s));
  try {
    r.model.module->to(r.device);
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("moving the model to ", s.device, ": ", e.what_without_backtrace()));
  }
  const bool pairs = !job.data.text_pair_column.empty();
  const text::Tokenizer& tok = *r.model.tokenizer;
  ASSIGN_OR_RETURN(r.train_data,
                   EncodeDataset(train, r.labels, tok, s.max_length, pairs, s.score_loss));
  r.has_validation = !validation.examples.empty();
  if (r.has_validation) {
    ASSIGN_OR_RETURN(r.val_data,
                     EncodeDataset(validation, r.labels, tok, s.max_length, pairs, s.score_loss));
  }
  for (const auto& e : r.train_data.enc)
    r.train_lengths.push_back(static_cast<int64_t>(e.input_ids.size()));
  r.metric = !s.metric_for_best.empty() ? s.metric_for_best
             : scorer                   ? "loss"  // the Trainer's default
             : s.multi_label            ? "micro_f1"
                                        : "accuracy";
  r.greater_is_better = data::EvalMetrics::GreaterIsBetter(r.metric);
  r.pad_id = tok.layout().pad_id;
  if (!s.class_weights.empty()) {
    r.class_weights =
        at::tensor(std::vector<float>(s.class_weights.begin(), s.class_weights.end())).to(r.device);
  }
  return absl::OkStatus();
}

// The optimizer and schedule; the checkpoint to resume from; rank 0's weights on every rank;
// the checkpoint directory and the JSONL log.
absl::Status SetUpTraining(TrainerRun& r) {
  const FineTuneJob& job = r.job;
  r.plan = PlanSchedule(r.spec(), static_cast<int64_t>(r.train_data.enc.size()), r.world);
  r.opt = MakeAdamW(*r.model.module, r.spec());
  r.params = r.model.module->parameters();
  r.ckpt_root = job.checkpoint_dir.empty() ? job.output_dir + ".checkpoints" : job.checkpoint_dir;
  if (job.resume) {
    if (!IsRegularFile(JoinPath(r.ckpt_root, "latest"))) {
      return absl::FailedPreconditionError(
          absl::StrCat("nothing to resume: no checkpoint in ", r.ckpt_root));
    }
    RETURN_IF_ERROR(
        ReadCheckpoint(r.ckpt_root, &r.state, *r.model.module, *r.opt, r.labels, r.device));
  }
  if (r.group != nullptr) {
    // Every rank starts from rank 0's weights (a fresh head is drawn per process).
    std::vector<at::Tensor> state_tensors = r.model.module->parameters();
    for (const at::Tensor& b : r.model.module->buffers()) state_tensors.push_back(b);
    try {
      BroadcastFromRank0(*r.group, state_tensors);
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrCat("rank ", r.rank, ": broadcasting the weights failed: ", e.what()));
    }
  }
  if (r.writer) RETURN_IF_ERROR(MakeDirectories(r.ckpt_root));
  if (r.writer && !job.log_jsonl.empty()) {
    r.log.open(job.log_jsonl, job.resume ? std::ios::app : std::ios::trunc);
    if (!r.log.good())
      return absl::PermissionDeniedError(absl::StrCat("cannot write ", job.log_jsonl));
  }
  r.result.labels = r.labels;
  r.result.newly_initialized = r.model.report.initialized;
  if (!r.result.newly_initialized.empty()) {
    // from_pretrained's warning, as an event: which tensors the base did not provide.
    LogEvent("model.newly_initialized",
             {{"base_model", job.base_model},
              {"tensors", absl::StrJoin(r.result.newly_initialized, ",")},
              {"note", "these start from a fresh initialisation and are trained from scratch"}});
  }
  r.result.total_updates = r.plan.total_updates;
  r.result.output_dir = job.output_dir;
  r.rng_at_boundary = CaptureRng(r.device);
  r.last_checkpoint_update = r.state.update;
  r.start = Clock::now();
  r.start_update = r.state.update;
  return absl::OkStatus();
}

// The status of an exception thrown while training (called inside a catch block).
absl::Status TrainingFailure(const TrainerRun& r) {
  try {
    throw;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("training failed at update ", r.state.update + 1, ": ",
                                            e.what_without_backtrace()));
  } catch (const std::exception& e) {
    // Gloo reports a lost peer (a rank that died) with its own exceptions.
    return absl::UnavailableError(absl::StrCat("rank ", r.rank, ": training stopped at update ",
                                               r.state.update + 1, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat("training failed at update ", r.state.update + 1));
  }
}

// The update's forward and backward passes over `count` micro-batches starting at `first`;
// false when `cancel` stopped it before a micro-batch (the gradients are dropped). The summed
// loss stays on the device.
bool AccumulateGradients(TrainerRun& r, int64_t first, int64_t count,
                         const std::atomic<bool>* cancel, at::Tensor* loss_acc, int64_t* rows) {
  const data::TrainingSpec& s = r.spec();
  const int64_t num_labels = static_cast<int64_t>(r.labels.size());
  for (int64_t k = 0; k < count; ++k) {
    if (r.group == nullptr && cancel != nullptr && cancel->load()) {
      for (at::Tensor& p : r.params) p.mutable_grad().reset();
      return false;
    }
    Batch b = ToDevice(MakeBatch(r.train_data, r.batches[first + k], r.pad_id,
                                 s.pad_to_max_length ? s.max_length : 0, s.multi_label, num_labels),
                       r.device);
    at::Tensor logits;
    {
      AutocastGuard autocast(s.precision == data::Precision::kBf16, r.device);
      logits =
          r.model.module->forward(b.ids, b.types, ModelAttentionMask(b.mask, b.padded, r.device));
    }
    at::Tensor loss = ComputeLoss(logits, b, s, r.class_weights);
    (loss / static_cast<double>(count)).backward();
    *loss_acc += loss.detach().to(at::kDouble);
    *rows += b.rows;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The Trainer

Trainer::Trainer(std::unique_ptr<TrainerRun> run) : run_(std::move(run)) {}
Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const FineTuneJob& job) {
  const data::TrainingSpec& s = job.spec;
  RETURN_IF_ERROR(ValidateSpec(s));
  if (job.output_dir.empty()) return absl::InvalidArgumentError("output_dir must be set");
  auto r = std::make_unique<TrainerRun>();
  r->job = job;
  r->group = job.group != nullptr && job.group->world_size() > 1 ? job.group : nullptr;
  r->world = r->group != nullptr ? r->group->world_size() : 1;
  r->rank = r->group != nullptr ? r->group->rank() : 0;
  r->writer = r->rank == 0;
  int threads = s.num_threads;
  if (threads <= 0 && r->group != nullptr) {
    // The ranks on one host share its cores.
    threads = std::max(1, ConfigureThreads(0) / std::max(1, r->group->options().local_world_size));
  }
  ConfigureThreads(threads);
  RETURN_IF_ERROR(SetUpDataAndModel(*r));
  RETURN_IF_ERROR(SetUpTraining(*r));
  r->model.module->train();
  return std::unique_ptr<Trainer>(new Trainer(std::move(r)));
}

absl::StatusOr<std::optional<Trainer::Update>> Trainer::Step(const std::atomic<bool>* cancel) try {
  TrainerRun& r = *run_;
  const data::TrainingSpec& s = r.spec();
  TrainState& state = r.state;
  if (r.batches_epoch != state.epoch) {
    r.batches = RankBatches(r.train_lengths, s, state.epoch, r.world, r.rank);
    r.batches_epoch = state.epoch;
  }
  const int64_t epoch_batches = static_cast<int64_t>(r.batches.size());
  if (state.next_batch >= epoch_batches) {
    return absl::InternalError(
        absl::StrCat("epoch ", state.epoch, " has no batch ", state.next_batch));
  }
  const int64_t first = state.next_batch;
  const int64_t count = std::min<int64_t>(s.grad_accum, epoch_batches - first);
  const double lr =
      s.learning_rate * LrLambda(state.update, r.plan.warmup_updates, r.plan.total_updates);
  const auto update_start = Clock::now();
  const double allreduce_before = r.group != nullptr ? r.group->allreduce_seconds() : 0;
  if (r.group != nullptr) {
    // The ranks stop together: a cancel on any rank stops all at this update boundary.
    at::Tensor flag = at::full({1}, cancel != nullptr && cancel->load() ? 1.0 : 0.0, at::kDouble);
    AllReduceSum(*r.group, flag);
    if (flag.item<double>() > 0) {
      RETURN_IF_ERROR(Checkpoint());
      return std::nullopt;
    }
    // Each rank's own dropout stream, a function of the update so that a resumed run draws
    // what the uninterrupted one would have.
    at::manual_seed(
        Mix(Mix(s.seed, static_cast<uint64_t>(state.update)), static_cast<uint64_t>(r.rank)));
  }
  // The loss stays on the device until the update is done (one host synchronisation per update,
  // for the progress report).
  at::Tensor loss_acc = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(r.device));
  int64_t rows = 0;
  if (!AccumulateGradients(r, first, count, cancel, &loss_acc, &rows)) {
    RETURN_IF_ERROR(Checkpoint());
    return std::nullopt;
  }
  double loss_sum = 0;
  if (r.group != nullptr) {
    loss_sum = loss_acc.item<double>();
    AverageGradients(*r.group, r.params);
    at::Tensor stats = at::tensor({loss_sum, static_cast<double>(rows)}, at::kDouble);
    AllReduceSum(*r.group, stats);
    loss_sum = stats[0].item<double>() / static_cast<double>(r.world);
    rows = static_cast<int64_t>(stats[1].item<double>());
  }
  // Total gradient norm and clipping, as torch.nn.utils.clip_grad_norm_ does them.
  const at::Tensor total = ClipGradNorm(r.params, s.max_grad_norm, r.device);
  SetLearningRate(*r.opt, lr);
  AdamWStep(*r.opt);
  for (at::Tensor& p : r.params) p.mutable_grad().reset();  // set_to_none, as HF does
  // The update's one host synchronisation, for the progress report: the loss and the gradient
  // norm come back together, after the optimizer's kernels are queued.
  const at::Tensor reported = at::stack({loss_acc, total.to(at::kDouble)}).cpu();
  if (r.group == nullptr) loss_sum = reported[0].item<double>();

  state.update += 1;
  state.next_batch = first + count;
  state.loss_sum += loss_sum / static_cast<double>(count);
  state.samples += rows;
  r.samples_since_start += rows;
  r.rng_at_boundary = CaptureRng(r.device);

  Update u;
  data::Progress& p = u.progress;
  p.update = state.update;
  p.total_updates = r.plan.total_updates;
  p.epoch = static_cast<double>(state.epoch) +
            static_cast<double>(state.next_batch) / static_cast<double>(epoch_batches);
  p.loss = loss_sum / static_cast<double>(count);
  p.lr = lr;
  p.grad_norm = reported[1].item<double>();
  p.world_size = r.world;
  if (r.group != nullptr) {
    const double step = std::chrono::duration<double>(Clock::now() - update_start).count();
    p.allreduce_share = step > 0 ? (r.group->allreduce_seconds() - allreduce_before) / step : 0;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - r.start).count();
  p.samples_per_second = elapsed > 0 ? static_cast<double>(r.samples_since_start) / elapsed : 0;
  const int64_t done = state.update - r.start_update;
  p.eta_seconds = done > 0 ? elapsed / static_cast<double>(done) *
                                 static_cast<double>(r.plan.total_updates - state.update)
                           : 0;
  if (r.log.is_open()) {
    r.log << Json{{"update", p.update},
                  {"epoch", p.epoch},
                  {"loss", p.loss},
                  {"lr", p.lr},
                  {"grad_norm", p.grad_norm}}
                 .dump()
          << "\n";
    r.log.flush();
  }
  u.epoch_end = state.next_batch >= epoch_batches;
  if (u.epoch_end) {
    state.epoch += 1;
    state.next_batch = 0;
  }
  return u;
} catch (...) {
  return TrainingFailure(*run_);
}

absl::StatusOr<const data::EvalMetrics*> Trainer::Evaluate(double epoch) try {
  TrainerRun& r = *run_;
  TrainState& state = r.state;
  data::EvalMetrics em = train::Evaluate(*r.model.module, r.val_data, r.labels, r.spec(), r.pad_id,
                                         r.class_weights, r.device, r.group);
  double value = 0;
  em.Get(r.metric, &value);
  Json ej = em.ToJson();
  ej["update"] = state.update;
  ej["epoch"] = epoch;
  state.evals.push_back(ej);
  state.last_eval_update = state.update;
  r.result.evals.push_back(em);
  const bool improved = !state.has_best || (r.greater_is_better ? value > state.best_metric
                                                                : value < state.best_metric);
  if (improved) {
    state.has_best = true;
    state.best_metric = value;
    state.best_update = state.update;
    state.evals_without_improvement = 0;
    if (r.writer) {
      if (r.job.may_write) RETURN_IF_ERROR(r.job.may_write());
      RETURN_IF_ERROR(SaveWeights(*r.model.module, JoinPath(r.ckpt_root, "best.safetensors")));
    }
  } else {
    ++state.evals_without_improvement;
  }
  return &r.result.evals.back();
} catch (...) {
  return TrainingFailure(*run_);
}

absl::Status Trainer::Checkpoint() try {
  TrainerRun& r = *run_;
  if (!r.writer) return absl::OkStatus();
  if (r.state.update == r.last_checkpoint_update &&
      IsRegularFile(JoinPath(r.ckpt_root, "latest"))) {
    return absl::OkStatus();
  }
  if (r.job.may_write) RETURN_IF_ERROR(r.job.may_write());
  RETURN_IF_ERROR(WriteCheckpoint(r.ckpt_root, r.state, *r.model.module, *r.opt, r.rng_at_boundary,
                                  r.job, r.labels));
  r.last_checkpoint_update = r.state.update;
  return absl::OkStatus();
} catch (...) {
  return TrainingFailure(*run_);
}

absl::StatusOr<TrainResult> Trainer::Train(const ProgressCallback& progress,
                                           const std::atomic<bool>* cancel) {
  TrainerRun& r = *run_;
  const data::TrainingSpec& s = r.spec();
  while (r.state.update < r.plan.total_updates) {
    ASSIGN_OR_RETURN(std::optional<Update> u, Step(cancel));
    if (!u.has_value()) {
      r.result.cancelled = true;
      break;
    }
    const int64_t update = r.state.update;
    const bool last = update >= r.plan.total_updates;
    const bool eval_now = r.has_validation && ((s.eval_steps > 0 && update % s.eval_steps == 0) ||
                                               (s.eval_steps == 0 && u->epoch_end) || last);
    const bool save_now = (s.save_steps > 0 && update % s.save_steps == 0) ||
                          (s.save_steps == 0 && (eval_now || u->epoch_end));
    if (progress) progress(u->progress);
    if (eval_now && r.state.last_eval_update != update) {
      ASSIGN_OR_RETURN(u->progress.eval, Evaluate(u->progress.epoch));
      if (progress) progress(u->progress);
      if (s.early_stopping_patience > 0 &&
          r.state.evals_without_improvement >= s.early_stopping_patience) {
        r.result.early_stopped = true;
        break;
      }
    }
    if (save_now && !last) RETURN_IF_ERROR(Checkpoint());
  }
  return Finish();
}

absl::StatusOr<TrainResult> Trainer::Finish() try {
  TrainerRun& r = *run_;
  const data::TrainingSpec& s = r.spec();
  const TrainState& state = r.state;
  TrainResult& result = r.result;
  result.updates = state.update;
  result.epochs_completed =
      static_cast<double>(state.epoch) +
      static_cast<double>(state.next_batch) / std::max<int64_t>(1, r.plan.batches_per_epoch);
  result.train_loss = state.update > 0 ? state.loss_sum / static_cast<double>(state.update) : 0;
  result.train_seconds = std::chrono::duration<double>(Clock::now() - r.start).count();
  result.samples_per_second =
      result.train_seconds > 0 ? static_cast<double>(r.samples_since_start) / result.train_seconds
                               : 0;
  result.world_size = r.world;
  result.allreduce_seconds = r.group != nullptr ? r.group->allreduce_seconds() : 0;
  if (result.cancelled) return result;
  if (!r.writer) {
    // Wait for rank 0 to have saved the model, so the whole group ends with it on disk.
    RETURN_IF_ERROR(EndBarrier(r.group));
    return result;
  }
  // The saved model: the best evaluation's weights when there was a validation set.
  SequenceClassifierModule& module = *r.model.module;
  if (r.has_validation && state.has_best && state.best_update != state.update) {
    ASSIGN_OR_RETURN(auto best, SafetensorsFile::Open(JoinPath(r.ckpt_root, "best.safetensors")));
    RETURN_IF_ERROR(LoadWeights(module, *best, {}, nullptr));
  }
  for (const Json& e : state.evals) {
    if (e.value("update", int64_t{-1}) == state.best_update)
      result.best = data::EvalMetrics::FromJson(e);
  }
  result.best_update = state.best_update;
  module.eval();
  if (r.job.may_write) RETURN_IF_ERROR(r.job.may_write());
  RETURN_IF_ERROR(SaveModelDirectory(r.job.output_dir, r.model.config, module, *r.model.tokenizer));
  Json metrics = {{"train",
                   {{"updates", result.updates},
                    {"epochs", result.epochs_completed},
                    {"loss", result.train_loss},
                    {"seconds", result.train_seconds},
                    {"samples_per_second", result.samples_per_second}}},
                  {"evals", state.evals},
                  {"metric_for_best", r.metric},
                  {"best_update", state.best_update},
                  {"early_stopped", result.early_stopped}};
  for (const Json& e : state.evals) {
    if (e.value("update", int64_t{-1}) == state.best_update) metrics["best"] = e;
  }
  RETURN_IF_ERROR(
      WriteFileAtomically(JoinPath(r.job.output_dir, "metrics.json"), DumpJson(metrics)));
  Json args = {{"base_model", r.job.base_model},
               {"train", r.job.train_path},
               {"validation", r.job.validation_path},
               {"precision", s.precision == data::Precision::kBf16 ? "bf16" : "fp32"},
               {"multi_label", s.multi_label},
               {"score_loss", s.score_loss},
               {"metric_for_best", r.metric},
               {"class_weights", s.class_weights},
               {"device", s.device},
               {"total_updates", r.plan.total_updates}};
#define BERTH_TO_ARGS(field, flags, help) args[#field] = s.field;
  BERTH_TRAINING_SPEC_FIELDS(BERTH_TO_ARGS)
#undef BERTH_TO_ARGS
  args["warmup_steps"] = r.plan.warmup_updates;  // as resolved from warmup_ratio
  RETURN_IF_ERROR(
      WriteFileAtomically(JoinPath(r.job.output_dir, "training_args.json"), DumpJson(args)));
  if (!r.job.keep_checkpoints)
    LogIfError(RemoveAll(r.ckpt_root), "checkpoint.cleanup_failed", {{"path", r.ckpt_root}});
  RETURN_IF_ERROR(EndBarrier(r.group));
  return result;
} catch (...) {
  return TrainingFailure(*run_);
}

absl::StatusOr<TrainResult> RunFineTune(const FineTuneJob& job, const ProgressCallback& progress,
                                        const std::atomic<bool>* cancel) {
  ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer, Trainer::Create(job));
  return trainer->Train(progress, cancel);
}

}  // namespace berth::train
