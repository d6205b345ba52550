// The store on both backends, one suite: datasets, the persistent job queue (idempotency,
// claiming, cancel, recovery after a restart), model versions and aliases; claims by several
// connections at once; schema versions. PostgreSQL is a real server this binary starts once
// (tests/unit/postgres_server.h); ctest runs the PostgreSQL instances in one process.
#include "core/store/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "core/service/base_model.h"
#include "core/store/database.h"
#include "core/util/files.h"
#include "tests/unit/postgres_server.h"
#include "tests/unit/test_util.h"

namespace berth::store {
namespace {

using berth::testing::TempDir;

// Leases are in wall-clock milliseconds (as the store stamps them).
int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// GetParam(): "sqlite" or "postgresql". Every test gets a fresh data directory and, for
// PostgreSQL, a fresh database; Open() opens (or reopens, as a restarted process would) it.
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() != "postgresql") return;
    auto pg = berth::testing::PostgresServer::Get();
    ASSERT_TRUE(pg.ok()) << pg.status();
    auto url = (*pg)->NewDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
  }
  absl::StatusOr<std::unique_ptr<Store>> Open() { return Store::Open(dir.path(), url_); }

  TempDir dir;
  std::string url_;
};

TEST_P(StoreTest, DatasetsAreContentAddressed) {
  auto s = Open();
  ASSERT_TRUE(s.ok()) << s.status();
  auto a = (*s)->PutDataset("label,text\n1,hi\n", "train.csv", 1, {{"1", 1}});
  auto b = (*s)->PutDataset("label,text\n1,hi\n", "again.csv", 1, {{"1", 1}});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->id, b->id);
  EXPECT_EQ(a->id.size(), 64u);
  EXPECT_EQ(a->path.rfind("datasets/", 0), 0u);
  EXPECT_TRUE(IsRegularFile(JoinPath(dir.path(), a->path)));
  auto got = (*s)->GetDataset(a->id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->rows, 1);
  EXPECT_EQ(got->label_counts.at("1"), 1);
  EXPECT_EQ((*s)->GetDataset("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, JobQueueIsPersistentIdempotentAndRecoversAfterRestart) {
  std::string first, second;
  {
    auto s = Open();
    ASSERT_TRUE(s.ok());
    auto j1 = (*s)->CreateJob("{\"a\":1}", "sst2", "config:bert-tiny", "req-1");
    auto again = (*s)->CreateJob("{\"a\":1}", "sst2", "config:bert-tiny", "req-1");
    ASSERT_TRUE(j1.ok() && again.ok());
    EXPECT_EQ(j1->id, again->id);
    EXPECT_EQ((*s)->CreateJob("{\"a\":2}", "sst2", "x", "req-1").status().code(),
              absl::StatusCode::kFailedPrecondition);
    auto j2 = (*s)->CreateJob("{\"b\":1}", "other", "x", "");
    ASSERT_TRUE(j2.ok());
    first = j1->id;
    second = j2->id;
    auto claimed = (*s)->ClaimNextQueued();
    ASSERT_TRUE(claimed.ok() && claimed->has_value());
    EXPECT_EQ((*claimed)->id, first);  // oldest first
    EXPECT_EQ((*claimed)->state, JobState::kRunning);
    ASSERT_TRUE((*s)->UpdateProgress(first, "{\"update\":3}").ok());
    // The process dies here with `first` RUNNING.
  }
  auto s = Open();
  ASSERT_TRUE(s.ok());
  auto requeued = (*s)->RescueJobs("", INT64_MAX);  // its lease has expired
  ASSERT_TRUE(requeued.ok());
  ASSERT_EQ(requeued->size(), 1u);
  EXPECT_EQ((*requeued)[0].id, first);
  auto claimed = (*s)->ClaimNextQueued();
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  EXPECT_EQ((*claimed)->id, first);  // keeps its place ahead of the later job
  EXPECT_EQ((*claimed)->progress, "{\"update\":3}");
  ASSERT_TRUE((*s)->FinishJob(first, JobState::kSucceeded, "", 1).ok());
  EXPECT_EQ((*s)->FinishJob(first, JobState::kFailed, "x", 0).code(),
            absl::StatusCode::kFailedPrecondition);
  auto cancelled = (*s)->CancelJob(second);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state, JobState::kCancelled);
  auto none = (*s)->ClaimNextQueued();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

// A claim is a lease with an attempt number. Once the lease expired and the job was rescued
// (or claimed again), every write of the old attempt is ABORTED and writes nothing: progress,
// renewal, the end, the model version (whose install is not even called) and a release.
TEST_P(StoreTest, LeasesFenceEveryWriteOfAWorkerThatLostItsJob) {
  auto s = Open();
  ASSERT_TRUE(s.ok()) << s.status();
  auto job = (*s)->CreateJob("{}", "m", "b", "");
  ASSERT_TRUE(job.ok());
  const int64_t before = WallMs();
  auto a = (*s)->ClaimNextQueued("worker-a", 60000);
  ASSERT_TRUE(a.ok() && a->has_value()) << a.status();
  EXPECT_EQ((*a)->attempt, 1);
  EXPECT_EQ((*a)->lease_owner, "worker-a");
  EXPECT_GE((*a)->lease_expires_ms, before + 60000);
  auto renewed = (*s)->RenewLease(job->id, 1, 60000);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_FALSE(*renewed);
  ASSERT_TRUE((*s)->UpdateProgress(job->id, "{\"update\":1}", 1, 60000).ok());

  // Not expired: nobody rescues it, unless its own worker id starts again.
  auto none = (*s)->RescueJobs("worker-b", before);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  auto rescued = (*s)->RescueJobs("", before + 10 * 60000);  // ... ten leases later
  ASSERT_TRUE(rescued.ok()) << rescued.status();
  ASSERT_EQ(rescued->size(), 1u);
  EXPECT_EQ((*rescued)[0].lease_owner, "worker-a");
  EXPECT_EQ((*s)->GetJob(job->id)->state, JobState::kQueued);

  auto expect_fenced = [&](int64_t attempt) {
    EXPECT_EQ((*s)->UpdateProgress(job->id, "{\"update\":99}", attempt, 60000).status().code(),
              absl::StatusCode::kAborted);
    EXPECT_EQ((*s)->RenewLease(job->id, attempt, 60000).status().code(),
              absl::StatusCode::kAborted);
    EXPECT_EQ((*s)->FinishJob(job->id, JobState::kSucceeded, "", 7, attempt).code(),
              absl::StatusCode::kAborted);
    EXPECT_EQ((*s)->ReleaseJob(job->id, attempt).code(), absl::StatusCode::kAborted);
    bool installed = false;
    auto v = (*s)->AddModelVersion(
        "m", job->id, "{}",
        [&](int64_t) -> absl::StatusOr<std::string> {
          installed = true;
          return std::string("models/m/1");
        },
        attempt);
    EXPECT_EQ(v.status().code(), absl::StatusCode::kAborted) << v.status();
    EXPECT_FALSE(installed);
  };
  expect_fenced(1);  // queued again
  auto b = (*s)->ClaimNextQueued("worker-b", 60000);
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->attempt, 2);
  EXPECT_EQ((*b)->progress, "{\"update\":1}");  // kept for the resumed run
  expect_fenced(1);                             // running under attempt 2
  auto stored = (*s)->GetJob(job->id);
  EXPECT_EQ(stored->progress, "{\"update\":1}");
  EXPECT_EQ(stored->state, JobState::kRunning);
  EXPECT_EQ(stored->lease_owner, "worker-b");

  // The holder's writes land; then its own release puts the job back, and its worker id
  // starting again takes back a job it held at once.
  auto v = (*s)->AddModelVersion(
      "m", job->id, "{}", [](int64_t) -> absl::StatusOr<std::string> { return "models/m/1"; }, 2);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->version, 1);
  ASSERT_TRUE((*s)->FinishJob(job->id, JobState::kSucceeded, "", 1, 2).ok());
  auto other = (*s)->CreateJob("{}", "n", "b", "");
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*s)->ClaimNextQueued("worker-c", 60000).ok());
  ASSERT_TRUE((*s)->ReleaseJob(other->id, 1).ok());
  auto again = (*s)->ClaimNextQueued("worker-c", 60000);
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->attempt, 2);
  auto own = (*s)->RescueJobs("worker-c", before);
  ASSERT_TRUE(own.ok()) << own.status();
  ASSERT_EQ(own->size(), 1u);
  EXPECT_EQ((*own)[0].id, other->id);
}

