// The model and training facades without any transport: a deletion takes the rows, the loaded
// engine and the files together (and is refused while a job trains from the version), aliases
// report what they pointed at, listings honour what the caller may see, exports hold a stream;
// jobs are read, listed and cancelled only by whoever may see them, with the messages callers
// see, and a watch hears every change while it holds a stream.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "core/jobs/job_runner.h"
#include "core/jobs/training.h"
#include "core/service/models.h"
#include "core/store/store.h"
#include "core/util/files.h"
#include "tests/unit/test_util.h"

namespace berth {
namespace {

using berth::testing::FixturePath;
using berth::testing::TempDir;

class FacadesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::Open(dir_.path());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    for (const auto& [name, version] : {std::pair{"tiny", 1}, {"tiny", 2}, {"team-a-x", 1}}) {
      const std::string rel = std::string("models/") + name + "/" + std::to_string(version);
      ASSERT_EQ(system(("mkdir -p '" + dir_.File(std::string("models/") + name) + "' && cp -r '" +
                        FixturePath("bert-tiny-uncased") + "' '" + dir_.File(rel) + "'")
                           .c_str()),
                0);
      ASSERT_TRUE(store_->AddModelVersion(name, "", rel, "{}").ok());
    }
    service::RegistryOptions ro;
    ro.engine.batcher.warmup = false;
    registry_ = std::make_unique<service::ModelRegistry>(store_.get(), ro);
    jobs::JobRunnerOptions jo;
    jo.claim_jobs = false;  // the jobs stay queued: nothing trains in these tests
    runner_ = std::make_unique<jobs::JobRunner>(store_.get(), jo);
    ASSERT_TRUE(runner_->Start().ok());
    importer_ = std::make_unique<service::ModelImporter>(store_.get(), &runner_->base_models());
    limits_.max_streams = 1;
    limits_.max_page_size = 10;
    streams_ = service::Slots::Streams(limits_.max_streams, nullptr);
    uploads_ = service::Slots::Uploads(limits_.max_concurrent_uploads, nullptr);
    models_ = std::make_unique<service::Models>(store_.get(), registry_.get(), importer_.get(),
                                                limits_, streams_.get(), uploads_.get(), nullptr);
    training_ = std::make_unique<jobs::Training>(store_.get(), runner_.get(), limits_,
                                                 streams_.get(), uploads_.get(), nullptr);
  }

  // A queued job submitted by `by` (straight into the store: the facade's admission is not
  // what these tests are about).
  std::string QueuedJob(const std::string& by, const std::string& base = "config:bert-tiny") {
    auto job = store_->CreateJob("{}", "m", base, "", nullptr, by);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->id : "";
  }

  jobs::Submitter Token(const std::string& id, bool admin = false) {
    jobs::Submitter who;
    who.id = id;
    who.sees_all_jobs = admin;
    who.may_see_job = [id, admin](const std::string& created_by) {
      return admin || created_by == id ? absl::OkStatus()
                                       : absl::PermissionDeniedError("another token's job");
    };
    return who;
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<service::ModelRegistry> registry_;
  std::unique_ptr<jobs::JobRunner> runner_;
  std::unique_ptr<service::ModelImporter> importer_;
  service::Limits limits_;
  std::unique_ptr<service::Slots> streams_, uploads_;
  std::unique_ptr<service::Models> models_;
  std::unique_ptr<jobs::Training> training_;
};

TEST_F(FacadesTest, ADeletionTakesTheRowsTheEngineAndTheFiles) {
  ASSERT_TRUE(registry_->Acquire({"tiny", 1, ""}).ok());
  ASSERT_EQ(registry_->loaded_models(), 1);
  auto deleted = models_->Delete("tiny", 1);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, std::vector<int64_t>{1});
  EXPECT_EQ(registry_->loaded_models(), 0);
  EXPECT_FALSE(IsDirectory(dir_.File("models/tiny/1")));
  EXPECT_TRUE(IsDirectory(dir_.File("models/tiny/2")));
  EXPECT_EQ(models_->Get({"tiny:1", 0, ""}).status().code(), absl::StatusCode::kNotFound);

