// The Berth service over real loopback gRPC: an in-process berth::server::Server on
// 127.0.0.1:0 driven through the real berth::client, with real SST-2 rows and real training.
#include "server/server.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/lib/client.h"
#include "core/infer/sequence_classifier.h"
#include "core/util/digest.h"
#include "core/util/files.h"
#include "server/convert.h"
#include "tests/unit/test_util.h"

namespace berth {
namespace {

using testing::TempDir;

// The header and first `rows` rows of the shipped SST-2 sample.
std::string Sst2Rows(int rows, int skip = 0) {
  std::ifstream in(std::string(berth::testing::ShippedDataDir()) + "/sst2-sample/train.tsv");
  std::string line, out;
  std::getline(in, line);
  out = line + "\n";
  for (int i = 0; i < skip && std::getline(in, line); ++i) {
  }
  for (int i = 0; i < rows && std::getline(in, line); ++i) out += line + "\n";
  return out;
}

v1::ClassifyRequest ClassifyReq(const std::string& model, std::vector<std::string> texts) {
  v1::ClassifyRequest r;
  r.set_model(model);
  for (auto& t : texts) r.add_texts(t);
  return r;
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Shutdown(std::chrono::seconds(5));
    server_.reset();
  }

  void StartServer(int port = 0) {
    server::ServerOptions o;
    o.data_dir = dir_.File("data");
    o.listen = absl::StrCat("127.0.0.1:", port);
    o.metrics_listen = "127.0.0.1:0";
    o.request_threads = 8;
    o.training.progress_interval = std::chrono::milliseconds(20);
    o.training.threads_per_job = 1;
    o.training.base_models.model_roots = {
        testing::DataPath("fixtures")};  // the XLM-R test starts from a fixture
    o.training.max_train_procs = 2;
    o.training.worker_binary = BERTH_CLI_BIN;  // ranks 1..N-1 of data-parallel jobs
    o.models.engine.batcher.warmup = false;
    o.models.engine.batcher.num_threads = 1;
    o.models.engine.batcher.max_wait = batcher_max_wait_;
    o.preload = preload_;
    o.limits.max_texts = 16;
    o.limits.max_text_bytes = 2000;
    auto s = server::Server::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    client::ClientOptions co;
    co.target = absl::StrCat("127.0.0.1:", server_->port());
    co.timeout = std::chrono::seconds(60);
    auto c = client::Client::Create(co);
    ASSERT_TRUE(c.ok());
    client_ = std::move(*c);
  }

  std::string Upload(const std::string& contents, const std::string& name = "train.tsv") {
    v1::DatasetInfo info;
    info.set_file_name(name);
    auto r = client_->UploadDataset(info, contents);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->dataset_id() : "";
  }

  v1::StartTrainingRequest SmallJob(const std::string& dataset, const std::string& name,
                                    int64_t steps = 6) {
    v1::StartTrainingRequest r;
    r.set_base_model("config:bert-tiny");
    r.set_train_dataset_id(dataset);
    r.set_validation_split(0.25);
    r.set_model_name(name);
    r.mutable_hyperparameters()->set_max_steps(steps);
    r.mutable_hyperparameters()->set_batch_size(8);
    r.mutable_hyperparameters()->set_max_length(32);
    r.mutable_hyperparameters()->set_eval_steps(steps);
    return r;
  }

  v1::JobStatus RunToEnd(const v1::StartTrainingRequest& r) {
    auto started = client_->StartTraining(r);
    EXPECT_TRUE(started.ok()) << started.status();
    if (!started.ok()) return {};
    auto final_status =
        client_->WatchJob(started->job_id(), [](const v1::JobStatus&) { return true; });
    EXPECT_TRUE(final_status.ok()) << final_status.status();
    return final_status.ok() ? *final_status : v1::JobStatus();
  }

  TempDir dir_;
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<client::Client> client_;
  std::chrono::microseconds batcher_max_wait_{2000};
  std::vector<std::string> preload_;
};

TEST_F(ServiceTest, HealthyAndEmpty) {
  auto healthy = client_->Healthy();
  ASSERT_TRUE(healthy.ok()) << healthy.status();
  EXPECT_TRUE(*healthy);
  auto models = client_->ListModels();
  ASSERT_TRUE(models.ok());
  EXPECT_EQ(models->models_size(), 0);
}

TEST_F(ServiceTest, UploadTrainWatchClassifyMatchesSavedModel) {
  const std::string data = Sst2Rows(64);
  v1::DatasetInfo info;
  info.set_file_name("train.tsv");
  auto up = client_->UploadDataset(info, data);
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(up->dataset_id(), Sha256Hex(data));
  EXPECT_EQ(up->rows(), 64);
  EXPECT_EQ(up->label_counts().at("0") + up->label_counts().at("1"), 64);
  EXPECT_FALSE(up->already_present());
  auto again = client_->UploadDataset(info, data);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already_present());
  EXPECT_EQ(again->dataset_id(), up->dataset_id());

  auto started = client_->StartTraining(SmallJob(up->dataset_id(), "sst2"));
  ASSERT_TRUE(started.ok()) << started.status();
  std::vector<v1::JobStatus> seen;
  auto final_status = client_->WatchJob(started->job_id(), [&](const v1::JobStatus& s) {
    seen.push_back(s);
    return true;
  });
  ASSERT_TRUE(final_status.ok()) << final_status.status();
  ASSERT_EQ(final_status->state(), v1::JOB_STATE_SUCCEEDED) << final_status->error();
  EXPECT_EQ(final_status->model_version(), 1);
  EXPECT_EQ(final_status->progress().update(), 6);
  EXPECT_EQ(final_status->progress().total_updates(), 6);
  EXPECT_TRUE(final_status->progress().has_last_eval());
  int64_t last_update = -1;
  for (const v1::JobStatus& s : seen) {  // progress never goes backwards
    EXPECT_GE(s.progress().update(), last_update);
    last_update = s.progress().update();
  }

  auto model = client_->GetModel("sst2");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->version(), 1);
  EXPECT_EQ(model->job_id(), started->job_id());
  EXPECT_EQ(model->base_model(), "config:bert-tiny");
  EXPECT_EQ(std::vector<std::string>(model->labels().begin(), model->labels().end()),
            (std::vector<std::string>{"0", "1"}));
  EXPECT_GT(model->metrics().examples(), 0);
  EXPECT_NE(model->config_json().find("\"bert\""), std::string::npos);

  const std::vector<std::string> texts = {"a gorgeous, witty, seductive movie.",
                                          "the plot is a dull mess",
                                          "it 's a charming and often affecting journey ."};
  auto resp = client_->Classify(ClassifyReq("sst2", texts));
  ASSERT_TRUE(resp.ok()) << resp.status();
  ASSERT_EQ(resp->results_size(), 3);
  EXPECT_EQ(resp->model_version(), 1);
  EXPECT_EQ(resp->labels_size(), 2);

  // The saved directory loads offline and reproduces the service's scores.
  const std::string model_dir = JoinPath(dir_.File("data"), "models/sst2/1");
  ASSERT_TRUE(IsRegularFile(JoinPath(model_dir, "model.safetensors")));
  ASSERT_TRUE(IsRegularFile(JoinPath(model_dir, "berth.json")));
  auto offline = SequenceClassifier::Load(model_dir, ClassifierOptions());
  ASSERT_TRUE(offline.ok()) << offline.status();
  std::vector<text::Encoding> enc;
  for (const std::string& t : texts)
    enc.push_back(*(*offline)->tokenizer().Encode(t, text::EncodeOptions()));
  auto preds = (*offline)->PredictBatch(enc);
  ASSERT_TRUE(preds.ok());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ((*preds)[i].label, resp->results(i).label());
    ASSERT_EQ(static_cast<int>((*preds)[i].scores.size()), resp->results(i).scores_size());
    for (size_t k = 0; k < (*preds)[i].scores.size(); ++k) {
      EXPECT_NEAR((*preds)[i].scores[k], resp->results(i).scores(k), 1e-5);
    }
  }
  // The checkpoints of the finished job are gone; the dataset stays.
  EXPECT_FALSE(IsDirectory(JoinPath(dir_.File("data"), "jobs/" + started->job_id())));
}

