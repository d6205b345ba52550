// The inference path of issue #17, row by row, in one run on one machine: where the time of a
// Classify goes, and how the paths a user takes compare with the model alone and with naive
// eager batching. A random-weight classifier of the named shape on SST-2 validation:
//
//  model alone   pre-tokenized, length-sorted chunks under the engine's budget (rows, tokens)
//  engine        one Classify call with every sentence; its breakdown: tokenize, submit, queue
//                wait, batch build (+ copy in), forward (+ copy back), finishing, assembly
//  naive         tokenize + forward in fixed batches of 32 in input order, each padded to its
//                longest text and computed padded (transformers' eager maths; the baseline
//                of the targets)
//  Berth eager   the same batches through Berth's forward, which packs the padding away on
//                the CPU (informational: what Berth's plain path already does)
//  HF eager      with --python: bench/hf_cpu_predict.py on the same saved model directory,
//                transformers' own loop over the same batches of 32 (the peer, same run)
//  predict       `berth predict` as a process on the saved model directory, load included
//  cold start    `berth predict` on one line: process start, load, first answer, exit; and
//                process start alone (`berth --help`: loading LibTorch's CPU half)
//  batch 1       one 16-token text: the model alone vs the engine (medians of 200)
//  closed loop   K clients, each sends one text and waits for its answer before the next
//
// usage: engine_bench [--model config:NAME | --model-dir DIR] [--device cpu|cuda]
//                     [--precision auto|fp32|bf16|int8] [--limit N] [--sst2 FILE] [--berth PATH]
//                     [--clients K] [--no-predict] [--engine-only] [--min-padding-efficiency F]
//                     [--batcher-threads N] [--max-wait-us N] [--python PATH]
// --model-dir runs a saved model directory (e.g. a fine-tuned one) instead of random weights;
// --engine-only keeps the model-alone, engine and predict rows (what bench/cpu_peers.py reads).
// Reads ../shared/data/sst2/validation.tsv when present (872 sentences), else data/sst2-sample.
// Prints a table (stderr) and one JSON line (stdout).
#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "core/infer/engine.h"
#include "core/infer/precision.h"
#include "core/model/bert.h"
#include "core/runtime/device.h"
#include "core/runtime/runtime.h"
#include "core/util/data_dir.h"
#include "core/util/json.h"

namespace {

using Clock = std::chrono::steady_clock;
using berth::text::Encoding;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "engine_bench: " << what << "\n";
  std::exit(1);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Flags {
  std::string model = "config:bert-base", device = "cpu", precision = "fp32", sst2, berth;
  size_t limit = 0;
  int clients = 16;
  bool predict = true, engine_only = false;
  std::string model_dir;               // a saved model instead of random weights of --model's shape
  double min_padding_efficiency = -1;  // < 0: the batcher's default
  int batcher_threads = -1;            // < 0: the batcher's default
  int64_t max_wait_us = -1;            // < 0: the batcher's default
  std::string python;                  // with transformers: the HF eager row
};

}  // namespace

