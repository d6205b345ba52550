// Loading and saving module weights through safetensors.
#include "core/model/weights.h"

#include <ATen/ATen.h>
#include <c10/core/alignment.h>
#include <torch/utils.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace berth {
namespace {

at::ScalarType ToScalarType(DType d) {
  switch (d) {
    case DType::kF64:
      return at::kDouble;
    case DType::kF32:
      return at::kFloat;
    case DType::kF16:
      return at::kHalf;
    case DType::kBF16:
      return at::kBFloat16;
    case DType::kI64:
      return at::kLong;
    case DType::kI32:
      return at::kInt;
    case DType::kI16:
      return at::kShort;
    case DType::kI8:
      return at::kChar;
    case DType::kU8:
      return at::kByte;
    case DType::kBool:
      return at::kBool;
  }
  return at::kFloat;
}

std::optional<DType> FromScalarType(at::ScalarType t) {
  switch (t) {
    case at::kDouble:
      return DType::kF64;
    case at::kFloat:
      return DType::kF32;
    case at::kHalf:
      return DType::kF16;
    case at::kBFloat16:
      return DType::kBF16;
    case at::kLong:
      return DType::kI64;
    case at::kInt:
      return DType::kI32;
    default:
      return std::nullopt;
  }
}

std::string ShapeString(at::IntArrayRef s) {
  return absl::StrCat("[", absl::StrJoin(s, ", "), "]");
}

// HF's legacy renames applied when loading old checkpoints.
std::string LegacyName(const std::string& name) {
  if (absl::EndsWith(name, ".gamma")) return name.substr(0, name.size() - 6) + ".weight";
  if (absl::EndsWith(name, ".beta")) return name.substr(0, name.size() - 5) + ".bias";
  return name;
}

bool IsFloating(DType d) {
  return d == DType::kF64 || d == DType::kF32 || d == DType::kF16 || d == DType::kBF16;
}

}  // namespace

std::string LoadReport::Summary() const {
  std::string s = absl::StrCat(loaded.size(), " tensors loaded");
  if (!missing.empty()) absl::StrAppend(&s, "; missing: ", absl::StrJoin(missing, ", "));
  if (!unexpected.empty()) absl::StrAppend(&s, "; unexpected: ", absl::StrJoin(unexpected, ", "));
  if (!mismatched.empty()) absl::StrAppend(&s, "; mismatched: ", absl::StrJoin(mismatched, "; "));
  return s;
}

