// The inference facade without any transport: validation and its messages, limits, top-k,
// max_length, stride and truncation, model and alias resolution (an alias moved while calls
// run), deadlines, cancellation, the stream slots, what the observer hears, and the
// statistics per model version.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "core/service/inference.h"
#include "core/store/store.h"
#include "tests/unit/test_util.h"

namespace berth::service {
namespace {

using berth::testing::FixturePath;
using berth::testing::TempDir;

class CountingObserver : public Observer {
 public:
  void OnRefusal(const std::string& limit) override {
    absl::MutexLock lock(&mu_);
    refusals.push_back(limit);
  }
  void OnClassified(const std::string& model, int64_t texts,
                    const std::vector<double>& queue_seconds) override {
    absl::MutexLock lock(&mu_);
    classified_texts += texts;
    last_model = model;
    queue_entries += static_cast<int64_t>(queue_seconds.size());
  }
  absl::Mutex mu_;
  std::vector<std::string> refusals;
  int64_t classified_texts = 0, queue_entries = 0;
  std::string last_model;
};

class InferenceFacadeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::Open(dir_.path());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    // Two versions of one model (the same weights) and an alias on the first.
    for (int v = 1; v <= 2; ++v) {
      const std::string rel = "models/tiny/" + std::to_string(v);
      ASSERT_EQ(system(("mkdir -p '" + dir_.File("models/tiny") + "' && cp -r '" +
                        FixturePath("bert-tiny-uncased") + "' '" + dir_.File(rel) + "'")
                           .c_str()),
                0);
      ASSERT_TRUE(store_->AddModelVersion("tiny", "", rel, "{}").ok());
    }
    ASSERT_TRUE(store_->SetAlias("tiny", "prod", 1).ok());
    RegistryOptions ro;
    ro.engine.batcher.warmup = false;
    ro.engine.batcher.num_threads = 1;
    registry_ = std::make_unique<ModelRegistry>(store_.get(), ro);
    limits_.max_texts = 4;
    limits_.max_text_bytes = 100;
    limits_.max_streams = 1;
    streams_ = Slots::Streams(limits_.max_streams, &observer_);
    inference_ = std::make_unique<Inference>(registry_.get(), limits_, streams_.get(), &observer_);
  }

  ClassifyRequest Request(std::vector<std::string> texts, std::string model = "tiny") {
    ClassifyRequest r;
    r.model.model = std::move(model);
    r.texts = std::move(texts);
    return r;
  }

  // The error a request gets: its code and message.
  std::string ErrorOf(const ClassifyRequest& r) {
    auto reply = inference_->Classify(r);
    return reply.ok() ? "OK" : reply.status().ToString();
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ModelRegistry> registry_;
  Limits limits_;
  CountingObserver observer_;
  std::unique_ptr<Slots> streams_;
  std::unique_ptr<Inference> inference_;
};

TEST_F(InferenceFacadeTest, ClassifiesAndReportsToTheObserver) {
  auto reply = inference_->Classify(Request({"a gorgeous, witty movie.", "a dull mess"}));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->model, "tiny");
  EXPECT_EQ(reply->model_version, 2);  // the latest
  ASSERT_EQ(reply->results.size(), 2u);
  EXPECT_EQ(reply->labels.size(), reply->results[0].scores.size());
  EXPECT_TRUE(reply->results[0].top_k.empty());
  EXPECT_TRUE(reply->results[0].logits.empty());
  EXPECT_EQ(observer_.classified_texts, 2);
  EXPECT_EQ(observer_.queue_entries, 2);
  EXPECT_EQ(observer_.last_model, "tiny");
}

