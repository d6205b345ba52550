// The Berth server as a whole over loopback: health, every bad argument named by field, tokens
// and roles, limits, the security defaults, TLS, and failing disks.
#include "tests/integration/service_fixture.h"

namespace berth {
namespace {

TEST_F(ServiceTest, HealthyAndEmpty) {
  auto healthy = client_->Healthy();
  ASSERT_TRUE(healthy.ok()) << healthy.status();
  EXPECT_TRUE(*healthy);
  auto models = client_->ListModels();
  ASSERT_TRUE(models.ok());
  EXPECT_EQ(models->models_size(), 0);
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

// API tokens with roles: authentication before validation, each role's allowed and denied
// calls, model prefixes, own-jobs-only for train tokens, every job for read tokens, SIGHUP-style
// reload, open health, and no unauthenticated non-loopback serving.
class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteTokens(true);
    server::ServerOptions o;
    o.data_dir = dir_.File("data");
    o.listen = "127.0.0.1:0";
    o.metrics_listen = "";
    o.http_listen = "127.0.0.1:0";
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
    lines += absl::StrCat(R"({"id": "viewer", "sha256": ")", Sha256Hex("viewer-secret"),
                          R"(", "role": "read"})", "\n");
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

  // A read token sees every job and its history, and changes nothing.
  auto viewer = As("viewer-secret");
  auto viewer_jobs = viewer->ListJobs(v1::ListJobsRequest());
  ASSERT_TRUE(viewer_jobs.ok()) << viewer_jobs.status();
  EXPECT_EQ(viewer_jobs->jobs_size(), 2);
  EXPECT_TRUE(viewer->GetStatus(boss_job->job_id()).ok());
  EXPECT_TRUE(viewer->GetStatus(started->job_id()).ok());
  EXPECT_TRUE(viewer->Classify(ClassifyReq("team-a-m", {"good"})).ok());
  EXPECT_EQ(code(viewer->UploadDataset(info, Sst2Rows(32)).status()),
            absl::StatusCode::kPermissionDenied);
  r.set_model_name("viewer-model");
  EXPECT_EQ(code(viewer->StartTraining(r).status()), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(viewer->CancelJob(boss_job->job_id()).status()),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(viewer->SetAlias("team-a-m", "prod", 1).status()),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(viewer->DeleteModel("team-a-m", 0).status()), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(reader->ListJobs(v1::ListJobsRequest()).status()),
            absl::StatusCode::kPermissionDenied);

  // Reload: the reader's token is withdrawn; a broken file keeps the tokens in force.
  WriteTokens(false);
  ASSERT_TRUE(server_->ReloadAuth().ok());
  EXPECT_EQ(code(reader->ListModels().status()), absl::StatusCode::kUnauthenticated);
  testing::WriteFile(dir_.File("tokens.jsonl"), "{not json\n");
  EXPECT_FALSE(server_->ReloadAuth().ok());
  EXPECT_TRUE(trainer->ListJobs(v1::ListJobsRequest()).ok());
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
  o.http_listen = "127.0.0.1:0";
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

TEST(ServerSecurityTest, HubIdsAreRefusedWithNoHub) {
  TempDir dir;
  server::ServerOptions o;
  o.data_dir = dir.File("data");
  o.listen = "127.0.0.1:0";
  o.metrics_listen = "";
  o.http_listen = "127.0.0.1:0";
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
  o.http_listen = "127.0.0.1:0";
  auto refused = server::Server::Start(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--allow-insecure"), absl::string_view::npos)
      << refused.status();
  o.allow_insecure = true;
  auto allowed = server::Server::Start(o);
  EXPECT_TRUE(allowed.ok()) << allowed.status();
}

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
    o.http_listen = "127.0.0.1:0";
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
  o.http_listen = "127.0.0.1:0";
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
  o.http_listen = "127.0.0.1:0";
  o.tls_cert = dir_.File("server.pem");
  o.tls_key = dir_.File("server.key");
  o.tls_client_ca = dir_.File("ca1.pem");
  EXPECT_TRUE(server::Server::Start(o).ok());
  o.tls_key = dir_.File("missing.key");
  auto bad = server::Server::Start(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--tls-key"), absl::string_view::npos) << bad.status();
}

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