// workers: 2 — the server is rank 0 and starts rank 1 as a `berth train-rank` process; they
// train as one group (c10d Gloo over loopback) and report ranks, per-rank throughput and the
// all-reduce share while running.
TEST_F(ServiceTest, DataParallelJobWithTwoWorkers) {
  const std::string id = Upload(Sst2Rows(64));
  v1::StartTrainingRequest r = SmallJob(id, "dp", 8);
  r.set_workers(3);
  auto refused = client_->StartTraining(r);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("workers"), absl::string_view::npos)
      << refused.status();

  r.set_workers(2);
  auto started = client_->StartTraining(r);
  ASSERT_TRUE(started.ok()) << started.status();
  std::string metrics_while_running;
  auto final_status = client_->WatchJob(started->job_id(), [&](const v1::JobStatus& st) {
    if (metrics_while_running.empty() && st.state() == v1::JOB_STATE_RUNNING &&
        st.progress().world_size() == 2) {
      metrics_while_running = server_->metrics().Render();
    }
    return true;
  });
  ASSERT_TRUE(final_status.ok()) << final_status.status();
  ASSERT_EQ(final_status->state(), v1::JOB_STATE_SUCCEEDED) << final_status->error();
  EXPECT_EQ(final_status->progress().update(), 8);
  EXPECT_EQ(final_status->progress().world_size(), 2);
  EXPECT_GT(final_status->progress().allreduce_share(), 0.0);
  EXPECT_LT(final_status->progress().allreduce_share(), 1.0);
  EXPECT_NEAR(final_status->progress().samples_per_second_per_rank() * 2,
              final_status->progress().samples_per_second(), 1e-6);
  EXPECT_TRUE(final_status->progress().has_last_eval());  // evaluation sharded over the ranks
  const std::string job_label = "job=\"" + started->job_id() + "\"";
  for (const char* metric : {"berth_training_ranks{", "berth_training_rank_samples_per_second{",
                             "berth_training_allreduce_share{"}) {
    EXPECT_NE(metrics_while_running.find(std::string(metric) + job_label), std::string::npos)
        << metric;
  }
  auto resp = client_->Classify(ClassifyReq("dp", {"a gorgeous, witty movie.", "a dull mess"}));
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_EQ(resp->results_size(), 2);

  // Cancelling stops both ranks.
  v1::StartTrainingRequest longer = SmallJob(id, "dp-cancel", 400);
  longer.set_workers(2);
  auto running = client_->StartTraining(longer);
  ASSERT_TRUE(running.ok()) << running.status();
  bool cancelled = false;
  auto ended = client_->WatchJob(running->job_id(), [&](const v1::JobStatus& st) {
    if (!cancelled && st.progress().update() >= 3) {
      cancelled = client_->CancelJob(running->job_id()).ok();
    }
    return true;
  });
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_CANCELLED) << ended->error();
  EXPECT_EQ(ended->progress().world_size(), 2);
}

TEST_F(ServiceTest, StartTrainingIsIdempotentByRequestId) {
  const std::string id = Upload(Sst2Rows(32));
  auto r = SmallJob(id, "idem", 2);
  r.set_request_id("req-42");
  auto a = client_->StartTraining(r);
  auto b = client_->StartTraining(r);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->job_id(), b->job_id());
  EXPECT_FALSE(a->existing());
  EXPECT_TRUE(b->existing());
  r.mutable_hyperparameters()->set_max_steps(3);
  auto c = client_->StartTraining(r);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  auto done = client_->WatchJob(a->job_id(), [](const v1::JobStatus&) { return true; });
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED);
  v1::ListJobsRequest list;
  auto jobs = client_->ListJobs(list);
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->jobs_size(), 1);
}

TEST_F(ServiceTest, CancelRunningAndQueuedJobs) {
  const std::string id = Upload(Sst2Rows(32));
  auto long_job = client_->StartTraining(SmallJob(id, "long", 100000));
  auto queued = client_->StartTraining(SmallJob(id, "queued", 100000));
  ASSERT_TRUE(long_job.ok() && queued.ok());
  // Wait until the first is running and has made progress.
  auto running = client_->WatchJob(long_job->job_id(), [](const v1::JobStatus& s) {
    return !(s.state() == v1::JOB_STATE_RUNNING && s.progress().update() >= 2);
  });
  ASSERT_TRUE(running.ok());
  ASSERT_EQ(running->state(), v1::JOB_STATE_RUNNING);

  auto q = client_->CancelJob(queued->job_id());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->state(), v1::JOB_STATE_CANCELLED);  // a queued job is cancelled at once

  auto c = client_->CancelJob(long_job->job_id());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->cancel_requested());
  auto end = client_->WatchJob(long_job->job_id(), [](const v1::JobStatus&) { return true; });
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(end->model_version(), 0);
  EXPECT_EQ(client_->GetModel("long").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(IsDirectory(JoinPath(dir_.File("data"), "jobs/" + long_job->job_id())));

  v1::ListJobsRequest list;
  list.set_state(v1::JOB_STATE_CANCELLED);
  auto jobs = client_->ListJobs(list);
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->jobs_size(), 2);
  list.set_page_size(1);
  jobs = client_->ListJobs(list);
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->jobs_size(), 1);
  ASSERT_FALSE(jobs->next_page_token().empty());
  list.set_page_token(jobs->next_page_token());
  auto page2 = client_->ListJobs(list);
  ASSERT_TRUE(page2.ok());
  ASSERT_EQ(page2->jobs_size(), 1);
  EXPECT_NE(page2->jobs(0).job_id(), jobs->jobs(0).job_id());
}

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

TEST_F(ServiceTest, ClassifyStreamAndTokenize) {
  const std::string id = Upload(Sst2Rows(32));
  ASSERT_EQ(RunToEnd(SmallJob(id, "s", 2)).state(), v1::JOB_STATE_SUCCEEDED);
  auto stub = v1::InferenceService::NewStub(client_->channel());
  grpc::ClientContext ctx;
  auto stream = stub->ClassifyStream(&ctx);
  for (int i = 1; i <= 3; ++i) {
    std::vector<std::string> texts(i, "good");
    ASSERT_TRUE(stream->Write(ClassifyReq("s", texts)));
    v1::ClassifyResponse resp;
    ASSERT_TRUE(stream->Read(&resp));
    EXPECT_EQ(resp.results_size(), i);
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());

  v1::TokenizeRequest t;
  t.set_model("s");
  t.add_texts("Hello, world!");
  auto tok = client_->Tokenize(t);
  ASSERT_TRUE(tok.ok()) << tok.status();
  ASSERT_EQ(tok->encodings_size(), 1);
  EXPECT_EQ(std::vector<std::string>(tok->encodings(0).tokens().begin(),
                                     tok->encodings(0).tokens().end()),
            (std::vector<std::string>{"[CLS]", "hello", ",", "world", "!", "[SEP]"}));
}