TEST_F(InferenceFacadeTest, LimitsAndFieldsAreCheckedWithTheirMessages) {
  ClassifyRequest r = Request({"a", "b", "c", "d", "e"});
  EXPECT_EQ(ErrorOf(r),
            "INVALID_ARGUMENT: texts: 5 texts; this server takes at most 4 per request");
  EXPECT_EQ(ErrorOf(Request({})), "INVALID_ARGUMENT: texts: at least one text is required");
  EXPECT_EQ(ErrorOf(Request({std::string(101, 'x')})),
            "INVALID_ARGUMENT: texts[0]: 101 bytes; this server takes at most 100");
  r = Request({"a", "b"});
  r.text_pairs = {"x"};
  EXPECT_EQ(ErrorOf(r),
            "INVALID_ARGUMENT: text_pairs: 1 pairs for 2 texts (give one per text or none)");
  r = Request({"a"});
  r.top_k = 1001;
  EXPECT_EQ(ErrorOf(r), "INVALID_ARGUMENT: top_k: must be in [0, 1000]");
  r = Request({"a"});
  r.max_length = 2;
  EXPECT_EQ(ErrorOf(r),
            "INVALID_ARGUMENT: max_length: must be 0 (the model's maximum) or in [3, 8192]");
  r.max_length = 8193;
  EXPECT_EQ(ErrorOf(r),
            "INVALID_ARGUMENT: max_length: must be 0 (the model's maximum) or in [3, 8192]");
  r = Request({"a"});
  r.stride = -1;
  EXPECT_EQ(ErrorOf(r), "INVALID_ARGUMENT: stride: must not be negative");
  r = Request({"a"});
  r.truncation = Truncation::kInvalid;
  EXPECT_EQ(ErrorOf(r), "INVALID_ARGUMENT: truncation: unknown mode");
  EXPECT_EQ(observer_.classified_texts, 0) << "nothing refused reaches the engine";
}

TEST_F(InferenceFacadeTest, ModelsAndAliasesResolve) {
  EXPECT_EQ(ErrorOf(Request({"a"}, "")).rfind("INVALID_ARGUMENT: model", 0), 0u);
  EXPECT_EQ(ErrorOf(Request({"a"}, "tiny:zero")),
            "INVALID_ARGUMENT: model: 'zero' is not a version (a positive integer)");
  EXPECT_EQ(ErrorOf(Request({"a"}, "nope")).rfind("NOT_FOUND", 0), 0u);
  EXPECT_EQ(ErrorOf(Request({"a"}, "tiny:7")).rfind("NOT_FOUND", 0), 0u);
  auto by_alias = inference_->Classify(Request({"a"}, "tiny@prod"));
  ASSERT_TRUE(by_alias.ok()) << by_alias.status();
  EXPECT_EQ(by_alias->model_version, 1);
  ClassifyRequest apart = Request({"a"});
  apart.model.alias = "prod";
  apart.model.version = 2;
  EXPECT_EQ(ErrorOf(apart), "INVALID_ARGUMENT: model: give a version or an alias, not both");
  apart.model.version = 0;
  auto reply = inference_->Classify(apart);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->model_version, 1);
}

