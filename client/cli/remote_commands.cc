// Remote commands over berth::client. Results go to stdout as JSON (or JSON Lines for
// classify); progress and messages go to stderr.
#include "client/cli/remote_commands.h"

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/progress.h"
#include "client/cli/spec_flags.h"
#include "client/lib/client.h"
#include "core/train/trainer.h"
#include "core/util/files.h"
#include "nlohmann/json.hpp"

namespace berth::cli {
namespace {

using Json = nlohmann::json;

struct ServerFlags {
  std::string server, token, tls_ca, tls_cert, tls_key;
  double timeout_seconds = 60;
};

void AddServerFlags(CLI::App* cmd, ServerFlags* f) {
  const char* env = std::getenv("BERTH_SERVER");
  f->server = env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
  cmd->add_option("--server", f->server, "Berth server HOST:PORT (env BERTH_SERVER)")->capture_default_str();
  const char* token = std::getenv("BERTH_TOKEN");
  if (token != nullptr) f->token = token;
  cmd->add_option("--token", f->token, "API token (env BERTH_TOKEN; the server's --auth-tokens holds its SHA-256)");
  cmd->add_option("--tls-ca", f->tls_ca, "Use TLS, trusting this PEM CA bundle")->envname("BERTH_TLS_CA");
  cmd->add_option("--tls-cert", f->tls_cert, "Client certificate for mutual TLS (PEM)")->envname("BERTH_TLS_CERT");
  cmd->add_option("--tls-key", f->tls_key, "Private key of --tls-cert (PEM)")->envname("BERTH_TLS_KEY");
  cmd->add_option("--timeout", f->timeout_seconds, "Deadline of each call in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

int Fail(const absl::Status& s, absl::string_view what) {
  std::cerr << "berth: " << what << ": " << absl::StatusCodeToString(s.code()) << ": " << s.message() << "\n";
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

std::unique_ptr<client::Client> Connect(const ServerFlags& f) {
  client::ClientOptions o;
  o.target = f.server;
  o.token = f.token;
  o.tls_ca = f.tls_ca;
  o.tls_cert = f.tls_cert;
  o.tls_key = f.tls_key;
  o.timeout = std::chrono::milliseconds(static_cast<int64_t>(f.timeout_seconds * 1000));
  auto c = client::Client::Create(o);
  if (!c.ok()) {
    std::cerr << "berth: " << c.status().message() << "\n";
    return nullptr;
  }
  return std::move(*c);
}

std::string ToJson(const google::protobuf::Message& m, bool pretty) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = pretty;
  o.always_print_primitive_fields = true;
  o.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string StateName(v1::JobState s) {
  std::string n = v1::JobState_Name(s);
  return absl::StartsWith(n, "JOB_STATE_") ? n.substr(10) : n;
}


// Watches a job, drawing progress on stderr; returns the final status.
absl::StatusOr<v1::JobStatus> WatchWithProgress(client::Client& c, const std::string& job_id) {
  const bool tty = ::isatty(STDERR_FILENO);
  v1::JobState last_state = v1::JOB_STATE_UNSPECIFIED;
  int64_t last_eval_update = -1;
  auto last_line = std::chrono::steady_clock::now() - std::chrono::hours(1);
  auto result = c.WatchJob(job_id, [&](const v1::JobStatus& s) {
    if (s.state() != last_state) {
      if (tty && last_state == v1::JOB_STATE_RUNNING) std::cerr << "\n";
      std::cerr << "job " << s.job_id() << ": " << StateName(s.state()) << "\n";
      last_state = s.state();
    }
    const v1::JobProgress& p = s.progress();
    if (s.state() == v1::JOB_STATE_RUNNING && p.total_updates() > 0) {
      if (p.has_last_eval() && p.last_eval().update() != last_eval_update) {
        last_eval_update = p.last_eval().update();
        if (tty) std::cerr << "\n";
        std::cerr << absl::StrFormat("eval  update %d  epoch %.2f  loss %.4f  accuracy %.4f  macro_f1 %.4f\n",
                                     p.last_eval().update(), p.last_eval().epoch(), p.last_eval().loss(),
                                     p.last_eval().accuracy(), p.last_eval().macro_f1());
      }
      const auto now = std::chrono::steady_clock::now();
      if (tty || now - last_line > std::chrono::seconds(5)) {
        last_line = now;
        const std::string line = ProgressLine(p.update(), p.total_updates(), p.epoch(), p.loss(), p.learning_rate(),
                                              p.samples_per_second(), p.eta_seconds(), tty);
        std::cerr << (tty ? "\r" : "train ") << line << (tty ? "   " : "\n") << std::flush;
      }
    }
    return true;
  });
  if (tty && last_state == v1::JOB_STATE_RUNNING) std::cerr << "\n";
  return result;
}

int PrintFinal(const v1::JobStatus& s, bool json, bool print_json = true) {
  if (print_json) std::cout << ToJson(s, !json) << "\n";
  if (s.state() == v1::JOB_STATE_SUCCEEDED) {
    std::cerr << "berth: job " << s.job_id() << " succeeded: model " << s.model_name() << ":" << s.model_version()
              << "\n";
    return 0;
  }
  if (s.state() == v1::JOB_STATE_FAILED) std::cerr << "berth: job " << s.job_id() << " failed: " << s.error() << "\n";
  return 1;
}

bool LooksLikeDatasetId(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// A dataset argument: a dataset id, or a local file that is uploaded first.
absl::StatusOr<std::string> DatasetArg(client::Client& c, const std::string& arg, const DataFlags& data,
                                       bool multi_label) {
  if (IsRegularFile(arg)) {
    v1::DatasetInfo info;
    info.set_text_column(data.text_column);
    info.set_text_pair_column(data.text_pair_column);
    info.set_label_column(data.label_column);
    info.set_multi_label(multi_label);
    auto r = c.UploadFile(arg, info);
    if (!r.ok()) return absl::Status(r.status().code(), absl::StrCat("uploading ", arg, ": ", r.status().message()));
    std::cerr << "berth: uploaded " << arg << " (" << r->rows() << " rows) as dataset " << r->dataset_id() << "\n";
    return r->dataset_id();
  }
  if (LooksLikeDatasetId(arg)) return absl::AsciiStrToLower(arg);
  return absl::NotFoundError(absl::StrCat(arg, " is neither a file nor a dataset id"));
}

void SetHyperparameters(const train::TrainingSpec& t, v1::Hyperparameters* h) {
  h->set_epochs(t.epochs);
  h->set_max_steps(t.max_steps);
  h->set_batch_size(t.batch_size);
  h->set_eval_batch_size(t.eval_batch_size);
  h->set_learning_rate(t.learning_rate);
  h->set_weight_decay(t.weight_decay);
  h->set_adam_beta1(t.adam_beta1);
  h->set_adam_beta2(t.adam_beta2);
  h->set_adam_epsilon(t.adam_epsilon);
  h->set_max_grad_norm(t.max_grad_norm);
  h->set_warmup_steps(t.warmup_steps);
  h->set_warmup_ratio(t.warmup_ratio);
  h->set_grad_accum(t.grad_accum);
  h->set_max_length(t.max_length);
  h->set_pad_to_max_length(t.pad_to_max_length);
  h->set_seed(t.seed);
  h->set_shuffle(t.shuffle);
  h->set_group_by_length(t.group_by_length);
  h->set_precision(t.precision == train::Precision::kBf16 ? v1::PRECISION_BF16 : v1::PRECISION_FP32);
  h->set_eval_steps(t.eval_steps);
  h->set_save_steps(t.save_steps);
  h->set_early_stopping_patience(t.early_stopping_patience);
  h->set_metric_for_best(t.metric_for_best);
  for (double w : t.class_weights) h->add_class_weights(w);
  h->set_label_smoothing(t.label_smoothing);
  h->set_multi_label_threshold(t.multi_label_threshold);
  h->set_device(t.device);
}

struct TrainFlags {
  ServerFlags server;
  SpecFlags spec;
  std::string base_model, train, validation, name, request_id;
  double validation_split = 0;
  int workers = 1;
  bool watch = false, json = false;
  bool print_result = true;  // the final status as JSON on stdout
};

int RunTrain(TrainFlags& f) {
  if (absl::Status s = FinishSpecFlags(&f.spec); !s.ok()) return Fail(s, "train");
  auto c = Connect(f.server);
  if (c == nullptr) return 1;
  v1::StartTrainingRequest r;
  r.set_base_model(f.base_model);
  auto train_id = DatasetArg(*c, f.train, f.spec.data, f.spec.spec.multi_label);
  if (!train_id.ok()) return Fail(train_id.status(), "--train");
  r.set_train_dataset_id(*train_id);
  if (!f.validation.empty()) {
    auto v = DatasetArg(*c, f.validation, f.spec.data, f.spec.spec.multi_label);
    if (!v.ok()) return Fail(v.status(), "--validation");
    r.set_validation_dataset_id(*v);
  }
  r.set_validation_split(f.validation_split);
  r.set_text_column(f.spec.data.text_column);
  r.set_text_pair_column(f.spec.data.text_pair_column);
  r.set_label_column(f.spec.data.label_column);
  r.set_task(f.spec.spec.multi_label ? v1::TASK_MULTI_LABEL : v1::TASK_SINGLE_LABEL);
  SetHyperparameters(f.spec.spec, r.mutable_hyperparameters());
  r.set_model_name(f.name);
  r.set_request_id(f.request_id);
  r.set_workers(f.workers);
  r.mutable_hyperparameters()->set_device(f.spec.device);  // "": the server's default
  auto started = c->StartTraining(r);
  if (!started.ok()) return Fail(started.status(), "train");
  std::cerr << "berth: job " << started->job_id() << (started->existing() ? " (already submitted)" : " queued")
            << "; follow it with: berth watch " << started->job_id() << "\n";
  if (!f.watch) {
    std::cout << ToJson(started->status(), !f.json) << "\n";
    return 0;
  }
  auto final_status = WatchWithProgress(*c, started->job_id());
  if (!final_status.ok()) return Fail(final_status.status(), "watch");
  return PrintFinal(*final_status, f.json, f.print_result);
}

// Reads the texts to classify: arguments, else --file, else stdin; one text per line.
absl::StatusOr<std::vector<std::string>> ReadTexts(const std::vector<std::string>& args, const std::string& file) {
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

struct ClassifyFlags {
  ServerFlags server;
  std::string model, file, truncation = "right";
  std::vector<std::string> texts;
  int top_k = 0, max_length = 0, batch_size = 64;
  bool raw_scores = false, with_text = false;
};

int RunClassify(const ClassifyFlags& f) {
  auto texts = ReadTexts(f.texts, f.file);
  if (!texts.ok()) return Fail(texts.status(), "classify");
  auto c = Connect(f.server);
  if (c == nullptr) return 1;
  for (size_t start = 0; start < texts->size(); start += f.batch_size) {
    v1::ClassifyRequest r;
    r.set_model(f.model);
    r.set_top_k(f.top_k);
    r.set_raw_scores(f.raw_scores);
    r.set_max_length(f.max_length);
    r.set_truncation(f.truncation == "left"     ? v1::TRUNCATION_LEFT
                     : f.truncation == "window" ? v1::TRUNCATION_WINDOW
                                                : v1::TRUNCATION_RIGHT);
    const size_t end = std::min(texts->size(), start + f.batch_size);
    for (size_t i = start; i < end; ++i) r.add_texts((*texts)[i]);
    auto resp = c->Classify(r);
    if (!resp.ok()) return Fail(resp.status(), absl::StrCat("classify (texts ", start + 1, "-", end, ")"));
    for (int i = 0; i < resp->results_size(); ++i) {
      const v1::Classification& x = resp->results(i);
      Json j = {{"label", x.label()}, {"score", x.score()}};
      Json scores = Json::object();
      for (int k = 0; k < x.scores_size() && k < resp->labels_size(); ++k) scores[resp->labels(k)] = x.scores(k);
      j["scores"] = scores;
      if (x.top_k_size() > 0) {
        Json top = Json::array();
        for (const v1::LabelScore& t : x.top_k()) top.push_back({{"label", t.label()}, {"score", t.score()}});
        j["top_k"] = top;
      }
      if (x.predicted_size() > 0) j["predicted"] = std::vector<std::string>(x.predicted().begin(), x.predicted().end());
      if (x.logits_size() > 0) j["logits"] = std::vector<float>(x.logits().begin(), x.logits().end());
      j["num_tokens"] = x.num_tokens();
      j["truncated"] = x.truncated();
      j["model"] = resp->model();
      j["model_version"] = resp->model_version();
      if (f.with_text) j["text"] = (*texts)[start + i];
      std::cout << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    }
  }
  std::cout.flush();
  return 0;
}

}  // namespace

void AddRemoteCommands(CLI::App& app, std::function<int()>* run) {
  // upload
  {
    struct F {
      ServerFlags server;
      DataFlags data;
      std::string path;
      bool multi_label = false;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand(
        "upload", "Upload a labelled CSV/TSV/JSONL file to the server; prints {dataset_id, rows, label_counts} as JSON");
    cmd->add_option("file", f->path, "The file")->required()->check(CLI::ExistingFile);
    AddDataFlags(cmd, &f->data);
    cmd->add_flag("--multi-label", f->multi_label, "Rows carry several labels");
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        auto c = Connect(f->server);
        if (c == nullptr) return 1;
        v1::DatasetInfo info;
        info.set_text_column(f->data.text_column);
        info.set_text_pair_column(f->data.text_pair_column);
        info.set_label_column(f->data.label_column);
        info.set_multi_label(f->multi_label);
        const bool tty = ::isatty(STDERR_FILENO);
        auto r = c->UploadFile(f->path, info, [tty](int64_t sent, int64_t total) {
          if (tty) std::cerr << "\rberth upload: " << sent << "/" << total << " bytes" << std::flush;
        });
        if (tty) std::cerr << "\n";
        if (!r.ok()) return Fail(r.status(), "upload");
        std::cout << ToJson(*r, true) << "\n";
        return 0;
      };
    });
  }
  // train
  {
    auto f = std::make_shared<TrainFlags>();
    CLI::App* cmd = app.add_subcommand(
        "train",
        "Start a fine-tuning job on the server (the same training flags as `berth finetune`). --train and "
        "--validation take dataset ids or local files (uploaded first). Prints the job status as JSON.");
    cmd->add_option("--base-model", f->base_model,
                    "A registered model (NAME, NAME:VERSION, NAME@ALIAS), a Hub id the server can reach or has cached, "
                    "or config:bert-tiny|bert-mini|bert-small|bert-medium|bert-base")
        ->required();
    cmd->add_option("--train", f->train, "Training data: a dataset id or a local file")->required();
    cmd->add_option("--validation", f->validation, "Validation data: a dataset id or a local file");
    cmd->add_option("--validation-split", f->validation_split,
                    "Without --validation: hold out this fraction of --train (seeded)")
        ->check(CLI::Range(0.0, 0.9));
    cmd->add_option("--name", f->name, "Name of the output model (a new version is added per job)")->required();
    cmd->add_option("--request-id", f->request_id,
                    "Idempotency key: resubmitting with the same key returns the same job (default: random)");
    AddSpecFlags(cmd, &f->spec);
    cmd->add_option("--workers", f->workers,
                    "Data-parallel: train on this many server processes (--batch-size is per process; "
                    "at most the server's --max-train-procs)")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    cmd->add_flag("--watch", f->watch, "Follow the job with a progress bar until it ends");
    cmd->add_flag("--json", f->json, "Print one line of JSON");
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] { *run = [f] { return RunTrain(*f); }; });
  }
  // status / watch / cancel
  for (const char* name : {"status", "watch", "cancel"}) {
    struct F {
      ServerFlags server;
      std::string job;
      bool json = false;
    };
    auto f = std::make_shared<F>();
    const std::string n = name;
    CLI::App* cmd = app.add_subcommand(
        n, n == "status"  ? "Print a job's status as JSON"
           : n == "watch" ? "Follow a job with a progress bar until it ends; prints the final status as JSON"
                          : "Cancel a job (a running one stops at its next micro-batch)");
    cmd->add_option("job", f->job, "Job id")->required();
    cmd->add_flag("--json", f->json, "Print one line of JSON");
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f, n] {
      *run = [f, n] {
        auto c = Connect(f->server);
        if (c == nullptr) return 1;
        if (n == "watch") {
          auto s = WatchWithProgress(*c, f->job);
          if (!s.ok()) return Fail(s.status(), "watch");
          return PrintFinal(*s, f->json);
        }
        auto s = n == "status" ? c->GetStatus(f->job) : c->CancelJob(f->job);
        if (!s.ok()) return Fail(s.status(), n);
        std::cout << ToJson(*s, !f->json) << "\n";
        return 0;
      };
    });
  }
  // jobs
  {
    struct F {
      ServerFlags server;
      std::string state, page_token;
      int limit = 20;
      bool json = false;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand("jobs", "List jobs, newest first");
    cmd->add_option("--state", f->state, "Only jobs in this state")
        ->check(CLI::IsMember({"queued", "running", "succeeded", "failed", "cancelled"}, CLI::ignore_case));
    cmd->add_option("--limit", f->limit, "Jobs per page")->check(CLI::Range(1, 1000))->capture_default_str();
    cmd->add_option("--page-token", f->page_token, "Continue after a previous page (its next_page_token)");
    cmd->add_flag("--json", f->json, "Print the response as JSON");
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        auto c = Connect(f->server);
        if (c == nullptr) return 1;
        v1::ListJobsRequest r;
        if (!f->state.empty()) {
          v1::JobState st = v1::JOB_STATE_UNSPECIFIED;
          v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(f->state), &st);
          r.set_state(st);
        }
        r.set_page_size(f->limit);
        r.set_page_token(f->page_token);
        auto resp = c->ListJobs(r);
        if (!resp.ok()) return Fail(resp.status(), "jobs");
        if (f->json) {
          std::cout << ToJson(*resp, false) << "\n";
          return 0;
        }
        std::cout << absl::StrFormat("%-26s %-10s %-24s %-12s %s\n", "JOB", "STATE", "MODEL", "PROGRESS", "BASE");
        for (const v1::JobStatus& j : resp->jobs()) {
          const std::string model = j.model_version() > 0 ? absl::StrCat(j.model_name(), ":", j.model_version())
                                                          : j.model_name();
          const std::string prog = j.progress().total_updates() > 0
                                       ? absl::StrCat(j.progress().update(), "/", j.progress().total_updates())
                                       : "-";
          std::cout << absl::StrFormat("%-26s %-10s %-24s %-12s %s\n", j.job_id(), StateName(j.state()), model, prog,
                                       j.base_model());
        }
        if (!resp->next_page_token().empty()) {
          std::cerr << "berth: more with --page-token " << resp->next_page_token() << "\n";
        }
        return 0;
      };
    });
  }
  // classify
  {
    auto f = std::make_shared<ClassifyFlags>();
    CLI::App* cmd = app.add_subcommand(
        "classify",
        "Classify texts (arguments, --file, or stdin lines) with a model on the server; one JSON object per text "
        "{label, score, scores, num_tokens, truncated, model, model_version}, in input order");
    cmd->add_option("--model", f->model, "NAME, NAME:VERSION or NAME@ALIAS")->required();
    cmd->add_option("texts", f->texts, "Texts to classify");
    cmd->add_option("--file", f->file, "Read texts from this file, one per line")->check(CLI::ExistingFile);
    cmd->add_option("--top-k", f->top_k, "Also return the k best labels")->check(CLI::Range(0, 1000));
    cmd->add_flag("--raw-scores", f->raw_scores, "Also return the logits");
    cmd->add_option("--truncation", f->truncation, "right, left, or window (sliding windows, scores averaged)")
        ->check(CLI::IsMember({"right", "left", "window"}))
        ->capture_default_str();
    cmd->add_option("--max-length", f->max_length, "Tokens per text or window (0: the model's maximum)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--batch-size", f->batch_size, "Texts per request")->check(CLI::Range(1, 100000))
        ->capture_default_str();
    cmd->add_flag("--with-text", f->with_text, "Echo each text in its output object");
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] { *run = [f] { return RunClassify(*f); }; });
  }
  // models / model / alias / delete-model
  {
    struct F {
      ServerFlags server;
      bool json = false;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand("models", "List model versions on the server");
    cmd->add_flag("--json", f->json, "Print the response as JSON");
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        auto c = Connect(f->server);
        if (c == nullptr) return 1;
        auto resp = c->ListModels();
        if (!resp.ok()) return Fail(resp.status(), "models");
        if (f->json) {
          std::cout << ToJson(*resp, false) << "\n";
          return 0;
        }
        std::cout << absl::StrFormat("%-24s %-8s %-20s %-10s %s\n", "NAME", "VERSION", "ALIASES", "ACCURACY", "BASE");
        for (const v1::ModelVersion& m : resp->models()) {
          std::string aliases;
          for (const std::string& a : m.aliases()) absl::StrAppend(&aliases, aliases.empty() ? "" : ",", a);
          std::cout << absl::StrFormat("%-24s %-8d %-20s %-10s %s\n", m.name(), m.version(),
                                       aliases.empty() ? "-" : aliases,
                                       m.has_metrics() ? absl::StrFormat("%.4f", m.metrics().accuracy()) : "-",
                                       m.base_model());
        }
        return 0;
      };
    });
  }
  {
    struct F {
      ServerFlags server;
      std::string model;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand("model", "Print one model version (labels, metrics, config) as JSON");
    cmd->add_option("model", f->model, "NAME, NAME:VERSION or NAME@ALIAS")->required();
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        auto c = Connect(f->server);
        if (c == nullptr) return 1;
        auto m = c->GetModel(f->model);
        if (!m.ok()) return Fail(m.status(), "model");
        std::cout << ToJson(*m, true) << "\n";
        return 0;
      };
    });
  }
  {
    struct F {
      ServerFlags server;
      std::string name, alias;
      int64_t version = 0;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand("alias", "Point an alias (e.g. production) at a model version");
    cmd->add_option("name", f->name, "Model name")->required();
    cmd->add_option("alias", f->alias, "Alias")->required();
    cmd->add_option("version", f->version, "Version")->required()->check(CLI::PositiveNumber);
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        auto c = Connect(f->server);
        if (c == nullptr) return 1;
        auto r = c->SetAlias(f->name, f->alias, f->version);
        if (!r.ok()) return Fail(r.status(), "alias");
        std::cout << ToJson(*r, false) << "\n";
        return 0;
      };
    });
  }
  {
    struct F {
      ServerFlags server;
      std::string name;
      int64_t version = 0;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand(
        "delete-model", "Delete a model version (or all versions) and its files; refused while a job uses it as its base");
    cmd->add_option("name", f->name, "Model name")->required();
    cmd->add_option("--version", f->version, "Only this version (default: every version)")
        ->check(CLI::NonNegativeNumber);
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        auto c = Connect(f->server);
        if (c == nullptr) return 1;
        auto r = c->DeleteModel(f->name, f->version);
        if (!r.ok()) return Fail(r.status(), "delete-model");
        std::cout << ToJson(*r, false) << "\n";
        return 0;
      };
    });
  }
  // demo
  {
    struct F {
      ServerFlags server;
      std::string base_model = "config:bert-tiny", name = "sst2-demo";
      double epochs = 4;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand(
        "demo",
        "Upload the shipped SST-2 sample, fine-tune a small model on the server, watch it, and classify a few "
        "sentences (works offline; with config:bert-tiny the weights start random, so accuracy is modest)");
    cmd->add_option("--base-model", f->base_model, "Base model (e.g. bert-base-uncased or a registered model)")
        ->capture_default_str();
    cmd->add_option("--name", f->name, "Name of the output model")->capture_default_str();
    cmd->add_option("--epochs", f->epochs, "Training epochs")->check(CLI::PositiveNumber)->capture_default_str();
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        TrainFlags t;
        t.server = f->server;
        t.base_model = f->base_model;
        t.name = f->name;
        const std::string dir = JoinPath(train::BerthDataDir(), "sst2-sample");
        t.train = JoinPath(dir, "train.tsv");
        t.validation = JoinPath(dir, "validation.tsv");
        t.spec.spec.epochs = f->epochs;
        t.spec.spec.max_length = 64;
        t.spec.spec.batch_size = 16;
        t.spec.spec.learning_rate = 5e-4;  // a small model from scratch learns fastest with a high rate
        t.spec.spec.warmup_ratio = 0.1;
        t.watch = true;
        t.print_result = false;  // stdout carries only the classifications
        std::cerr << "berth demo: fine-tuning " << f->base_model << " on " << dir << " as model " << f->name << "\n";
        if (int rc = RunTrain(t); rc != 0) return rc;
        ClassifyFlags cf;
        cf.server = f->server;
        cf.model = f->name;
        cf.with_text = true;
        cf.texts = {"a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés.",
                    "an intelligent and moving film", "it 's a dull , lifeless mess ."};
        std::cerr << "berth demo: classifying " << cf.texts.size() << " sentences with " << f->name << "\n";
        return RunClassify(cf);
      };
    });
  }
}

}  // namespace berth::cli