int main(int argc, char** argv) {
  berth::PrepareTorchEnvironment();
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << "usage: engine_bench [--model config:NAME | --model-dir DIR] [--device "
                   "cpu|cuda] [--precision auto|fp32|bf16|int8] "
                   "[--limit N] [--sst2 FILE] [--berth PATH] [--clients K] [--no-predict] "
                   "[--engine-only] "
                   "[--min-padding-efficiency F] "
                   "[--batcher-threads N] [--max-wait-us N] [--python PATH]\n";
      return 0;
    }
    if (a == "--no-predict") {
      f.predict = false;
      continue;
    }
    if (a == "--engine-only") {
      f.engine_only = true;
      continue;
    }
    if (i + 1 >= argc) Die(a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--model")
      f.model = v;
    else if (a == "--model-dir")
      f.model_dir = v;
    else if (a == "--device")
      f.device = v;
    else if (a == "--precision")
      f.precision = v;
    else if (a == "--limit")
      f.limit = std::strtoul(v.c_str(), nullptr, 10);
    else if (a == "--sst2")
      f.sst2 = v;
    else if (a == "--berth")
      f.berth = v;
    else if (a == "--clients")
      f.clients = std::atoi(v.c_str());
    else if (a == "--min-padding-efficiency")
      f.min_padding_efficiency = std::atof(v.c_str());
    else if (a == "--batcher-threads")
      f.batcher_threads = std::atoi(v.c_str());
    else if (a == "--max-wait-us")
      f.max_wait_us = std::atoll(v.c_str());
    else if (a == "--python")
      f.python = v;
    else
      Die("unknown argument " + a);
  }
  if (auto d = berth::ParseDevice(f.device, "--device"); !d.ok())
    Die(std::string(d.status().message()));
  const int threads = berth::ConfigureThreads(0);
  if (f.sst2.empty()) {
    f.sst2 = std::string(BERTH_SHARED_DATA) + "/sst2/validation.tsv";
    if (!std::ifstream(f.sst2)) f.sst2 = berth::BerthDataDir() + "/sst2-sample/validation.tsv";
  }
  std::vector<std::string> texts = berth::bench::ReadSst2(f.sst2);
  if (f.limit > 0 && texts.size() > f.limit) texts.resize(f.limit);
  if (texts.empty()) Die("no sentences in " + f.sst2);
  if (f.berth.empty()) {
    const std::string self = argv[0];
    f.berth = self.substr(0, self.rfind('/') + 1) + "../berth";
  }
  const bool gpu = f.device != "cpu";
  auto precision = berth::ParseInferencePrecision(f.precision, "--precision", gpu);
  if (!precision.ok()) Die(std::string(precision.status().message()));

  // The model: random weights of the named shape, saved as a directory for `berth predict`.
  char tmpl[] = "/tmp/berth-engine-bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  berth::ClassifierOptions co;
  co.device = f.device;
  const std::string model_path = f.model_dir.empty() ? dir + "/model" : f.model_dir;
  if (f.model_dir.empty()) {
    auto fp32 = berth::bench::RandomClassifier(f.model, berth::ClassifierOptions());
    if (auto s = fp32->Save(model_path); !s.ok()) Die(std::string(s.message()));
  }
  co.precision = *precision;
  auto loaded = berth::SequenceClassifier::Load(model_path, co);
  if (!loaded.ok()) Die(std::string(loaded.status().message()));
  std::shared_ptr<const berth::SequenceClassifier> model(std::move(*loaded));

  berth::EngineOptions eo;
  eo.batcher.max_batch_size = gpu ? 128 : 64;
  eo.batcher.max_batch_tokens = gpu ? 128 * 128 : 8192;
  eo.batcher.max_queued_requests = static_cast<int64_t>(texts.size()) + 16;
  if (f.min_padding_efficiency >= 0) eo.batcher.min_padding_efficiency = f.min_padding_efficiency;
  if (f.batcher_threads >= 0) eo.batcher.num_threads = f.batcher_threads;
  if (f.max_wait_us >= 0) eo.batcher.max_wait = std::chrono::microseconds(f.max_wait_us);
  auto engine = berth::InferenceEngine::Create(model, eo);
  if (!engine.ok()) Die(std::string(engine.status().message()));
  const int64_t rows_cap = eo.batcher.max_batch_size, tokens_cap = eo.batcher.max_batch_tokens;
  berth::text::EncodeOptions enc;
  enc.max_length = 128;
  berth::ClassifyOptions opts;
  opts.max_length = 128;
  const double n = static_cast<double>(texts.size());
  berth::Json out = {{"model", f.model_dir.empty() ? f.model : f.model_dir},
                     {"device", f.device},
                     {"precision", std::string(berth::PrecisionName(*precision))},
                     {"quantize_seconds", model->quantize_seconds()},
                     {"cpu_features", berth::HostCpuFeatures().Summary()},
                     {"sentences", texts.size()},
                     {"threads", threads}};

  // Model alone: pre-tokenized, sorted by length, cut under the engine's budget.
  std::vector<Encoding> sorted;
  for (const std::string& t : texts) sorted.push_back(*model->tokenizer().Encode(t, enc));
  std::stable_sort(sorted.begin(), sorted.end(), [](const Encoding& a, const Encoding& b) {
    return a.input_ids.size() < b.input_ids.size();
  });
  double model_alone = 0;
  for (int round = 0; round < 3; ++round) {  // the first warms up
    const auto t0 = Clock::now();
    for (size_t i = 0; i < sorted.size();) {
      size_t j = i;
      while (j < sorted.size() && static_cast<int64_t>(j - i + 1) <= rows_cap &&
             static_cast<int64_t>((j - i + 1) * sorted[j].input_ids.size()) <= tokens_cap) {
        ++j;
      }
      std::vector<Encoding> chunk(sorted.begin() + i, sorted.begin() + j);
      if (auto r = model->PredictBatch(chunk); !r.ok()) Die(std::string(r.status().message()));
      i = j;
    }
    if (round > 0) model_alone = std::max(model_alone, n / Since(t0));
  }
  out["model_alone_sentences_per_second"] = model_alone;
  // The engine runs on its batcher thread; this thread's intra-op team goes, as it does in a
  // process that runs the engine (InferenceEngine::Create releases the loading thread's).
  berth::ReleaseThreadPool();

  // The engine, one call with everything, and where its time went (the best of 2 after a warm-up).
  double engine_sps = 0;
  berth::ClassifyTimings best_t;
  berth::BatcherStats best_s;
  for (int round = 0; round < 3; ++round) {
    berth::ClassifyTimings t;
    berth::ClassifyOptions o = opts;
    o.timings = &t;
    const berth::BatcherStats before = (*engine)->batcher().stats();
    const auto t0 = Clock::now();
    if (auto r = (*engine)->Classify(texts, {}, o); !r.ok()) Die(std::string(r.status().message()));
    const double sps = n / Since(t0);
    berth::BatcherStats s = (*engine)->batcher().stats();
    s.batches -= before.batches;
    s.build_seconds -= before.build_seconds;
    s.forward_seconds -= before.forward_seconds;
    s.finish_seconds -= before.finish_seconds;
    s.queue_seconds -= before.queue_seconds;
    s.padded_tokens -= before.padded_tokens;
    s.real_tokens -= before.real_tokens;
    if (round > 0 && sps > engine_sps) {
      engine_sps = sps;
      best_t = t;
      best_s = s;
    }
  }
  const double total = n / engine_sps;
  out["engine_sentences_per_second"] = engine_sps;
  out["engine_share_of_model_alone"] = engine_sps / model_alone;
  out["engine_batches"] = best_s.batches;
  out["engine_padding_efficiency"] = best_s.padding_efficiency();
  out["breakdown_seconds"] = {{"total", total},
                              {"tokenize", best_t.tokenize_seconds},
                              {"submit", best_t.submit_seconds},
                              {"batch_build", best_s.build_seconds},
                              {"forward_and_copy_back", best_s.forward_seconds},
                              {"finish", best_s.finish_seconds},
                              {"assemble", best_t.assemble_seconds},
                              {"queue_wait_mean", best_s.queue_seconds / n}};

  // Naive: tokenize and run fixed batches of 32 in input order, padded (as transformers
  // computes them), then the same batches through Berth's packed forward.
  // Their real / padded tokens bound what skipping the padding alone can gain over them.
  int64_t real_tokens = 0, padded_tokens = 0;
  double naive = 0, berth_eager = 0;
  auto batches_of_32 = [&](bool padded) {
    std::optional<berth::ScopedFullComputation> full;
    if (padded) full.emplace();
    double best = 0;
    for (int round = 0; round < 2; ++round) {
      real_tokens = padded_tokens = 0;
      const auto t0 = Clock::now();
      for (size_t i = 0; i < texts.size(); i += 32) {
        std::vector<Encoding> batch;
        size_t longest = 0;
        for (size_t j = i; j < std::min(texts.size(), i + 32); ++j) {
          batch.push_back(*model->tokenizer().Encode(texts[j], enc));
          real_tokens += static_cast<int64_t>(batch.back().input_ids.size());
          longest = std::max(longest, batch.back().input_ids.size());
        }
        padded_tokens += static_cast<int64_t>(longest * batch.size());
        if (auto r = model->PredictBatch(batch); !r.ok()) Die(std::string(r.status().message()));
      }
      best = std::max(best, n / Since(t0));
    }
    return best;
  };
  if (!f.engine_only) {
    naive = batches_of_32(/*padded=*/true);
    out["naive_batches_of_32_sentences_per_second"] = naive;
    out["naive_padding_efficiency"] =
        static_cast<double>(real_tokens) / static_cast<double>(std::max<int64_t>(1, padded_tokens));
    berth_eager = batches_of_32(/*padded=*/false);
    out["berth_eager_batches_of_32_sentences_per_second"] = berth_eager;
    berth::ReleaseThreadPool();  // as above, before the engine's rows
  }

  if (!f.engine_only) {
    // Batch 1: a 16-token text alone, the model vs the engine.
    const Encoding one = model->tokenizer().BuildInputs(
        std::vector<int32_t>(14, model->tokenizer().layout().unk_id), nullptr, false);
    std::vector<double> alone_ms, engine_ms;
    for (int i = 0; i < 205; ++i) {
      auto t0 = Clock::now();
      if (auto r = model->PredictBatch({one}); !r.ok()) Die(std::string(r.status().message()));
      if (i >= 5) alone_ms.push_back(Since(t0) * 1e3);
      t0 = Clock::now();
      if (auto r = (*engine)->ClassifyEncoded({one}, berth::ClassifyOptions()); !r.ok())
        Die(std::string(r.status().message()));
      if (i >= 5) engine_ms.push_back(Since(t0) * 1e3);
    }
    out["batch1_model_ms"] = Median(alone_ms);
    out["batch1_engine_ms"] = Median(engine_ms);
    berth::ReleaseThreadPool();  // as above, before the closed loop

    // Closed loop: K clients, one text per call.
    std::atomic<size_t> next{0};
    const berth::BatcherStats before_loop = (*engine)->batcher().stats();
    auto t0 = Clock::now();
    std::vector<std::thread> clients;
    for (int c = 0; c < f.clients; ++c) {
      clients.emplace_back([&] {
        for (size_t i; (i = next++) < texts.size();) {
          if (auto r = (*engine)->Classify({texts[i]}, {}, opts); !r.ok())
            Die(std::string(r.status().message()));
        }
      });
    }
    for (auto& c : clients) c.join();
    out["closed_loop_sentences_per_second"] = n / Since(t0);
    {
      const berth::BatcherStats s = (*engine)->batcher().stats();
      const double batches =
          static_cast<double>(std::max<int64_t>(1, s.batches - before_loop.batches));
      out["closed_loop_mean_batch"] =
          static_cast<double>(s.requests - before_loop.requests) / batches;
      out["closed_loop_forward_ms_per_batch"] =
          (s.forward_seconds - before_loop.forward_seconds) * 1e3 / batches;
      out["closed_loop_queue_wait_ms"] =
          (s.queue_seconds - before_loop.queue_seconds) * 1e3 /
          static_cast<double>(std::max<int64_t>(1, s.requests - before_loop.requests));
    }
    out["closed_loop_clients"] = f.clients;
  }
  (*engine)->Shutdown();

  // berth predict as a process: all the sentences, then one line (cold start).
  const std::string in = dir + "/in.txt", one_line = dir + "/one.txt";
  {
    std::ofstream a(in), b(one_line);
    for (const std::string& t : texts) a << t << "\n";
    b << texts[0] << "\n";
  }
  if (f.predict) {
    const std::string cmd = "'" + f.berth + "' predict --model '" + model_path +
                            "' --max-length 128 --device " + f.device + " --precision " +
                            f.precision +
                            (gpu ? " --batch-size 128 --max-batch-tokens 16384" : "") + " < ";
    // The faster of two runs of a shell command, in seconds.
    auto fastest = [](const std::string& command) {
      double best = 1e30;
      for (int round = 0; round < 2; ++round) {
        const auto s = Clock::now();
        if (std::system(command.c_str()) != 0) Die("failed: " + command);
        best = std::min(best, Since(s));
      }
      return best;
    };
    out["predict_process_sentences_per_second"] = n / fastest(cmd + "'" + in + "' > /dev/null");
    out["cold_start_seconds"] = fastest(cmd + "'" + one_line + "' > /dev/null");
    out["process_start_seconds"] = fastest("'" + f.berth + "' --help > /dev/null");
  }
  // The peer: transformers' eager loop over the same batches, on the same model directory.
  double hf = 0;
  if (!f.python.empty() && !gpu && !f.engine_only) {
    const std::string cmd = "'" + f.python + "' '" + BERTH_SOURCE_DIR +
                            "/bench/hf_cpu_predict.py' --model '" + model_path + "' --input '" +
                            in + "' --max-length 128 --threads " + std::to_string(threads);
    FILE* p = popen(cmd.c_str(), "r");
    std::string line;
    if (p != nullptr) {
      char buf[4096];
      while (std::fgets(buf, sizeof buf, p) != nullptr) line += buf;
      if (pclose(p) != 0) line.clear();
    }
    const berth::Json j = berth::Json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("hf_naive_sentences_per_second"))
      Die("the HF row failed: " + cmd);
    hf = j["hf_naive_sentences_per_second"].get<double>();
    out["hf_eager_batches_of_32_sentences_per_second"] = hf;
  }
  std::system(("rm -rf '" + dir + "'").c_str());

  const auto& b = out["breakdown_seconds"];
  std::fprintf(stderr, "engine_bench: %s %s %s, %zu SST-2 sentences, %d threads, CPU %s\n",
               out["model"].get<std::string>().c_str(), f.device.c_str(),
               out["precision"].get<std::string>().c_str(), texts.size(), threads,
               berth::HostCpuFeatures().Summary().c_str());
  if (model->quantize_seconds() > 0)
    std::fprintf(stderr, "int8: quantizing and prepacking at load took %.3f s\n",
                 model->quantize_seconds());
  std::fprintf(stderr, "%-44s %12s %8s\n", "", "sentences/s", "ratio");
  auto row = [&](const char* name, double v, double base, const char* vs) {
    std::fprintf(stderr, "%-44s %12.1f %7.2fx %s\n", name, v, v / base, vs);
  };
  row("model alone, sorted under the budget", model_alone, model_alone, "");
  row("engine, one Classify of all", engine_sps, model_alone, "of model alone (target >= 0.90)");
  if (f.engine_only && f.predict) {
    row("berth predict, whole process", out["predict_process_sentences_per_second"].get<double>(),
        model_alone, "of model alone");
  }
  if (!f.engine_only) {
    row("naive batches of 32, input order, padded", naive, naive, "");
    std::fprintf(stderr,
                 "  (real / padded tokens %.2f: skipping the padding alone gains at most %.2fx)\n",
                 out["naive_padding_efficiency"].get<double>(),
                 1 / out["naive_padding_efficiency"].get<double>());
    row("Berth eager, the same batches, packed", berth_eager, naive, "of naive");
    if (hf > 0) row("HF eager, the same batches (transformers)", hf, naive, "of naive");
    if (f.predict) {
      row("berth predict, whole process", out["predict_process_sentences_per_second"].get<double>(),
          naive, "of naive (target >= 3.5)");
    }
    row("closed loop, one text per call", out["closed_loop_sentences_per_second"].get<double>(),
        naive, "of naive (target >= 1.2)");
    std::fprintf(stderr,
                 "closed loop: %d clients, %.1f texts per batch, forward %.2f ms per batch, mean "
                 "queue wait %.2f ms\n",
                 f.clients, out["closed_loop_mean_batch"].get<double>(),
                 out["closed_loop_forward_ms_per_batch"].get<double>(),
                 out["closed_loop_queue_wait_ms"].get<double>());
    std::fprintf(stderr, "batch 1: model %.3f ms, engine %.3f ms (+%.3f ms; target <= +0.3)\n",
                 out["batch1_model_ms"].get<double>(), out["batch1_engine_ms"].get<double>(),
                 out["batch1_engine_ms"].get<double>() - out["batch1_model_ms"].get<double>());
  }
  if (f.predict)
    std::fprintf(
        stderr,
        "cold start (berth predict, one line): %.2f s (target < 1.5), of which process "
        "start (berth --help) %.2f s and load to first answer %.2f s\n",
        out["cold_start_seconds"].get<double>(), out["process_start_seconds"].get<double>(),
        out["cold_start_seconds"].get<double>() - out["process_start_seconds"].get<double>());
  std::fprintf(stderr,
               "engine breakdown of %.1f ms: tokenize %.1f, submit %.1f, batch build %.1f, "
               "forward+copy %.1f, "
               "finish %.1f, assemble %.1f (mean queue wait %.1f ms; %lld batches, padding "
               "efficiency %.2f)\n",
               total * 1e3, b["tokenize"].get<double>() * 1e3, b["submit"].get<double>() * 1e3,
               b["batch_build"].get<double>() * 1e3, b["forward_and_copy_back"].get<double>() * 1e3,
               b["finish"].get<double>() * 1e3, b["assemble"].get<double>() * 1e3,
               b["queue_wait_mean"].get<double>() * 1e3, static_cast<long long>(best_s.batches),
               best_s.padding_efficiency());
  std::cout << out.dump() << "\n";
  return 0;
}
