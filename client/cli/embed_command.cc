// `berth embed`: sentence embeddings of stdin lines (or --input), as JSON Lines or one .npy
// matrix, offline from a model directory or remote (--server) through the Embed RPC.
#include "client/cli/embed_command.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/offline_commands.h"
#include "core/infer/engine.h"
#include "core/model/hub.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/status_macros.h"
#ifdef BERTH_WITH_REMOTE
#include "client/cli/remote_common.h"
#endif

namespace berth::cli {
namespace {

struct EmbedFlags {
  std::string model;
  std::string input = "-";
  std::string output = "-";
  std::string format;  // jsonl or npy (default: by --output's extension)
  int max_length = 0;
  std::optional<bool> normalize;
  int64_t dimensions = 0;
  std::string truncation = "right";
};

int Fail(const std::string& message) {
  std::cerr << "berth embed: " << message << "\n";
  return 1;
}

// Rows of float32 appended to a .npy file, whose header (fixed at 128 bytes) gets the row count
// once the last row is in; the file appears whole (written beside its name, then renamed).
class NpyWriter {
 public:
  absl::Status Open(const std::string& path) {
    path_ = path;
    tmp_ = path + ".partial";
    out_.open(tmp_, std::ios::binary | std::ios::trunc);
    if (!out_) return absl::UnavailableError(absl::StrCat(tmp_, ": cannot write"));
    out_ << Header(0, 0);
    return absl::OkStatus();
  }
  void Add(const std::vector<float>& row) {
    cols_ = static_cast<int64_t>(row.size());
    out_.write(reinterpret_cast<const char*>(row.data()),
               static_cast<std::streamsize>(row.size() * sizeof(float)));
    ++rows_;
  }
  absl::Status Close() {
    out_.seekp(0);
    out_ << Header(rows_, cols_);
    out_.close();
    if (!out_) return absl::UnavailableError(absl::StrCat(tmp_, ": write failed"));
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
      return absl::UnavailableError(absl::StrCat(path_, ": rename failed"));
    return absl::OkStatus();
  }

 private:
  // NumPy format 1.0: magic, version, header length, the dict padded with spaces to 128 bytes.
  static std::string Header(int64_t rows, int64_t cols) {
    std::string dict = absl::StrFormat(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols);
    std::string h = std::string("\x93NUMPY\x01\x00", 8) + std::string(2, '\0');
    const size_t len = 128 - h.size();
    dict.resize(len - 1, ' ');
    dict += '\n';
    h[8] = static_cast<char>(len & 0xff);
    h[9] = static_cast<char>(len >> 8);
    return h + dict;
  }
  std::string path_, tmp_;
  std::ofstream out_;
  int64_t rows_ = 0, cols_ = 0;
};

// Where embeddings go: JSON Lines on stdout or a file, or one .npy.
class Sink {
 public:
  absl::Status Open(const EmbedFlags& f) {
    npy_ = f.format == "npy" || (f.format.empty() && f.output.size() > 4 &&
                                 f.output.compare(f.output.size() - 4, 4, ".npy") == 0);
    if (npy_) {
      if (f.output == "-") return absl::InvalidArgumentError("--format npy needs --output FILE");
      return npy_writer_.Open(f.output);
    }
    if (f.output != "-") {
      file_ = std::make_unique<std::ofstream>(f.output, std::ios::trunc);
      if (!*file_) return absl::UnavailableError(absl::StrCat(f.output, ": cannot write"));
    }
    return absl::OkStatus();
  }
  bool Add(const std::vector<float>& e, int32_t tokens, bool truncated) {
    if (npy_) {
      npy_writer_.Add(e);
      return true;
    }
    std::ostream& out = file_ ? *file_ : std::cout;
    out << Json{{"embedding", e}, {"tokens", tokens}, {"truncated", truncated}}.dump() << "\n";
    return static_cast<bool>(out);
  }
  absl::Status Close() {
    if (npy_) return npy_writer_.Close();
    std::ostream& out = file_ ? *file_ : std::cout;
    out.flush();
    return out ? absl::OkStatus() : absl::UnavailableError("the output was closed");
  }