// Every field a handler checks answers INVALID_ARGUMENT with a message that names it.
TEST_F(ServiceTest, InvalidArgumentsNameTheField) {
  const std::string id = Upload(Sst2Rows(16));
  struct Case {
    std::string field;
    std::function<absl::Status()> call;
  };
  auto train = [&](std::function<void(v1::StartTrainingRequest*)> edit) {
    return [this, id, edit] {
      auto r = SmallJob(id, "ok-name", 2);
      edit(&r);
      return client_->StartTraining(r).status();
    };
  };
  auto classify = [&](std::function<void(v1::ClassifyRequest*)> edit) {
    return [this, edit] {
      auto r = ClassifyReq("m", {"text"});
      edit(&r);
      return client_->Classify(r).status();
    };
  };
  auto upload = [&](std::string name, std::string contents) {
    return [this, name, contents] {
      v1::DatasetInfo info;
      info.set_file_name(name);
      return client_->UploadDataset(info, contents).status();
    };
  };
  const std::vector<Case> cases = {
      {"base_model", train([](auto* r) { r->set_base_model(""); })},
      {"base_model", train([](auto* r) { r->set_base_model("config:bert-huge"); })},
      {"base_model", train([](auto* r) { r->set_base_model("/nonexistent/model"); })},
      {"base_model", train([](auto* r) { r->set_base_model("../../etc"); })},
      {"model_name", train([](auto* r) { r->set_model_name(""); })},
      {"model_name", train([](auto* r) { r->set_model_name("a/b"); })},
      {"model_name", train([](auto* r) { r->set_model_name(".."); })},
      {"model_name", train([](auto* r) { r->set_model_name(std::string(65, 'a')); })},
      {"train_dataset_id", train([](auto* r) { r->set_train_dataset_id("../../etc/passwd"); })},
      {"train_dataset_id", train([](auto* r) { r->set_train_dataset_id(""); })},
      {"validation_dataset_id", train([](auto* r) { r->set_validation_dataset_id("xyz"); })},
      {"validation_split", train([](auto* r) { r->set_validation_split(0.95); })},
      {"learning_rate", train([](auto* r) { r->mutable_hyperparameters()->set_learning_rate(0); })},
      {"batch_size", train([](auto* r) { r->mutable_hyperparameters()->set_batch_size(0); })},
      {"epochs", train([](auto* r) {
         r->mutable_hyperparameters()->set_max_steps(0);
         r->mutable_hyperparameters()->set_epochs(-1);
       })},
      {"max_length", train([](auto* r) { r->mutable_hyperparameters()->set_max_length(2); })},
      {"grad_accum", train([](auto* r) { r->mutable_hyperparameters()->set_grad_accum(0); })},
      {"warmup_ratio", train([](auto* r) { r->mutable_hyperparameters()->set_warmup_ratio(2); })},
      {"metric_for_best",
       train([](auto* r) { r->mutable_hyperparameters()->set_metric_for_best("vibes"); })},
      {"class_weights",
       train([](auto* r) { r->mutable_hyperparameters()->add_class_weights(1.0); })},
      {"label_column", train([](auto* r) { r->set_label_column("no_such_column"); })},
      {"request_id", train([](auto* r) { r->set_request_id(std::string(129, 'r')); })},
      {"job_id", [this] { return client_->GetStatus("").status(); }},
      {"job_id", [this] { return client_->GetStatus("../x").status(); }},
      {"job_id", [this] { return client_->CancelJob("a b").status(); }},
      {"page_size",
       [this] {
         v1::ListJobsRequest r;
         r.set_page_size(5000);
         return client_->ListJobs(r).status();
       }},
      {"model", classify([](auto* r) { r->set_model(""); })},
      {"model", classify([](auto* r) { r->set_model("m:zero"); })},
      {"model", classify([](auto* r) { r->set_model("../m"); })},
      {"texts", classify([](auto* r) { r->clear_texts(); })},
      {"texts", classify([](auto* r) {
         for (int i = 0; i < 20; ++i) r->add_texts("t");
       })},
      {"texts[0]", classify([](auto* r) { r->set_texts(0, std::string(3000, 'a')); })},
      {"text_pairs", classify([](auto* r) {
         r->add_text_pairs("a");
         r->add_text_pairs("b");
       })},
      {"top_k", classify([](auto* r) { r->set_top_k(-1); })},
      {"max_length", classify([](auto* r) { r->set_max_length(2); })},
      {"alias", classify([](auto* r) { r->set_alias("bad alias"); })},
      {"truncation",
       [this] {
         v1::TokenizeRequest r;
         r.set_model("m");
         r.add_texts("x");
         r.set_truncation(v1::TRUNCATION_WINDOW);
         return client_->Tokenize(r).status();
       }},
      {"version", [this] { return client_->SetAlias("m", "prod", 0).status(); }},
      {"alias", [this] { return client_->SetAlias("m", "pro/d", 1).status(); }},
      {"name", [this] { return client_->DeleteModel("a/b", 0).status(); }},
      {"model", [this] { return client_->GetModel("a@").status(); }},
      {"info.file_name", upload("../train.tsv", "text\tlabel\nx\t1\n")},
      {"info.file_name", upload("train.txt", "text\tlabel\nx\t1\n")},
      {"data", upload("train.tsv", "")},
      {"train.tsv:3", upload("train.tsv", "sentence\tlabel\ngood\t1\nmissing a label\n")},
      {"bad.jsonl:2", upload("bad.jsonl", "{\"text\": \"a\", \"label\": 1}\n{\"text\": \n")},
  };
  for (const Case& c : cases) {
    absl::Status s = c.call();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field << ": " << s;
    EXPECT_NE(s.message().find(c.field), absl::string_view::npos)
        << "message does not name " << c.field << ": " << s;
  }
  // Nothing was queued by any of them.
  auto jobs = client_->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->jobs_size(), 0);
}

