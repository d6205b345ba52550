// Offline fine-tuning with a progress bar, Ctrl-C checkpointing and JSON results.
#include "client/cli/train_commands.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/model/hub.h"
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

std::string Duration(double seconds) {
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s / 60) % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

struct DataFlags {
  std::string text_column, text_pair_column, label_column = "label";
};

void AddDataFlags(CLI::App* cmd, DataFlags* d) {
  cmd->add_option("--text-column", d->text_column,
                  "Column/field with the text (default: text, or sentence when there is no text)");
  cmd->add_option("--text-pair-column", d->text_pair_column,
                  "Second text column: sentence-pair classification");
  cmd->add_option("--label-column", d->label_column, "Column/field with the label")->capture_default_str();
}

struct FinetuneFlags {
  train::FineTuneJob job;
  DataFlags data;
  std::string precision = "fp32";
  std::string class_weights;
  bool no_shuffle = false, no_group_by_length = false, json = false;
};

int RunFinetune(FinetuneFlags& f) {
  train::FineTuneJob& job = f.job;
  job.data.text_column = f.data.text_column;
  job.data.text_pair_column = f.data.text_pair_column;
  job.data.label_column = f.data.label_column;
  job.data.multi_label = job.spec.multi_label;
  job.spec.precision = f.precision == "bf16" ? train::Precision::kBf16 : train::Precision::kFp32;
  job.spec.shuffle = !f.no_shuffle;
  job.spec.group_by_length = !f.no_group_by_length;
  if (!f.class_weights.empty()) {
    for (absl::string_view w : absl::StrSplit(f.class_weights, ',')) {
      double v;
      if (!absl::SimpleAtod(w, &v)) {
        std::cerr << "berth: --class-weights: '" << w << "' is not a number\n";
        return 2;
      }
      job.spec.class_weights.push_back(v);
    }
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  const bool tty = ::isatty(STDERR_FILENO);
  auto last_print = std::chrono::steady_clock::now() - std::chrono::hours(1);
  auto on_progress = [&](const train::Progress& p) {
    if (p.eval != nullptr) {
      if (tty) std::cerr << "\n";
      std::cerr << absl::StrFormat("eval  update %d  epoch %.2f  loss %.4f  accuracy %.4f  macro_f1 %.4f  micro_f1 %.4f\n",
                                   p.update, p.epoch, p.eval->loss, p.eval->accuracy, p.eval->macro_f1,
                                   p.eval->micro_f1);
      return;
    }
    auto now = std::chrono::steady_clock::now();
    const bool last = p.update == p.total_updates;
    if (!last && now - last_print < std::chrono::milliseconds(tty ? 200 : 5000)) return;
    last_print = now;
    const std::string stats = absl::StrFormat(
        "%d/%d  epoch %.2f  loss %.4f  lr %.2e  %.1f samples/s  ETA %s", p.update, p.total_updates,
        p.epoch, p.loss, p.lr, p.samples_per_second, Duration(p.eta_seconds));
    if (tty) {
      const int width = 24;
      int filled = static_cast<int>(width * p.update / std::max<int64_t>(1, p.total_updates));
      std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << stats
                << "   " << std::flush;
    } else {
      std::cerr << "train " << stats << "\n";
    }
  };
  auto result = train::RunFineTune(job, on_progress, &g_interrupted);
  if (tty) std::cerr << "\n";
  if (!result.ok()) {
    std::cerr << "berth: " << result.status().message() << "\n";
    return 1;
  }
  const std::string ckpt = job.checkpoint_dir.empty() ? job.output_dir + ".checkpoints" : job.checkpoint_dir;
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
  if (result->best) out["best_eval"] = result->best->ToJson();
  if (!result->evals.empty()) out["last_eval"] = result->evals.back().ToJson();
  if (result->cancelled) {
    out["checkpoint_dir"] = ckpt;
    std::cerr << "berth: interrupted at update " << result->updates << "; checkpoint saved in " << ckpt
              << ". Run the same command with --resume to continue.\n";
  } else {
    std::cerr << "berth: saved the model to " << result->output_dir << "\n";
  }
  std::cout << out.dump(f.json ? -1 : 2) << "\n";
  return result->cancelled ? 130 : 0;
}

struct EvalFlags {
  std::string model, data_path;
  DataFlags data;
  int64_t max_length = 512;
  int64_t batch_size = 32;
};

int RunEval(const EvalFlags& f) {
  train::DatasetOptions o;
  o.text_column = f.data.text_column;
  o.text_pair_column = f.data.text_pair_column;
  o.label_column = f.data.label_column;
  auto dir = ResolveModelPath(f.model, HubOptions::FromEnvironment());
  if (!dir.ok()) {
    std::cerr << "berth: " << dir.status().message() << "\n";
    return 1;
  }
  auto m = train::EvaluateModel(*dir, f.data_path, o, f.max_length, f.batch_size);
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
  train::TrainingSpec& s = j.spec;
  CLI::App* ft = app.add_subcommand(
      "finetune",
      "Fine-tune a BERT classifier on a labelled CSV/TSV/JSONL file and save a Hugging Face model "
      "directory. Ctrl-C writes a checkpoint; rerun with --resume to continue.");
  ft->add_option("--base-model", j.base_model,
                 "Hugging Face model directory, Hub id (org/name[@revision]), or "
                 "config:bert-tiny|bert-mini|bert-small|bert-medium|bert-base for random initialisation")
      ->required();
  ft->add_option("--train", j.train_path, "Training data (.csv, .tsv with header, or .jsonl)")->required();
  ft->add_option("--validation", j.validation_path, "Validation data (same format)");
  ft->add_option("--validation-split", j.validation_split,
                 "Without --validation: hold out this fraction of --train (seeded)")
      ->check(CLI::Range(0.0, 0.9));
  ft->add_option("--output", j.output_dir, "Directory for the fine-tuned model")->required();
  ft->add_option("--epochs", s.epochs, "Training epochs")->capture_default_str();
  ft->add_option("--max-steps", s.max_steps, "Total optimizer updates; overrides --epochs when > 0")
      ->capture_default_str();
  ft->add_option("--batch-size", s.batch_size, "Examples per micro-batch")->capture_default_str();
  ft->add_option("--eval-batch-size", s.eval_batch_size, "Examples per evaluation batch")->capture_default_str();
  ft->add_option("--lr", s.learning_rate, "Peak learning rate")->capture_default_str();
  ft->add_option("--weight-decay", s.weight_decay, "AdamW decoupled weight decay (not on biases/LayerNorm)")
      ->capture_default_str();
  ft->add_option("--warmup-steps", s.warmup_steps, "Linear warmup updates (wins over --warmup-ratio)")
      ->capture_default_str();
  ft->add_option("--warmup-ratio", s.warmup_ratio, "Linear warmup as a fraction of all updates")
      ->capture_default_str();
  ft->add_option("--grad-accum", s.grad_accum, "Micro-batches accumulated per update")->capture_default_str();
  ft->add_option("--max-grad-norm", s.max_grad_norm, "Gradient clipping norm (0: off)")->capture_default_str();
  ft->add_option("--max-length", s.max_length, "Tokens per example, special tokens included")
      ->capture_default_str();
  ft->add_option("--seed", s.seed, "Seed for initialisation, shuffling and dropout")->capture_default_str();
  ft->add_option("--precision", f->precision, "fp32, or bf16 autocast (weights and optimizer stay fp32)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  ft->add_option("--eval-steps", s.eval_steps, "Evaluate every N updates (0: every epoch)")->capture_default_str();
  ft->add_option("--save-steps", s.save_steps, "Checkpoint every N updates (0: at every evaluation/epoch)")
      ->capture_default_str();
  ft->add_option("--early-stopping-patience", s.early_stopping_patience,
                 "Stop after N evaluations without improvement (0: off)")
      ->capture_default_str();
  ft->add_option("--metric-for-best", s.metric_for_best,
                 "Metric that picks the saved model: accuracy, macro_f1, micro_f1, loss, ... "
                 "(default: accuracy; micro_f1 for --multi-label)");
  AddDataFlags(ft, &f->data);
  ft->add_flag("--multi-label", s.multi_label,
               "Rows carry several labels (JSON arrays, or ';'-separated in CSV/TSV); BCE loss, 0.5 threshold");
  ft->add_option("--class-weights", f->class_weights,
                 "Comma-separated loss weight per label, in label order");
  ft->add_option("--label-smoothing", s.label_smoothing, "Label smoothing factor")->capture_default_str();
  ft->add_option("--log-jsonl", j.log_jsonl,
                 "Write one JSON object per update: {update, epoch, loss, lr, grad_norm}");
  ft->add_flag("--no-shuffle", f->no_shuffle, "Keep the file order (no shuffling)");
  ft->add_flag("--no-group-by-length", f->no_group_by_length, "Do not group batches by length");
  ft->add_flag("--pad-to-max-length", s.pad_to_max_length, "Pad every batch to --max-length");
  ft->add_option("--threads", s.num_threads, "Intra-op threads (0: one per core)")->capture_default_str();
  ft->add_flag("--resume", j.resume, "Continue from the latest checkpoint");
  ft->add_option("--checkpoint-dir", j.checkpoint_dir, "Checkpoint directory (default: OUTPUT.checkpoints)");
  ft->add_flag("--keep-checkpoints", j.keep_checkpoints, "Keep the checkpoint directory after success");
  ft->add_flag("--json", f->json, "Print the result as one line of JSON");
  ft->callback([run, f] { *run = [f] { return RunFinetune(*f); }; });

  auto e = std::make_shared<EvalFlags>();
  CLI::App* ev = app.add_subcommand("eval", "Evaluate a model directory on a labelled file; prints metrics as JSON");
  ev->add_option("--model", e->model, "Hugging Face model directory")->required();
  ev->add_option("--data", e->data_path, "Labelled data (.csv, .tsv, .jsonl)")->required();
  AddDataFlags(ev, &e->data);
  ev->add_option("--max-length", e->max_length, "Tokens per example")->capture_default_str();
  ev->add_option("--batch-size", e->batch_size, "Examples per batch")->capture_default_str();
  ev->callback([run, e] { *run = [e] { return RunEval(*e); }; });
}

}  // namespace berth::cli
