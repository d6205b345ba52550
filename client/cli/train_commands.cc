// Offline fine-tuning with a progress bar, Ctrl-C checkpointing and JSON results.
#include "client/cli/train_commands.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/cli/launch.h"
#include "client/cli/offline_commands.h"
#include "client/cli/progress.h"
#include "client/cli/spec_flags.h"
#include "core/eval/evaluate_model.h"
#include "core/jobs/rank_job.h"
#include "core/model/hub.h"
#include "core/model/presets.h"
#include "core/train/distributed.h"
#include "core/train/trainer.h"
#include "core/util/json.h"

namespace berth::cli {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void OnSignal(int) {
  g_interrupted = true;
  // A second Ctrl-C ends the process at once.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

struct FinetuneFlags {
  train::FineTuneJob job;
  SpecFlags spec;
  bool json = false;
  // Data-parallel: a local launcher, or one rank of a group (torchrun's variables or flags).
  int nproc_per_node = 1;
  std::string master_addr, master_port, world_size, rank, local_rank;
  int64_t bucket_mb = 25;
};

// Joins the c10d group this process belongs to, if any (flags win over the environment).
absl::StatusOr<std::unique_ptr<train::DistributedGroup>> JoinGroup(const FinetuneFlags& f) {
  const std::pair<const char*, const std::string*> vars[] = {{"MASTER_ADDR", &f.master_addr},
                                                             {"MASTER_PORT", &f.master_port},
                                                             {"WORLD_SIZE", &f.world_size},
                                                             {"RANK", &f.rank},
                                                             {"LOCAL_RANK", &f.local_rank}};
  for (const auto& [name, value] : vars) {
    if (!value->empty()) ::setenv(name, value->c_str(), 1);
  }
  auto options = train::DistributedOptionsFromEnvironment();
  if (!options.ok()) return options.status();
  if (!options->has_value()) return std::unique_ptr<train::DistributedGroup>();
  (*options)->bucket_bytes = f.bucket_mb << 20;
  return train::DistributedGroup::Join(**options);
}

int RunFinetune(FinetuneFlags& f) {
  train::FineTuneJob& job = f.job;
  if (absl::Status st = FinishSpecFlags(&f.spec); !st.ok()) {
    std::cerr << "berth: " << st.message() << "\n";
    return 2;
  }
  job.spec = f.spec.spec;
  job.data.text_column = f.spec.data.text_column;
  job.data.text_pair_column = f.spec.data.text_pair_column;
  job.data.label_column = f.spec.data.label_column;
  job.data.multi_label = job.spec.multi_label;
  if (f.nproc_per_node > 1 && std::getenv("RANK") == nullptr && f.rank.empty()) {
    return LaunchLocalRanks(f.nproc_per_node);
  }
  auto group = JoinGroup(f);
  if (!group.ok()) {
    std::cerr << "berth: " << group.status().message() << "\n";
    return group.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  job.group = group->get();
  // Rank 0 speaks for the group; the other ranks only report their errors.
  const bool rank0 = job.group == nullptr || job.group->rank() == 0;
  const std::string who =
      job.group == nullptr ? "" : absl::StrCat("rank ", job.group->rank(), ": ");
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  const bool tty = ::isatty(STDERR_FILENO);
  auto last_print = std::chrono::steady_clock::now() - std::chrono::hours(1);
  auto on_progress = [&](const data::Progress& p) {
    if (!rank0) return;
    if (p.eval != nullptr) {
      if (tty) std::cerr << "\n";
      if (p.eval->scored) {
        std::cerr << absl::StrFormat(
            "eval  update %d  epoch %.2f  loss %.4f  pearson %.4f  spearman %.4f\n", p.update,
            p.epoch, p.eval->loss, p.eval->pearson, p.eval->spearman);
        return;
      }
      std::cerr << absl::StrFormat(
          "eval  update %d  epoch %.2f  loss %.4f  accuracy %.4f  macro_f1 %.4f  micro_f1 %.4f\n",
          p.update, p.epoch, p.eval->loss, p.eval->accuracy, p.eval->macro_f1, p.eval->micro_f1);
      return;
    }
    auto now = std::chrono::steady_clock::now();
    const bool last = p.update == p.total_updates;
    if (!last && now - last_print < std::chrono::milliseconds(tty ? 200 : 5000)) return;
    last_print = now;
    const std::string line = ProgressLine(p.update, p.total_updates, p.epoch, p.loss, p.lr,
                                          p.samples_per_second, p.eta_seconds, tty);
    if (tty) {
      std::cerr << "\r" << line << "   " << std::flush;
    } else {
      std::cerr << "train " << line << "\n";
    }
  };
  auto result = train::RunFineTune(job, on_progress, &g_interrupted);
  if (tty && rank0) std::cerr << "\n";
  if (!result.ok()) {
    std::cerr << "berth: " << (absl::StrContains(result.status().message(), "rank ") ? "" : who)
              << result.status().message() << "\n";
    return 1;
  }
  if (!rank0) return result->cancelled ? 130 : 0;
  const std::string ckpt =
      job.checkpoint_dir.empty() ? job.output_dir + ".checkpoints" : job.checkpoint_dir;
  Json out = {{"output_dir", result->cancelled ? "" : result->output_dir},
              {"cancelled", result->cancelled},
              {"updates", result->updates},
              {"total_updates", result->total_updates},
              {"epochs", result->epochs_completed},
              {"train_loss", result->train_loss},
              {"train_seconds", result->train_seconds},
              {"samples_per_second", result->samples_per_second},
              {"early_stopped", result->early_stopped},
              {"labels", result->labels}};
  if (result->world_size > 1) {
    out["world_size"] = result->world_size;
    out["allreduce_seconds"] = result->allreduce_seconds;
  }
  if (result->best) out["best_eval"] = result->best->ToJson();
  if (!result->evals.empty()) out["last_eval"] = result->evals.back().ToJson();
  if (result->cancelled) {
    out["checkpoint_dir"] = ckpt;
    std::cerr << "berth: interrupted at update " << result->updates << "; checkpoint saved in "
              << ckpt << ". Run the same command with --resume to continue.\n";
  } else {
    std::cerr << "berth: saved the model to " << result->output_dir << "\n";
  }
  std::cout << out.dump(f.json ? -1 : 2) << "\n";
  return result->cancelled ? 130 : 0;
}

// `berth train-rank --job FILE`: rank 1..N-1 of a berth-server job with workers: N (the server
// is rank 0 and starts these processes; see core/jobs/job_runner.cc).
int RunTrainRank(const std::string& file) {
  if (const char* parent = std::getenv("BERTH_PARENT_PID"); parent != nullptr) {
    // Stop with the server: its death ends the group anyway.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (std::to_string(::getppid()) != parent) return 1;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  auto j = ReadJsonFile(file);
  auto job = j.ok() ? jobs::RankJobFromJson(*j) : absl::StatusOr<train::FineTuneJob>(j.status());
  if (!job.ok()) {
    std::cerr << "berth: " << job.status().message() << "\n";
    return 2;
  }
  auto options = train::DistributedOptionsFromEnvironment();
  if (!options.ok() || !options->has_value()) {
    std::cerr << "berth: train-rank needs WORLD_SIZE, RANK, MASTER_ADDR and MASTER_PORT"
              << (options.ok() ? "" : absl::StrCat(": ", options.status().message())) << "\n";
    return 2;
  }
  auto group = train::DistributedGroup::Join(**options);
  if (!group.ok()) {
    std::cerr << "berth: " << group.status().message() << "\n";
    return 1;
  }
  job->group = group->get();
  auto result = train::RunFineTune(*job, nullptr, &g_interrupted);
  if (!result.ok()) {
    std::cerr << "berth: rank " << (*group)->rank() << ": " << result.status().message() << "\n";
    return 1;
  }
  return result->cancelled ? 130 : 0;
}

struct EvalFlags {
  std::string model, data_path;
  DataFlags data;
  int max_length = 0;
  EngineFlags engine;
};

// Through the inference engine, as `berth predict`: a window of examples at a time, batched by
// length under the token budget.
int RunEval(const EvalFlags& f) {
  data::DatasetOptions o;
  o.text_column = f.data.text_column;
  o.text_pair_column = f.data.text_pair_column;
  o.label_column = f.data.label_column;
  auto dir = ResolveModelPath(f.model, HubOptions::FromEnvironment());
  if (!dir.ok()) {
    std::cerr << "berth: " << dir.status().message() << "\n";
    return 1;
  }
  EvaluateModelOptions eo;
  eo.engine = MakeEngineOptions(f.engine);
  eo.evaluate.max_length = f.max_length;
  eo.evaluate.window = static_cast<size_t>(f.engine.window);
  if (::isatty(STDERR_FILENO)) {
    eo.evaluate.progress = [](size_t done, size_t total) {
      std::cerr << "\rberth eval: " << done << " of " << total << " examples" << std::flush;
      if (done == total) std::cerr << "\n";
    };
  }
  auto m = EvaluateModel(*dir, f.data_path, o, eo);
  if (!m.ok()) {
    std::cerr << "berth: " << m.status().message() << "\n";
    return 1;
  }
  std::cout << m->ToJson().dump(2) << "\n";
  return 0;
}

}  // namespace

void AddTrainCommands(CLI::App& app, std::function<int()>* run) {
  auto f = std::make_shared<FinetuneFlags>();
  train::FineTuneJob& j = f->job;
  CLI::App* ft = app.add_subcommand(
      "finetune",
      "Fine-tune a BERT classifier on a labelled CSV/TSV/JSONL file and save a Hugging Face model "
      "directory. Ctrl-C writes a checkpoint; rerun with --resume to continue.");
  ft->add_option(
        "--base-model", j.base_model,
        absl::StrCat("Hugging Face model directory, Hub id (org/name[@revision]), or one of ",
                     PresetList(), " for random initialisation"))
      ->required();
  ft->add_option("--train", j.train_path, "Training data (.csv, .tsv with header, or .jsonl)")
      ->required();
  ft->add_option("--validation", j.validation_path, "Validation data (same format)");
  ft->add_option("--validation-split", j.validation_split,
                 "Without --validation: hold out this fraction of --train (seeded)")
      ->check(CLI::Range(0.0, 0.9));
  ft->add_option("--output", j.output_dir, "Directory for the fine-tuned model")->required();
  AddSpecFlags(ft, &f->spec);
  ft->add_option("--log-jsonl", j.log_jsonl,
                 "Write one JSON object per update: {update, epoch, loss, lr, grad_norm}");
  ft->add_option("--threads", f->spec.spec.num_threads, "Intra-op threads (0: one per core)")
      ->capture_default_str();
  ft->add_flag("--resume", j.resume, "Continue from the latest checkpoint");
  ft->add_option("--checkpoint-dir", j.checkpoint_dir,
                 "Checkpoint directory (default: OUTPUT.checkpoints)");
  ft->add_flag("--keep-checkpoints", j.keep_checkpoints,
               "Keep the checkpoint directory after success");
  ft->add_flag("--json", f->json, "Print the result as one line of JSON");
  ft->add_option(
        "--nproc-per-node", f->nproc_per_node,
        "Data-parallel: start this many local ranks (gloo on 127.0.0.1); --batch-size is per rank")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  ft->add_option("--master-addr", f->master_addr,
                 "Rendezvous host of rank 0's TCPStore (env MASTER_ADDR)");
  ft->add_option("--master-port", f->master_port, "Rendezvous port (env MASTER_PORT)");
  ft->add_option("--world-size", f->world_size, "Ranks in the group (env WORLD_SIZE)");
  ft->add_option("--rank", f->rank, "This process's rank (env RANK)");
  ft->add_option("--local-rank", f->local_rank, "This process's rank on its host (env LOCAL_RANK)");
  ft->add_option("--bucket-mb", f->bucket_mb,
                 "Gradients are all-reduced in buckets of this many MiB")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}))
      ->capture_default_str();
  ft->callback([run, f] { *run = [f] { return RunFinetune(*f); }; });

  auto rank_job = std::make_shared<std::string>();
  CLI::App* tr = app.add_subcommand(
      "train-rank",
      "Internal: one rank (1..N-1) of a berth-server job with workers: N, started by the server");
  tr->group("");  // not listed in --help
  tr->add_option("--job", *rank_job, "The job file the server wrote")->required();
  tr->callback([run, rank_job] { *run = [rank_job] { return RunTrainRank(*rank_job); }; });

  auto e = std::make_shared<EvalFlags>();
  CLI::App* ev = app.add_subcommand(
      "eval", "Evaluate a model directory on a labelled file; prints metrics as JSON");
  ev->add_option("--model", e->model, "Hugging Face model directory")->required();
  ev->add_option("--data", e->data_path, "Labelled data (.csv, .tsv, .jsonl)")->required();
  AddDataFlags(ev, &e->data);
  ev->add_option("--max-length", e->max_length,
                 "Tokens per example including special tokens (default: the tokenizer's "
                 "model_max_length)")
      ->check(CLI::NonNegativeNumber);
  AddEngineFlags(ev, &e->engine, "examples");
  ev->callback([run, e] { *run = [e] { return RunEval(*e); }; });
}

}  // namespace berth::cli
