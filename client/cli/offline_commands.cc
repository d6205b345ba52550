// Offline commands: read UTF-8 lines from stdin, write JSON Lines to stdout.
#include "client/cli/offline_commands.h"

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/infer/engine.h"
#include "core/infer/precision.h"
#include "core/infer/sequence_classifier.h"
#include "core/model/hub.h"
#include "core/runtime/runtime.h"
#include "core/text/tokenizer.h"
#include "core/util/json.h"
#include "core/util/thread_pool.h"

namespace berth::cli {
namespace {

struct CommonFlags {
  std::string model;
  int max_length = 0;
  bool pairs = false;
  std::optional<bool> lowercase;
  std::string invalid_utf8 = "error";
};

void AddCommonFlags(CLI::App* cmd, CommonFlags* f) {
  cmd->add_option("--model", f->model,
                  "Hugging Face model directory, or a Hub id (org/name[@revision]) fetched into "
                  "the HF cache")
      ->required();
  cmd->add_option("--max-length", f->max_length,
                  "Maximum tokens per example including special tokens; longer inputs are "
                  "truncated (default: the tokenizer's model_max_length)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--pairs", f->pairs,
                "Each line is TEXT_A<TAB>TEXT_B, encoded as a pair (longest_first truncation)");
  cmd->add_flag_function(
      "--lowercase,!--no-lowercase", [f](int64_t count) { f->lowercase = count > 0; },
      "Override the tokenizer's do_lower_case (default: as tokenizer_config.json says)");
  cmd->add_option("--invalid-utf8", f->invalid_utf8,
                  "What to do with a line that is not valid UTF-8: 'error' (stop, naming the "
                  "line) or 'replace' (U+FFFD)")
      ->check(CLI::IsMember({"error", "replace"}))
      ->capture_default_str();
}

text::EncodeOptions MakeEncodeOptions(const CommonFlags& f, bool tokens) {
  text::EncodeOptions o;
  o.max_length = f.max_length;
  o.return_tokens = tokens;
  o.invalid_utf8 =
      f.invalid_utf8 == "replace" ? text::InvalidUtf8::kReplace : text::InvalidUtf8::kReject;
  return o;
}

absl::StatusOr<text::Encoding> EncodeLine(const text::Tokenizer& tok, const std::string& line,
                                          bool pairs, const text::EncodeOptions& o) {
  if (!pairs) return tok.Encode(line, o);
  size_t tab = line.find('\t');
  if (tab == std::string::npos) {
    return absl::InvalidArgumentError("--pairs expects TEXT_A<TAB>TEXT_B but the line has no tab");
  }
  return tok.EncodePair(absl::string_view(line).substr(0, tab),
                        absl::string_view(line).substr(tab + 1), o);
}

int Fail(const std::string& message) {
  std::cerr << "berth: " << message << "\n";
  return 1;
}

int RunTokenize(const CommonFlags& f) {
  auto dir = ResolveModelPath(f.model, HubOptions::FromEnvironment());
  if (!dir.ok()) return Fail(std::string(dir.status().message()));
  text::TokenizerOverrides overrides;
  overrides.do_lower_case = f.lowercase;
  auto tok = text::LoadTokenizer(*dir, overrides);
  if (!tok.ok()) return Fail(std::string(tok.status().message()));
  const text::EncodeOptions o = MakeEncodeOptions(f, /*tokens=*/true);
  std::string line;
  for (int64_t n = 1; std::getline(std::cin, line); ++n) {
    auto e = EncodeLine(**tok, line, f.pairs, o);
    if (!e.ok()) return Fail(absl::StrCat("stdin line ", n, ": ", e.status().message()));
    Json j = {{"input_ids", e->input_ids},
              {"token_type_ids", e->token_type_ids},
              {"attention_mask", e->attention_mask},
              {"tokens", e->tokens}};
    std::cout << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  }
  std::cout.flush();
  return 0;
}

// Writes one window's results, in input order; false once stdout is gone (a closed pipe).
bool WriteResults(const std::vector<ClassifyResult>& results, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    const ClassifyResult& r = results[i];
    Json j = {{"label", r.label}, {"logits", r.logits}, {"probabilities", r.scores}};
    std::cout << j.dump() << "\n";
  }
  std::cout.flush();
  return static_cast<bool>(std::cout);
}

// Reads stdin a window of lines at a time, tokenizes the window across the cores, and hands it
// whole to the inference engine, whose batcher sorts it by length into batches under the token
// budget; the results are written in input order before the next window is read, so memory is
// bounded by the window however long the input.
int RunPredict(const CommonFlags& f, const EngineFlags& p) {
  EngineOptions eo = MakeEngineOptions(p);
  eo.classifier.tokenizer.do_lower_case = f.lowercase;
  auto dir = ResolveModelPath(f.model, HubOptions::FromEnvironment());
  if (!dir.ok()) return Fail(std::string(dir.status().message()));
  auto engine = InferenceEngine::Load(*dir, eo);
  if (!engine.ok()) return Fail(std::string(engine.status().message()));
  const text::Tokenizer& tok = (*engine)->model().tokenizer();
  const text::EncodeOptions o = MakeEncodeOptions(f, /*tokens=*/false);
  ClassifyOptions co;
  co.return_logits = true;
  const bool progress = ::isatty(STDERR_FILENO);

  int64_t first_line = 1;  // of the window
  std::vector<std::string> lines;
  std::string line;
  bool more = true;
  while (more) {
    lines.clear();
    while (static_cast<int>(lines.size()) < p.window &&
           (more = static_cast<bool>(std::getline(std::cin, line)))) {
      lines.push_back(std::move(line));
    }
    if (lines.empty()) break;
    std::vector<absl::StatusOr<text::Encoding>> encoded(lines.size(),
                                                        absl::UnknownError("not encoded"));
    ParallelFor(lines.size(), 64,
                [&](size_t i) { encoded[i] = EncodeLine(tok, lines[i], f.pairs, o); });
    // A bad line stops the run; the lines before it are still answered.
    size_t good = 0;
    while (good < encoded.size() && encoded[good].ok()) ++good;
    std::vector<text::Encoding> window;
    window.reserve(good);
    for (size_t i = 0; i < good; ++i) window.push_back(std::move(*encoded[i]));
    auto results = (*engine)->ClassifyEncoded(std::move(window), co);
    if (!results.ok()) return Fail(std::string(results.status().message()));
    if (!WriteResults(*results, good)) return Fail("stdout was closed");
    if (good < encoded.size()) {
      return Fail(absl::StrCat("stdin line ", first_line + static_cast<int64_t>(good), ": ",
                               encoded[good].status().message()));
    }
    first_line += static_cast<int64_t>(lines.size());
    if (progress) std::cerr << "\rberth predict: " << first_line - 1 << " lines" << std::flush;
  }
  if (progress) std::cerr << "\n";
  return 0;
}

int RunVersion(bool json) {
  const RuntimeInfo r = DescribeRuntime();
  if (json) {
    std::cout << nlohmann::json{{"berth", BERTH_VERSION},
                                {"torch", r.torch_version},
                                {"cuda_built", r.cuda_built},
                                {"cuda_runtime", r.cuda_runtime},
                                {"cudnn", r.cudnn},
                                {"cuda_devices", r.cuda_devices},
                                {"mkl", r.mkl},
                                {"mkldnn", r.mkldnn},
                                {"threads", r.threads},
                                {"cpu_features", HostCpuFeatures().Summary()}}
                     .dump()
              << "\n";
    return 0;
  }
  std::cout << "berth " << BERTH_VERSION << "\nLibTorch " << r.torch_version << ", CUDA "
            << (r.cuda_built ? absl::StrCat(r.cuda_runtime / 1000, ".", r.cuda_runtime % 1000 / 10,
                                            " (", r.cuda_devices, " GPU",
                                            r.cuda_devices == 1 ? "" : "s", " visible)")
                             : std::string("not built"))
            << ", MKL " << (r.mkl ? "yes" : "no") << ", oneDNN " << (r.mkldnn ? "yes" : "no")
            << ", " << r.threads << " threads\nCPU features: " << HostCpuFeatures().Summary()
            << "\n";
  return 0;
}

}  // namespace

