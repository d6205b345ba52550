// berth.v1.TrainingService over loopback: uploads, training (data-parallel too), watching,
// cancelling, idempotent submission, resumption after a restart, base-model rules.
#include "tests/integration/service_fixture.h"

namespace berth {
namespace {

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

// A data-parallel job whose rank 1 is killed fails, and its error names rank 1 and the signal
// (rank 0, the server itself, fails too once its peer vanished: that is not the cause).
TEST_F(ServiceTest, DataParallelJobNamesTheKilledRank) {
  const std::string id = Upload(Sst2Rows(64));
  v1::StartTrainingRequest r = SmallJob(id, "dp-kill", 100000);
  r.set_workers(2);
  auto started = client_->StartTraining(r);
  ASSERT_TRUE(started.ok()) << started.status();
  bool killed = false;
  auto ended = client_->WatchJob(started->job_id(), [&](const v1::JobStatus& st) {
    if (!killed && st.progress().update() >= 3) {
      std::vector<pid_t> ranks = ChildrenRunning("train-rank");
      if (ranks.size() == 1) killed = ::kill(ranks[0], SIGKILL) == 0;
    }
    return true;
  });
  ASSERT_TRUE(killed);
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_FAILED);
  EXPECT_NE(ended->error().find("rank 1 was killed by signal 9"), std::string::npos)
      << ended->error();
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

}  // namespace
}  // namespace berth