// A corrupt, truncated or abandoned upload is refused and leaves no file and no row.
TEST_F(ServiceTest, BadUploadsLeaveNoTrace) {
  const std::string data_dir = dir_.File("data");
  const std::string good = Sst2Rows(16);
  auto stub = v1::TrainingService::NewStub(client_->channel());
  auto start = [&](grpc::ClientContext* ctx, v1::UploadDatasetResponse* resp) {
    auto w = stub->UploadDataset(ctx, resp);
    v1::UploadDatasetRequest info;
    info.mutable_info()->set_file_name("train.tsv");
    EXPECT_TRUE(w->Write(info));
    return w;
  };
  {  // Half written: the client sends the digest of the whole file but stops halfway.
    grpc::ClientContext ctx;
    v1::UploadDatasetResponse resp;
    auto w = start(&ctx, &resp);
    v1::UploadDatasetRequest part;
    part.set_data(good.substr(0, good.size() / 2));
    part.set_sha256(Sha256Hex(good));
    ASSERT_TRUE(w->Write(part));
    w->WritesDone();
    grpc::Status s = w->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("sha256"), std::string::npos) << s.error_message();
  }
  {  // Abandoned: the client cancels mid-stream.
    grpc::ClientContext ctx;
    v1::UploadDatasetResponse resp;
    auto w = start(&ctx, &resp);
    v1::UploadDatasetRequest part;
    part.set_data(good.substr(0, 100));
    ASSERT_TRUE(w->Write(part));
    ctx.TryCancel();
    EXPECT_EQ(w->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  {  // Corrupt bytes: invalid UTF-8 in a row.
    v1::DatasetInfo info;
    info.set_file_name("train.tsv");
    std::string bad = good;
    bad.insert(bad.find('\n', bad.find('\n') + 1) - 3, "\xff\xfe");
    auto r = client_->UploadDataset(info, bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_NE(r.status().message().find("train.tsv:2"), absl::string_view::npos) << r.status();
  }
  EXPECT_TRUE(ListDirectory(JoinPath(data_dir, "datasets"))->empty());
  EXPECT_EQ(server_->store().GetDataset(Sha256Hex(good)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(server_->store().GetDataset(Sha256Hex(good.substr(0, good.size() / 2))).status().code(),
            absl::StatusCode::kNotFound);
}

// A server stopped mid-training (graceful: the job checkpoints) resumes the job at the next
// start, from its checkpoint, and registers exactly one version.
TEST_F(ServiceTest, JobResumesAfterRestart) {
  const std::string id = Upload(Sst2Rows(64));
  auto r = SmallJob(id, "resumed", 40);
  r.mutable_hyperparameters()->set_save_steps(5);
  auto started = client_->StartTraining(r);
  ASSERT_TRUE(started.ok());
  auto mid = client_->WatchJob(started->job_id(),
                               [](const v1::JobStatus& s) { return s.progress().update() < 8; });
  ASSERT_TRUE(mid.ok());
  ASSERT_EQ(mid->state(), v1::JOB_STATE_RUNNING);
  client_.reset();
  server_->Shutdown(std::chrono::seconds(5));
  server_.reset();
  // The stopped job left a checkpoint to resume from.
  EXPECT_TRUE(IsRegularFile(
      JoinPath(dir_.File("data"), "jobs/" + started->job_id() + "/checkpoints-1/latest")));
  StartServer();
  auto end = client_->WatchJob(started->job_id(), [](const v1::JobStatus&) { return true; });
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->state(), v1::JOB_STATE_SUCCEEDED) << end->error();
  EXPECT_EQ(end->model_version(), 1);
  EXPECT_EQ(end->progress().total_updates(), 40);
  auto models = client_->ListModels();
  ASSERT_TRUE(models.ok());
  EXPECT_EQ(models->models_size(), 1);
}

// A Classify whose client cancels while its texts wait in the batcher's queue costs no forward
// pass: the batcher asks the call's context before running it, drops it, and the drop shows in
// berth_inference_dropped_total. The batcher here waits 3 s for company after the model loads,
// so the call is certainly still queued when the client cancels it 300 ms in.
TEST_F(ServiceTest, CancelledClassifyCostsNoForwardPass) {
  ASSERT_EQ(RunToEnd(SmallJob(Upload(Sst2Rows(64)), "cancelled")).state(), v1::JOB_STATE_SUCCEEDED);
  client_.reset();
  server_->Shutdown(std::chrono::seconds(5));
  server_.reset();
  batcher_max_wait_ = std::chrono::seconds(3);
  StartServer();
  auto stub = v1::InferenceService::NewStub(client_->channel());
  v1::ClassifyRequest req;
  req.set_model("cancelled");
  req.add_texts("a call whose client gives up");
  grpc::ClientContext call;
  v1::ClassifyResponse resp;
  grpc::Status status;
  std::thread caller([&] { status = stub->Classify(&call, req, &resp); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  call.TryCancel();
  caller.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  const std::string dropped =
      "berth_inference_dropped_total{model=\"cancelled:1\",reason=\"cancelled\"} 1";
  std::string text;
  for (int i = 0; i < 200 && text.find(dropped) == std::string::npos; ++i) {  // up to 10 s
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    text = server_->metrics().Render();
  }
  EXPECT_NE(text.find(dropped), std::string::npos) << text;
  EXPECT_NE(text.find("berth_batch_size_count 0"), std::string::npos) << "a forward pass ran";
  // The model still answers the next caller.
  req.set_texts(0, "still serving");
  auto ok = client_->Classify(req);
  EXPECT_TRUE(ok.ok()) << ok.status();
}

// --preload: a restarted server loads the model in the background, the health service says
// "model:NAME" is SERVING only once it is loaded, and the first call then loads nothing.
TEST_F(ServiceTest, APreloadedModelAnswersItsFirstCallWithoutLoading) {
  ASSERT_EQ(RunToEnd(SmallJob(Upload(Sst2Rows(64)), "warm")).state(), v1::JOB_STATE_SUCCEEDED);
  client_.reset();
  server_->Shutdown(std::chrono::seconds(5));
  server_.reset();
  preload_ = {"warm"};
  StartServer();
  bool serving = false;
  for (int i = 0; i < 600 && !serving; ++i) {  // up to 30 s
    auto h = client_->Healthy("model:warm");
    ASSERT_TRUE(h.ok()) << h.status();
    serving = *h;
    if (!serving) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(serving) << "model:warm never became SERVING";
  const std::string one_load = "berth_model_load_duration_seconds_count 1";
  EXPECT_NE(server_->metrics().Render().find(one_load), std::string::npos);
  v1::ClassifyRequest req;
  req.set_model("warm");
  req.add_texts("the first call after a restart");
  auto r = client_->Classify(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(server_->metrics().Render().find(one_load), std::string::npos)
      << "the first call loaded the model again";
  // A name that is not a model is refused at start, naming the flag.
  server::ServerOptions bad;
  bad.data_dir = dir_.File("other");
  bad.listen = "127.0.0.1:0";
  bad.metrics_listen = "";
  bad.preload = {"no such:name"};
  auto refused = server::Server::Start(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--preload"), absl::string_view::npos)
      << refused.status();
}

// A client watching a job rides out a server restart on the same address: its WatchJob
// reconnects (the stream ends UNAVAILABLE at the drain) and returns the job's end, having seen
// statuses from before the restart and from the resumed run after it.
TEST_F(ServiceTest, WatchJobReconnectsAcrossARestart) {
  const std::string id = Upload(Sst2Rows(64));
  auto r = SmallJob(id, "watched", 40);
  r.mutable_hyperparameters()->set_save_steps(5);
  auto started = client_->StartTraining(r);
  ASSERT_TRUE(started.ok());
  const int port = server_->port();
  client::ClientOptions co;
  co.target = absl::StrCat("127.0.0.1:", port);
  auto watcher = client::Client::Create(co);  // its own channel, kept across the restart
  ASSERT_TRUE(watcher.ok());
  std::mutex mu;
  std::vector<int64_t> seen;  // guarded by mu
  std::atomic<bool> past_8{false};
  absl::StatusOr<v1::JobStatus> end = absl::UnknownError("not run");
  std::thread watch([&] {
    end = (*watcher)->WatchJob(
        started->job_id(),
        [&](const v1::JobStatus& s) {
          std::lock_guard<std::mutex> lock(mu);
          seen.push_back(s.progress().update());
          if (s.progress().update() >= 8) past_8 = true;
          return true;
        },
        std::chrono::seconds(60));
  });
  for (int i = 0; i < 3000 && !past_8; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(past_8.load()) << "the job never reached update 8";
  size_t before_restart = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    before_restart = seen.size();
  }
  client_.reset();
  server_->Shutdown(std::chrono::seconds(5));
  server_.reset();
  StartServer(port);
  watch.join();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->state(), v1::JOB_STATE_SUCCEEDED) << end->error();
  EXPECT_EQ(end->model_version(), 1);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_GT(seen.size(), before_restart) << "no status arrived after the restart";
  EXPECT_EQ(seen.back(), 40);
}

// XLM-R (SentencePiece, via the dlopen'd module next to gRPC and libtorch) end to end: upload
// TweetEval emotion rows, fine-tune the xlmr-tiny fixture, classify, reload offline.
TEST_F(ServiceTest, XlmRobertaTrainsAndClassifiesEndToEnd) {
  std::ifstream in(std::string(berth::testing::ShippedDataDir()) + "/emotion-sample/train.jsonl");
  std::string line, rows;
  for (int i = 0; i < 200 && std::getline(in, line); ++i) rows += line + "\n";
  const std::string id = Upload(rows, "emotion.jsonl");
  auto r = SmallJob(id, "emo-xlmr", 6);
  r.set_base_model(testing::FixturePath("xlmr-tiny"));
  const v1::JobStatus done = RunToEnd(r);
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  auto model = client_->GetModel("emo-xlmr");
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(model->model_type(), "xlm-roberta");
  EXPECT_EQ(std::vector<std::string>(model->labels().begin(), model->labels().end()),
            (std::vector<std::string>{"anger", "joy", "optimism", "sadness"}));
  const std::vector<std::string> texts = {"¡Qué alegría! 😀", "I am so angry right now",
                                          "日本語のテキスト"};
  auto resp = client_->Classify(ClassifyReq("emo-xlmr", texts));
  ASSERT_TRUE(resp.ok()) << resp.status();
  ASSERT_EQ(resp->results_size(), 3);
  const std::string model_dir = JoinPath(dir_.File("data"), "models/emo-xlmr/1");
  EXPECT_TRUE(IsRegularFile(JoinPath(model_dir, "sentencepiece.bpe.model")));
  auto offline = SequenceClassifier::Load(model_dir, ClassifierOptions());
  ASSERT_TRUE(offline.ok()) << offline.status();
  for (size_t i = 0; i < texts.size(); ++i) {
    auto enc = (*offline)->tokenizer().Encode(texts[i], text::EncodeOptions());
    ASSERT_TRUE(enc.ok());
    auto pred = (*offline)->PredictBatch({*enc});
    ASSERT_TRUE(pred.ok());
    EXPECT_EQ((*pred)[0].label, resp->results(i).label());
    for (size_t k = 0; k < (*pred)[0].scores.size(); ++k) {
      EXPECT_NEAR((*pred)[0].scores[k], resp->results(i).scores(k), 1e-5);
    }
  }
}

// API tokens with roles: authentication before validation, each role's allowed and denied
// calls, model prefixes, own-jobs-only for train tokens, SIGHUP-style reload, open health, and
// no unauthenticated non-loopback serving.
class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteTokens(true);
    server::ServerOptions o;
    o.data_dir = dir_.File("data");
    o.listen = "127.0.0.1:0";
    o.metrics_listen = "";
    o.auth_tokens_file = dir_.File("tokens.jsonl");
    o.training.progress_interval = std::chrono::milliseconds(20);
    o.training.threads_per_job = 1;
    o.models.engine.batcher.warmup = false;
    o.models.engine.batcher.num_threads = 1;
    auto s = server::Server::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }
  void TearDown() override { server_.reset(); }

  void WriteTokens(bool with_reader) {
    std::string lines;
    if (with_reader) {
      lines += absl::StrCat(R"({"id": "reader", "sha256": ")", Sha256Hex("reader-secret"),
                            R"(", "role": "classify", "model_prefix": "team-a-"})", "\n");
    }
    lines += absl::StrCat(R"({"id": "trainer", "sha256": ")", Sha256Hex("trainer-secret"),
                          R"(", "role": "train"})", "\n");
    lines += absl::StrCat(R"({"id": "boss", "sha256": ")", Sha256Hex("boss-secret"),
                          R"(", "role": "admin"})", "\n");
    testing::WriteFile(dir_.File("tokens.jsonl"), lines);
  }

  std::unique_ptr<client::Client> As(const std::string& token) {
    client::ClientOptions co;
    co.target = absl::StrCat("127.0.0.1:", server_->port());
    co.token = token;
    return std::move(client::Client::Create(co).value());
  }

  TempDir dir_;
  std::unique_ptr<server::Server> server_;
};

