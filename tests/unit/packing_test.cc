// Packed tokens (TokenPacking): a padded batch runs its token-wise layers on the real tokens
// only. The logits and the gradients must be those of each row on its own (a batch of one has
// no padding, so it takes the unpacked path): the packing changes the work, not the maths.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

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
// Three texts of 1 to 12 words as one padded batch (packed: over 5% padding), or the longest
// alone (no padding).
Batch ShortAndLong(const LoadedModel& m, bool padded) {
  std::vector<text::Encoding> rows;
  for (const char* t : {"a", "the film is a masterpiece of quiet suspense and wit", "dull"}) {
    auto e = m.tokenizer->Encode(t, {});
    EXPECT_TRUE(e.ok()) << e.status();
    if (e.ok()) rows.push_back(*e);
  }
  if (!padded) rows = {rows.at(1)};
  return MakeBatch(rows, m.tokenizer->layout().pad_id);
}

class FirstTokenTest : public ::testing::TestWithParam<const char*> {};

TEST_P(FirstTokenTest, LastLayerRowMatchesTheFullLayer) {
  auto m = LoadModelDirectory(testing::FixturePath(GetParam()));
  ASSERT_TRUE(m.ok()) << m.status();
  m->module->eval();
  at::NoGradGuard no_grad;
  const Batch padded = ShortAndLong(*m, /*padded=*/true), full = ShortAndLong(*m, false);
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

// Q, K and V fused into one product (what SequenceClassifier does at load) give every family's
// hidden states and logits, packed and unpacked; autograd and train() take the three layers.
class FusedQkvModelTest : public ::testing::TestWithParam<const char*> {};

TEST_P(FusedQkvModelTest, SameHiddenStatesAndLogits) {
  auto m = LoadModelDirectory(testing::FixturePath(GetParam()));
  ASSERT_TRUE(m.ok()) << m.status();
  m->module->eval();
  const Batch padded = ShortAndLong(*m, /*padded=*/true), full = ShortAndLong(*m, false);
  auto run = [&](const Batch& b) {
    at::NoGradGuard no_grad;
    return std::make_pair(m->module->Encode(b.ids, b.types, b.mask),
                          m->module->forward(b.ids, b.types, b.mask));
  };
  const auto padded_before = run(padded), full_before = run(full);
  std::map<std::string, at::Tensor> weights;
  for (const auto& p : m->module->named_parameters()) weights[p.key()] = p.value().detach().clone();

  auto fused_blocks = [&] {
    int fused = 0, blocks = 0;
    for (const auto& module : m->module->modules()) {
      if (auto* block = dynamic_cast<QkvFusable*>(module.get())) {
        ++blocks;
        fused += block->QkvFused() ? 1 : 0;
      }
    }
    EXPECT_GT(blocks, 0);
    return fused == blocks ? 1 : fused == 0 ? 0 : -1;
  };
  ASSERT_EQ(fused_blocks(), 0);
  m->module->FuseQkvProjections();
  ASSERT_EQ(fused_blocks(), 1);
  // LayerNorm outputs and logits of O(1): the projections' sums blocked differently round in
  // the last bits (~1e-7); 1e-5 is the golden tests' tolerance for logits.
  using Outputs = std::pair<at::Tensor, at::Tensor>;
  for (const auto& [b, before] : std::vector<std::pair<const Batch*, const Outputs*>>{
           {&padded, &padded_before}, {&full, &full_before}}) {
    SCOPED_TRACE(b == &padded ? "padded (packed) batch" : "batch without padding");
    const auto after = run(*b);
    EXPECT_TRUE(at::allclose(after.first, before->first, 0, 1e-5))
        << "hidden states, max diff " << (after.first - before->first).abs().max().item<double>();
    EXPECT_TRUE(at::allclose(after.second, before->second, 0, 1e-5))
        << "logits, max diff " << (after.second - before->second).abs().max().item<double>();
  }
  // The parameters keep their values (Q, K and V now views of the fused weight).
  for (const auto& p : m->module->named_parameters()) {
    EXPECT_TRUE(at::equal(p.value(), weights[p.key()])) << p.key();
  }
  // With autograd on, the three layers run and receive their gradients.
  at::Tensor logits = m->module->forward(padded.ids, padded.types, padded.mask);
  logits.sum().backward();
  for (const auto& p : m->module->named_parameters()) {
    if (p.key().find("query.weight") != std::string::npos ||
        p.key().find("q_lin.weight") != std::string::npos) {
      EXPECT_TRUE(p.value().grad().defined() && p.value().grad().abs().sum().item<double>() > 0)
          << p.key();
    }
  }
  EXPECT_TRUE(at::allclose(logits.detach(), padded_before.second, 0, 1e-5));
  // train() drops the fused layers: a training step moves Q, K and V, and inference afterwards
  // reads the moved weights.
  m->module->train();
  EXPECT_EQ(fused_blocks(), 0);
  {
    at::NoGradGuard no_grad;
    for (const auto& p : m->module->named_parameters()) {
      if (p.key().find("value.weight") != std::string::npos ||
          p.key().find("v_lin.weight") != std::string::npos) {
        p.value().mul_(0.5);
      }
    }
  }
  m->module->eval();
  const auto moved = run(padded);
  m->module->FuseQkvProjections();
  const auto moved_fused = run(padded);
  EXPECT_FALSE(at::allclose(moved.second, padded_before.second, 0, 1e-3))
      << "the step changed nothing";
  EXPECT_TRUE(at::allclose(moved_fused.second, moved.second, 0, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(Families, FusedQkvModelTest,
                         ::testing::Values("bert-tiny-uncased", "xlmr-tiny", "distilbert-tiny"));

}  // namespace
}  // namespace berth
