// berth.v1.ModelService over loopback: aliases moved under load, deletion rules.
#include "tests/integration/service_fixture.h"

namespace berth {
namespace {

TEST_F(ServiceTest, AliasSwitchUnderConcurrentClassifyNeverFails) {
  const std::string id = Upload(Sst2Rows(32));
  ASSERT_EQ(RunToEnd(SmallJob(id, "m", 2)).state(), v1::JOB_STATE_SUCCEEDED);
  auto second = SmallJob(id, "m", 2);
  second.mutable_hyperparameters()->set_seed(7);
  ASSERT_EQ(RunToEnd(second).model_version(), 2);
  ASSERT_TRUE(client_->SetAlias("m", "production", 1).ok());

  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, failures{0};
  std::mutex mu;
  std::set<int64_t> versions;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (!stop) {
        auto r = client_->Classify(ClassifyReq("m@production", {"a fine film", "bad"}));
        ++calls;
        if (!r.ok()) {
          ++failures;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        versions.insert(r->model_version());
      }
    });
  }
  // Switch back and forth, letting a few calls complete between switches (not a fixed time:
  // the machine may be slow), while other calls are in flight.
  auto wait_for_calls = [&](int n) {
    const int target = calls.load() + n;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (calls.load() < target && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  };
  for (int i = 0; i < 10; ++i) {
    wait_for_calls(3);
    auto s = client_->SetAlias("m", "production", i % 2 == 0 ? 2 : 1);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->previous_version(), i % 2 == 0 ? 1 : 2);
  }
  wait_for_calls(3);
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_GT(calls.load(), 20);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(versions, (std::set<int64_t>{1, 2}));
  auto v = client_->GetModel("m@production");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->version(), 1);
}

TEST_F(ServiceTest, DeleteRules) {
  const std::string id = Upload(Sst2Rows(32));
  ASSERT_EQ(RunToEnd(SmallJob(id, "base", 2)).state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_EQ(RunToEnd(SmallJob(id, "base", 2)).model_version(), 2);
  // A long job fine-tuning base:2 (pinned from "base") blocks deleting version 2 or all.
  auto child = SmallJob(id, "child", 100000);
  child.set_base_model("base");
  auto started = client_->StartTraining(child);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->status().base_model(), "base:2");
  EXPECT_EQ(client_->DeleteModel("base", 2).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(client_->DeleteModel("base", 0).status().code(), absl::StatusCode::kFailedPrecondition);
  // Version 1 is not in use.
  ASSERT_TRUE(client_->Classify(ClassifyReq("base:1", {"warm it up"})).ok());
  auto del = client_->DeleteModel("base", 1);
  ASSERT_TRUE(del.ok()) << del.status();
  EXPECT_EQ(del->deleted_versions_size(), 1);
  EXPECT_FALSE(IsDirectory(JoinPath(dir_.File("data"), "models/base/1")));
  EXPECT_EQ(client_->Classify(ClassifyReq("base:1", {"x"})).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->DeleteModel("base", 1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->DeleteModel("nothing", 0).status().code(), absl::StatusCode::kNotFound);
  // Once the job ends, version 2 can go.
  ASSERT_TRUE(client_->CancelJob(started->job_id()).ok());
  auto end = client_->WatchJob(started->job_id(), [](const v1::JobStatus&) { return true; });
  ASSERT_TRUE(end.ok());
  auto all = client_->DeleteModel("base", 0);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->deleted_versions_size(), 1);
  EXPECT_EQ(client_->GetModel("base").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace berth
