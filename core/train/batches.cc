// Tokenizing a dataset once, and padding micro-batches of it.
#include "core/train/batches.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace berth::train {

absl::StatusOr<Encoded> EncodeDataset(const data::Dataset& d,
                                      const std::vector<std::string>& labels,
                                      const text::Tokenizer& tok, int64_t max_length, bool pairs,
                                      const std::string& score_loss) {
  std::map<std::string, int64_t> ids;
  for (size_t i = 0; i < labels.size(); ++i) ids[labels[i]] = static_cast<int64_t>(i);
  Encoded out;
  out.enc.reserve(d.examples.size());
  text::EncodeOptions o;
  o.max_length = static_cast<int>(max_length);
  const bool scorer = !score_loss.empty();
  for (const data::Example& e : d.examples) {
    if (scorer) {
      ASSIGN_OR_RETURN(const double v, data::ScoreLabel(d, e, score_loss == "bce"));
      out.scores.push_back(static_cast<float>(v));
    }
    std::vector<int64_t> y;
    for (const std::string& l : scorer ? std::vector<std::string>{} : e.labels) {
      auto it = ids.find(l);
      if (it == ids.end()) {
        return absl::InvalidArgumentError(absl::StrCat(d.source, ":", e.line, ": label '", l,
                                                       "' does not occur in the training data"));
      }
      y.push_back(it->second);
    }
    auto enc = pairs ? tok.EncodePair(e.text, e.text_pair, o) : tok.Encode(e.text, o);
    if (!enc.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(d.source, ":", e.line, ": ", enc.status().message()));
    }
    out.enc.push_back(std::move(*enc));
    out.labels.push_back(std::move(y));
  }
  return out;
}

Batch MakeBatch(const Encoded& data, const std::vector<int64_t>& rows, int32_t pad_id,
                int64_t pad_to, bool multi_label, int64_t num_labels) {
  int64_t seq = pad_to;
  for (int64_t r : rows)
    seq = std::max<int64_t>(seq, static_cast<int64_t>(data.enc[r].input_ids.size()));
  const int64_t n = static_cast<int64_t>(rows.size());
  Batch b;
  b.rows = n;
  b.ids = at::full({n, seq}, pad_id, at::kLong);
  b.types = at::zeros({n, seq}, at::kLong);
  b.mask = at::zeros({n, seq}, at::kLong);
  auto ids = b.ids.accessor<int64_t, 2>();
  auto types = b.types.accessor<int64_t, 2>();
  auto mask = b.mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const text::Encoding& e = data.enc[rows[i]];
    for (size_t t = 0; t < e.input_ids.size(); ++t) {
      ids[i][t] = e.input_ids[t];
      types[i][t] = e.token_type_ids[t];
      mask[i][t] = e.attention_mask[t];
      b.padded = b.padded || e.attention_mask[t] == 0;
    }
    b.padded = b.padded || static_cast<int64_t>(e.input_ids.size()) < seq;
  }
  if (!data.scores.empty()) {
    b.targets = at::empty({n, 1}, at::kFloat);
    auto tg = b.targets.accessor<float, 2>();
    for (int64_t i = 0; i < n; ++i) tg[i][0] = data.scores[rows[i]];
  } else if (multi_label) {
    b.targets = at::zeros({n, num_labels}, at::kFloat);
    auto tg = b.targets.accessor<float, 2>();
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t c : data.labels[rows[i]]) tg[i][c] = 1.0f;
    }
  } else {
    b.targets = at::empty({n}, at::kLong);
    auto tg = b.targets.accessor<int64_t, 1>();
    for (int64_t i = 0; i < n; ++i) tg[i] = data.labels[rows[i]].at(0);
  }
  return b;
}

Batch ToDevice(Batch b, const c10::Device& device) {
  if (device.is_cpu()) return b;
  for (at::Tensor* t : {&b.ids, &b.types, &b.mask, &b.targets})
    *t = t->pin_memory().to(device, /*non_blocking=*/true);
  return b;
}

}  // namespace berth::train