TEST_P(StoreTest, CancellingARunningJobAsksItsWorker) {
  auto s = Open();
  auto j = (*s)->CreateJob("{}", "m", "b", "");
  ASSERT_TRUE((*s)->ClaimNextQueued().ok());
  auto c = (*s)->CancelJob(j->id);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->state, JobState::kRunning);
  EXPECT_TRUE(c->cancel_requested);
}

TEST_P(StoreTest, ListJobsPagesNewestFirstAndFilters) {
  auto s = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back((*s)->CreateJob("{}", "m", "b", "")->id);
  ASSERT_TRUE((*s)->ClaimNextQueued().ok());  // ids[0] RUNNING
  std::string token;
  auto p1 = (*s)->ListJobs(std::nullopt, 2, "", &token);
  ASSERT_TRUE(p1.ok());
  ASSERT_EQ(p1->size(), 2u);
  EXPECT_EQ((*p1)[0].id, ids[4]);
  EXPECT_FALSE(token.empty());
  auto p2 = (*s)->ListJobs(std::nullopt, 2, token, &token);
  ASSERT_EQ(p2->size(), 2u);
  EXPECT_EQ((*p2)[0].id, ids[2]);
  auto p3 = (*s)->ListJobs(std::nullopt, 2, token, &token);
  ASSERT_EQ(p3->size(), 1u);
  EXPECT_TRUE(token.empty());
  auto running = (*s)->ListJobs(JobState::kRunning, 10, "", &token);
  ASSERT_EQ(running->size(), 1u);
  EXPECT_EQ((*running)[0].id, ids[0]);
  EXPECT_EQ((*s)->ListJobs(std::nullopt, 2, "garbage", &token).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, JobEventsReadOnInOrderPerJob) {
  auto s = Open();
  const std::string a = (*s)->CreateJob("{}", "m", "b", "")->id;
  const std::string b = (*s)->CreateJob("{}", "m", "b", "")->id;
  for (const char* kind : {"queued", "progress", "progress"}) {
    ASSERT_TRUE((*s)->AddJobEvent(a, kind, std::string(kind) + "-body").ok());
    ASSERT_TRUE((*s)->AddJobEvent(b, "other", "").ok());  // interleaved: another job's
  }
  auto all = (*s)->ListJobEvents(a, 0, 10);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].kind, "queued");
  EXPECT_EQ((*all)[2].body, "progress-body");
  EXPECT_LT((*all)[0].id, (*all)[1].id);
  EXPECT_LT((*all)[1].id, (*all)[2].id);
  EXPECT_GT((*all)[0].at_ms, 0);
  auto rest = (*s)->ListJobEvents(a, (*all)[0].id, 10);
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ((*rest)[0].id, (*all)[1].id);
  EXPECT_EQ((*s)->ListJobEvents(a, 0, 1)->size(), 1u);
  EXPECT_TRUE((*s)->ListJobEvents(a, (*all)[2].id, 10)->empty());
  EXPECT_EQ((*s)->ListJobEvents(b, 0, 10)->size(), 3u);
}

