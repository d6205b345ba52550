// Restart recovery of the job queue: interrupted jobs go back to the queue, and a job that was
// running at every one of several deaths fails instead of looping.
#include "core/jobs/job_runner.h"

#include <gtest/gtest.h>

#include "core/store/store.h"
#include "tests/unit/test_util.h"

namespace berth::jobs {
namespace {

using berth::testing::TempDir;

TEST(JobRunnerTest, InterruptedJobsResumeButARepeatOffenderFails) {
  TempDir dir;
  auto store = store::Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  auto job = (*store)->CreateJob("{}", "m", "config:bert-tiny", "");
  ASSERT_TRUE(job.ok());
  JobRunnerOptions o;
  o.max_interrupted_runs = 3;
  o.worker_id = "worker-1";
  JobRunner runner(store->get(), o);
  for (int death = 1; death <= 3; ++death) {
    auto claimed = (*store)->ClaimNextQueued("worker-1", 60000);  // the job runs ...
    ASSERT_TRUE(claimed.ok() && claimed->has_value());
    auto resumed =
        runner.RecoverInterrupted();  // ... and the process dies: the next start recovers
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    auto now = (*store)->GetJob(job->id);
    ASSERT_TRUE(now.ok());
    if (death < 3) {
      EXPECT_EQ(*resumed, std::vector<std::string>{job->id});
      EXPECT_EQ(now->state, store::JobState::kQueued);
    } else {
      EXPECT_TRUE(resumed->empty());
      EXPECT_EQ(now->state, store::JobState::kFailed);
      EXPECT_NE(now->error.find("3 times"), std::string::npos) << now->error;
    }
  }
  // A job left QUEUED (a graceful stop already requeued it) is not counted.
  auto other = (*store)->CreateJob("{}", "m2", "config:bert-tiny", "");
  ASSERT_TRUE(other.ok());
  auto resumed = runner.RecoverInterrupted();
  ASSERT_TRUE(resumed.ok());
  EXPECT_TRUE(resumed->empty());
  EXPECT_EQ((*store)->GetJob(other->id)->state, store::JobState::kQueued);
}

// Another worker's running job is left alone while its lease holds, and rescued (counted as one
// of its interruptions) once the lease has expired.
TEST(JobRunnerTest, AnotherWorkersJobIsRescuedOnlyWhenItsLeaseExpired) {
  TempDir dir;
  auto store = store::Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  auto job = (*store)->CreateJob("{}", "m", "config:bert-tiny", "");
  ASSERT_TRUE(job.ok());
  JobRunnerOptions o;
  o.worker_id = "worker-1";
  JobRunner runner(store->get(), o);
  ASSERT_TRUE((*store)->ClaimNextQueued("worker-2", 60000).ok());
  auto resumed = runner.RecoverInterrupted();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_TRUE(resumed->empty());
  EXPECT_EQ((*store)->GetJob(job->id)->state, store::JobState::kRunning);
  ASSERT_TRUE((*store)->UpdateProgress(job->id, "{}", 1, /*lease_ms=*/-1).ok());  // expired
  resumed = runner.RecoverInterrupted(/*at_start=*/false);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(*resumed, std::vector<std::string>{job->id});
  EXPECT_EQ((*store)->GetJob(job->id)->state, store::JobState::kQueued);
  EXPECT_EQ((*store)->CountJobEvents(job->id, "requeued").value_or(0), 1);
}

}  // namespace
}  // namespace berth::jobs
