// Forward pass of a bert-base-shaped classifier (12 layers, hidden 768) at batch 8 x seq 128,
// with achieved GFLOP/s next to a plain fp32 matmul's GFLOP/s measured in the same run.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>

#include "core/model/bert.h"
#include "core/runtime/runtime.h"

namespace {

constexpr int64_t kBatch = 8, kSeq = 128;

berth::ModelConfig BertBase() {
  berth::ModelConfig c;  // defaults are bert-base: 12 x 768, 12 heads, 3072 intermediate
  c.id2label = {"negative", "positive"};
  return c;
}

// Multiply-adds x2 of the encoder's matmuls (embeddings, softmax and LayerNorm not counted).
double ForwardFlops(const berth::ModelConfig& c, int64_t b, int64_t s) {
  const double h = static_cast<double>(c.hidden_size), i = static_cast<double>(c.intermediate_size);
  const double tokens = static_cast<double>(b * s);
  const double per_layer =
      2 * tokens * (4 * h * h + 2 * h * i) + 2 * 2 * b * static_cast<double>(s) * s * h;
  return per_layer * static_cast<double>(c.num_hidden_layers);
}

void BM_BertBaseForward(benchmark::State& state) {
  berth::ModelConfig c = BertBase();
  auto module = berth::CreateSequenceClassifier(c);
  (*module)->InitWeights(c.initializer_range);
  (*module)->eval();
  c10::InferenceMode guard;
  at::Tensor ids = at::randint(1000, 2000, {kBatch, kSeq}, at::kLong);
  at::Tensor types = at::zeros({kBatch, kSeq}, at::kLong);
  at::Tensor mask = at::ones({kBatch, kSeq}, at::kLong);
  (*module)->forward(ids, types, mask);  // warm-up
  for (auto _ : state) benchmark::DoNotOptimize((*module)->forward(ids, types, mask));
  state.counters["GFLOP/s"] = benchmark::Counter(
      ForwardFlops(c, kBatch, kSeq) * 1e-9 * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
  state.counters["sentences/s"] = benchmark::Counter(
      static_cast<double>(kBatch * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_BertBaseForward)->Unit(benchmark::kMillisecond)->MinTime(5.0)->UseRealTime();

// The same shape as the FFN's first matmul: [1024, 768] x [768, 3072].
void BM_PlainMatmul(benchmark::State& state) {
  c10::InferenceMode guard;
  at::Tensor a = at::randn({kBatch * kSeq, 768});
  at::Tensor b = at::randn({768, 3072});
  at::mm(a, b);
  for (auto _ : state) benchmark::DoNotOptimize(at::mm(a, b));
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * kBatch * kSeq * 768 * 3072 * 1e-9 * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PlainMatmul)->Unit(benchmark::kMillisecond)->MinTime(3.0)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  berth::PrepareTorchEnvironment();
  berth::ConfigureThreads(0);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
