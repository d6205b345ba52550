// The figures issue #10 asks for, on one device, from one run: training samples/s of a
// bert-base-shaped classifier at seq 128 batch 32 in bf16 (autocast, fp32 master weights), and
// inference sentences/s in bf16 on SST-2 validation (real lengths, through the dynamic batcher)
// and at a fixed seq 128 x batch 128, plus the device's peak memory. bench/hf_baseline.py
// measures Hugging Face on the same card with the same shapes; scripts/gpu-check.sh runs both.
//
// usage: gpu_bench [--device cuda|cuda:N|cpu] [--model config:NAME] [--steps N] [--sst2 FILE]
// Prints one JSON line. On the CPU (--device cpu --model config:bert-tiny) it is a quick check
// that the program works; the numbers that matter come from a GPU.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#define BERTH_BENCH_CUDA 1
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "core/util/data_dir.h"
#include "core/device.h"
#include "core/infer/engine.h"
#include "core/infer/sequence_classifier.h"
#include "core/model/bert.h"
#include "core/model/model_dir.h"
#include "core/model/presets.h"
#include "core/runtime.h"
#include "core/train/trainer.h"
#include "core/util/json.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> ReadSst2(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);  // header
  while (std::getline(f, line)) out.push_back(line.substr(0, line.rfind('\t')));
  return out;
}

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

// Samples/s over the updates after the first `warmup` (allocation, autotuning).
double TrainSamplesPerSecond(const std::string& device, const std::string& model, int64_t steps,
                             const std::string& dir) {
  const int64_t batch = 32, seq = 128, warmup = 3;
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
  job.spec.precision = berth::train::Precision::kBf16;
  job.spec.shuffle = false;
  job.spec.device = device;
  Clock::time_point start, last;
  int64_t samples = 0;
  auto r = berth::train::RunFineTune(
      job,
      [&](const berth::train::Progress& p) {  // p.loss came from the device: the step is done
        if (p.eval != nullptr) return;
        last = Clock::now();
        if (p.update == warmup) start = last;
        if (p.update > warmup) samples += batch;
      },
      nullptr);
  if (!r.ok()) Die(r.status());
  return static_cast<double>(samples) / std::chrono::duration<double>(last - start).count();
}

std::shared_ptr<const berth::SequenceClassifier> RandomClassifier(const std::string& device, const std::string& model) {
  auto m = berth::CreateRandomModel(berth::PresetNameOf(model).value_or(model), berth::BerthDataDir());
  if (!m.ok()) Die(m.status());
  m->config.id2label = {"negative", "positive"};
  at::manual_seed(1);
  auto module = berth::CreateSequenceClassifier(m->config);
  if (!module.ok()) Die(module.status());
  m->module = *module;
  m->module->InitWeights(m->config.initializer_range);
  berth::ClassifierOptions o;
  o.precision = berth::InferencePrecision::kBf16;
  o.device = device;
  auto c = berth::SequenceClassifier::FromModel(std::move(*m), o);
  if (!c.ok()) Die(c.status());
  return std::shared_ptr<const berth::SequenceClassifier>(std::move(*c));
}

}  // namespace

int main(int argc, char** argv) {
  berth::PrepareTorchEnvironment();
  std::string device = "cuda", model = "config:bert-base", sst2;
  int64_t steps = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << "usage: gpu_bench [--device cuda|cuda:N|cpu] [--model config:NAME] [--steps N] [--sst2 FILE]\n";
      return 0;
    }
    if (i + 1 >= argc) break;
    if (a == "--device") device = argv[++i];
    else if (a == "--model") model = argv[++i];
    else if (a == "--steps") steps = std::atoll(argv[++i]);
    else if (a == "--sst2") sst2 = argv[++i];
  }
  if (auto d = berth::ParseDevice(device, "--device"); !d.ok()) Die(d.status());
  berth::ConfigureThreads(0);
  if (sst2.empty()) sst2 = berth::BerthDataDir() + "/sst2-sample/validation.tsv";
  const std::vector<std::string> sentences = ReadSst2(sst2);
  if (sentences.empty()) Die(absl::NotFoundError("no sentences in " + sst2));
  char tmpl[] = "/tmp/berth-gpu-bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);

  const double train_sps = TrainSamplesPerSecond(device, model, steps, dir);
  std::system(("rm -rf '" + dir + "'").c_str());

  // Inference: SST-2 as a client sends it (one request of all sentences; the batcher groups
  // them by length, up to 128 rows), then fixed 128 x 128 batches.
  auto classifier = RandomClassifier(device, model);
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
  std::vector<berth::text::Encoding> fixed;
  berth::text::EncodeOptions enc;
  enc.max_length = 128;
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
  berth::Json out = {{"device", device},
                     {"model", model},
                     {"train_bf16_seq128_batch32_samples_per_second", train_sps},
                     {"infer_bf16_sst2_sentences_per_second", sst2_sps},
                     {"sst2_sentences", sentences.size()},
                     {"infer_bf16_seq128_batch128_sentences_per_second", fixed_sps},
                     {"peak_memory_gib", PeakMemoryGiB(device)}};
  std::cout << out.dump() << "\n";
  return 0;
}