// Calls through an alias while it moves between two versions: every call is answered, by one
// version or the other, whole.
TEST_F(InferenceFacadeTest, AnAliasMovedWhileCallsRunAnswersEachCallWithOneVersion) {
  std::atomic<bool> stop{false};
  std::thread mover([&] {
    for (int i = 0; !stop; ++i) {
      ASSERT_TRUE(store_->SetAlias("tiny", "prod", 1 + i % 2).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  std::vector<int64_t> versions;
  for (int i = 0; i < 40; ++i) {
    auto reply = inference_->Classify(Request({"a fine film", "a dull one"}, "tiny@prod"));
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_EQ(reply->results.size(), 2u);
    versions.push_back(reply->model_version);
  }
  stop = true;
  mover.join();
  for (int64_t v : versions) EXPECT_TRUE(v == 1 || v == 2) << v;
}

TEST_F(InferenceFacadeTest, TopKMaxLengthStrideAndTruncation) {
  const std::string long_text =
      "a film that is long, slow and, for all its craft, oddly empty of any feeling at all";
  ClassifyRequest r = Request({long_text});
  r.top_k = 2;
  r.raw_scores = true;
  auto full = inference_->Classify(r);
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_EQ(full->results[0].top_k.size(), 2u);
  EXPECT_GE(full->results[0].top_k[0].score, full->results[0].top_k[1].score);
  EXPECT_EQ(full->results[0].top_k[0].label, full->results[0].label);
  EXPECT_EQ(full->results[0].logits.size(), full->labels.size());
  EXPECT_FALSE(full->results[0].truncated);

  r.max_length = 8;
  auto cut = inference_->Classify(r);
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_TRUE(cut->results[0].truncated);
  EXPECT_EQ(cut->results[0].num_tokens, full->results[0].num_tokens);  // before truncation
  EXPECT_EQ(cut->results[0].windows, 1);

  r.truncation = Truncation::kWindow;
  r.stride = 2;
  auto windows = inference_->Classify(r);
  ASSERT_TRUE(windows.ok()) << windows.status();
  EXPECT_GT(windows->results[0].windows, 1);
  r.stride = 4;  // tokens of overlap: more of it, more windows over the same text
  auto more = inference_->Classify(r);
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_LT(windows->results[0].windows, more->results[0].windows);
}

TEST_F(InferenceFacadeTest, DeadlinesAndCancellation) {
  CallContext late;
  late.deadline = SteadyClock::now() - std::chrono::seconds(1);
  auto expired = inference_->Classify(Request({"a"}), late);
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kDeadlineExceeded) << expired.status();
  CallContext gone;
  gone.cancelled = [] { return true; };
  auto cancelled = inference_->Classify(Request({"a"}), gone);
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled) << cancelled.status();
  EXPECT_EQ(observer_.classified_texts, 0);
}

// What the Open Inference Protocol's statistics report: per model version, the calls that
// reached it (answered or failed), the texts answered, each text's queue and forward pass,
// and the engine's forward passes.
TEST_F(InferenceFacadeTest, StatisticsCountCallsTextsAndForwardPasses) {
  auto before = inference_->Statistics({"tiny", 1, ""});
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->name, "tiny");
  EXPECT_EQ(before->version, 1);
  EXPECT_EQ(before->inference_count, 0u);
  EXPECT_EQ(before->last_inference_ms, 0u);
  ASSERT_TRUE(inference_->Classify(Request({"a", "b", "c"}, "tiny:1")).ok());
  ASSERT_TRUE(inference_->Classify(Request({"d"}, "tiny@prod")).ok());
  CallContext late;
  late.deadline = SteadyClock::now() - std::chrono::seconds(1);
  EXPECT_FALSE(inference_->Classify(Request({"e"}, "tiny:1"), late).ok());
  EXPECT_FALSE(inference_->Classify(Request({std::string(101, 'x')}, "tiny:1"))
                   .ok());  // too long: refused first
  auto s = inference_->Statistics({"tiny", 0, "prod"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->version, 1);
  EXPECT_EQ(s->success.count, 2u);
  EXPECT_EQ(s->fail.count, 1u);
  EXPECT_GT(s->success.ns, 0u);
  EXPECT_EQ(s->inference_count, 4u);
  EXPECT_EQ(s->queue.count, 4u);
  EXPECT_EQ(s->compute_infer.count, 4u);
  EXPECT_GT(s->compute_infer.ns, 0u);
  EXPECT_GE(s->execution_count, 1u);  // the batcher may join texts of one call
  EXPECT_LE(s->execution_count, 4u);
  EXPECT_GT(s->last_inference_ms, 0u);
  auto other = inference_->Statistics({"tiny", 2, ""});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->inference_count, 0u);  // each version apart
  EXPECT_EQ(inference_->Statistics({"nope", 0, ""}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(InferenceFacadeTest, StreamsHoldASlotWhileOpen) {
  auto first = inference_->OpenStream();
  ASSERT_TRUE(first.ok());
  auto second = inference_->OpenStream();
  EXPECT_EQ(second.status().ToString(),
            "RESOURCE_EXHAUSTED: this server keeps at most 1 streams open; retry later");
  EXPECT_EQ(observer_.refusals, std::vector<std::string>{"streams"});
  first->Release();
  EXPECT_TRUE(inference_->OpenStream().ok());
}

TEST_F(InferenceFacadeTest, Tokenize) {
  TokenizeRequest r;
  r.model.model = "tiny@prod";
  r.texts = {"a gorgeous, witty movie.", "a dull mess"};
  r.max_length = 4;
  auto reply = inference_->Tokenize(r);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->model_version, 1);
  ASSERT_EQ(reply->encodings.size(), 2u);
  EXPECT_EQ(reply->encodings[0].input_ids.size(), 4u);
  EXPECT_EQ(reply->encodings[0].tokens.front(), "[CLS]");
  EXPECT_TRUE(reply->encodings[0].truncated);
  r.truncation = Truncation::kWindow;
  EXPECT_EQ(inference_->Tokenize(r).status().ToString(),
            "INVALID_ARGUMENT: truncation: Tokenize supports RIGHT or LEFT");
  r.truncation = Truncation::kInvalid;
  EXPECT_EQ(inference_->Tokenize(r).status().ToString(),
            "INVALID_ARGUMENT: truncation: unknown mode");
}

}  // namespace
}  // namespace berth::service