TEST_P(StoreTest, ModelVersionsAliasesAndDeleteRules) {
  auto s = Open();
  auto v1 = (*s)->AddModelVersion("sst2", "job-a", "/m/1", "{}");
  auto v1_again = (*s)->AddModelVersion("sst2", "job-a", "/m/1", "{}");
  auto v2 = (*s)->AddModelVersion("sst2", "job-b", "/m/2", "{}");
  ASSERT_TRUE(v1.ok() && v1_again.ok() && v2.ok());
  EXPECT_EQ(v1->version, 1);
  EXPECT_EQ(v1_again->version, 1);  // no duplicate version for the same job
  EXPECT_EQ(v2->version, 2);
  EXPECT_EQ((*s)->GetModel("sst2", 0, "")->version, 2);
  ASSERT_TRUE((*s)->SetAlias("sst2", "production", 1).ok());
  EXPECT_EQ((*s)->GetModel("sst2", 0, "production")->version, 1);
  ASSERT_TRUE((*s)->SetAlias("sst2", "production", 2).ok());
  EXPECT_EQ((*s)->GetModel("sst2", 0, "production")->version, 2);
  EXPECT_EQ((*s)->GetModel("sst2", 2, "")->aliases, std::vector<std::string>{"production"});
  EXPECT_EQ((*s)->SetAlias("sst2", "x", 9).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*s)->SetAlias("sst2", "../x", 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*s)->AddModelVersion("a/b", "", "/p", "{}").status().code(),
            absl::StatusCode::kInvalidArgument);
  // A queued job fine-tuning from sst2 blocks its deletion.
  auto j = (*s)->CreateJob("{}", "child", "sst2", "");
  auto uses = [](int64_t version) {
    return [version](const std::string& base) {
      return service::BaseModelUses(base, "sst2", version);
    };
  };
  EXPECT_EQ((*s)->DeleteModel("sst2", 0, uses(0)).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*s)->CancelJob(j->id).ok());
  ASSERT_TRUE((*s)->DeleteModel("sst2", 2, uses(2)).ok());
  EXPECT_EQ((*s)->GetModel("sst2", 0, "production").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*s)->GetModel("sst2", 0, "")->version, 1);
  EXPECT_EQ((*s)->ListModels()->size(), 1u);
}

