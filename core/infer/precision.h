// Inference precisions, their names on every command line, and the CPU features that decide
// what `auto` picks. One source of truth for the names: flags check against PrecisionChoices().
#ifndef BERTH_CORE_INFER_PRECISION_H_
#define BERTH_CORE_INFER_PRECISION_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace berth {

// kFp32: fp32 weights. kBf16: bfloat16 weights (oneDNN's bf16 kernels: ~1.7x fp32 on a Zen 4
// CPU with avx512_bf16, but 0.6x on an Intel Xeon exposing avx512_bf16 without AMX, and
// emulated, far slower, without either). kInt8: the encoder blocks' linear layers dynamically
// quantized (int8 weights per output channel prepacked at load, activations quantized per row
// at run time, int32 accumulation, fp32 out); the feed-forward output layers in int8 with their
// outlier columns in fp32 (LinearImpl::QuantizeInt8); embeddings, LayerNorm, softmax, the
// pooler and the head stay fp32. CPU only.
enum class InferencePrecision { kFp32, kBf16, kInt8 };

// "auto", "fp32", "bf16", "int8": what --precision accepts.
const std::vector<std::string>& PrecisionChoices();
// "fp32", "bf16", "int8".
const char* PrecisionName(InferencePrecision p);

// `name` is one of PrecisionChoices(); `field` names the flag in the error. "auto" picks bf16
// on a GPU or on a CPU with avx512_bf16 or AMX (HostCpuFeatures) and fp32 elsewhere: never int8,
// whose scores differ from fp32's enough that it is opted into. (int8 on a GPU is refused when the
// model is loaded, by SequenceClassifier.)
absl::StatusOr<InferencePrecision> ParseInferencePrecision(std::string_view name,
                                                           std::string_view field, bool on_gpu);

}  // namespace berth

#endif  // BERTH_CORE_INFER_PRECISION_H_