absl::Status LoadWeights(torch::nn::Module& module, const SafetensorsFile& file,
                         const LoadWeightsOptions& options, LoadReport* report) {
  LoadReport local;
  LoadReport& r = report ? *report : local;
  r = LoadReport();
  auto skipped = [&](const std::string& name) {
    for (const std::string& p : options.skip_prefixes) {
      if (absl::StartsWith(name, p)) return true;
    }
    return false;
  };

  std::string prefix = options.base_model_prefix;
  if (prefix.empty()) {
    auto params = module.named_parameters(true);
    if (params.size() > 0) {
      const std::string& first = params.begin()->key();
      if (first.find('.') != std::string::npos) prefix = first.substr(0, first.find('.') + 1);
    }
  }
  bool model_has_prefix = false, file_has_prefix = false;
  for (const auto& item : module.named_parameters(true)) {
    model_has_prefix |= !prefix.empty() && absl::StartsWith(item.key(), prefix);
  }
  for (const TensorView& t : file.tensors()) {
    file_has_prefix |= !prefix.empty() && absl::StartsWith(t.name, prefix);
  }
  const bool add_prefix = model_has_prefix && !file_has_prefix;
  std::map<std::string, const TensorView*> by_name;
  for (const TensorView& t : file.tensors()) {
    std::string name = LegacyName(t.name);
    if (add_prefix) name = prefix + name;
    if (!skipped(name)) by_name[name] = &t;
  }

  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  // What aliasing parameters keep alive; null when they are copied.
  const std::shared_ptr<const void> shared =
      options.share_file_memory ? file.mapping() : std::shared_ptr<const void>();
  auto load_one = [&](const std::string& name, at::Tensor& target) {
    if (skipped(name)) {
      r.initialized.push_back(name);
      return;
    }
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      r.missing.push_back(name);
      return;
    }
    used.insert(it->first);
    const TensorView& src = *it->second;
    if (!IsFloating(src.dtype) && target.is_floating_point()) {
      r.mismatched.push_back(absl::StrCat(name, ": dtype ", DTypeName(src.dtype),
                                          " cannot fill a floating-point parameter"));
      return;
    }
    if (at::IntArrayRef(src.shape) != target.sizes()) {
      r.mismatched.push_back(absl::StrCat(name, ": file ", ShapeString(src.shape), " vs model ",
                                          ShapeString(target.sizes())));
      return;
    }
    // The parameter aliases the mapping where it may (share_file_memory); else one copy
    // straight from the mapping into it, converting the dtype if need be. A tensor the file
    // does not align for its dtype goes through a byte tensor first.
    const at::ScalarType type = ToScalarType(src.dtype);
    const uintptr_t address = reinterpret_cast<uintptr_t>(src.data);
    const bool aligned = address % DTypeSize(src.dtype) == 0;
    if (src.nbytes == 0) {
      // nothing to copy
    } else if (shared != nullptr && address % c10::gAlignment == 0 &&
               type == target.scalar_type() && target.device().is_cpu()) {
      // Only at torch's own alignment (64 bytes): CPU kernels pick their code paths by the
      // alignment of their operands, and a tensor aliased at a lesser one gave logits 1e-6
      // away from the same weights copied.
      target.set_(at::from_blob(
          const_cast<uint8_t*>(src.data), src.shape, [keep = shared](void*) {},
          at::TensorOptions().dtype(type)));
    } else if (aligned) {
      // from_blob does not write: copy_ only reads its source.
      target.copy_(at::from_blob(const_cast<uint8_t*>(src.data), src.shape,
                                 at::TensorOptions().dtype(type)));
    } else {
      at::Tensor bytes = at::empty({static_cast<int64_t>(src.nbytes)}, at::kByte);
      std::memcpy(bytes.data_ptr(), src.data, src.nbytes);
      target.copy_(bytes.view(type).view(src.shape));
    }
    r.loaded.push_back(name);
  };
  for (auto& item : module.named_parameters(/*recurse=*/true)) load_one(item.key(), item.value());
  for (auto& item : module.named_buffers(/*recurse=*/true)) load_one(item.key(), item.value());

  for (const auto& [name, view] : by_name) {
    // position_ids was a persistent buffer in older transformers; it carries no weights.
    if (!used.count(name) && !absl::EndsWith(name, "embeddings.position_ids")) {
      r.unexpected.push_back(view->name);
    }
  }
  // Layers that cache a packed copy of their weights drop it when the mode is (re)set.
  module.train(module.is_training());
  if (!r.mismatched.empty() || !r.missing.empty() ||
      (!r.unexpected.empty() && !options.allow_unexpected)) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.what(), ": weights do not fit the model: ", r.Summary()));
  }
  return absl::OkStatus();
}

absl::Status SaveWeights(const torch::nn::Module& module, const std::string& path) {
  std::vector<at::Tensor> keep_alive;
  std::vector<TensorToWrite> tensors;
  auto add = [&](const std::string& name, const at::Tensor& t) -> absl::Status {
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    std::optional<DType> d = FromScalarType(c.scalar_type());
    if (!d) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' has an unsupported dtype"));
    }
    keep_alive.push_back(c);
    tensors.push_back(TensorToWrite{name, *d, c.sizes().vec(), c.data_ptr(),
                                    static_cast<size_t>(c.numel() * c.element_size())});
    return absl::OkStatus();
  };
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    absl::Status s = add(item.key(), item.value());
    if (!s.ok()) return s;
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    absl::Status s = add(item.key(), item.value());
    if (!s.ok()) return s;
  }
  return WriteSafetensors(path, std::move(tensors), {{"format", "pt"}});
}

}  // namespace berth