TEST_F(AuthTest, RolesPrefixesOwnJobsAndReload) {
  auto anonymous = As("");
  auto stranger = As("not-a-token");
  auto reader = As("reader-secret");
  auto trainer = As("trainer-secret");
  auto boss = As("boss-secret");
  const auto code = [](const absl::Status& s) { return s.code(); };

  // Health stays open; everything else needs a known token.
  auto healthy = anonymous->Healthy();
  ASSERT_TRUE(healthy.ok() && *healthy);
  EXPECT_EQ(code(anonymous->ListModels().status()), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(code(stranger->ListModels().status()), absl::StatusCode::kUnauthenticated);

  // The trainer uploads and trains "team-a-m"; its job is its own.
  v1::DatasetInfo info;
  info.set_file_name("train.tsv");
  auto up = trainer->UploadDataset(info, Sst2Rows(32));
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(code(reader->UploadDataset(info, Sst2Rows(32)).status()),
            absl::StatusCode::kPermissionDenied);
  v1::StartTrainingRequest r;
  r.set_base_model("config:bert-tiny");
  r.set_train_dataset_id(up->dataset_id());
  r.set_model_name("team-a-m");
  r.mutable_hyperparameters()->set_max_steps(2);
  r.mutable_hyperparameters()->set_max_length(32);
  auto started = trainer->StartTraining(r);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->status().job_id(), started->job_id());
  auto done = trainer->WatchJob(started->job_id(), [](const v1::JobStatus&) { return true; });
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error();

  // Authorisation comes before validation: an invalid request from a reader is refused as such.
  v1::StartTrainingRequest invalid;
  EXPECT_EQ(code(reader->StartTraining(invalid).status()), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(trainer->StartTraining(invalid).status()), absl::StatusCode::kInvalidArgument);

  // The reader classifies within its prefix, nothing else.
  EXPECT_TRUE(reader->Classify(ClassifyReq("team-a-m", {"good"})).ok());
  EXPECT_EQ(code(reader->Classify(ClassifyReq("team-b-x", {"good"})).status()),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(reader->GetStatus(started->job_id()).status()),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(reader->SetAlias("team-a-m", "prod", 1).status()),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(reader->DeleteModel("team-a-m", 0).status()), absl::StatusCode::kPermissionDenied);
  auto listed = reader->ListModels();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->models_size(), 1);

  // Train tokens see their own jobs only; admin sees all and may change the registry.
  r.set_model_name("boss-model");
  auto boss_job = boss->StartTraining(r);
  ASSERT_TRUE(boss_job.ok()) << boss_job.status();
  EXPECT_EQ(code(trainer->GetStatus(boss_job->job_id()).status()),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(trainer->CancelJob(boss_job->job_id()).status()),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(boss->GetStatus(started->job_id()).ok());
  auto trainer_jobs = trainer->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(trainer_jobs.ok());
  ASSERT_EQ(trainer_jobs->jobs_size(), 1);
  EXPECT_EQ(trainer_jobs->jobs(0).job_id(), started->job_id());
  auto boss_jobs = boss->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(boss_jobs.ok());
  EXPECT_EQ(boss_jobs->jobs_size(), 2);
  EXPECT_EQ(code(trainer->SetAlias("team-a-m", "prod", 1).status()),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(boss->SetAlias("team-a-m", "prod", 1).ok());

  // Reload: the reader's token is withdrawn; a broken file keeps the tokens in force.
  WriteTokens(false);
  ASSERT_TRUE(server_->ReloadAuth().ok());
  EXPECT_EQ(code(reader->ListModels().status()), absl::StatusCode::kUnauthenticated);
  testing::WriteFile(dir_.File("tokens.jsonl"), "{not json\n");
  EXPECT_FALSE(server_->ReloadAuth().ok());
  EXPECT_TRUE(trainer->ListJobs(v1::ListJobsRequest()).ok());
}

// Local base models only under --model-roots (after symbolic links), Hub ids only with the Hub on.
TEST_F(ServiceTest, BaseModelsComeOnlyFromAllowedPlaces) {
  const std::string id = Upload(Sst2Rows(16));
  auto r = SmallJob(id, "where", 2);
  r.set_base_model("/etc");
  EXPECT_EQ(client_->StartTraining(r).status().code(), absl::StatusCode::kPermissionDenied);
  r.set_base_model(testing::DataPath("fixtures") + "/../../..");  // ".." is refused outright
  EXPECT_EQ(client_->StartTraining(r).status().code(), absl::StatusCode::kInvalidArgument);
  // A symbolic link that leads outside the roots is refused.
  ASSERT_EQ(::symlink("/etc", dir_.File("escape").c_str()), 0);
  r.set_base_model(dir_.File("escape"));
  EXPECT_EQ(client_->StartTraining(r).status().code(), absl::StatusCode::kPermissionDenied);
  r.set_base_model(testing::DataPath("fixtures/xlmr-tiny"));
  auto ok = client_->StartTraining(r);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(client_->WatchJob(ok->job_id(), [](const v1::JobStatus&) { return true; })->state(),
            v1::JOB_STATE_SUCCEEDED);
}

// Every limit refuses with a clear status and counts the refusal in berth_limit_refusals_total.
TEST(ServerLimitsTest, UploadsRowsQueuesAndStreams) {
  TempDir dir;
  testing::WriteFile(dir.File("tokens.jsonl"),
                     absl::StrCat(R"({"id": "t1", "sha256": ")", Sha256Hex("one"),
                                  R"(", "role": "train"})", "\n", R"({"id": "t2", "sha256": ")",
                                  Sha256Hex("two"), R"(", "role": "train"})", "\n"));
  server::ServerOptions o;
  o.data_dir = dir.File("data");
  o.listen = "127.0.0.1:0";
  o.metrics_listen = "";
  o.auth_tokens_file = dir.File("tokens.jsonl");
  o.training.threads_per_job = 1;
  o.training.progress_interval = std::chrono::milliseconds(20);
  o.limits.max_concurrent_uploads = 1;
  o.limits.max_dataset_rows = 10;
  o.limits.max_queued_jobs = 2;
  o.limits.max_queued_jobs_per_token = 1;
  o.limits.max_streams = 1;
  auto s = server::Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status();
  auto as = [&](const std::string& token) {
    client::ClientOptions co;
    co.target = absl::StrCat("127.0.0.1:", (*s)->port());
    co.token = token;
    return std::move(client::Client::Create(co).value());
  };
  auto one = as("one"), two = as("two");
  v1::DatasetInfo info;
  info.set_file_name("train.tsv");
  // Rows.
  auto big = one->UploadDataset(info, Sst2Rows(16));
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("rows"), absl::string_view::npos) << big.status();
  auto up = one->UploadDataset(info, Sst2Rows(8));
  ASSERT_TRUE(up.ok()) << up.status();
  // Concurrent uploads: one held open, the next refused, then accepted once it ends.
  {
    auto stub = v1::TrainingService::NewStub(one->channel());
    bool refused = false;
    // The held stream takes a moment to register: on a loaded machine, seconds. And it may
    // itself be refused while the server still releases the last upload's slot, after which
    // the other's uploads go through: then hold a new one.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!refused && std::chrono::steady_clock::now() < deadline) {
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer one");
      v1::UploadDatasetResponse resp;
      auto w = stub->UploadDataset(&ctx, &resp);
      v1::UploadDatasetRequest first;
      *first.mutable_info() = info;
      ASSERT_TRUE(w->Write(first));
      const auto round = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (!refused && std::chrono::steady_clock::now() < round) {
        const absl::Status st = two->UploadDataset(info, Sst2Rows(8)).status();
        refused = st.code() == absl::StatusCode::kResourceExhausted;
        if (st.ok()) break;  // the held stream was the one refused
        if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      ctx.TryCancel();
      w->Finish();
    }
    EXPECT_TRUE(refused);
  }
  bool accepted = false;
  for (int i = 0; i < 100 && !accepted; ++i) {
    accepted = two->UploadDataset(info, Sst2Rows(8)).ok();
    if (!accepted) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(accepted);
  // Queues: a long job runs; t1 may queue one more, t2 one, then the total is full.
  v1::StartTrainingRequest r;
  r.set_base_model("config:bert-tiny");
  r.set_train_dataset_id(up->dataset_id());
  r.set_model_name("q");
  r.mutable_hyperparameters()->set_max_steps(100000);
  r.mutable_hyperparameters()->set_max_length(32);
  auto running = one->StartTraining(r);
  ASSERT_TRUE(running.ok()) << running.status();
  auto first = one->WatchJob(running->job_id(), [](const v1::JobStatus& st) {
    return st.state() != v1::JOB_STATE_RUNNING;
  });
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(one->StartTraining(r).ok());
  auto per_token = one->StartTraining(r);
  EXPECT_EQ(per_token.status().code(), absl::StatusCode::kResourceExhausted) << per_token.status();
  EXPECT_TRUE(two->StartTraining(r).ok());
  auto total = two->StartTraining(r);
  EXPECT_EQ(total.status().code(), absl::StatusCode::kResourceExhausted) << total.status();
  // Streams: one watch open, the second refused. (The watch above gives its slot back when gRPC
  // is done with it, a moment after the client stopped reading: retry the first open.)
  {
    auto stub = v1::TrainingService::NewStub(one->channel());
    v1::WatchJobRequest w;
    w.set_job_id(running->job_id());
    v1::JobStatus st;
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReader<v1::JobStatus>> reader;
    bool open = false;
    for (int i = 0; i < 100 && !open; ++i) {
      if (reader) reader->Finish();
      ctx = std::make_unique<grpc::ClientContext>();
      ctx->AddMetadata("authorization", "Bearer one");
      reader = stub->WatchJob(ctx.get(), w);
      open = reader->Read(&st);
      if (!open) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(open);
    grpc::ClientContext ctx2;
    ctx2.AddMetadata("authorization", "Bearer one");
    auto reader2 = stub->WatchJob(&ctx2, w);
    EXPECT_FALSE(reader2->Read(&st));
    EXPECT_EQ(reader2->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    ctx->TryCancel();
    reader->Finish();
  }
  ASSERT_TRUE(one->CancelJob(running->job_id()).ok());
  const std::string text = (*s)->metrics().Render();
  for (const char* limit :
       {"dataset_rows", "concurrent_uploads", "queued_jobs_per_token", "queued_jobs", "streams"}) {
    EXPECT_NE(text.find(absl::StrCat("berth_limit_refusals_total{limit=\"", limit, "\"}")),
              std::string::npos)
        << limit;
  }
}

// Every hyperparameter of a request reaches the job's spec, and the unset ones keep the
// Trainer's defaults; the fields are listed by hand, apart from the table the server expands.
TEST(ConvertTest, EveryHyperparameterReachesTheSpec) {
  v1::StartTrainingRequest r;
  r.set_task(v1::TASK_MULTI_LABEL);
  v1::Hyperparameters* h = r.mutable_hyperparameters();
  h->set_epochs(1.5);
  h->set_max_steps(7);
  h->set_batch_size(3);
  h->set_eval_batch_size(5);
  h->set_learning_rate(1e-3);
  h->set_weight_decay(0.01);
  h->set_adam_beta1(0.8);
  h->set_adam_beta2(0.99);
  h->set_adam_epsilon(1e-6);
  h->set_max_grad_norm(0.5);
  h->set_warmup_steps(2);
  h->set_warmup_ratio(0.1);
  h->set_grad_accum(4);
  h->set_max_length(64);
  h->set_pad_to_max_length(true);
  h->set_seed(7);
  h->set_shuffle(false);
  h->set_group_by_length(true);
  h->set_precision(v1::PRECISION_BF16);
  h->set_eval_steps(9);
  h->set_save_steps(11);
  h->set_early_stopping_patience(3);
  h->set_metric_for_best("macro_f1");
  h->add_class_weights(1.0);
  h->add_class_weights(2.5);
  h->set_label_smoothing(0.1);
  h->set_multi_label_threshold(0.3);
  h->set_device("cuda:1");
  const train::TrainingSpec t = server::ToJobSpec(r).training;
  EXPECT_EQ(t.epochs, 1.5);
  EXPECT_EQ(t.max_steps, 7);
  EXPECT_EQ(t.batch_size, 3);
  EXPECT_EQ(t.eval_batch_size, 5);
  EXPECT_EQ(t.learning_rate, 1e-3);
  EXPECT_EQ(t.weight_decay, 0.01);
  EXPECT_EQ(t.adam_beta1, 0.8);
  EXPECT_EQ(t.adam_beta2, 0.99);
  EXPECT_EQ(t.adam_epsilon, 1e-6);
  EXPECT_EQ(t.max_grad_norm, 0.5);
  EXPECT_EQ(t.warmup_steps, 2);
  EXPECT_EQ(t.warmup_ratio, 0.1);
  EXPECT_EQ(t.grad_accum, 4);
  EXPECT_EQ(t.max_length, 64);
  EXPECT_TRUE(t.pad_to_max_length);
  EXPECT_EQ(t.seed, 7u);
  EXPECT_FALSE(t.shuffle);
  EXPECT_TRUE(t.group_by_length);
  EXPECT_EQ(t.precision, train::Precision::kBf16);
  EXPECT_EQ(t.eval_steps, 9);
  EXPECT_EQ(t.save_steps, 11);
  EXPECT_EQ(t.early_stopping_patience, 3);
  EXPECT_EQ(t.metric_for_best, "macro_f1");
  EXPECT_TRUE(t.multi_label);
  EXPECT_EQ(t.class_weights, (std::vector<double>{1.0, 2.5}));
  EXPECT_EQ(t.label_smoothing, 0.1);
  EXPECT_EQ(t.multi_label_threshold, 0.3);
  EXPECT_EQ(t.device, "cuda:1");

  // Unset: the defaults (the proto's optional fields tell unset from zero).
  const train::TrainingSpec d = server::ToJobSpec(v1::StartTrainingRequest()).training;
  const train::TrainingSpec defaults;
  EXPECT_EQ(d.epochs, defaults.epochs);
  EXPECT_EQ(d.learning_rate, defaults.learning_rate);
  EXPECT_EQ(d.adam_beta2, defaults.adam_beta2);
  EXPECT_EQ(d.max_grad_norm, defaults.max_grad_norm);
  EXPECT_EQ(d.shuffle, defaults.shuffle);
  EXPECT_EQ(d.multi_label_threshold, defaults.multi_label_threshold);
  EXPECT_EQ(d.seed, defaults.seed);
}

TEST(ServerSecurityTest, HubIdsAreRefusedWithNoHub) {
  TempDir dir;
  server::ServerOptions o;
  o.data_dir = dir.File("data");
  o.listen = "127.0.0.1:0";
  o.metrics_listen = "";
  o.training.base_models.allow_hub = false;
  auto s = server::Server::Start(o);
  ASSERT_TRUE(s.ok());
  client::ClientOptions co;
  co.target = absl::StrCat("127.0.0.1:", (*s)->port());
  auto c = std::move(client::Client::Create(co).value());
  v1::DatasetInfo info;
  info.set_file_name("train.tsv");
  auto up = c->UploadDataset(info, Sst2Rows(16));
  ASSERT_TRUE(up.ok());
  v1::StartTrainingRequest r;
  r.set_base_model("bert-base-uncased");
  r.set_train_dataset_id(up->dataset_id());
  r.set_model_name("m");
  auto refused = c->StartTraining(r);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("--no-hub"), absl::string_view::npos)
      << refused.status();
}

TEST(ServerSecurityTest, NonLoopbackNeedsAuthenticationOrAnExplicitOptOut) {
  TempDir dir;
  server::ServerOptions o;
  o.data_dir = dir.File("data");
  o.listen = "0.0.0.0:0";
  o.metrics_listen = "";
  auto refused = server::Server::Start(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--allow-insecure"), absl::string_view::npos)
      << refused.status();
  o.allow_insecure = true;
  auto allowed = server::Server::Start(o);
  EXPECT_TRUE(allowed.ok()) << allowed.status();
}

}  // namespace
}  // namespace berth

