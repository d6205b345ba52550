// Packed tokens (TokenPacking): a padded batch runs its token-wise layers on the real tokens
// only. The logits and the gradients must be those of each row on its own (a batch of one has
// no padding, so it takes the unpacked path): the packing changes the work, not the maths.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include "core/model/bert.h"
#include "core/model/distilbert.h"
#include "core/model/model_dir.h"
#include "core/model/roberta.h"
#include "tests/unit/test_util.h"

namespace berth {
namespace {

struct Batch {
  at::Tensor ids, types, mask;
};

Batch MakeBatch(const std::vector<text::Encoding>& rows, int32_t pad_id) {
  int64_t seq = 0;
  for (const auto& e : rows) seq = std::max<int64_t>(seq, static_cast<int64_t>(e.input_ids.size()));
  const int64_t n = static_cast<int64_t>(rows.size());
  Batch b{at::full({n, seq}, pad_id, at::kLong), at::zeros({n, seq}, at::kLong),
          at::zeros({n, seq}, at::kLong)};
  for (int64_t r = 0; r < n; ++r) {
    for (size_t t = 0; t < rows[r].input_ids.size(); ++t) {
      b.ids[r][static_cast<int64_t>(t)] = rows[r].input_ids[t];
      b.types[r][static_cast<int64_t>(t)] = rows[r].token_type_ids[t];
      b.mask[r][static_cast<int64_t>(t)] = 1;
    }
  }
  return b;
}

class PackingTest : public ::testing::TestWithParam<const char*> {};

TEST_P(PackingTest, PaddedBatchGivesEachRowsLogitsAndGradients) {
  auto m = LoadModelDirectory(testing::FixturePath(GetParam()));
  ASSERT_TRUE(m.ok()) << m.status();
  m->module->eval();  // no dropout; autograd stays on
  const std::vector<std::string> texts = {
      "a", "the film is a masterpiece of quiet suspense and wit", "dull",
      "not good, not bad: somewhere in between, mostly forgettable"};
  std::vector<text::Encoding> rows;
  for (const auto& t : texts) {
    auto e = m->tokenizer->Encode(t, {});
    ASSERT_TRUE(e.ok()) << e.status();
    rows.push_back(*e);
  }
  const int32_t pad = m->tokenizer->layout().pad_id;
  const Batch all = MakeBatch(rows, pad);
  ASSERT_TRUE(PackingFor(all.mask).has_value()) << "the batch must take the packed path";

  std::vector<at::Tensor> params = m->module->parameters();
  auto grads = [&] {
    std::vector<at::Tensor> g;
    for (at::Tensor& p : params) {
      g.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
      p.mutable_grad().reset();
    }
    return g;
  };
  // The loss is a fixed linear function of the logits, so the batch's gradient is the sum of
  // the rows' gradients.
  at::Tensor logits = m->module->forward(all.ids, all.types, all.mask);
  logits.mul(at::arange(1, logits.size(1) + 1, logits.options())).sum().backward();
  const std::vector<at::Tensor> batch_grads = grads();

  std::vector<at::Tensor> row_grads;
  for (size_t r = 0; r < rows.size(); ++r) {
    const Batch one = MakeBatch({rows[r]}, pad);
    ASSERT_FALSE(PackingFor(one.mask).has_value());
    at::Tensor l = m->module->forward(one.ids, one.types, one.mask);
    // fp32 logits of O(1) through a few layers: rows computed in another matrix shape round
    // differently in the last bits (~1e-7); 1e-5 is the golden tests' tolerance.
    EXPECT_TRUE(at::allclose(l[0], logits[static_cast<int64_t>(r)].detach(), 0, 1e-5))
        << "row " << r;
    l.mul(at::arange(1, l.size(1) + 1, l.options())).sum().backward();
    std::vector<at::Tensor> g = grads();
    if (row_grads.empty()) {
      row_grads = g;
    } else {
      for (size_t i = 0; i < g.size(); ++i) row_grads[i] += g[i];
    }
  }
  for (size_t i = 0; i < params.size(); ++i) {
    // Gradients are sums over tokens of products of O(1) values; 1e-5 absolute plus 1e-4
    // relative covers fp32 summation in a different order and shape, and a sum's rounding
    // scales with its largest partial sums, not with the element: a few ulps (2^-23 relative)
    // of the tensor's largest value more. (DistilBERT's word-embedding gradient reaches ~19,
    // its [CLS] and [SEP] rows summing every text's; packed and one-by-one differed by 1.6e-5,
    // 8 ulps of 19.)
    const double largest = batch_grads[i].abs().max().item<double>();
    EXPECT_TRUE(at::allclose(batch_grads[i], row_grads[i], 1e-4, 1e-5 + 16 * 0x1p-23 * largest))
        << "parameter " << i << " " << m->module->named_parameters()[i].key() << " max diff "
        << (batch_grads[i] - row_grads[i]).abs().max().item<double>() << " largest " << largest;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, PackingTest,
                         ::testing::Values("bert-tiny-uncased", "xlmr-tiny", "distilbert-tiny"));

// In evaluation mode the last layer computes the first token's row alone (the classification
// heads read no other): that row must be the one the full layer computes, padded or packed.
class FirstTokenTest : public ::testing::TestWithParam<const char*> {};

TEST_P(FirstTokenTest, LastLayerRowMatchesTheFullLayer) {
  auto m = LoadModelDirectory(testing::FixturePath(GetParam()));
  ASSERT_TRUE(m.ok()) << m.status();
  m->module->eval();
  at::NoGradGuard no_grad;
  std::vector<text::Encoding> rows;
  for (const char* t : {"a", "the film is a masterpiece of quiet suspense and wit", "dull"}) {
    auto e = m->tokenizer->Encode(t, {});
    ASSERT_TRUE(e.ok()) << e.status();
    rows.push_back(*e);
  }
  const Batch padded = MakeBatch(rows, m->tokenizer->layout().pad_id);
  const Batch full = MakeBatch({rows[1]}, m->tokenizer->layout().pad_id);
  for (const Batch* b : {&padded, &full}) {
    SCOPED_TRACE(b == &padded ? "padded (packed) batch" : "batch without padding");
    ASSERT_EQ(PackingFor(b->mask).has_value(), b == &padded);
    at::Tensor first, all;
    if (auto* bert = dynamic_cast<BertForSequenceClassificationImpl*>(m->module.get())) {
      at::Tensor h = bert->bert->embeddings(b->ids, b->types);
      first = RunBertLayers(bert->bert->layers, h, b->mask, /*first_token_only=*/true);
      all = RunBertLayers(bert->bert->layers, h, b->mask, /*first_token_only=*/false);
    } else if (auto* rob = dynamic_cast<RobertaForSequenceClassificationImpl*>(m->module.get())) {
      at::Tensor h = rob->embeddings(b->ids, b->types);
      first = RunBertLayers(rob->layers, h, b->mask, /*first_token_only=*/true);
      all = RunBertLayers(rob->layers, h, b->mask, /*first_token_only=*/false);
    } else {
      auto* distil = dynamic_cast<DistilBertForSequenceClassificationImpl*>(m->module.get());
      ASSERT_NE(distil, nullptr);
      at::Tensor h = distil->embeddings(b->ids);
      first = RunPackedLayers<DistilBertBlockImpl>(distil->layers, h, b->mask, true);
      all = RunPackedLayers<DistilBertBlockImpl>(distil->layers, h, b->mask, false);
    }
    ASSERT_EQ(first.sizes(), (std::vector<int64_t>{b->ids.size(0), 1, all.size(2)}));
    // LayerNorm outputs of O(1): the query and feed-forward of one row computed in a matrix
    // product of another shape round differently in the last bits (~1e-7); 1e-5 is the golden
    // tests' tolerance for logits.
    EXPECT_TRUE(at::allclose(first.select(1, 0), all.select(1, 0), 0, 1e-5))
        << "max diff " << (first.select(1, 0) - all.select(1, 0)).abs().max().item<double>();
  }
}

INSTANTIATE_TEST_SUITE_P(Families, FirstTokenTest,
                         ::testing::Values("bert-tiny-uncased", "xlmr-tiny", "distilbert-tiny"));

}  // namespace
}  // namespace berth