// Jobs created and claimed through several connections at once (as several replicas would):
// every job is claimed exactly once. SQLite serialises the claims (BEGIN IMMEDIATE);
// PostgreSQL lets them pass each other (FOR UPDATE SKIP LOCKED).
TEST_P(StoreTest, ConcurrentClaimsAreExactlyOnce) {
  constexpr int kStores = 3, kJobs = 20;
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < kStores; ++i) {
    auto s = Open();
    ASSERT_TRUE(s.ok()) << s.status();
    stores.push_back(std::move(*s));
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < kJobs; ++i) {
    threads.emplace_back([&, i] {
      auto j = stores[i % kStores]->CreateJob("{}", "m", "b", "req-" + std::to_string(i % 10));
      EXPECT_TRUE(j.ok()) << j.status();
    });
  }
  for (auto& t : threads) t.join();
  threads.clear();
  for (int i = 0; i < kJobs; ++i) ASSERT_TRUE(stores[0]->CreateJob("{}", "m", "b", "").ok());
  // 10 request ids (each created twice, once) and 20 jobs without one.
  absl::Mutex mu;
  std::multiset<std::string> claimed;
  for (int i = 0; i < kStores * 2; ++i) {
    threads.emplace_back([&, i] {
      while (true) {
        auto c = stores[i % kStores]->ClaimNextQueued();
        ASSERT_TRUE(c.ok()) << c.status();
        if (!c->has_value()) return;
        absl::MutexLock lock(&mu);
        claimed.insert((*c)->id);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(claimed.size(), 30u);
  EXPECT_EQ(std::set<std::string>(claimed.begin(), claimed.end()).size(), claimed.size())
      << "a job was claimed twice";
  auto counts = stores[1]->CountJobs();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->at(JobState::kRunning), 30);
  EXPECT_EQ(counts->at(JobState::kQueued), 0);
}

// Versions of one model added through several connections at once are numbered 1..N once each.
TEST_P(StoreTest, ConcurrentVersionsAreNumberedOnce) {
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < 3; ++i) {
    auto s = Open();
    ASSERT_TRUE(s.ok()) << s.status();
    stores.push_back(std::move(*s));
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&, i] {
      auto m = stores[i % 3]->AddModelVersion("m", "job-" + std::to_string(i), "/p", "{}");
      EXPECT_TRUE(m.ok()) << m.status();
    });
  }
  for (auto& t : threads) t.join();
  auto all = stores[0]->ListModels();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 12u);
  for (size_t i = 0; i < all->size(); ++i)
    EXPECT_EQ((*all)[i].version, static_cast<int64_t>(i) + 1);
}

TEST_P(StoreTest, ReportsItsBackend) {
  auto s = Open();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->backend(), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// The PostgreSQL schema is versioned in berth_schema: opening twice migrates once, and a
// database from a newer Berth is refused, naming its version.
TEST(StorePostgresTest, SchemaIsVersionedAndANewerOneRefused) {
  auto pg = berth::testing::PostgresServer::Get();
  ASSERT_TRUE(pg.ok()) << pg.status();
  auto url = (*pg)->NewDatabase();
  ASSERT_TRUE(url.ok()) << url.status();
  TempDir dir;
  {
    auto a = Store::Open(dir.path(), *url);
    auto b = Store::Open(dir.path(), *url);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    ASSERT_TRUE((*a)->CreateJob("{}", "m", "b", "").ok());
  }
  const std::string db = url->substr(url->rfind('/') + 1);
  ASSERT_TRUE((*pg)->Psql(db, "UPDATE berth_schema SET version = 99").ok());
  auto s = Store::Open(dir.path(), *url);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(s.status().message(), "schema version 99")) << s.status();
}

