// The inference engine: batched results equal unbatched ones, queue limits, deadlines,
// shutdown, sliding windows over long texts, and bf16 against fp32.
#include "core/infer/engine.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "core/runtime/runtime.h"
#include "tests/unit/test_util.h"

namespace berth {
namespace {

using berth::testing::FixturePath;
using berth::testing::ReadJsonLines;
using berth::testing::TopTwoMargin;

std::shared_ptr<const SequenceClassifier> LoadFixture(
    const std::string& name, InferencePrecision precision = InferencePrecision::kFp32) {
  ClassifierOptions o;
  o.precision = precision;
  auto m = SequenceClassifier::Load(FixturePath(name), o);
  EXPECT_TRUE(m.ok()) << m.status();
  return std::shared_ptr<const SequenceClassifier>(std::move(*m));
}

std::vector<std::string> FixtureTexts(const std::string& name) {
  std::vector<std::string> texts;
  for (const Json& r : ReadJsonLines(FixturePath(name) + "/expected/logits.jsonl"))
    texts.push_back(r["text"]);
  return texts;
}

std::vector<float> Unbatched(const SequenceClassifier& m, const text::Encoding& e) {
  auto p = m.PredictBatch({e});
  EXPECT_TRUE(p.ok());
  return (*p)[0].logits;
}

TEST(EngineTest, ConcurrentBatchedResultsEqualUnbatchedOnes) {
  auto model = LoadFixture("bert-tiny-uncased");
  EngineOptions eo;
  eo.batcher.max_batch_tokens = 2048;
  eo.batcher.max_batch_size = 16;
  eo.batcher.max_wait = std::chrono::microseconds(3000);
  eo.batcher.free_rows = 1;  // group by length from the second row on
  eo.batcher.min_padding_efficiency = 0.9;
  struct Seen {
    int64_t rows, padded, real;
  };
  std::mutex seen_mu;
  std::vector<Seen> seen;  // guarded by seen_mu
  auto engine =
      InferenceEngine::Create(model, eo, [&](int64_t rows, int64_t padded, int64_t real, double) {
        std::lock_guard<std::mutex> lock(seen_mu);
        seen.push_back({rows, padded, real});
      });
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::vector<std::string> texts = FixtureTexts("bert-tiny-uncased");
  std::vector<std::vector<float>> expected;
  text::EncodeOptions enc;
  enc.max_length = 128;
  for (const std::string& t : texts)
    expected.push_back(Unbatched(*model, *model->tokenizer().Encode(t, enc)));

  // 8 submitters, each classifying its own shuffled slice one text at a time.
  std::vector<std::thread> threads;
  std::vector<std::string> errors(8);
  for (int w = 0; w < 8; ++w) {
    threads.emplace_back([&, w] {
      std::vector<size_t> mine;
      for (size_t i = w; i < texts.size(); i += 8) mine.push_back(i);
      std::shuffle(mine.begin(), mine.end(), std::mt19937(w));
      ClassifyOptions o;
      o.max_length = 128;
      o.return_logits = true;
      for (size_t i : mine) {
        auto r = (*engine)->Classify({texts[i]}, {}, o);
        if (!r.ok()) {
          errors[w] = std::string(r.status().message());
          return;
        }
        for (size_t c = 0; c < expected[i].size(); ++c) {
          if (std::abs((*r)[0].logits[c] - expected[i][c]) > 1e-5)
            errors[w] = "text " + std::to_string(i) + " differs";
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& e : errors) EXPECT_EQ(e, "");
  const BatcherStats s = (*engine)->batcher().stats();
  EXPECT_EQ(s.requests, static_cast<int64_t>(texts.size()));
  EXPECT_LT(s.batches, s.requests) << "requests were never batched together";
  // The batch-closing rules, batch by batch: at most max_batch_size rows and max_batch_tokens
  // padded tokens, and past free_rows (1) rows a batch keeps min_padding_efficiency (0.9).
  std::lock_guard<std::mutex> lock(seen_mu);
  int64_t rows = 0, multi = 0;
  for (const Seen& b : seen) {
    if (b.real == 0) continue;  // the warm-up batch, if observed
    rows += b.rows;
    EXPECT_LE(b.rows, 16);
    EXPECT_LE(b.padded, 2048);
    if (b.rows > 1) {
      ++multi;
      EXPECT_GE(static_cast<double>(b.real) / static_cast<double>(b.padded), 0.9)
          << b.rows << " rows, " << b.real << " real of " << b.padded << " padded tokens";
    }
  }
  EXPECT_EQ(rows, static_cast<int64_t>(texts.size()));
  EXPECT_GT(multi, 0) << "no batch of more than one row: the efficiency rule was never exercised";
}

TEST(EngineTest, OneCallWithManyTextsMatchesAndKeepsOrder) {
  auto model = LoadFixture("bert-tiny-uncased");
  auto engine = InferenceEngine::Create(model, EngineOptions());
  ASSERT_TRUE(engine.ok());
  const std::vector<Json> rows =
      ReadJsonLines(FixturePath("bert-tiny-uncased") + "/expected/logits.jsonl");
  std::vector<std::string> texts;
  for (const Json& r : rows) texts.push_back(r["text"]);
  ClassifyOptions o;
  o.max_length = 128;
  o.return_logits = true;
  o.top_k = 2;
  auto r = (*engine)->Classify(texts, {}, o);
  ASSERT_TRUE(r.ok()) << r.status();
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ((*r)[i].label, rows[i]["label"].get<std::string>()) << i;
    for (size_t c = 0; c < 3; ++c)
      EXPECT_NEAR((*r)[i].logits[c], rows[i]["logits"][c].get<double>(), 1e-5);
    ASSERT_EQ((*r)[i].top_k.size(), 2u);
    EXPECT_EQ((*r)[i].top_k[0].label, (*r)[i].label);
    EXPECT_GE((*r)[i].top_k[0].score, (*r)[i].top_k[1].score);
  }
  // The text far longer than 128 tokens is reported truncated.
  EXPECT_TRUE(
      std::any_of(r->begin(), r->end(), [](const ClassifyResult& x) { return x.truncated; }));
}

TEST(BatcherTest, FullQueueIsRefusedAtOnceAndShutdownDrains) {
  BatcherOptions bo;
  bo.max_queued_requests = 2;
  bo.max_batch_size = 100;
  bo.max_batch_tokens = 100000;
  bo.max_wait = std::chrono::seconds(30);  // the batcher waits for company: the queue fills
  bo.warmup = false;
  auto model = LoadFixture("bert-tiny-uncased");
  auto b = DynamicBatcher::Create(model, bo);
  ASSERT_TRUE(b.ok());
  text::EncodeOptions eo;
  auto e = *model->tokenizer().Encode("hello world", eo);
  auto f1 = (*b)->Submit(e);
  auto f2 = (*b)->Submit(e);
  ASSERT_TRUE(f1.ok() && f2.ok());
  auto f3 = (*b)->Submit(e);
  EXPECT_EQ(f3.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ((*b)->stats().rejected, 1);
  (*b)->Shutdown();  // does not wait 30 s: draining runs what is queued now
  auto r1 = f1->get();
  auto r2 = f2->get();
  EXPECT_TRUE(r1.ok() && r2.ok());
  EXPECT_EQ(r1->batch_size, 2);
  EXPECT_EQ((*b)->Submit(e).status().code(), absl::StatusCode::kUnavailable);
}

TEST(BatcherTest, ExpiredRequestsAreDroppedBeforeCompute) {
  BatcherOptions bo;
  bo.max_wait = std::chrono::milliseconds(50);
  bo.warmup = false;
  auto model = LoadFixture("bert-tiny-uncased");
  auto b = DynamicBatcher::Create(model, bo);
  ASSERT_TRUE(b.ok());
  auto e = *model->tokenizer().Encode("hello", text::EncodeOptions());
  auto late = (*b)->Submit(e, SteadyClock::now() + std::chrono::milliseconds(1));
  auto fine = (*b)->Submit(e, SteadyClock::now() + std::chrono::seconds(60));
  ASSERT_TRUE(late.ok() && fine.ok());
  EXPECT_EQ(late->get().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(fine->get().ok());
  EXPECT_EQ((*b)->stats().expired, 1);
  EXPECT_EQ((*b)->stats().requests, 1);
}

TEST(BatcherTest, RejectsEncodingsLongerThanThePositionTable) {
  auto model = LoadFixture("bert-tiny-uncased");
  BatcherOptions bo;
  bo.warmup = false;
  auto b = DynamicBatcher::Create(model, bo);
  text::Encoding e;
  e.input_ids.assign(600, 1000);
  e.token_type_ids.assign(600, 0);
  e.attention_mask.assign(600, 1);
  EXPECT_EQ((*b)->Submit(e).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EngineTest, WindowModeClassifiesAllOfALongText) {
  auto model = LoadFixture("bert-tiny-uncased");
  auto engine = InferenceEngine::Create(model, EngineOptions());
  ASSERT_TRUE(engine.ok());
  std::string text;
  for (int i = 0; i < 700; ++i) text += (i % 3 ? "wonderful " : "terrible plot ");
  ClassifyOptions o;
  o.truncation = TruncationMode::kWindow;
  o.max_length = 512;
  o.stride = 128;
  o.return_logits = true;
  auto r = (*engine)->Classify({text}, {}, o);
  ASSERT_TRUE(r.ok()) << r.status();
  const ClassifyResult& res = (*r)[0];
  EXPECT_GT(res.num_tokens, 512);
  EXPECT_GE(res.windows, 3);
  EXPECT_FALSE(res.truncated);
  // The same windows by hand: 510 body tokens each, 382 apart.
  std::vector<int32_t> ids;
  ASSERT_TRUE(model->tokenizer().Tokenize(text, text::InvalidUtf8::kReject, &ids, nullptr).ok());
  std::vector<double> mean(3, 0.0);
  int n = 0;
  for (size_t start = 0;; start += 382) {
    size_t end = std::min(ids.size(), start + 510);
    std::vector<int32_t> w(ids.begin() + start, ids.begin() + end);
    auto l = Unbatched(*model, model->tokenizer().BuildInputs(w, nullptr, false));
    for (int c = 0; c < 3; ++c) mean[c] += l[c];
    ++n;
    if (end == ids.size()) break;
  }
  EXPECT_EQ(n, res.windows);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(res.logits[c], mean[c] / n, 1e-5);
  // Right truncation of the same text says so.
  o.truncation = TruncationMode::kRight;
  r = (*engine)->Classify({text}, {}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)[0].truncated);
  EXPECT_EQ((*r)[0].windows, 1);
}

// bf16 weights: scores within 0.03 of fp32 on every fixture text (bf16 keeps 8 bits of mantissa,
// a relative error of 2^-9 per rounding, over two layers of hidden 64), and the same labels
// wherever that bound decides them: two scores that each move by at most 0.03 can swap only
// if fp32 put them less than 0.06 apart.
TEST(EngineTest, Bf16AgreesWithFp32) {
  for (const char* name : {"bert-tiny-uncased", "bert-tiny-multilabel"}) {
    auto fp32 = InferenceEngine::Create(LoadFixture(name), EngineOptions());
    auto bf16 =
        InferenceEngine::Create(LoadFixture(name, InferencePrecision::kBf16), EngineOptions());
    ASSERT_TRUE(fp32.ok() && bf16.ok());
    const std::vector<std::string> texts = FixtureTexts(name);
    ClassifyOptions o;
    o.max_length = 64;
    auto a = (*fp32)->Classify(texts, {}, o);
    auto b = (*bf16)->Classify(texts, {}, o);
    ASSERT_TRUE(a.ok() && b.ok()) << b.status();
    constexpr double kScoreBound = 0.03;
    double worst = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
      for (size_t c = 0; c < (*a)[i].scores.size(); ++c) {
        worst = std::max<double>(worst, std::abs((*a)[i].scores[c] - (*b)[i].scores[c]));
      }
      if ((*a)[i].label != (*b)[i].label) {
        EXPECT_LT(TopTwoMargin((*a)[i].scores), 2 * kScoreBound)
            << name << " text " << i << ": label changed";
      }
    }
    EXPECT_LT(worst, kScoreBound) << name;
    std::cerr << name << ": bf16 vs fp32 worst score difference " << worst << "\n";
  }
}

TEST(EngineTest, InvalidTextNamesItsIndex) {
  auto engine = InferenceEngine::Create(LoadFixture("bert-tiny-uncased"), EngineOptions());
  auto r = (*engine)->Classify({"fine", "bad \xC3"}, {}, ClassifyOptions());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("texts[1]"), absl::string_view::npos) << r.status();
}

// One request of many texts is batched whole: sorted by length into full batches formed at
// once, its last partial batch included (max_wait is 30 s here, so any wait for company would
// show), and the results come back in input order, equal to unbatched ones.
TEST(EngineTest, ALargeRequestRunsAsFullBatchesWithoutWaiting) {
  auto model = LoadFixture("bert-tiny-uncased");
  EngineOptions eo;
  eo.batcher.max_batch_size = 16;
  eo.batcher.max_batch_tokens = 1 << 20;
  eo.batcher.max_wait = std::chrono::seconds(30);
  eo.batcher.warmup = false;
  std::mutex seen_mu;
  std::vector<int64_t> rows;  // guarded by seen_mu
  int64_t padded_total = 0;   // guarded by seen_mu
  auto engine = InferenceEngine::Create(model, eo, [&](int64_t r, int64_t padded, int64_t, double) {
    std::lock_guard<std::mutex> lock(seen_mu);
    rows.push_back(r);
    padded_total += padded;
  });
  ASSERT_TRUE(engine.ok());
  const std::vector<std::string> base = FixtureTexts("bert-tiny-uncased");
  std::vector<std::string> texts;
  for (size_t i = 0; texts.size() < 40; ++i)
    texts.push_back(base[i % base.size()] + std::string(i % 7, '!'));
  // The first text of the request is one of middling length, so batching around it would not
  // give the sorted chunks.
  std::vector<size_t> by_length(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) by_length[i] = i;
  std::stable_sort(by_length.begin(), by_length.end(),
                   [&](size_t a, size_t b) { return texts[a].size() < texts[b].size(); });
  std::swap(texts[0], texts[by_length[texts.size() / 2 + 3]]);
  ClassifyOptions o;
  o.max_length = 128;
  o.return_logits = true;
  ClassifyTimings timings;
  o.timings = &timings;
  const auto start = SteadyClock::now();
  auto r = (*engine)->Classify(texts, {}, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(std::chrono::duration<double>(SteadyClock::now() - start).count(), 20.0)
      << "a batch waited max_wait";
  text::EncodeOptions enc;
  enc.max_length = 128;
  {
    std::lock_guard<std::mutex> lock(seen_mu);
    EXPECT_EQ(rows, (std::vector<int64_t>{16, 16, 8}));
    // The batches are the length-sorted chunks of 16: each padded to its own longest text.
    std::vector<int64_t> lengths;
    for (const std::string& t : texts)
      lengths.push_back(static_cast<int64_t>(model->tokenizer().Encode(t, enc)->input_ids.size()));
    std::sort(lengths.begin(), lengths.end());
    int64_t sorted_padded = 0;
    for (size_t i = 0; i < lengths.size(); i += 16)
      sorted_padded += lengths[std::min(lengths.size(), i + 16) - 1] *
                       static_cast<int64_t>(std::min<size_t>(16, lengths.size() - i));
    EXPECT_EQ(padded_total, sorted_padded);
  }
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<float> expected =
        Unbatched(*model, *model->tokenizer().Encode(texts[i], enc));
    for (size_t c = 0; c < expected.size(); ++c)
      EXPECT_NEAR((*r)[i].logits[c], expected[c], 1e-5) << i;
  }
  EXPECT_GT(timings.tokenize_seconds, 0);
  EXPECT_GT(timings.wait_seconds, 0);
  const BatcherStats s = (*engine)->batcher().stats();
  EXPECT_EQ(s.batches, 3);
  EXPECT_GT(s.forward_seconds, 0);
  EXPECT_GT(s.build_seconds, 0);
}

size_t ProcessThreads() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& task : std::filesystem::directory_iterator("/proc/self/task"))
    ++n;
  return n;
}

// A thread that ran torch owns a team of OpenMP threads until it releases them (the engine's
// creator does, so the batcher's team is the only one working).
TEST(RuntimeTest, ReleaseThreadPoolEndsTheCallersTeam) {
  size_t with_team = 0, released = 0;
  std::thread([&] {
    at::set_num_threads(2);  // a team of two whatever the cores
    at::Tensor x = at::ones({1 << 22});
    EXPECT_EQ(x.sum().item<double>(), static_cast<double>(1 << 22));  // a parallel region
    with_team = ProcessThreads();
    ReleaseThreadPool();
    const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
    while ((released = ProcessThreads()) >= with_team && SteadyClock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(x.sum().item<double>(), static_cast<double>(1 << 22));  // a new team works
  }).join();
  EXPECT_LT(released, with_team) << "the team's worker thread is still there";
}

// A lone request at a batcher idle for longer than max_wait does not wait for company.
TEST(BatcherTest, ALoneRequestAtAnIdleBatcherRunsAtOnce) {
  BatcherOptions bo;
  bo.max_wait = std::chrono::milliseconds(1000);
  bo.warmup = false;
  auto model = LoadFixture("bert-tiny-uncased");
  auto b = DynamicBatcher::Create(model, bo);
  ASSERT_TRUE(b.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // idle for longer than max_wait
  auto f = (*b)->Submit(*model->tokenizer().Encode("hello", text::EncodeOptions()));
  ASSERT_TRUE(f.ok());
  auto r = f->get();
  ASSERT_TRUE(r.ok());
  // Waiting for company would have taken the whole second; going at once takes a wake-up.
  EXPECT_LT(r->queue_seconds, 0.5);
}

// A caller alone, one request after another: each batch released one caller, and it is back,
// so none of its requests waits for company (max_wait is 500 ms here; only the first request,
// before any batch, may wait for it).
TEST(BatcherTest, ALoneCallerInALoopNeverWaitsForCompany) {
  BatcherOptions bo;
  bo.max_wait = std::chrono::milliseconds(500);
  bo.warmup = false;
  auto model = LoadFixture("bert-tiny-uncased");
  auto b = DynamicBatcher::Create(model, bo);
  ASSERT_TRUE(b.ok());
  auto e = *model->tokenizer().Encode("one caller", text::EncodeOptions());
  for (int i = 0; i < 6; ++i) {
    auto f = (*b)->Submit(e);
    ASSERT_TRUE(f.ok());
    auto r = f->get();
    ASSERT_TRUE(r.ok());
    if (i > 0) {
      EXPECT_LT(r->queue_seconds, 0.25) << "request " << i << " waited for company";
    }
  }
}

// Requests whose caller has gone are dropped before their forward pass: under load (a
// queue of live and cancelled requests), only the live ones are computed, and the count of
// cancelled ones shows in the statistics the server exports as a metric.
TEST(BatcherTest, CancelledRequestsCostNoForwardPass) {
  BatcherOptions bo;
  bo.max_wait = std::chrono::seconds(30);
  bo.max_batch_size = 4;
  bo.warmup = false;
  auto model = LoadFixture("bert-tiny-uncased");
  int64_t computed_rows = 0;
  std::mutex mu;
  auto b = DynamicBatcher::Create(model, bo, [&](int64_t rows, int64_t, int64_t, double) {
    std::lock_guard<std::mutex> lock(mu);
    computed_rows += rows;
  });
  ASSERT_TRUE(b.ok());
  auto e = *model->tokenizer().Encode("a request whose client may go away", text::EncodeOptions());
  std::atomic<bool> gone{true};
  const CancelProbe cancelled = [&gone] { return gone.load(); };
  std::vector<std::future<absl::StatusOr<BatchResult>>> live, dropped;
  for (int i = 0; i < 10; ++i) {
    auto f = (*b)->Submit(e, SteadyClock::time_point::max(), i % 3 == 0 ? nullptr : cancelled);
    ASSERT_TRUE(f.ok());
    (i % 3 == 0 ? live : dropped).push_back(std::move(*f));
  }
  (*b)->Shutdown();  // drains the queue now
  for (auto& f : live) EXPECT_TRUE(f.get().ok());
  for (auto& f : dropped) EXPECT_EQ(f.get().status().code(), absl::StatusCode::kCancelled);
  const BatcherStats s = (*b)->stats();
  EXPECT_EQ(s.cancelled, 6);
  EXPECT_EQ(s.requests, 4);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(computed_rows, 4);
}

// SubmitMany is all or none: a request that does not fit beside what is queued is refused
// whole; one larger than the queue is admitted into an empty queue.
TEST(BatcherTest, SubmitManyIsAllOrNone) {
  BatcherOptions bo;
  bo.max_queued_requests = 4;
  bo.max_wait = std::chrono::seconds(30);
  bo.max_batch_size = 100;
  bo.warmup = false;
  auto model = LoadFixture("bert-tiny-uncased");
  auto b = DynamicBatcher::Create(model, bo);
  ASSERT_TRUE(b.ok());
  auto e = *model->tokenizer().Encode("hello world", text::EncodeOptions());
  auto big = (*b)->SubmitMany(std::vector<text::Encoding>(6, e));
  ASSERT_TRUE(big.ok()) << big.status();
  auto more = (*b)->SubmitMany(std::vector<text::Encoding>(2, e));
  EXPECT_EQ(more.status().code(), absl::StatusCode::kResourceExhausted);
  text::Encoding empty;
  auto bad = (*b)->SubmitMany({e, empty});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("encoding 1"), absl::string_view::npos) << bad.status();
  (*b)->Shutdown();
  for (auto& f : *big) EXPECT_TRUE(f.get().ok());
  EXPECT_EQ((*b)->stats().requests, 6);
}

}  // namespace
}  // namespace berth
