// Loading and saving Hugging Face model directories.
#include "core/model/model_dir.h"

#include <c10/util/Exception.h>
#include <unistd.h>

#include <cstdio>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/model/linear.h"
#include "core/model/presets.h"
#include "core/model/pytorch_bin.h"
#include "core/text/wordpiece.h"
#include "core/util/files.h"
#include "core/util/log.h"
#include "core/util/status_macros.h"

namespace berth {
namespace {

absl::Status WriteFiles(const std::string& dir, const ModelConfig& config,
                        const torch::nn::Module& module, const text::Tokenizer& tokenizer) {
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "config.json"), DumpJson(config.ToJson())));
  RETURN_IF_ERROR(SaveWeights(module, JoinPath(dir, "model.safetensors")));
  return tokenizer.Save(dir);
}

}  // namespace

absl::StatusOr<LoadedModel> CreateRandomModel(const std::string& name,
                                              const std::string& data_dir) {
  const ModelPreset* p = FindModelPreset(name);
  if (p == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("base model 'config:", name, "' is unknown (choose from ", PresetList(), ")"));
  }
  LoadedModel m;
  m.config.num_hidden_layers = p->layers;
  m.config.hidden_size = p->hidden;
  m.config.num_attention_heads = p->heads;
  m.config.intermediate_size = p->intermediate;
  const std::string vocab_path = JoinPath(data_dir, "bert-base-uncased-vocab.txt");
  ASSIGN_OR_RETURN(std::vector<std::string> vocab,
                   text::WordPieceTokenizer::ReadVocabFile(vocab_path));
  m.config.vocab_size = static_cast<int64_t>(vocab.size());
  ASSIGN_OR_RETURN(auto tok, text::WordPieceTokenizer::Create(std::move(vocab), {}));
  m.tokenizer = std::move(tok);
  return m;
}

std::string ModelWeightsPath(const std::string& dir) {
  for (const char* name : {"model.safetensors", "pytorch_model.bin"}) {
    if (IsRegularFile(JoinPath(dir, name))) return JoinPath(dir, name);
  }
  return "";
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> OpenModelWeights(const std::string& dir) {
  const std::string path = ModelWeightsPath(dir);
  if (path.empty()) {
    return absl::NotFoundError(absl::StrCat(dir, ": no model.safetensors or pytorch_model.bin"));
  }
  if (absl::EndsWith(path, ".bin")) return OpenPytorchBin(path);
  return SafetensorsFile::Open(path);
}

absl::StatusOr<LoadedModel> LoadModelDirectory(const std::string& dir,
                                               const LoadModelOptions& options) {
  if (!IsDirectory(dir)) {
    return absl::NotFoundError(absl::StrCat("model directory '", dir, "' does not exist"));
  }
  LoadedModel m;
  const std::string config_path = JoinPath(dir, "config.json");
  if (!IsRegularFile(config_path)) {
    return absl::NotFoundError(
        absl::StrCat(dir, ": no config.json (not a Hugging Face model directory)"));
  }
  ASSIGN_OR_RETURN(m.config, ModelConfig::Load(config_path));
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> weights, OpenModelWeights(dir));
  ASSIGN_OR_RETURN(m.tokenizer, text::LoadTokenizer(dir, options.tokenizer));
  ASSIGN_OR_RETURN(m.pooling, ReadPoolingConfig(dir));
  if (m.tokenizer->vocab_size() > m.config.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, ": the tokenizer has ", m.tokenizer->vocab_size(),
                     " tokens but config.json vocab_size is ", m.config.vocab_size));
  }
  try {
    // Strict loading fills every parameter from the file, so no initial values are drawn
    // (a cold start's cost); parameters kept out of the load (skip_prefixes) are initialised.
    const bool every_parameter_loaded = options.weights.skip_prefixes.empty();
    {
      std::optional<SkipParameterInit> no_init;
      if (every_parameter_loaded) no_init.emplace();
      ASSIGN_OR_RETURN(m.module, CreateSequenceClassifier(m.config));
    }
    if (!every_parameter_loaded) m.module->InitWeights(m.config.initializer_range);
    LoadWeightsOptions weight_options = options.weights;
    if (options.head_optional && every_parameter_loaded) {
      const std::vector<std::string> head = m.module->HeadPrefixes();
      m.has_head = false;
      for (const TensorView& t : weights->tensors()) {
        for (const std::string& prefix : head) m.has_head |= t.name.rfind(prefix, 0) == 0;
      }
      if (!m.has_head) {
        weight_options.skip_prefixes = head;
        m.module->InitHead(m.config.initializer_range);
      }
    }
    RETURN_IF_ERROR(LoadWeights(*m.module, *weights, weight_options, &m.report));
    m.module->eval();
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(dir, ": building the model failed: ", e.what_without_backtrace()));
  }
  return m;
}

absl::Status SaveModelDirectory(const std::string& dir, const ModelConfig& config,
                                const torch::nn::Module& module, const text::Tokenizer& tokenizer) {
  if (IsDirectory(dir)) return WriteFiles(dir, config, module, tokenizer);
  std::string tmp = absl::StrCat(dir, ".partial.", ::getpid());
  LogIfError(RemoveAll(tmp), "model.cleanup_failed", {{"path", tmp}});
  RETURN_IF_ERROR(MakeDirectories(tmp));
  absl::Status s = WriteFiles(tmp, config, module, tokenizer);
  if (s.ok() && std::rename(tmp.c_str(), dir.c_str()) != 0) {
    s = absl::InternalError(absl::StrCat("cannot rename '", tmp, "' to '", dir, "'"));
  }
  if (!s.ok()) LogIfError(RemoveAll(tmp), "model.cleanup_failed", {{"path", tmp}});
  return s;
}

}  // namespace berth