  // Refused while a queued job would train from it: nothing goes.
  QueuedJob("", "tiny:2");
  EXPECT_EQ(models_->Delete("tiny", 0).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(IsDirectory(dir_.File("models/tiny/2")));
  EXPECT_TRUE(models_->Get({"tiny:2", 0, ""}).ok());

  EXPECT_EQ(models_->Delete("a/b", 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(models_->Delete("tiny", -1).status().message(), "version: must not be negative");
}

TEST_F(FacadesTest, AliasesListingsAndExports) {
  auto first = models_->SetAlias("tiny", "prod", 1);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 0) << "pointed at nothing before";
  auto moved = models_->SetAlias("tiny", "prod", 2);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(*moved, 1);
  EXPECT_EQ(models_->SetAlias("tiny", "prod", 0).status().message(),
            "version: must be a positive version number");
  EXPECT_EQ(models_->SetAlias("tiny", "prod", 9).status().code(), absl::StatusCode::kNotFound);
  auto got = models_->Get({"tiny@prod", 0, ""});
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->record.version, 2);
  EXPECT_NE(got->config_json.find("\"id2label\""), std::string::npos);

  auto all = models_->List();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 3u);
  auto mine = models_->List([](const std::string& name) { return name.rfind("team-a-", 0) == 0; });
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ((*mine)[0].name, "team-a-x");

  auto files = models_->ExportFiles({"tiny", 1, ""});
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_FALSE(files->files.empty());
  EXPECT_EQ(models_->ExportFiles({"tiny", 2, ""}).status().code(),
            absl::StatusCode::kResourceExhausted)
      << "one stream at a time here";
  files->slot.Release();
  EXPECT_TRUE(models_->ExportFiles({"tiny", 2, ""}).ok());
}

TEST_F(FacadesTest, JobsAreSeenListedAndCancelledByWhoeverMaySeeThem) {
  const std::string a = QueuedJob("a");
  const std::string b = QueuedJob("b");
  EXPECT_EQ(training_->Get("", Token("a")).status().message(), "job_id: required");
  EXPECT_EQ(training_->Get("../x", Token("a")).status().message(),
            "job_id: only letters, digits and '-' are allowed");
  EXPECT_TRUE(training_->Get(a, Token("a")).ok());
  EXPECT_EQ(training_->Get(b, Token("a")).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(training_->Get(b, Token("boss", true)).ok());
  EXPECT_EQ(training_->Get("job-nope", Token("a")).status().code(), absl::StatusCode::kNotFound);

  jobs::ListJobsRequest r;
  auto own = training_->List(r, Token("a"));
  ASSERT_TRUE(own.ok());
  ASSERT_EQ(own->jobs.size(), 1u);
  EXPECT_EQ(own->jobs[0].id, a);
  auto every = training_->List(r, Token("boss", true));
  ASSERT_TRUE(every.ok());
  EXPECT_EQ(every->jobs.size(), 2u);
  r.page_size = 11;
  EXPECT_EQ(training_->List(r, Token("a")).status().message(), "page_size: must be in [0, 10]");
  r.page_size = 1;
  r.unknown_state = true;
  EXPECT_EQ(training_->List(r, Token("a")).status().message(), "state: unknown job state");

  EXPECT_EQ(training_->Cancel(b, Token("a")).status().code(), absl::StatusCode::kPermissionDenied);
  auto cancelled = training_->Cancel(a, Token("a"));
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state, store::JobState::kCancelled);
}

TEST_F(FacadesTest, AWatchHearsChangesAndHoldsAStream) {
  const std::string a = QueuedJob("a");
  std::atomic<int> heard{0};
  auto watch = training_->Watch(a, Token("a"), [&] { ++heard; });
  ASSERT_TRUE(watch.ok()) << watch.status();
  EXPECT_EQ(training_->Watch(a, Token("a"), [] {}).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(training_->Watch(a, Token("b"), [] {}).status().code(),
            absl::StatusCode::kPermissionDenied)
      << "access is checked before a stream is taken";
  ASSERT_TRUE(training_->Cancel(a, Token("a")).ok());
  EXPECT_GE(heard.load(), 1);
  auto latest = (*watch)->Latest();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->state, store::JobState::kCancelled);
  watch->reset();
  EXPECT_TRUE(training_->Watch(a, Token("a"), [] {}).ok()) << "the stream was given back";
}

}  // namespace
}  // namespace berth
