// WordPiece throughput (tokens/s) on SST-2 training sentences with the bert-base-uncased
// vocabulary.
#include <benchmark/benchmark.h>

#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "core/text/tokenizer.h"

namespace {

// SST-2 train.tsv sentences if ../shared/data is there, else the fixture texts.
std::vector<std::string> LoadTexts() {
  std::vector<std::string> texts;
  std::ifstream sst(std::string(BERTH_SHARED_DATA) + "/sst2/train.tsv");
  std::string line;
  if (sst.good()) {
    std::getline(sst, line);  // header: sentence<TAB>label
    while (std::getline(sst, line)) texts.push_back(line.substr(0, line.rfind('\t')));
    std::cerr << "tokenizer_bench: " << texts.size() << " SST-2 train sentences\n";
  } else {
    std::ifstream fx(std::string(BERTH_TEST_DATA) +
                     "/fixtures/bert-tiny-uncased/expected/tokens.jsonl");
    while (std::getline(fx, line)) texts.push_back(line);
    std::cerr << "tokenizer_bench: ../shared/data absent; " << texts.size() << " fixture lines\n";
  }
  return texts;
}

void BM_WordPieceEncode(benchmark::State& state) {
  static const std::vector<std::string> texts = LoadTexts();
  auto tok =
      berth::text::LoadTokenizer(std::string(BERTH_TEST_DATA) + "/fixtures/bert-tiny-uncased");
  if (!tok.ok()) {
    state.SkipWithError(std::string(tok.status().message()).c_str());
    return;
  }
  berth::text::EncodeOptions o;
  o.max_length = 512;
  int64_t tokens = 0, bytes = 0;
  size_t i = 0;
  for (auto _ : state) {
    const std::string& t = texts[i++ % texts.size()];
    auto e = (*tok)->Encode(t, o);
    benchmark::DoNotOptimize(e);
    tokens += static_cast<int64_t>(e->input_ids.size());
    bytes += static_cast<int64_t>(t.size());
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_WordPieceEncode)->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