namespace berth {
namespace {

// Certificates made at test time with the openssl command line: CA1 and CA2, a server
// certificate from each (for 127.0.0.1), and a client certificate from CA1.
class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string d = dir_.path();
    testing::WriteFile(dir_.File("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    std::string script = "set -e; cd '" + d + "'\n";
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    for (const char* ca : {"ca1", "ca2"}) {
      script += absl::StrCat("openssl req -x509 ", key, " -keyout ", ca, ".key -out ", ca,
                             ".pem -days 2 -subj /CN=berth-test-", ca, " 2>/dev/null\n");
    }
    auto issue = [&](const std::string& name, const std::string& ca, bool server) {
      script +=
          absl::StrCat("openssl req ", key, " -keyout ", name, ".key -out ", name,
                       ".csr -subj /CN=", name, " 2>/dev/null\n", "openssl x509 -req -in ", name,
                       ".csr -CA ", ca, ".pem -CAkey ", ca, ".key -CAcreateserial -out ", name,
                       ".pem -days 2", server ? " -extfile san.ext" : "", " 2>/dev/null\n");
    };
    issue("server1", "ca1", true);
    issue("server2", "ca2", true);
    issue("client1", "ca1", false);
    ASSERT_EQ(std::system(("bash -c \"" + script + "\"").c_str()), 0) << "openssl failed";
    // The server serves these two paths; rotation replaces them in place.
    ASSERT_TRUE(
        WriteFileAtomically(dir_.File("server.pem"), *ReadFileToString(dir_.File("server1.pem")))
            .ok());
    ASSERT_TRUE(
        WriteFileAtomically(dir_.File("server.key"), *ReadFileToString(dir_.File("server1.key")))
            .ok());
  }

  std::unique_ptr<server::Server> Start(bool mutual) {
    server::ServerOptions o;
    o.data_dir = dir_.File(mutual ? "data-m" : "data");
    o.listen = "127.0.0.1:0";
    o.metrics_listen = "";
    o.tls_cert = dir_.File("server.pem");
    o.tls_key = dir_.File("server.key");
    if (mutual) o.tls_client_ca = dir_.File("ca1.pem");
    auto s = server::Server::Start(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  std::unique_ptr<client::Client> Connect(int port, const std::string& ca, bool client_cert) {
    client::ClientOptions co;
    co.target = absl::StrCat("127.0.0.1:", port);
    co.timeout = std::chrono::seconds(5);
    co.max_attempts = 1;
    if (!ca.empty()) co.tls_ca = dir_.File(ca + ".pem");
    if (client_cert) {
      co.tls_cert = dir_.File("client1.pem");
      co.tls_key = dir_.File("client1.key");
    }
    return std::move(client::Client::Create(co).value());
  }

  TempDir dir_;
};

TEST_F(TlsTest, TlsAndPlaintextClients) {
  auto server = Start(false);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(Connect(server->port(), "ca1", false)->ListModels().ok());
  // A plaintext client fails cleanly, as does one that trusts another CA.
  EXPECT_EQ(Connect(server->port(), "", false)->ListModels().status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(Connect(server->port(), "ca2", false)->ListModels().status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, MutualTlsRequiresAClientCertificate) {
  auto server = Start(true);
  ASSERT_NE(server, nullptr);
  EXPECT_NE(Connect(server->port(), "ca1", false)->ListModels().status().code(),
            absl::StatusCode::kOk);
  EXPECT_TRUE(Connect(server->port(), "ca1", true)->ListModels().ok());
}

// What SIGHUP does (berth-server calls ReloadTls): the files replaced on disk are not served
// until the reload, then new connections get them and open ones stay.
TEST_F(TlsTest, CertificatesReloadWithoutDroppingConnections) {
  auto server = Start(false);
  ASSERT_NE(server, nullptr);
  auto old_client = Connect(server->port(), "ca1", false);
  ASSERT_TRUE(old_client->ListModels().ok());
  ASSERT_TRUE(
      WriteFileAtomically(dir_.File("server.key"), *ReadFileToString(dir_.File("server2.key")))
          .ok());
  ASSERT_TRUE(
      WriteFileAtomically(dir_.File("server.pem"), *ReadFileToString(dir_.File("server2.pem")))
          .ok());
  std::this_thread::sleep_for(
      std::chrono::milliseconds(2500));  // > gRPC's 1 s poll of the staged copy
  EXPECT_TRUE(Connect(server->port(), "ca1", false)->ListModels().ok())
      << "served before the reload";
  ASSERT_TRUE(server->ReloadTls().ok());
  bool rotated = false;
  for (int i = 0; i < 40 && !rotated; ++i) {
    rotated = Connect(server->port(), "ca2", false)->ListModels().ok();
    if (!rotated) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_TRUE(rotated) << "new connections never got the new certificate";
  EXPECT_TRUE(old_client->ListModels().ok()) << "the connection made before the reload was dropped";
}

// A key that does not belong to the certificate (one half replaced, or a bad deploy) is refused
// by the reload, and the server goes on with the pair it has.
TEST_F(TlsTest, MismatchedFilesAreRefusedAndTheOldPairStays) {
  auto server = Start(false);
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(
      WriteFileAtomically(dir_.File("server.key"), *ReadFileToString(dir_.File("server2.key")))
          .ok());
  absl::Status reload = server->ReloadTls();
  EXPECT_EQ(reload.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(reload.message().find("does not match"), absl::string_view::npos) << reload;
  ASSERT_TRUE(WriteFileAtomically(dir_.File("server.pem"), "not a certificate\n").ok());
  EXPECT_NE(server->ReloadTls().message().find("--tls-cert"), absl::string_view::npos);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_TRUE(Connect(server->port(), "ca1", false)->ListModels().ok());
  // The same files are refused at start.
  server::ServerOptions o;
  o.data_dir = dir_.File("data2");
  o.listen = "127.0.0.1:0";
  o.metrics_listen = "";
  o.tls_cert = dir_.File("server1.pem");
  o.tls_key = dir_.File("server2.key");
  auto bad = server::Server::Start(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--tls-key"), absl::string_view::npos) << bad.status();
}

TEST_F(TlsTest, MutualTlsCountsAsAuthenticationOffLoopback) {
  server::ServerOptions o;
  o.data_dir = dir_.File("data-nl");
  o.listen = "0.0.0.0:0";
  o.metrics_listen = "";
  o.tls_cert = dir_.File("server.pem");
  o.tls_key = dir_.File("server.key");
  o.tls_client_ca = dir_.File("ca1.pem");
  EXPECT_TRUE(server::Server::Start(o).ok());
  o.tls_key = dir_.File("missing.key");
  auto bad = server::Server::Start(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--tls-key"), absl::string_view::npos) << bad.status();
}

}  // namespace
}  // namespace berth

namespace berth {
namespace {

// Failing disks (injected): a write that fails leaves the previous state intact, the call gets
// an error, the server keeps serving, and no job is lost or registered twice.
class FailingDiskTest : public ServiceTest {
 protected:
  void TearDown() override {
    SetWriteFaultForTesting(nullptr);
    store::SetStoreWriteFaultForTesting(nullptr);
    ServiceTest::TearDown();
  }
};

// The client's retry policy: an idempotent call (StartTraining, made so by its request_id)
// that fails UNAVAILABLE is tried again and lands once; without retries the caller sees the
// UNAVAILABLE. The failure is the store refusing the job's INSERT (a disk blip), injected a
// counted number of times, so no timing is involved.
TEST_F(FailingDiskTest, ClientRetriesAnIdempotentCallOnUnavailable) {
  const std::string id = Upload(Sst2Rows(32));
  std::atomic<int> inserts{0}, refuse{1};
  store::SetStoreWriteFaultForTesting([&](const std::string& sql) {
    if (!absl::StartsWith(sql, "INSERT INTO jobs")) return absl::OkStatus();
    ++inserts;
    return refuse-- > 0 ? absl::UnavailableError("disk I/O error (injected)") : absl::OkStatus();
  });
  auto started = client_->StartTraining(SmallJob(id, "retried-start", 2));  // max_attempts 5
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(inserts.load(), 2) << "one refused attempt, one that landed";
  auto jobs = client_->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->jobs_size(), 1);

  client::ClientOptions once;
  once.target = absl::StrCat("127.0.0.1:", server_->port());
  once.max_attempts = 1;
  auto single = client::Client::Create(once);
  ASSERT_TRUE(single.ok());
  inserts = 0;
  refuse = 1;
  auto failed = (*single)->StartTraining(SmallJob(id, "not-retried", 2));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable) << failed.status();
  EXPECT_EQ(inserts.load(), 1);
  store::SetStoreWriteFaultForTesting(nullptr);
  auto end = client_->WatchJob(started->job_id(), [](const v1::JobStatus&) { return true; });
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->state(), v1::JOB_STATE_SUCCEEDED) << end->error();
}

TEST_F(FailingDiskTest, UploadModelSaveAndJobStateWrites) {
  const std::string data_dir = dir_.File("data");
  const absl::Status full = absl::ResourceExhaustedError("No space left on device (injected)");
  // Dataset upload.
  SetWriteFaultForTesting([&](const std::string& path) {
    return absl::StrContains(path, "/datasets/") ? full : absl::OkStatus();
  });
  v1::DatasetInfo info;
  info.set_file_name("train.tsv");
  const std::string rows = Sst2Rows(16);
  EXPECT_EQ(client_->UploadDataset(info, rows).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(ListDirectory(JoinPath(data_dir, "datasets"))->empty());
  EXPECT_EQ(server_->store().GetDataset(Sha256Hex(rows)).status().code(),
            absl::StatusCode::kNotFound);
  SetWriteFaultForTesting(nullptr);
  const std::string id = Upload(rows);

  // Model save: the job fails with the disk's error; no directory, no version, no leftovers.
  SetWriteFaultForTesting([&](const std::string& path) {
    return absl::EndsWith(path, "model.safetensors") ? full : absl::OkStatus();
  });
  const v1::JobStatus failed = RunToEnd(SmallJob(id, "disk", 2));
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_NE(failed.error().find("No space"), std::string::npos) << failed.error();
  EXPECT_FALSE(IsDirectory(JoinPath(data_dir, "models/disk")));
  EXPECT_FALSE(IsDirectory(JoinPath(data_dir, "jobs/" + failed.job_id())));
  EXPECT_EQ(client_->GetModel("disk").status().code(), absl::StatusCode::kNotFound);
  SetWriteFaultForTesting(nullptr);
  EXPECT_EQ(RunToEnd(SmallJob(id, "disk", 2)).model_version(), 1);

  // Job state: the end of a job fails to record twice, then lands.
  std::atomic<int> attempts{0};
  store::SetStoreWriteFaultForTesting([&](const std::string& sql) {
    if (!absl::StartsWith(sql, "UPDATE jobs SET state = ?, error")) return absl::OkStatus();
    return attempts++ < 2 ? absl::UnavailableError("disk I/O error (injected)") : absl::OkStatus();
  });
  EXPECT_EQ(RunToEnd(SmallJob(id, "retried", 2)).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(attempts.load(), 3);

  // It never lands: the job stays RUNNING; after a restart it is recovered, succeeds, and its
  // model has one version.
  std::atomic<int> stuck_attempts{0};
  store::SetStoreWriteFaultForTesting([&](const std::string& sql) {
    if (!absl::StartsWith(sql, "UPDATE jobs SET state = ?, error")) return absl::OkStatus();
    ++stuck_attempts;
    return absl::UnavailableError("disk I/O error");
  });
  auto stuck = client_->StartTraining(SmallJob(id, "stuck", 2));
  ASSERT_TRUE(stuck.ok());
  bool registered = false;
  for (int i = 0; i < 300 && !registered; ++i) {
    registered = client_->GetModel("stuck").ok();
    if (!registered) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(registered);
  EXPECT_TRUE(client_->ListModels().ok());  // still serving
  // Observed, not slept on: the runner tries 4 times (JobRunner::Finish), then gives up.
  for (int i = 0; i < 1000 && stuck_attempts.load() < 4; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(stuck_attempts.load(), 4) << "the runner's retries did not run out within 10 s";
  EXPECT_EQ(client_->GetStatus(stuck->job_id())->state(), v1::JOB_STATE_RUNNING);
  store::SetStoreWriteFaultForTesting(nullptr);
  client_.reset();
  server_->Shutdown(std::chrono::seconds(5));
  server_.reset();
  StartServer();
  auto end = client_->WatchJob(stuck->job_id(), [](const v1::JobStatus&) { return true; });
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->state(), v1::JOB_STATE_SUCCEEDED) << end->error();
  EXPECT_EQ(end->model_version(), 1);
  auto models = client_->ListModels();
  ASSERT_TRUE(models.ok());
  int stuck_versions = 0;
  for (const auto& m : models->models()) stuck_versions += m.name() == "stuck";
  EXPECT_EQ(stuck_versions, 1);
}

}  // namespace
}  // namespace berth