 private:
  bool npy_ = false;
  NpyWriter npy_writer_;
  std::unique_ptr<std::ofstream> file_;
};

// Lines from --input (or stdin), a window at a time: false at the end.
bool ReadWindow(std::istream& in, int window, std::vector<std::string>* lines) {
  lines->clear();
  std::string line;
  while (static_cast<int>(lines->size()) < window && std::getline(in, line)) {
    lines->push_back(std::move(line));
  }
  return !lines->empty();
}

// Reads --input a window of lines at a time, hands each window to `embed` (which adds its
// embeddings to the sink, in order, or fails naming what), shows progress, closes the sink.
int EmbedLines(const EmbedFlags& f, int window,
               const std::function<absl::Status(std::vector<std::string>&, Sink&)>& embed) {
  std::ifstream file;
  if (f.input != "-") {
    file.open(f.input);
    if (!file) return Fail(absl::StrCat(f.input, ": cannot read"));
  }
  std::istream& in = f.input == "-" ? std::cin : file;
  Sink sink;
  if (absl::Status s = sink.Open(f); !s.ok()) return Fail(std::string(s.message()));
  const bool progress = ::isatty(STDERR_FILENO) || f.output != "-";
  int64_t done = 0;
  std::vector<std::string> lines;
  while (ReadWindow(in, window, &lines)) {
    const int64_t n = static_cast<int64_t>(lines.size());
    if (absl::Status s = embed(lines, sink); !s.ok()) {
      // A window's error names a text within it ("texts[i]: ..."): say which lines it holds.
      Fail(absl::StrCat("lines ", done + 1, "-", done + n, ": ", s.ToString()));
      return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;  // as the remote commands
    }
    done += n;
    if (progress) std::cerr << "\rberth embed: " << done << " lines" << std::flush;
  }
  if (progress) std::cerr << "\n";
  if (absl::Status s = sink.Close(); !s.ok()) return Fail(std::string(s.message()));
  return 0;
}

#ifdef BERTH_WITH_REMOTE
// The same, through a server's Embed RPC: --batch-size texts per request.
int RunRemoteEmbed(const EmbedFlags& f, const EngineFlags& p, const ServerFlags& server) {
  std::unique_ptr<client::Client> c = Connect(server);
  if (c == nullptr) return 2;
  return EmbedLines(f, p.batch_size, [&](std::vector<std::string>& lines, Sink& sink) {
    v1::EmbedRequest r;
    r.set_model(f.model);
    r.set_max_length(f.max_length);
    r.set_truncation(f.truncation == "left" ? v1::TRUNCATION_LEFT : v1::TRUNCATION_RIGHT);
    if (f.normalize.has_value()) r.set_normalize(*f.normalize);
    if (f.dimensions > 0) r.set_dimensions(static_cast<int32_t>(f.dimensions));
    for (std::string& l : lines) r.add_texts(std::move(l));
    auto reply = c->Embed(r);
    if (!reply.ok()) return reply.status();
    for (const v1::Embedding& e : reply->embeddings()) {
      if (!sink.Add(std::vector<float>(e.values().begin(), e.values().end()), e.num_tokens(),
                    e.truncated()))
        return absl::UnavailableError("the output was closed");
    }
    return absl::OkStatus();
  });
}
#endif

int RunEmbed(const EmbedFlags& f, const EngineFlags& p) {
  EngineOptions eo = MakeEngineOptions(p);
  auto dir = ResolveModelPath(f.model, HubOptions::FromEnvironment());
  if (!dir.ok()) return Fail(std::string(dir.status().message()));
  auto engine = InferenceEngine::Load(*dir, eo);
  if (!engine.ok()) return Fail(std::string(engine.status().message()));
  const SequenceClassifier& model = (*engine)->model();
  if (f.dimensions > model.embedding_dimension()) {
    return Fail(absl::StrCat("--dimensions ", f.dimensions, " is more than the model's ",
                             model.embedding_dimension()));
  }
  const bool normalize = f.normalize.value_or(model.pooling().normalize);
  ClassifyOptions co;
  co.embed = true;
  co.max_length = f.max_length;
  co.truncation = f.truncation == "left" ? TruncationMode::kLeft : TruncationMode::kRight;
  return EmbedLines(f, p.window, [&](std::vector<std::string>& lines, Sink& sink) {
    ASSIGN_OR_RETURN(std::vector<ClassifyResult> results, (*engine)->Classify(lines, {}, co));
    for (ClassifyResult& r : results) {
      FinishEmbedding(&r.embedding, f.dimensions, normalize);
      if (!sink.Add(r.embedding, r.num_tokens, r.truncated))
        return absl::UnavailableError("the output was closed");
    }
    return absl::OkStatus();
  });
}

struct SimilarFlags {
  std::string model, query, corpus;
  int top_k = 10;
};

// Embeds the corpus (one text per line) and the query, normalised, and prints the top k lines
// by cosine similarity, best first, as JSON Lines {rank, line, score, text}. An exact search in
// memory: the corpus's embeddings are held while it runs.
int RunSimilar(const SimilarFlags& f, const EngineFlags& p) {
  auto dir = ResolveModelPath(f.model, HubOptions::FromEnvironment());
  if (!dir.ok()) return Fail(std::string(dir.status().message()));
  auto engine = InferenceEngine::Load(*dir, MakeEngineOptions(p));
  if (!engine.ok()) return Fail(std::string(engine.status().message()));
  std::ifstream in(f.corpus);
  if (!in) return Fail(absl::StrCat(f.corpus, ": cannot read"));
  ClassifyOptions co;
  co.embed = true;
  auto query = (*engine)->Classify({f.query}, {}, co);
  if (!query.ok()) return Fail(absl::StrCat("--query: ", query.status().message()));
  FinishEmbedding(&(*query)[0].embedding, 0, true);
  const std::vector<float>& q = (*query)[0].embedding;
  std::vector<std::pair<float, int64_t>> scores;  // (cosine, line index)
  std::vector<std::string> corpus, lines;
  while (ReadWindow(in, p.window, &lines)) {
    auto results = (*engine)->Classify(lines, {}, co);
    if (!results.ok()) {
      return Fail(absl::StrCat(f.corpus, " lines ", corpus.size() + 1, "-",
                               corpus.size() + lines.size(), ": ", results.status().message()));
    }
    for (size_t i = 0; i < lines.size(); ++i) {
      std::vector<float>& e = (*results)[i].embedding;
      FinishEmbedding(&e, 0, true);
      double dot = 0;
      for (size_t k = 0; k < e.size(); ++k) dot += static_cast<double>(e[k]) * q[k];
      scores.emplace_back(static_cast<float>(dot), static_cast<int64_t>(corpus.size()));
      corpus.push_back(std::move(lines[i]));
    }
  }
  const size_t k = std::min(scores.size(), static_cast<size_t>(f.top_k));
  std::partial_sort(scores.begin(), scores.begin() + static_cast<std::ptrdiff_t>(k), scores.end(),
                    [](const auto& a, const auto& b) {
                      return a.first > b.first || (a.first == b.first && a.second < b.second);
                    });
  for (size_t i = 0; i < k; ++i) {
    std::cout << Json{{"rank", i + 1},
                      {"line", scores[i].second + 1},
                      {"score", scores[i].first},
                      {"text", corpus[static_cast<size_t>(scores[i].second)]}}
                     .dump(-1, ' ', false, Json::error_handler_t::replace)
              << "\n";
  }
  return 0;
}

}  // namespace

void AddSimilarCommand(CLI::App& app, std::function<int()>* run) {
  auto f = std::make_shared<SimilarFlags>();
  auto engine = std::make_shared<EngineFlags>();
  CLI::App* cmd = app.add_subcommand(
      "similar",
      "The corpus lines most similar to a query by cosine of their embeddings (an exact search "
      "in memory; docs/embeddings.md says where pgvector takes over): JSON Lines "
      "{rank, line, score, text}, best first");
  cmd->add_option("--model", f->model,
                  "Model directory, or a Hub id (org/name[@revision]) fetched into the HF cache")
      ->required();
  cmd->add_option("--query", f->query, "The text to search for")->required();
  cmd->add_option("--corpus", f->corpus, "Text file, one text per line")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--top-k", f->top_k, "How many lines to print")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  AddEngineFlags(cmd, engine.get(), "lines");
  cmd->callback([run, f, engine] { *run = [f, engine] { return RunSimilar(*f, *engine); }; });
}

void AddEmbedCommand(CLI::App& app, std::function<int()>* run) {
  auto f = std::make_shared<EmbedFlags>();
  auto engine = std::make_shared<EngineFlags>();
  CLI::App* cmd = app.add_subcommand(
      "embed",
      "Sentence embeddings of each input line as sentence-transformers computes them (the "
      "model's modules.json pooling, else mean): JSON Lines {embedding, tokens, truncated} in "
      "input order, or one float32 .npy matrix. Offline from a model directory, or with "
      "--server through a Berth server's Embed RPC");
  cmd->add_option("--model", f->model,
                  "Model directory, or a Hub id (org/name[@revision]) fetched into the HF cache")
      ->required();
  cmd->add_option("--input", f->input, "Text file, one text per line ('-': stdin)")
      ->capture_default_str();
  cmd->add_option("--output", f->output, "Where to write ('-': stdout; FILE.npy: a .npy matrix)")
      ->capture_default_str();
  cmd->add_option("--format", f->format, "jsonl or npy (default: npy for an --output ending .npy)")
      ->check(CLI::IsMember({"jsonl", "npy"}));
  cmd->add_option("--max-length", f->max_length,
                  "Tokens per text, special tokens included (default: sentence_bert_config.json's "
                  "max_seq_length, else the tokenizer's)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--truncation", f->truncation, "Which end of a long text is kept: right or left")
      ->check(CLI::IsMember({"right", "left"}))
      ->capture_default_str();
  cmd->add_flag_function(
      "--normalize,!--no-normalize", [f](int64_t count) { f->normalize = count > 0; },
      "L2-normalise (default: as the model's modules.json says)");
  cmd->add_option("--dimensions", f->dimensions,
                  "Keep the first N components (Matryoshka), normalised after when normalising")
      ->check(CLI::PositiveNumber);
  AddEngineFlags(cmd, engine.get(), "lines");
#ifdef BERTH_WITH_REMOTE
  // Remote when --server is on the command line: --model is then NAME, NAME:VERSION or
  // NAME@ALIAS on that server, and --batch-size the texts per request.
  auto server = std::make_shared<ServerFlags>();
  AddServerFlags(cmd, server.get());
  CLI::Option* server_option = cmd->get_option("--server");
  cmd->callback([run, f, engine, server, server_option] {
    *run = [f, engine, server, remote = server_option->count() > 0] {
      return remote ? RunRemoteEmbed(*f, *engine, *server) : RunEmbed(*f, *engine);
    };
  });
#else
  cmd->callback([run, f, engine] { *run = [f, engine] { return RunEmbed(*f, *engine); }; });
#endif
}

}  // namespace berth::cli
