// Training and evaluation batches: a dataset tokenized once, and the padded tensors of one
// micro-batch of its rows (on the host, then on the training device).
#ifndef BERTH_CORE_TRAIN_BATCHES_H_
#define BERTH_CORE_TRAIN_BATCHES_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/text/tokenizer.h"

namespace berth::train {

// A dataset tokenized, with each example's class ids.
struct Encoded {
  std::vector<text::Encoding> enc;
  std::vector<std::vector<int64_t>> labels;  // class ids per example (a scorer: none)
  std::vector<float> scores;                 // a scorer's numeric label per example
};

// Tokenizes `d` (pairs: text and text_pair) and maps its labels to their index in `labels`; a
// label not there, or text that cannot be encoded, is an error naming the file and line. For a
// scorer (`score_loss` "bce" or "mse", TrainingSpec::score_loss) each label is a number instead,
// in [0, 1] for "bce", and `labels` is not consulted.
absl::StatusOr<Encoded> EncodeDataset(const data::Dataset& d,
                                      const std::vector<std::string>& labels,
                                      const text::Tokenizer& tok, int64_t max_length, bool pairs,
                                      const std::string& score_loss = "");

struct Batch {
  at::Tensor ids, types, mask, targets;
  int64_t rows = 0;
  bool padded =
      false;  // some row is shorter than the batch (the host knows; see ModelAttentionMask)
};

// Rows `rows` of `data`, padded with `pad_id` to the longest of them (at least `pad_to`);
// targets are class ids, a multi-hot float matrix for multi-label, or a scorer's [rows, 1]
// float labels.
Batch MakeBatch(const Encoded& data, const std::vector<int64_t>& rows, int32_t pad_id,
                int64_t pad_to, bool multi_label, int64_t num_labels);

// A batch on the training device: pinned host memory and copies that do not wait, so the copy
// overlaps whatever the device is still doing. On the CPU, the batch as it is.
Batch ToDevice(Batch b, const c10::Device& device);

}  // namespace berth::train

#endif  // BERTH_CORE_TRAIN_BATCHES_H_
