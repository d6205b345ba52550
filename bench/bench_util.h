// What the benchmarks share: SST-2 sentences from a TSV, and random-weight classifiers of a
// preset shape, built the same way in every benchmark (seed 1, transformers' initialisation).
#ifndef BERTH_BENCH_BENCH_UTIL_H_
#define BERTH_BENCH_BENCH_UTIL_H_

#include <ATen/ATen.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "core/infer/sequence_classifier.h"
#include "core/model/model_dir.h"
#include "core/model/presets.h"
#include "core/util/data_dir.h"

namespace berth::bench {

// The sentence column (all but the last tab-separated field) of a TSV with a header line.
inline std::vector<std::string> ReadSst2(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);  // header
  while (std::getline(f, line)) {
    if (!line.empty()) out.push_back(line.substr(0, line.rfind('\t')));
  }
  return out;
}

// A two-label classifier of the preset `name` ("bert-base" or "config:bert-base") with random
// weights; exits with a message on error (a benchmark has nothing to fall back on).
inline LoadedModel RandomModel(const std::string& name) {
  auto m = CreateRandomModel(PresetNameOf(name).value_or(name), BerthDataDir());
  if (!m.ok()) {
    std::cerr << "bench: " << m.status().message() << "\n";
    std::exit(1);
  }
  m->config.id2label = {"negative", "positive"};
  at::manual_seed(1);
  auto module = CreateSequenceClassifier(m->config);
  if (!module.ok()) {
    std::cerr << "bench: " << module.status().message() << "\n";
    std::exit(1);
  }
  m->module = *module;
  m->module->InitWeights(m->config.initializer_range);
  return std::move(*m);
}

inline std::shared_ptr<const SequenceClassifier> RandomClassifier(
    const std::string& name, const ClassifierOptions& options) {
  auto c = SequenceClassifier::FromModel(RandomModel(name), options);
  if (!c.ok()) {
    std::cerr << "bench: " << c.status().message() << "\n";
    std::exit(1);
  }
  return std::shared_ptr<const SequenceClassifier>(std::move(*c));
}

}  // namespace berth::bench

#endif  // BERTH_BENCH_BENCH_UTIL_H_
