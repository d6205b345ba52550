// `berth classify`.

#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/remote_common.h"
#include "client/lib/client.h"
#include "nlohmann/json.hpp"

namespace berth::cli {

using Json = nlohmann::json;

namespace {

// Reads the texts to classify: arguments, else --file, else stdin; one text per line.
absl::StatusOr<std::vector<std::string>> ReadTexts(const std::vector<std::string>& args,
                                                   const std::string& file) {
  if (!args.empty()) return args;
  std::vector<std::string> texts;
  std::ifstream in;
  std::istream* src = &std::cin;
  if (!file.empty()) {
    in.open(file);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", file));
    src = &in;
  }
  std::string line;
  while (std::getline(*src, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    texts.push_back(line);
  }
  return texts;
}

// The request for `texts`, with the flags' options.
v1::ClassifyRequest MakeRequest(const ClassifyFlags& f, const std::vector<std::string>& texts,
                                size_t start, size_t end) {
  v1::ClassifyRequest r;
  r.set_model(f.model);
  r.set_top_k(f.top_k);
  r.set_raw_scores(f.raw_scores);
  r.set_max_length(f.max_length);
  r.set_stride(f.stride);
  r.set_truncation(f.truncation == "left"     ? v1::TRUNCATION_LEFT
                   : f.truncation == "window" ? v1::TRUNCATION_WINDOW
                                              : v1::TRUNCATION_RIGHT);
  for (size_t i = start; i < end; ++i) r.add_texts(texts[i]);
  return r;
}

// One JSON line per result; `texts[first + i]` is result i's text.
void PrintResults(const ClassifyFlags& f, const v1::ClassifyResponse& resp,
                  const std::vector<std::string>& texts, size_t first) {
  for (int i = 0; i < resp.results_size(); ++i) {
    const v1::Classification& x = resp.results(i);
    Json j = {{"label", x.label()}, {"score", x.score()}};
    Json scores = Json::object();
    for (int k = 0; k < x.scores_size() && k < resp.labels_size(); ++k)
      scores[resp.labels(k)] = x.scores(k);
    j["scores"] = scores;
    if (x.top_k_size() > 0) {
      Json top = Json::array();
      for (const v1::LabelScore& t : x.top_k())
        top.push_back({{"label", t.label()}, {"score", t.score()}});
      j["top_k"] = top;
    }
    if (x.predicted_size() > 0)
      j["predicted"] = std::vector<std::string>(x.predicted().begin(), x.predicted().end());
    if (x.logits_size() > 0) j["logits"] = std::vector<float>(x.logits().begin(), x.logits().end());
    j["num_tokens"] = x.num_tokens();
    j["truncated"] = x.truncated();
    j["model"] = resp.model();
    j["model_version"] = resp.model_version();
    if (f.with_text) j["text"] = texts[first + i];
    std::cout << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  }
}

// --stream: one ClassifyStream call; each stdin line is one request, answered (and printed,
// flushed) before the next line is read, so `berth classify --stream` works as a filter in a
// pipe that stays open.
int RunClassifyStream(const ClassifyFlags& f, client::Client& c) {
  std::unique_ptr<client::ClassifyStreamCall> stream = c.OpenClassifyStream();
  std::string line;
  for (int64_t n = 1; std::getline(std::cin, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::vector<std::string> one = {line};
    auto resp = stream->Classify(MakeRequest(f, one, 0, 1));
    if (!resp.ok()) return Fail(resp.status(), absl::StrCat("classify (line ", n, ")"));
    PrintResults(f, *resp, one, 0);
    std::cout.flush();
  }
  absl::Status s = stream->Finish();
  return s.ok() ? 0 : Fail(s, "classify");
}

}  // namespace

int RunClassify(const ClassifyFlags& f) {
  if (f.stream && (!f.texts.empty() || !f.file.empty())) {
    std::cerr << "berth: classify --stream reads stdin (no texts or --file)\n";
    return 2;
  }
  auto c = Connect(f.server);
  if (c == nullptr) return 1;
  if (f.stream) return RunClassifyStream(f, *c);
  auto texts = ReadTexts(f.texts, f.file);
  if (!texts.ok()) return Fail(texts.status(), "classify");
  for (size_t start = 0; start < texts->size(); start += f.batch_size) {
    const size_t end = std::min(texts->size(), start + f.batch_size);
    auto resp = c->Classify(MakeRequest(f, *texts, start, end));
    if (!resp.ok())
      return Fail(resp.status(), absl::StrCat("classify (texts ", start + 1, "-", end, ")"));
    PrintResults(f, *resp, *texts, start);
  }
  std::cout.flush();
  return 0;
}

void AddClassifyCommand(CLI::App& app, std::function<int()>* run) {
  // classify
  {
    auto f = std::make_shared<ClassifyFlags>();
    CLI::App* cmd = app.add_subcommand(
        "classify",
        "Classify texts (arguments, --file, or stdin lines) with a model on the server; one JSON "
        "object per text "
        "{label, score, scores, num_tokens, truncated, model, model_version}, in input order");
    cmd->add_option("--model", f->model, "NAME, NAME:VERSION or NAME@ALIAS")->required();
    cmd->add_option("texts", f->texts, "Texts to classify");
    cmd->add_option("--file", f->file, "Read texts from this file, one per line")
        ->check(CLI::ExistingFile);
    cmd->add_option("--top-k", f->top_k, "Also return the k best labels")
        ->check(CLI::Range(0, 1000));
    cmd->add_flag("--raw-scores", f->raw_scores, "Also return the logits");
    cmd->add_option("--truncation", f->truncation,
                    "right, left, or window (sliding windows, scores averaged)")
        ->check(CLI::IsMember({"right", "left", "window"}))
        ->capture_default_str();
    cmd->add_option("--max-length", f->max_length,
                    "Tokens per text or window (0: the model's maximum)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--batch-size", f->batch_size, "Texts per request")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    cmd->add_option("--stride", f->stride,
                    "Tokens of overlap between windows (--truncation window; 0: 128)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("--with-text", f->with_text, "Echo each text in its output object");
    cmd->add_flag("--stream", f->stream,
                  "Keep one ClassifyStream call open and classify each stdin line as it is read "
                  "(answers are printed and flushed one by one)");
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] { *run = [f] { return RunClassify(*f); }; });
  }
}

}  // namespace berth::cli