// A PostgreSQL database of schema 2 (before leases) migrates to the current one in place.
TEST(StorePostgresTest, SchemaTwoGainsLeases) {
  auto pg = berth::testing::PostgresServer::Get();
  ASSERT_TRUE(pg.ok()) << pg.status();
  auto url = (*pg)->NewDatabase();
  ASSERT_TRUE(url.ok()) << url.status();
  TempDir dir;
  std::string id;
  {
    auto s = Store::Open(dir.path(), *url);
    ASSERT_TRUE(s.ok()) << s.status();
    id = (*s)->CreateJob("{}", "m", "b", "")->id;
  }
  const std::string db = url->substr(url->rfind('/') + 1);
  ASSERT_TRUE((*pg)
                  ->Psql(db,
                         "ALTER TABLE jobs DROP COLUMN attempt, DROP COLUMN lease_owner, DROP "
                         "COLUMN lease_expires_ms; UPDATE jobs SET state = 'RUNNING'; UPDATE "
                         "berth_schema SET version = 2")
                  .ok());
  auto s = Store::Open(dir.path(), *url);
  ASSERT_TRUE(s.ok()) << s.status();
  auto rescued = (*s)->RescueJobs("", WallMs());
  ASSERT_TRUE(rescued.ok()) << rescued.status();
  ASSERT_EQ(rescued->size(), 1u);
  EXPECT_EQ((*rescued)[0].id, id);
  ASSERT_TRUE((*pg)->Psql(db, "SELECT version FROM berth_schema").ok());
}

// New versions, aliases and deletions through one connection reach a listener on another when
// they commit (NOTIFY); a rolled-back change (a refused delete) tells nobody; the listener
// reconnects after the server restarts. SQLite has no listener (one process).
TEST(StorePostgresTest, RegistryChangesAreNotified) {
  auto pg = berth::testing::PostgresServer::Get();
  ASSERT_TRUE(pg.ok()) << pg.status();
  auto url = (*pg)->NewDatabase();
  ASSERT_TRUE(url.ok()) << url.status();
  TempDir dir;
  auto writer = Store::Open(dir.path(), *url);
  auto reader = Store::Open(dir.path(), *url);
  ASSERT_TRUE(writer.ok() && reader.ok());
  std::unique_ptr<Listener> listener = (*reader)->ListenRegistry();
  ASSERT_NE(listener, nullptr);
  auto first = listener->Wait(std::chrono::milliseconds(100));  // connects; nothing yet
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->empty());
  auto heard = [&]() {
    std::vector<std::string> all;
    for (int i = 0; i < 20 && all.size() < 3; ++i) {
      auto got = listener->Wait(std::chrono::milliseconds(100));
      if (got.ok()) all.insert(all.end(), got->begin(), got->end());
    }
    return all;
  };
  ASSERT_TRUE((*writer)->AddModelVersion("m", "", "models/m/1", "{}").ok());
  ASSERT_TRUE((*writer)->SetAlias("m", "prod", 1).ok());
  ASSERT_TRUE((*writer)->DeleteModel("m", 1, [](const std::string&) { return false; }).ok());
  EXPECT_EQ(heard(), (std::vector<std::string>{"version m 1", "alias m prod 1", "delete m 1"}));
  EXPECT_EQ((*writer)->DeleteModel("m", 1, [](const std::string&) { return false; }).code(),
            absl::StatusCode::kNotFound);
  auto none = listener->Wait(std::chrono::milliseconds(200));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  ASSERT_TRUE((*pg)->Stop().ok());
  absl::Status down;
  for (int i = 0; i < 10 && down.ok(); ++i)
    down = listener->Wait(std::chrono::milliseconds(100)).status();
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << "the listener notices the server gone";
  ASSERT_TRUE((*pg)->Start().ok());
  for (int i = 0; i < 3 && !listener->Wait(std::chrono::milliseconds(100)).ok(); ++i) {
  }
  auto v = (*writer)->AddModelVersion("n", "", "models/n/1", "{}");
  if (!v.ok()) v = (*writer)->AddModelVersion("n", "", "models/n/1", "{}");  // the old socket
  ASSERT_TRUE(v.ok()) << v.status();
  auto after = heard();
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after[0], "version n 1");
  TempDir sqlite_dir;
  auto sqlite = Store::Open(sqlite_dir.path());
  ASSERT_TRUE(sqlite.ok());
  EXPECT_EQ((*sqlite)->ListenRegistry(), nullptr);
}