void AddEngineFlags(CLI::App* cmd, EngineFlags* f, const std::string& items) {
  cmd->add_option(
         "--batch-size", f->batch_size,
         "Most " + items + " per forward pass (grouped by length, up to --max-batch-tokens)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-batch-tokens", f->max_batch_tokens,
                  "Most padded tokens (" + items + " x longest) per forward pass")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--window", f->window,
                  "The " + items +
                      " read ahead, tokenized across the cores and batched together (memory is "
                      "bounded by the window)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--threads", f->threads, "Intra-op threads (0: one per available core)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--precision", f->precision,
                  "auto (bf16 on a GPU or a CPU with avx512_bf16 or AMX, else fp32), fp32, bf16, "
                  "or int8 (CPU; encoder linear layers quantized at load; scores differ slightly)")
      ->check(CLI::IsMember(PrecisionChoices()))
      ->capture_default_str();
  cmd->add_option("--device", f->device, "cpu, cuda or cuda:N")->capture_default_str();
}

EngineOptions MakeEngineOptions(const EngineFlags& f) {
  ConfigureThreads(f.threads);
  EngineOptions eo;
  // The flag's check admits only PrecisionChoices(), which all parse.
  eo.classifier.precision = ParseInferencePrecision(f.precision, "--precision", f.device != "cpu")
                                .value_or(InferencePrecision::kFp32);
  eo.classifier.device = f.device;
  eo.batcher.max_batch_size = f.batch_size;
  eo.batcher.max_batch_tokens = f.max_batch_tokens;
  eo.batcher.max_queued_requests = f.window;
  eo.batcher.max_wait = std::chrono::microseconds(0);  // one caller: no company to wait for
  // One caller, so nobody waits behind a cold kernel but the first window itself: its batches
  // load the kernels as a warm-up would, and a warm-up would only delay the first answer.
  eo.batcher.warmup = false;
  eo.batcher.num_threads = f.threads;
  return eo;
}

