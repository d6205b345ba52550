// Batched inference for a loaded classifier under torch::InferenceMode.
#include "core/infer/sequence_classifier.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/model/bert.h"
#include "core/model/linear.h"
#include "core/model/model_dir.h"
#include "core/runtime/device.h"
#include "core/util/status_macros.h"

namespace berth {

struct SequenceClassifier::Impl {
  LoadedModel model;
  InferencePrecision precision = InferencePrecision::kFp32;
  c10::Device device = c10::Device(c10::kCPU);
  double quantize_seconds = 0;
};

namespace {

// What int8 does with each linear layer: it quantizes those of the encoder blocks (".layer.N." in
// every family's names). The pooler, the head and the embeddings stay fp32, as ONNX Runtime's
// quantize_dynamic leaves everything but its MatMuls. The feed-forward output (BERT's and
// RoBERTa's layer.N.output.dense, DistilBERT's ffn.lin2) is treated apart: its input, the GELU of
// 4x the width, has a few channels far larger than the rest, and one scale per row spends the 8
// bits on them. It runs in int8 with its outlier columns (1% of them, those of the largest
// magnitude in each call) multiplied in fp32. On a MiniLM fine-tuned by Berth (1,000 SST-2
// sentences, seed 42), on an AVX2-only CPU (7-bit activations), labels agreed with fp32 on
// 1,195/1,200 shipped sentences as with the layer in fp32 (1,190 with it plainly quantized), and
// the bert-base int8 engine ran ~1.12x faster. Until 2026-12-07 CPUs with avx512_bf16 or AMX ran
// the layer in bf16 instead: on an Intel Xeon with avx512_bf16 and no AMX, oneDNN's bf16 products
// ran at half MKL's fp32 rate, and the bert-base int8 engine ran 1.7x faster with the layer in
// int8 (1,190/1,200 agreeing, against 1,196 in bf16). docs/inference-engine.md has the
// measurements.
enum class Int8Role { kUntouched, kQuantized, kFeedForwardOutput };
Int8Role Int8RoleOf(const std::string& name) {
  if (name.find(".layer.") == std::string::npos) return Int8Role::kUntouched;
  const bool ffn_output =
      absl::EndsWith(name, ".ffn.lin2") ||
      (absl::EndsWith(name, ".output.dense") && name.find(".attention.") == std::string::npos);
  return ffn_output ? Int8Role::kFeedForwardOutput : Int8Role::kQuantized;
}

}  // namespace

SequenceClassifier::SequenceClassifier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SequenceClassifier::~SequenceClassifier() = default;

absl::StatusOr<std::unique_ptr<SequenceClassifier>> SequenceClassifier::Load(
    const std::string& model_dir, const ClassifierOptions& options) {
  LoadModelOptions load;
  load.tokenizer = options.tokenizer;
  load.weights.share_file_memory = true;  // no copy of the weights; see LoadWeightsOptions
  load.head_optional = true;              // a base checkpoint embeds
  ASSIGN_OR_RETURN(LoadedModel model, LoadModelDirectory(model_dir, load));
  return FromModel(std::move(model), options);
}

absl::StatusOr<std::unique_ptr<SequenceClassifier>> SequenceClassifier::FromModel(
    LoadedModel model, const ClassifierOptions& options) {
  if (model.module == nullptr || model.tokenizer == nullptr) {
    return absl::InvalidArgumentError("model has no module or tokenizer");
  }
  auto device = ParseDevice(options.device, "device");
  if (!device.ok()) return device.status();
  if (options.precision == InferencePrecision::kInt8 && !device->is_cpu()) {
    return absl::InvalidArgumentError(absl::StrCat("int8 runs on the CPU only (the device is ",
                                                   options.device, "); use bf16 or fp32"));
  }
  auto impl = std::make_unique<Impl>();
  impl->model = std::move(model);
  impl->precision = options.precision;
  impl->device = *device;
  try {
    impl->model.module->eval();
    impl->model.module->to(*device);
    if (options.precision == InferencePrecision::kBf16) impl->model.module->to(at::kBFloat16);
    const auto start = std::chrono::steady_clock::now();
    if (options.precision == InferencePrecision::kInt8) {
      for (const auto& item : impl->model.module->named_modules()) {
        auto* linear = item.value()->as<LinearImpl>();
        if (linear == nullptr) continue;
        const Int8Role role = Int8RoleOf(item.key());
        if (role == Int8Role::kQuantized) {
          linear->DeferInt8();
        } else if (role == Int8Role::kFeedForwardOutput) {
          linear->DeferInt8(Int8OutlierColumns(linear->in_features));
        }
      }
    }
    // Q, K and V as one product in every precision and on every device (after the precision
    // is set: the fused layer takes the query layer's).
    impl->model.module->FuseQkvProjections();
    if (options.precision == InferencePrecision::kInt8) {
      // Every int8 layer but the fused products' parts now, prepacked on the inference threads;
      // the parts on their first forward (the last block's first-token shortcut), if any:
      // quantizing bert-base's parts as well took a fifth of the load's quantizing.
      impl->model.module->QuantizeDeferredInt8(at::get_num_threads());
      impl->quantize_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("preparing the model failed: ", e.what_without_backtrace()));
  }
  return std::unique_ptr<SequenceClassifier>(new SequenceClassifier(std::move(impl)));
}

InferencePrecision SequenceClassifier::precision() const { return impl_->precision; }
double SequenceClassifier::quantize_seconds() const { return impl_->quantize_seconds; }
bool SequenceClassifier::on_gpu() const { return !impl_->device.is_cpu(); }

const text::Tokenizer& SequenceClassifier::tokenizer() const { return *impl_->model.tokenizer; }
const ModelConfig& SequenceClassifier::config() const { return impl_->model.config; }
const PoolingConfig& SequenceClassifier::pooling() const { return impl_->model.pooling; }
bool SequenceClassifier::has_head() const { return impl_->model.has_head; }
int64_t SequenceClassifier::embedding_dimension() const {
  return impl_->model.config.hidden_size * static_cast<int64_t>(impl_->model.pooling.modes.size());
}

Prediction MakePrediction(const ModelConfig& config, std::vector<float> logits) {
  Prediction p;
  p.scores.resize(logits.size());
  // transformers' text-classification pipeline: a regression model's score is its logit; a
  // multi-label model and a one-logit scorer (a cross-encoder) take the sigmoid; else softmax.
  if (config.problem_type == kRegression) {
    p.scores = logits;
  } else if (config.multi_label() || logits.size() == 1) {
    for (size_t i = 0; i < logits.size(); ++i) p.scores[i] = 1.0f / (1.0f + std::exp(-logits[i]));
  } else {
    float max = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (size_t i = 0; i < logits.size(); ++i)
      sum += std::exp(static_cast<double>(logits[i] - max));
    for (size_t i = 0; i < logits.size(); ++i) {
      p.scores[i] = static_cast<float>(std::exp(static_cast<double>(logits[i] - max)) / sum);
    }
  }
  p.label_id =
      static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  p.label = p.label_id < config.num_labels() ? config.id2label[p.label_id] : "";
  p.logits = std::move(logits);
  return p;
}

absl::StatusOr<std::vector<Prediction>> SequenceClassifier::PredictBatch(
    const std::vector<text::Encoding>& batch, PredictTimings* timings, bool embed) const {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  std::vector<Prediction> out;
  if (batch.empty()) return out;
  const ModelConfig& config = impl_->model.config;
  size_t seq = 0;
  for (const text::Encoding& e : batch) seq = std::max(seq, e.input_ids.size());
  if (seq == 0) return absl::InvalidArgumentError("empty encoding in batch");
  if (static_cast<int64_t>(seq) > config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("sequence of ", seq,
                                                   " tokens exceeds max_position_embeddings ",
                                                   config.max_position_embeddings));
  }
  const int64_t n = static_cast<int64_t>(batch.size());
  const int32_t pad = impl_->model.tokenizer->layout().pad_id;
  try {
    c10::InferenceMode guard;
    at::Tensor ids = at::full({n, static_cast<int64_t>(seq)}, pad, at::kLong);
    at::Tensor types = at::zeros({n, static_cast<int64_t>(seq)}, at::kLong);
    at::Tensor mask = at::zeros({n, static_cast<int64_t>(seq)}, at::kLong);
    auto ids_a = ids.accessor<int64_t, 2>();
    auto types_a = types.accessor<int64_t, 2>();
    auto mask_a = mask.accessor<int64_t, 2>();
    bool padded = false;
    for (int64_t b = 0; b < n; ++b) {
      const text::Encoding& e = batch[b];
      for (size_t t = 0; t < e.input_ids.size(); ++t) {
        if (e.input_ids[t] < 0 || e.input_ids[t] >= config.vocab_size) {
          return absl::InvalidArgumentError(
              absl::StrCat("token id ", e.input_ids[t], " is outside the vocabulary"));
        }
        ids_a[b][t] = e.input_ids[t];
        types_a[b][t] = t < e.token_type_ids.size() ? e.token_type_ids[t] : 0;
        mask_a[b][t] = t < e.attention_mask.size() ? e.attention_mask[t] : 1;
        padded = padded || mask_a[b][t] == 0;
      }
      padded = padded || e.input_ids.size() < seq;
    }
    const c10::Device& device = impl_->device;
    const at::Tensor host_mask = mask;
    mask = ModelAttentionMask(mask, padded, device);
    if (!device.is_cpu()) {
      ids = ids.pin_memory().to(device, /*non_blocking=*/true);
      types = types.pin_memory().to(device, /*non_blocking=*/true);
      if (mask.defined()) mask = mask.pin_memory().to(device, /*non_blocking=*/true);
    }
    const auto t1 = Clock::now();
    SequenceClassifierModule& module = *impl_->model.module;
    at::Tensor logits, pooled;
    if (embed) {
      at::Tensor hidden = module.Encode(ids, types, mask);  // [batch, seq, hidden]
      logits = module.Head(hidden.select(1, 0)).to(at::kFloat).cpu().contiguous();
      pooled = PoolTokens(impl_->model.pooling, hidden, host_mask).cpu().contiguous();
    } else {
      logits = module.forward(ids, types, mask).to(at::kFloat).cpu().contiguous();
    }
    const auto t2 = Clock::now();
    const int64_t labels = logits.size(1);
    const float* data = logits.data_ptr<float>();
    out.reserve(batch.size());
    for (int64_t b = 0; b < n; ++b) {
      out.push_back(
          MakePrediction(config, std::vector<float>(data + b * labels, data + (b + 1) * labels)));
      if (embed) {
        const int64_t d = pooled.size(1);
        const float* e = pooled.data_ptr<float>() + b * d;
        out.back().embedding.assign(e, e + d);
      }
    }
    if (timings != nullptr) {
      timings->build_seconds = std::chrono::duration<double>(t1 - t0).count();
      timings->forward_seconds = std::chrono::duration<double>(t2 - t1).count();
      timings->assemble_seconds = std::chrono::duration<double>(Clock::now() - t2).count();
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("forward pass failed: ", e.what_without_backtrace()));
  }
  return out;
}

absl::Status SequenceClassifier::Save(const std::string& dir) const {
  if (impl_->precision != InferencePrecision::kFp32) {
    return absl::FailedPreconditionError(absl::StrCat("a model loaded in ",
                                                      PrecisionName(impl_->precision),
                                                      " is not saved (it would lose precision)"));
  }
  return SaveModelDirectory(dir, impl_->model.config, *impl_->model.module,
                            *impl_->model.tokenizer);
}

}  // namespace berth