// A server nobody listens on is UNAVAILABLE (worth retrying), and the message names where
// without the password; a store URL of no known kind is INVALID_ARGUMENT.
TEST(StorePostgresTest, UnreachableIsUnavailableAndThePasswordIsNotShown) {
  TempDir dir;
  auto s = Store::Open(dir.path(), "postgresql://berth:sekrit@127.0.0.1:1/nope?connect_timeout=2");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable) << s.status();
  EXPECT_TRUE(absl::StrContains(s.status().message(), "127.0.0.1:1")) << s.status();
  EXPECT_FALSE(absl::StrContains(s.status().message(), "sekrit")) << s.status();
  auto bad = Store::Open(dir.path(), "mysql://x");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

// The server restarted under an open store: the statement in flight fails UNAVAILABLE (never
// INTERNAL), the next one reconnects, and nothing committed is lost.
TEST(StorePostgresTest, ReconnectsAfterTheServerRestarts) {
  auto pg = berth::testing::PostgresServer::Get();
  ASSERT_TRUE(pg.ok()) << pg.status();
  auto url = (*pg)->NewDatabase();
  ASSERT_TRUE(url.ok()) << url.status();
  TempDir dir;
  auto s = Store::Open(dir.path(), *url);
  ASSERT_TRUE(s.ok()) << s.status();
  auto job = (*s)->CreateJob("{}", "m", "b", "req");
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE((*pg)->Stop().ok());
  auto during = (*s)->GetJob(job->id);
  EXPECT_EQ(during.status().code(), absl::StatusCode::kUnavailable) << during.status();
  ASSERT_TRUE((*pg)->Start().ok());
  auto after = (*s)->GetJob(job->id);
  if (!after.ok()) after = (*s)->GetJob(job->id);  // the first may still meet the old socket
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->state, JobState::kQueued);
  auto again = (*s)->CreateJob("{}", "m", "b", "req");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id, job->id);
}

}  // namespace
}  // namespace berth::store

namespace berth::store {
namespace {

// A database written before API tokens (schema 1, no jobs.created_by nor leases) opens and gains
// the columns.
TEST(StoreMigrationTest, SchemaOneGainsJobCreators) {
  berth::testing::TempDir dir;
  {
    auto s = Store::Open(dir.path());
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->CreateJob("{}", "old", "config:bert-tiny", "").ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() + "/berth.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "ALTER TABLE jobs DROP COLUMN created_by; ALTER TABLE jobs DROP COLUMN "
                         "attempt; ALTER TABLE jobs DROP COLUMN lease_owner; ALTER TABLE jobs "
                         "DROP COLUMN lease_expires_ms; PRAGMA user_version=1;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = Store::Open(dir.path());
  ASSERT_TRUE(s.ok()) << s.status();
  auto job = (*s)->CreateJob("{}", "new", "config:bert-tiny", "", nullptr, "ci-bot");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->created_by, "ci-bot");
  std::string next;
  auto mine = (*s)->ListJobs(std::nullopt, 10, "", &next, "ci-bot");
  ASSERT_TRUE(mine.ok());
  EXPECT_EQ(mine->size(), 1u);
  auto all = (*s)->ListJobs(std::nullopt, 10, "", &next);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
}

// A database from before leases (schema 2) with a job RUNNING: the job gains an expired lease,
// so the first worker to look rescues it, and the next claim is its attempt 1.
TEST(StoreMigrationTest, SchemaTwoGainsLeasesAndItsRunningJobIsRescued) {
  berth::testing::TempDir dir;
  std::string id;
  {
    auto s = Store::Open(dir.path());
    ASSERT_TRUE(s.ok());
    id = (*s)->CreateJob("{}", "old", "config:bert-tiny", "")->id;
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() + "/berth.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "ALTER TABLE jobs DROP COLUMN attempt; ALTER TABLE jobs DROP COLUMN "
                         "lease_owner; ALTER TABLE jobs DROP COLUMN lease_expires_ms; UPDATE jobs "
                         "SET state = 'RUNNING'; PRAGMA user_version=2;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = Store::Open(dir.path());
  ASSERT_TRUE(s.ok()) << s.status();
  auto rescued = (*s)->RescueJobs("", WallMs());
  ASSERT_TRUE(rescued.ok()) << rescued.status();
  ASSERT_EQ(rescued->size(), 1u);
  EXPECT_EQ((*rescued)[0].id, id);
  auto claimed = (*s)->ClaimNextQueued("w", 1000);
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  EXPECT_EQ((*claimed)->attempt, 1);
}

}  // namespace
}  // namespace berth::store
