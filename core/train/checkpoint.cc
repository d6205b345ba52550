// Writing and reading checkpoints.
#include "core/train/checkpoint.h"

#include <c10/util/Exception.h>
#include <torch/serialize.h>

#include <cstdio>
#include <cstring>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model/model_dir.h"
#include "core/util/files.h"
#include "core/util/log.h"
#include "core/util/status_macros.h"

namespace berth::train {

Json TrainState::ToJson() const {
  return {{"update", update},
          {"epoch", epoch},
          {"next_batch", next_batch},
          {"loss_sum", loss_sum},
          {"samples", samples},
          {"best_metric", best_metric},
          {"has_best", has_best},
          {"best_update", best_update},
          {"evals_without_improvement", evals_without_improvement},
          {"evals", evals},
          {"last_eval_update", last_eval_update},
          {"format", 1}};
}

absl::StatusOr<TrainState> TrainState::FromJson(const Json& j, const std::string& what) {
  TrainState s;
  try {
    s.update = j.at("update");
    s.epoch = j.at("epoch");
    s.next_batch = j.at("next_batch");
    s.loss_sum = j.at("loss_sum");
    s.samples = j.at("samples");
    s.best_metric = j.at("best_metric");
    s.has_best = j.at("has_best");
    s.best_update = j.at("best_update");
    s.evals_without_improvement = j.at("evals_without_improvement");
    s.evals = j.at("evals").get<std::vector<Json>>();
    s.last_eval_update = j.at("last_eval_update");
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": damaged trainer state: ", e.what()));
  }
  return s;
}

at::Tensor CpuRngState() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state().clone();
}

void SetCpuRngState(const at::Tensor& state) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

RngState CaptureRng(const c10::Device& device) {
  RngState s;
  s.cpu = CpuRngState();
  if (device.is_cuda()) {
    // Through the context, not the CUDA library's own API: the programs load LibTorch's CUDA
    // half at run time (core/runtime), so nothing here links it.
    at::Generator gen = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    s.cuda = gen.get_state().clone();
  }
  return s;
}

void RestoreRng(const RngState& state, const c10::Device& device) {
  SetCpuRngState(state.cpu);
  if (device.is_cuda() && state.cuda.defined()) {
    at::Generator gen = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state.cuda);
  }
}

namespace {

absl::Status WriteBytes(const std::string& path, const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return WriteFileAtomically(path, absl::string_view(static_cast<const char*>(c.data_ptr()),
                                                     static_cast<size_t>(c.numel())));
}

absl::StatusOr<at::Tensor> ReadBytes(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  at::Tensor t = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
  std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

}  // namespace

absl::Status WriteCheckpoint(const std::string& root, const TrainState& state,
                             const SequenceClassifierModule& model, torch::optim::AdamW& opt,
                             const RngState& rng_state, const FineTuneJob& job,
                             const std::vector<std::string>& labels) {
  const std::string name = absl::StrCat("ckpt-", state.update);
  const std::string final_dir = JoinPath(root, name);
  const std::string tmp = final_dir + ".partial";
  RETURN_IF_ERROR(RemoveAll(tmp));
  RETURN_IF_ERROR(MakeDirectories(tmp));
  RETURN_IF_ERROR(SaveWeights(model, JoinPath(tmp, "model.safetensors")));
  try {
    torch::save(opt, JoinPath(tmp, "optimizer.pt"));
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("cannot save optimizer state: ", e.what_without_backtrace()));
  }
  RETURN_IF_ERROR(WriteBytes(JoinPath(tmp, "rng.bin"), rng_state.cpu));
  if (rng_state.cuda.defined())
    RETURN_IF_ERROR(WriteBytes(JoinPath(tmp, "cuda_rng.bin"), rng_state.cuda));
  Json st = state.ToJson();
  st["labels"] = labels;
  st["base_model"] = job.base_model;
  st["train_path"] = job.train_path;
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(tmp, "state.json"), DumpJson(st)));
  RETURN_IF_ERROR(RemoveAll(final_dir));
  if (std::rename(tmp.c_str(), final_dir.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename checkpoint into ", final_dir));
  }
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(root, "latest"), name + "\n"));
  // Older checkpoints are no longer needed.
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(root));
  for (const std::string& n : names) {
    if (absl::StartsWith(n, "ckpt-") && n != name) {
      LogIfError(RemoveAll(JoinPath(root, n)), "checkpoint.cleanup_failed",
                 {{"path", JoinPath(root, n)}});
    }
  }
  return absl::OkStatus();
}

absl::Status ReadCheckpoint(const std::string& root, TrainState* state,
                            SequenceClassifierModule& model, torch::optim::AdamW& opt,
                            const std::vector<std::string>& labels, const c10::Device& device) {
  ASSIGN_OR_RETURN(std::string latest, ReadFileToString(JoinPath(root, "latest")));
  while (!latest.empty() && (latest.back() == '\n' || latest.back() == ' ')) latest.pop_back();
  const std::string dir = JoinPath(root, latest);
  ASSIGN_OR_RETURN(Json st, ReadJsonFile(JoinPath(dir, "state.json")));
  ASSIGN_OR_RETURN(*state, TrainState::FromJson(st, dir));
  if (st.contains("labels") && st["labels"].get<std::vector<std::string>>() != labels) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, ": the checkpoint was made with labels [",
        absl::StrJoin(st["labels"].get<std::vector<std::string>>(), ", "), "], not these"));
  }
  ASSIGN_OR_RETURN(auto weights, SafetensorsFile::Open(JoinPath(dir, "model.safetensors")));
  RETURN_IF_ERROR(LoadWeights(model, *weights, {}, nullptr));
  try {
    torch::load(opt, JoinPath(dir, "optimizer.pt"));
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(dir, ": cannot load optimizer state: ", e.what_without_backtrace()));
  }
  RngState rng;
  ASSIGN_OR_RETURN(rng.cpu, ReadBytes(JoinPath(dir, "rng.bin")));
  if (device.is_cuda() && IsRegularFile(JoinPath(dir, "cuda_rng.bin"))) {
    ASSIGN_OR_RETURN(rng.cuda, ReadBytes(JoinPath(dir, "cuda_rng.bin")));
  }
  try {
    RestoreRng(rng, device);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(dir, ": bad RNG state: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

}  // namespace berth::train
