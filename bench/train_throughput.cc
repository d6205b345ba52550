// Training throughput of a bert-base-shaped classifier at seq 128, batch 8, fp32 and bf16,
// through the real fine-tuning loop, next to plain fp32/bf16 matmul GFLOP/s from the same run.
//
// usage: train_throughput [--steps N] [--model config:NAME] [--batch B] [--seq S] [--bf16
// auto|on|off] bf16 runs only where the CPU has bf16 instructions (avx512_bf16) unless --bf16 on:
// elsewhere torch emulates bf16 matmuls at ~1 GFLOP/s and one bf16 run takes tens of minutes.
// Prints a table and one JSON line. Not run by ctest (it takes about a minute).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "core/model/presets.h"
#include "core/runtime/runtime.h"
#include "core/train/trainer.h"
#include "core/util/json.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kWarmup = 2;  // untimed updates: the optimizer state and heap grow here

double MatmulGflops(at::ScalarType dtype, double seconds) {
  c10::InferenceMode guard;
  at::Tensor a = at::randn({1024, 768}).to(dtype);
  at::Tensor b = at::randn({768, 3072}).to(dtype);
  at::mm(a, b);
  int64_t n = 0;
  auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    at::mm(a, b);
    ++n;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return 2.0 * 1024 * 768 * 3072 * static_cast<double>(n) / elapsed * 1e-9;
}

// Matmul FLOPs of one training sample (forward x3 for forward + backward).
double TrainFlopsPerSample(const berth::ModelPreset& s, int64_t seq) {
  const double h = static_cast<double>(s.hidden), i = static_cast<double>(s.intermediate);
  const double t = static_cast<double>(seq);
  const double fwd =
      (2 * t * (4 * h * h + 2 * h * i) + 4 * t * t * h) * static_cast<double>(s.layers);
  return 3 * fwd;
}

struct Run {
  double samples_per_second = 0;
  double seconds = 0;
};

