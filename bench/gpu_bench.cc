// The GPU figures of issues #10 and #18, on one device, from one run: training samples/s of a
// bert-base-shaped classifier at seq 128 and batch 32, 128 and 256 in bf16 (autocast, fp32
// master weights, through RunFineTune as a job runs), inference sentences/s in bf16 on SST-2
// validation (real lengths: through the engine as a client sends them, and the model alone on
// length-sorted chunks of 128) and at a fixed seq 128 x batch 128, the FLOPs each of those does,
// the device's bf16 matrix-product rate measured in the same run (8192^3), and the peak memory.
// bench/hf_baseline.py measures Hugging Face on the same card with the same shapes;
// scripts/gpu-check.sh runs both and prints the table.
//
// usage: gpu_bench [--device cuda|cuda:N|cpu] [--model config:NAME] [--steps N] [--sst2 FILE]
//                  [--train-batches 32,128,256] [--no-matmul-peak]
// Prints one JSON line. On the CPU (--device cpu --model config:bert-tiny --train-batches 8) it
// is a quick check that the program works; the numbers that matter come from a GPU.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#define BERTH_BENCH_CUDA 1
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/bench_util.h"
#include "core/infer/engine.h"
#include "core/infer/sequence_classifier.h"
#include "core/runtime/device.h"
#include "core/runtime/runtime.h"
#include "core/train/trainer.h"
#include "core/util/data_dir.h"
#include "core/util/json.h"

namespace {

using Clock = std::chrono::steady_clock;

void Sync(const std::string& device) {
#ifdef BERTH_BENCH_CUDA
  if (device != "cpu") c10::cuda::device_synchronize();
#else
  (void)device;
#endif
}

double PeakMemoryGiB(const std::string& device) {
#ifdef BERTH_BENCH_CUDA
  if (device != "cpu") {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
    return static_cast<double>(stats.allocated_bytes[0].peak) / (1 << 30);
  }
#else
  (void)device;
#endif
  return 0;
}

[[noreturn]] void Die(const absl::Status& s) {
  std::cerr << "gpu_bench: " << s.message() << "\n";
  std::exit(1);
}

// FLOPs of one forward pass over `seq` tokens: the encoder's matrix products (2 per
// multiply-add; Q, K, V, the attention output, and the two feed-forward products) and
// attention's two seq x seq products. Embeddings, pooler and head are left out (under 0.1%).
// Training is three times that (forward, and the two products of each backward).
double ForwardFlops(const berth::ModelConfig& c, int64_t seq) {
  const double h = static_cast<double>(c.hidden_size), i = static_cast<double>(c.intermediate_size);
  const double l = static_cast<double>(c.num_hidden_layers), t = static_cast<double>(seq);
  return l * (2 * t * (4 * h * h + 2 * h * i) + 4 * t * t * h);
}

// The bf16 rate of one large matrix product (8192^3), the mean of 10 after 3 warm-ups, on
// random data (zeros run faster): the ceiling the training and inference figures are shares of.
double MatmulTflops(const std::string& device) {
  const int64_t n = 8192;
  const auto opts = at::TensorOptions().dtype(at::kBFloat16).device(device);
  at::Tensor a = at::randn({n, n}, opts), b = at::randn({n, n}, opts);
  for (int i = 0; i < 3; ++i) at::mm(a, b);
  Sync(device);
  const auto t0 = Clock::now();
  for (int i = 0; i < 10; ++i) at::mm(a, b);
  Sync(device);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return 10 * 2.0 * static_cast<double>(n * n * n) / s / 1e12;
}

// Samples/s over the updates after the first `warmup` (allocation, autotuning).
double TrainSamplesPerSecond(const std::string& device, const std::string& model, int64_t batch,
                             int64_t steps, const std::string& dir) {
  const int64_t seq = 128, warmup = 3;
  const std::string data = dir + "/train.jsonl";
  {
    std::ofstream f(data);
    std::string text;
    for (int w = 0; w < 200; ++w) text += (w % 2 ? "movie " : "great ");
    for (int64_t r = 0; r < batch * (steps + warmup); ++r) {
      f << berth::Json{{"text", text}, {"label", r % 2 ? "pos" : "neg"}}.dump() << "\n";
    }
  }
  berth::train::FineTuneJob job;
  job.base_model = model;
  job.train_path = data;
  job.output_dir = dir + "/out";
  job.spec.batch_size = batch;
  job.spec.max_length = seq;
  job.spec.pad_to_max_length = true;
  job.spec.max_steps = steps + warmup;
  job.spec.learning_rate = 1e-5;
  job.spec.precision = berth::data::Precision::kBf16;
  job.spec.shuffle = false;
  job.spec.device = device;
  Clock::time_point start, last;
  int64_t samples = 0;
  auto r = berth::train::RunFineTune(
      job,
      [&](const berth::data::Progress& p) {  // p.loss came from the device: the step is done
        if (p.eval != nullptr) return;
        last = Clock::now();
        if (p.update == warmup) start = last;
        if (p.update > warmup) samples += batch;
      },
      nullptr);
  if (!r.ok()) Die(r.status());
  std::system(("rm -rf '" + job.output_dir + "'").c_str());
  return static_cast<double>(samples) / std::chrono::duration<double>(last - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  berth::PrepareTorchEnvironment();
  std::string device = "cuda", model = "config:bert-base", sst2;
  int64_t steps = 20;
  std::vector<int64_t> train_batches = {32, 128, 256};
  bool matmul_peak = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << "usage: gpu_bench [--device cuda|cuda:N|cpu] [--model config:NAME] [--steps N] "
                   "[--sst2 FILE]\n"
                   "                 [--train-batches 32,128,256] [--no-matmul-peak]\n";
      return 0;
    }
    if (a == "--no-matmul-peak") {
      matmul_peak = false;
      continue;
    }
    if (i + 1 >= argc) break;
    if (a == "--device")
      device = argv[++i];
    else if (a == "--model")
      model = argv[++i];
    else if (a == "--steps")
      steps = std::atoll(argv[++i]);
    else if (a == "--sst2")
      sst2 = argv[++i];
    else if (a == "--train-batches") {
      train_batches.clear();
      for (absl::string_view v : absl::StrSplit(argv[++i], ',', absl::SkipEmpty())) {
        int64_t b = 0;
        if (!absl::SimpleAtoi(v, &b) || b <= 0)
          Die(absl::InvalidArgumentError("--train-batches: bad size"));
        train_batches.push_back(b);
      }
    }
  }
  if (auto d = berth::ParseDevice(device, "--device"); !d.ok()) Die(d.status());
  berth::ConfigureThreads(0);
  if (sst2.empty()) sst2 = berth::BerthDataDir() + "/sst2-sample/validation.tsv";
  const std::vector<std::string> sentences = berth::bench::ReadSst2(sst2);
  if (sentences.empty()) Die(absl::NotFoundError("no sentences in " + sst2));
  char tmpl[] = "/tmp/berth-gpu-bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);

