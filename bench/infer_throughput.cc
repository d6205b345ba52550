// Online classification throughput of a bert-base-shaped model on SST-2 validation (872
// sentences) and on a mixed-length set (SST-2 with one long AG News text per ten sentences):
// (a) naive fixed batches of 32 in input order, padded to the longest in each batch;
// (b) the dynamic batcher, fp32, 16 concurrent submitters; (c) the same in bf16.
//
// usage: infer_throughput [--limit N] [--model config:NAME] [--submitters K]
// [--min-padding-efficiency F]
//                        [--pattern closed|burst] [--bf16 auto|on|off]
// (c) runs only where the CPU has bf16 instructions (avx512_bf16) unless --bf16 on.
// Reads ../shared/data when present (else data/sst2-sample). Prints a table and JSON lines.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "core/infer/engine.h"
#include "core/model/model_dir.h"
#include "core/runtime/runtime.h"
#include "core/train/trainer.h"
#include "core/util/data_dir.h"
#include "core/util/json.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kMaxLength = 256;

std::vector<std::string> ReadAgNews(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    berth::Json j = berth::Json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("text")) out.push_back(j["text"]);
  }
  return out;
}

struct Result {
  std::string mode;
  double sentences_per_second = 0;
  double padding_efficiency = 0;
  double p50_ms = 0, p99_ms = 0;
  double mean_batch = 32;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

Result Naive(const berth::SequenceClassifier& m, const std::vector<std::string>& texts) {
  berth::text::EncodeOptions eo;
  eo.max_length = kMaxLength;
  int64_t real = 0, padded = 0;
  std::vector<double> latencies;
  const auto start = Clock::now();
  for (size_t i = 0; i < texts.size(); i += 32) {
    std::vector<berth::text::Encoding> batch;
    size_t longest = 0;
    for (size_t j = i; j < std::min(texts.size(), i + 32); ++j) {
      batch.push_back(*m.tokenizer().Encode(texts[j], eo));
      real += static_cast<int64_t>(batch.back().input_ids.size());
      longest = std::max(longest, batch.back().input_ids.size());
    }
    padded += static_cast<int64_t>(longest * batch.size());
    (void)m.PredictBatch(batch);
    // Every request of a batch waits from the start of the run until its batch is done.
    const double t = std::chrono::duration<double>(Clock::now() - start).count() * 1e3;
    latencies.insert(latencies.end(), batch.size(), t);
  }
  Result r;
  r.sentences_per_second = static_cast<double>(texts.size()) /
                           std::chrono::duration<double>(Clock::now() - start).count();
  r.padding_efficiency = static_cast<double>(real) / static_cast<double>(padded);
  r.p50_ms = Percentile(latencies, 0.5);
  r.p99_ms = Percentile(latencies, 0.99);
  return r;
}

double g_min_padding_efficiency = berth::BatcherOptions().min_padding_efficiency;
bool g_burst = false;

Result Dynamic(std::shared_ptr<const berth::SequenceClassifier> m,
               const std::vector<std::string>& texts, int submitters) {
  berth::EngineOptions eo;
  eo.batcher.max_batch_tokens = 8192;
  eo.batcher.max_batch_size = 64;
  eo.batcher.max_wait = std::chrono::microseconds(2000);
  eo.batcher.min_padding_efficiency = g_min_padding_efficiency;
  auto engine = berth::InferenceEngine::Create(std::move(m), eo);
  if (!engine.ok()) {
    std::cerr << engine.status() << "\n";
    std::exit(1);
  }
  std::atomic<size_t> next{0};
  std::vector<std::vector<double>> latencies(submitters);
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < submitters; ++w) {
    threads.emplace_back([&, w] {
      berth::ClassifyOptions o;
      o.max_length = kMaxLength;
      if (!g_burst) {
        // Closed loop: one request at a time, the next after the answer.
        for (size_t i; (i = next++) < texts.size();) {
          const auto t0 = Clock::now();
          auto r = (*engine)->Classify({texts[i]}, {}, o);
          if (!r.ok()) std::cerr << r.status() << "\n";
          latencies[w].push_back(std::chrono::duration<double>(Clock::now() - t0).count() * 1e3);
        }
        return;
      }
      // Burst: every request of this submitter is queued without waiting for answers (a
      // loaded server); latency is each request's queue + compute time.
      berth::text::EncodeOptions eo;
      eo.max_length = kMaxLength;
      std::vector<std::future<absl::StatusOr<berth::BatchResult>>> futures;
      for (size_t i = w; i < texts.size(); i += static_cast<size_t>(submitters)) {
        auto f = (*engine)->batcher().Submit(*(*engine)->model().tokenizer().Encode(texts[i], eo));
        if (f.ok()) futures.push_back(std::move(*f));
      }
      for (auto& f : futures) {
        auto r = f.get();
        if (r.ok()) latencies[w].push_back((r->queue_seconds + r->compute_seconds) * 1e3);
      }
    });
  }
  for (auto& t : threads) t.join();
  Result r;
  r.sentences_per_second = static_cast<double>(texts.size()) /
                           std::chrono::duration<double>(Clock::now() - start).count();
  const berth::BatcherStats st = (*engine)->batcher().stats();
  r.padding_efficiency = st.padding_efficiency();
  r.mean_batch =
      static_cast<double>(st.requests) / static_cast<double>(std::max<int64_t>(1, st.batches));
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  r.p50_ms = Percentile(all, 0.5);
  r.p99_ms = Percentile(all, 0.99);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  berth::PrepareTorchEnvironment();
  size_t limit = 0;
  int submitters = 16;
  std::string model = "bert-base";
  std::string bf16_flag = "auto";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::cout << "usage: infer_throughput [--limit N] [--model config:NAME] [--submitters K] "
                   "[--min-padding-efficiency F] [--pattern closed|burst] [--bf16 auto|on|off]\n"
                   "  closed (default): each submitter sends one request and waits for it before "
                   "the next\n"
                   "  burst: each submitter queues all of its requests at once, then collects the "
                   "answers\n";
      return 0;
    }
    if (i + 1 >= argc) break;
    if (!std::strcmp(argv[i], "--limit"))
      limit = std::strtoul(argv[++i], nullptr, 10);
    else if (!std::strcmp(argv[i], "--submitters"))
      submitters = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--min-padding-efficiency"))
      g_min_padding_efficiency = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--pattern"))
      g_burst = std::string(argv[++i]) == "burst";
    else if (!std::strcmp(argv[i], "--bf16"))
      bf16_flag = argv[++i];
    else if (!std::strcmp(argv[i], "--model")) {
      model = argv[++i];
      if (model.rfind("config:", 0) == 0) model = model.substr(7);
    }
  }
  const int threads = berth::ConfigureThreads(0);
  const std::string shared = BERTH_SHARED_DATA;
  std::vector<std::string> sst = berth::bench::ReadSst2(shared + "/sst2/validation.tsv");
  std::vector<std::string> ag = ReadAgNews(shared + "/agnews/test.jsonl");
  if (sst.empty())
    sst = berth::bench::ReadSst2(berth::BerthDataDir() + "/sst2-sample/validation.tsv");
  if (limit > 0 && sst.size() > limit) sst.resize(limit);
  std::vector<std::string> mixed;
  for (size_t i = 0; i < sst.size(); ++i) {
    mixed.push_back(sst[i]);
    if (i % 10 == 9 && !ag.empty()) mixed.push_back(ag[(i / 10) % ag.size()]);
  }
  std::cerr << "infer_throughput: " << model << ", " << sst.size() << " SST-2 sentences, "
            << mixed.size() << " in the mixed set, " << submitters
            << (g_burst ? " burst" : " closed-loop") << " submitters, " << threads
            << " threads, min padding efficiency " << g_min_padding_efficiency << "\n";
  berth::ClassifierOptions fp32_options, bf16_options;
  bf16_options.precision = berth::InferencePrecision::kBf16;
  auto fp32 = berth::bench::RandomClassifier(model, fp32_options);
  const bool with_bf16 =
      bf16_flag == "on" || (bf16_flag == "auto" && berth::HostCpuFeatures().avx512_bf16);
  if (!with_bf16)
    std::cerr << "infer_throughput: bf16 skipped (no avx512_bf16 on this CPU; --bf16 on runs it)\n";
  auto bf16 = with_bf16 ? berth::bench::RandomClassifier(model, bf16_options) : nullptr;

  std::printf("%-10s %-28s %12s %9s %7s %10s %10s %8s\n", "set", "mode", "sentences/s", "padding",
              "batch", "p50 ms", "p99 ms", "vs (a)");
  for (const auto& [set_name, texts] :
       {std::make_pair(std::string("sst2"), sst), std::make_pair(std::string("mixed"), mixed)}) {
    if (set_name == "mixed" && ag.empty()) continue;
    std::vector<Result> rs;
    rs.push_back(Naive(*fp32, texts));
    rs.back().mode = "(a) naive batches of 32";
    rs.push_back(Dynamic(fp32, texts, submitters));
    rs.back().mode = "(b) dynamic batcher fp32";
    if (with_bf16) {
      rs.push_back(Dynamic(bf16, texts, submitters));
      rs.back().mode = "(c) dynamic batcher bf16";
    }
    for (const Result& r : rs) {
      std::printf("%-10s %-28s %12.2f %9.3f %7.1f %10.1f %10.1f %8.2f\n", set_name.c_str(),
                  r.mode.c_str(), r.sentences_per_second, r.padding_efficiency, r.mean_batch,
                  r.p50_ms, r.p99_ms, r.sentences_per_second / rs[0].sentences_per_second);
      std::cout << berth::Json{{"set", set_name},
                               {"mode", r.mode},
                               {"sentences_per_second", r.sentences_per_second},
                               {"padding_efficiency", r.padding_efficiency},
                               {"mean_batch", r.mean_batch},
                               {"p50_ms", r.p50_ms},
                               {"p99_ms", r.p99_ms},
                               {"speedup_vs_naive",
                                r.sentences_per_second / rs[0].sentences_per_second}}
                       .dump()
                << "\n";
    }
  }
  return 0;
}