void AddOfflineCommands(CLI::App& app, std::function<int()>* run) {
  auto version_json = std::make_shared<bool>(false);
  CLI::App* ver = app.add_subcommand("version",
                                     "Berth's version and its LibTorch: torch version, CUDA "
                                     "compiled in, GPUs visible, MKL, oneDNN");
  ver->add_flag("--json", *version_json, "One JSON object instead of text");
  ver->callback(
      [run, version_json] { *run = [version_json] { return RunVersion(*version_json); }; });

  auto common_tok = std::make_shared<CommonFlags>();
  CLI::App* tok =
      app.add_subcommand("tokenize",
                         "Tokenize stdin lines with a model's tokenizer; one JSON object per line "
                         "{input_ids, token_type_ids, attention_mask, tokens}");
  AddCommonFlags(tok, common_tok.get());
  tok->callback([run, common_tok] { *run = [common_tok] { return RunTokenize(*common_tok); }; });

  auto common_pred = std::make_shared<CommonFlags>();
  auto pred_flags = std::make_shared<EngineFlags>();
  CLI::App* pred =
      app.add_subcommand("predict",
                         "Classify stdin lines with a model directory; one JSON object per line "
                         "{label, logits, probabilities}, in input order");
  AddCommonFlags(pred, common_pred.get());
  AddEngineFlags(pred, pred_flags.get(), "lines");
  pred->callback([run, common_pred, pred_flags] {
    *run = [common_pred, pred_flags] { return RunPredict(*common_pred, *pred_flags); };
  });
}

}  // namespace berth::cli