  berth::Json out = {{"device", device}, {"model", model}};
  for (int64_t batch : train_batches) {
    out["train_bf16_seq128_batch" + std::to_string(batch) + "_samples_per_second"] =
        TrainSamplesPerSecond(device, model, batch, steps, dir);
    std::cerr << "gpu_bench: trained at batch " << batch << "\n";
  }
  std::system(("rm -rf '" + dir + "'").c_str());

  // Inference: SST-2 as a client sends it (one request of all sentences; the batcher groups
  // them by length, up to 128 rows), the model alone on the same sentences in length-sorted
  // chunks of 128 (what the engine could reach), then fixed 128 x 128 batches.
  berth::ClassifierOptions bf16;
  bf16.precision = berth::InferencePrecision::kBf16;
  bf16.device = device;
  auto classifier = berth::bench::RandomClassifier(model, bf16);
  const berth::ModelConfig& config = classifier->config();
  berth::EngineOptions eo;
  eo.batcher.max_batch_size = 128;
  eo.batcher.max_batch_tokens = 128 * 128;
  auto engine = berth::InferenceEngine::Create(classifier, eo);
  if (!engine.ok()) Die(engine.status());
  berth::ClassifyOptions co;
  co.max_length = 128;
  double sst2_sps = 0;
  for (int round = 0; round < 3; ++round) {  // the first round warms up
    const auto t0 = Clock::now();
    auto r = (*engine)->Classify(sentences, {}, co);
    if (!r.ok()) Die(r.status());
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (round > 0) sst2_sps = std::max(sst2_sps, static_cast<double>(sentences.size()) / s);
  }
  berth::text::EncodeOptions enc;
  enc.max_length = 128;
  std::vector<berth::text::Encoding> sorted;
  for (const std::string& t : sentences) sorted.push_back(*classifier->tokenizer().Encode(t, enc));
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.input_ids.size() < b.input_ids.size();
  });
  double sst2_flops = 0;
  for (const auto& e : sorted)
    sst2_flops += ForwardFlops(config, static_cast<int64_t>(e.input_ids.size()));
  double model_sps = 0;
  for (int round = 0; round < 4; ++round) {  // pre-tokenized: the model and its batch building
    const auto t0 = Clock::now();
    for (size_t i = 0; i < sorted.size(); i += 128) {
      std::vector<berth::text::Encoding> chunk(sorted.begin() + i,
                                               sorted.begin() + std::min(sorted.size(), i + 128));
      if (auto r = classifier->PredictBatch(chunk); !r.ok()) Die(r.status());
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (round > 0) model_sps = std::max(model_sps, static_cast<double>(sorted.size()) / s);
  }
  std::vector<berth::text::Encoding> fixed;
  std::string long_text;
  for (int w = 0; w < 200; ++w) long_text += "word ";
  for (int i = 0; i < 128; ++i) fixed.push_back(*classifier->tokenizer().Encode(long_text, enc));
  double fixed_sps = 0;
  for (int round = 0; round < 8; ++round) {
    const auto t0 = Clock::now();
    auto r = classifier->PredictBatch(fixed);  // logits copied back: the batch is done
    if (!r.ok()) Die(r.status());
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (round >= 2) fixed_sps = std::max(fixed_sps, 128.0 / s);
  }
  Sync(device);
  out["infer_bf16_sst2_sentences_per_second"] = sst2_sps;
  out["infer_bf16_sst2_model_sorted_sentences_per_second"] = model_sps;
  out["sst2_sentences"] = sentences.size();
  out["sst2_forward_flops_per_sentence"] = sst2_flops / static_cast<double>(sorted.size());
  out["infer_bf16_seq128_batch128_sentences_per_second"] = fixed_sps;
  out["train_flops_per_sample_seq128"] = 3 * ForwardFlops(config, 128);
  out["forward_flops_per_sentence_seq128"] = ForwardFlops(config, 128);
  out["peak_memory_gib"] = PeakMemoryGiB(device);
  if (matmul_peak && device != "cpu") out["matmul_bf16_tflops"] = MatmulTflops(device);
  std::cout << out.dump() << "\n";
  return 0;
}
