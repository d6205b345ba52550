// `berth upload`, `train`, `status`, `watch`, `cancel` and `jobs`.
#include <unistd.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/progress.h"
#include "client/cli/remote_common.h"
#include "client/cli/spec_flags.h"
#include "client/lib/client.h"
#include "core/data/training_spec.h"
#include "core/model/presets.h"
#include "core/util/files.h"
#include "nlohmann/json.hpp"

namespace berth::cli {

namespace {

bool LooksLikeDatasetId(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// A dataset argument: a dataset id, or a local file that is uploaded first.
absl::StatusOr<std::string> DatasetArg(client::Client& c, const std::string& arg,
                                       const DataFlags& data, bool multi_label) {
  if (IsRegularFile(arg)) {
    v1::DatasetInfo info;
    info.set_text_column(data.text_column);
    info.set_text_pair_column(data.text_pair_column);
    info.set_label_column(data.label_column);
    info.set_multi_label(multi_label);
    auto r = c.UploadFile(arg, info);
    if (!r.ok())
      return absl::Status(r.status().code(),
                          absl::StrCat("uploading ", arg, ": ", r.status().message()));
    std::cerr << "berth: uploaded " << arg << " (" << r->rows() << " rows) as dataset "
              << r->dataset_id() << "\n";
    return r->dataset_id();
  }
  if (LooksLikeDatasetId(arg)) return absl::AsciiStrToLower(arg);
  return absl::NotFoundError(absl::StrCat(arg, " is neither a file nor a dataset id"));
}

void SetHyperparameters(const data::TrainingSpec& t, v1::Hyperparameters* h) {
#define BERTH_TO_PROTO(field, flags, help) h->set_##field(t.field);
  BERTH_TRAINING_SPEC_FIELDS(BERTH_TO_PROTO)
#undef BERTH_TO_PROTO
  h->set_precision(t.precision == data::Precision::kBf16 ? v1::PRECISION_BF16 : v1::PRECISION_FP32);
  h->set_metric_for_best(t.metric_for_best);
  for (double w : t.class_weights) h->add_class_weights(w);
  h->set_device(t.device);
}

}  // namespace

int RunTrain(TrainFlags& f, v1::JobStatus* final_out) {
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
  r.set_task(f.spec.spec.score_loss == "bce"   ? v1::TASK_SCORE_BCE
             : f.spec.spec.score_loss == "mse" ? v1::TASK_SCORE_MSE
             : f.spec.spec.multi_label         ? v1::TASK_MULTI_LABEL
                                               : v1::TASK_SINGLE_LABEL);
  SetHyperparameters(f.spec.spec, r.mutable_hyperparameters());
  r.set_model_name(f.name);
  r.set_request_id(f.request_id);
  r.set_workers(f.workers);
  r.mutable_hyperparameters()->set_device(f.spec.device);  // "": the server's default
  auto started = c->StartTraining(r);
  if (!started.ok()) return Fail(started.status(), "train");
  std::cerr << "berth: job " << started->job_id()
            << (started->existing() ? " (already submitted)" : " queued")
            << "; follow it with: berth watch " << started->job_id() << "\n";
  if (!f.watch) {
    std::cout << ToJson(started->status(), !f.json) << "\n";
    return 0;
  }
  auto final_status = WatchWithProgress(*c, started->job_id());
  if (!final_status.ok()) return Fail(final_status.status(), "watch");
  if (final_out != nullptr) *final_out = *final_status;
  return PrintFinal(*final_status, f.json, f.print_result);
}

void AddJobCommands(CLI::App& app, std::function<int()>* run) {
  // upload
  {
    struct F {
      ServerFlags server;
      DataFlags data;
      std::string path;
      bool multi_label = false;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand("upload",
                                       "Upload a labelled CSV/TSV/JSONL file to the server; prints "
                                       "{dataset_id, rows, label_counts} as JSON");
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
          if (tty)
            std::cerr << "\rberth upload: " << sent << "/" << total << " bytes" << std::flush;
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
    CLI::App* cmd = app.add_subcommand("train",
                                       "Start a fine-tuning job on the server (the same training "
                                       "flags as `berth finetune`). --train and "
                                       "--validation take dataset ids or local files (uploaded "
                                       "first). Prints the job status as JSON.");
    cmd->add_option(
           "--base-model", f->base_model,
           absl::StrCat(
               "A registered model (NAME, NAME:VERSION, NAME@ALIAS), a Hub id the server can reach "
               "or has cached, or one of ",
               PresetList()))
        ->required();
    cmd->add_option("--train", f->train, "Training data: a dataset id or a local file")->required();
    cmd->add_option("--validation", f->validation, "Validation data: a dataset id or a local file");
    cmd->add_option("--validation-split", f->validation_split,
                    "Without --validation: hold out this fraction of --train (seeded)")
        ->check(CLI::Range(0.0, 0.9));
    cmd->add_option("--name", f->name, "Name of the output model (a new version is added per job)")
        ->required();
    cmd->add_option(
        "--request-id", f->request_id,
        "Idempotency key: resubmitting with the same key returns the same job (default: random)");
    AddSpecFlags(cmd, &f->spec);
    cmd->add_option(
           "--workers", f->workers,
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
        n, n == "status" ? "Print a job's status as JSON"
           : n == "watch"
               ? "Follow a job with a progress bar until it ends; prints the final status as JSON"
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
        ->check(CLI::IsMember({"queued", "running", "succeeded", "failed", "cancelled"},
                              CLI::ignore_case));
    cmd->add_option("--limit", f->limit, "Jobs per page")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    cmd->add_option("--page-token", f->page_token,
                    "Continue after a previous page (its next_page_token)");
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
        std::cout << absl::StrFormat("%-26s %-10s %-24s %-12s %s\n", "JOB", "STATE", "MODEL",
                                     "PROGRESS", "BASE");
        for (const v1::JobStatus& j : resp->jobs()) {
          const std::string model = j.model_version() > 0
                                        ? absl::StrCat(j.model_name(), ":", j.model_version())
                                        : j.model_name();
          const std::string prog =
              j.progress().total_updates() > 0
                  ? absl::StrCat(j.progress().update(), "/", j.progress().total_updates())
                  : "-";
          std::cout << absl::StrFormat("%-26s %-10s %-24s %-12s %s\n", j.job_id(),
                                       StateName(j.state()), model, prog, j.base_model());
        }
        if (!resp->next_page_token().empty()) {
          std::cerr << "berth: more with --page-token " << resp->next_page_token() << "\n";
        }
        return 0;
      };
    });
  }
}

}  // namespace berth::cli