Run TrainRun(const std::string& model, const std::string& data, int64_t batch, int64_t seq,
             int64_t steps, berth::data::Precision precision, const std::string& out) {
  berth::train::FineTuneJob job;
  job.base_model = model;
  job.train_path = data;
  job.output_dir = out;
  job.spec.batch_size = batch;
  job.spec.max_length = seq;
  job.spec.pad_to_max_length = true;
  job.spec.max_steps = steps + kWarmup;  // the first updates allocate and are not timed
  job.spec.learning_rate = 1e-5;
  job.spec.precision = precision;
  job.spec.shuffle = false;
  Clock::time_point first_done;
  int64_t samples = 0;
  Clock::time_point last;
  auto r = berth::train::RunFineTune(
      job,
      [&](const berth::data::Progress& p) {
        if (p.eval != nullptr) return;
        last = Clock::now();
        if (p.update == kWarmup) first_done = last;
        if (p.update > kWarmup) samples += batch;
      },
      nullptr);
  if (!r.ok()) {
    std::cerr << "train_throughput: " << r.status().message() << "\n";
    std::exit(1);
  }
  Run run;
  run.seconds = std::chrono::duration<double>(last - first_done).count();
  run.samples_per_second = static_cast<double>(samples) / run.seconds;
  std::system(("rm -rf '" + out + "'").c_str());
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  berth::PrepareTorchEnvironment();
  int64_t steps = 5, batch = 8, seq = 128;
  std::string model = "config:bert-base";
  std::string bf16_flag = "auto";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--bf16")) bf16_flag = argv[i + 1];
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--batch")) batch = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--seq")) seq = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
  }
  if (argc > 1 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"))) {
    std::cout << "usage: train_throughput [--steps N] [--model config:NAME] [--batch B] [--seq S] "
                 "[--bf16 auto|on|off]\n";
    return 0;
  }
  const int threads = berth::ConfigureThreads(0);
  const berth::ModelPreset* preset =
      berth::FindModelPreset(berth::PresetNameOf(model).value_or(""));
  if (preset == nullptr) {
    std::cerr << "train_throughput: --model must be one of " << berth::PresetList() << "\n";
    return 2;
  }
  const berth::ModelPreset& shape = *preset;

  // Long enough texts that every row fills `seq` tokens.
  char tmpl[] = "/tmp/berth-train-bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string data = dir + "/train.jsonl";
  {
    std::ofstream f(data);
    std::string text;
    for (int w = 0; w < 400; ++w) text += (w % 2 ? "movie " : "great ");
    for (int64_t r = 0; r < batch * (steps + kWarmup); ++r) {
      f << berth::Json{{"text", text}, {"label", r % 2 ? "pos" : "neg"}}.dump() << "\n";
    }
  }
  std::cerr << "train_throughput: " << model << ", batch " << batch << " x seq " << seq << ", "
            << steps << " timed updates, " << threads << " threads\n";
  // The machine is shared and noisy: the matmul reference is measured right before and right
  // after the training runs, and averaged.
  const double mm32_before = MatmulGflops(at::kFloat, 3.0);
  const bool with_bf16 =
      bf16_flag == "on" || (bf16_flag == "auto" && berth::HostCpuFeatures().avx512_bf16);
  if (!with_bf16)
    std::cerr << "train_throughput: bf16 skipped (no avx512_bf16 on this CPU; --bf16 on runs it)\n";
  const double mm16 = with_bf16 ? MatmulGflops(at::kBFloat16, 3.0) : 0;
  const Run fp32 =
      TrainRun(model, data, batch, seq, steps, berth::data::Precision::kFp32, dir + "/fp32");
  const Run bf16 = with_bf16 ? TrainRun(model, data, batch, seq, steps,
                                        berth::data::Precision::kBf16, dir + "/bf16")
                             : Run{};
  const double mm32_after = MatmulGflops(at::kFloat, 3.0);
  const double mm32 = (mm32_before + mm32_after) / 2;
  std::cerr << "train_throughput: fp32 matmul " << mm32_before << " GFLOP/s before, " << mm32_after
            << " after\n";
  std::system(("rm -rf '" + dir + "'").c_str());

  const double flops = TrainFlopsPerSample(shape, seq);
  const double g32 = fp32.samples_per_second * flops * 1e-9;
  const double g16 = bf16.samples_per_second * flops * 1e-9;
  std::printf("%-28s %12s %12s %14s\n", "", "samples/s", "GFLOP/s", "vs fp32 matmul");
  std::printf("%-28s %12s %12.1f %14s\n", "plain matmul fp32", "", mm32, "1.00");
  std::printf("%-28s %12s %12.1f %14.2f\n", "plain matmul bf16", "", mm16, mm16 / mm32);
  std::printf("%-28s %12.2f %12.1f %14.2f\n", "train fp32", fp32.samples_per_second, g32,
              g32 / mm32);
  std::printf("%-28s %12.2f %12.1f %14.2f\n", "train bf16 (autocast)", bf16.samples_per_second, g16,
              g16 / mm32);
  std::printf("bf16 / fp32 training speed-up: %.2fx\n",
              bf16.samples_per_second / fp32.samples_per_second);
  std::cout << berth::Json{{"model", model},
                           {"batch", batch},
                           {"seq", seq},
                           {"threads", threads},
                           {"matmul_fp32_gflops", mm32},
                           {"matmul_bf16_gflops", mm16},
                           {"train_fp32_samples_per_s", fp32.samples_per_second},
                           {"train_bf16_samples_per_s", bf16.samples_per_second},
                           {"train_fp32_gflops", g32},
                           {"train_bf16_gflops", g16},
                           {"fp32_vs_matmul", g32 / mm32},
                           {"bf16_speedup", bf16.samples_per_second / fp32.samples_per_second}}
                   .dump()
            << "\n";
  return 0;
}
