// What the service tests share: an in-process berth::server::Server on 127.0.0.1:0 driven
// through the real berth::client over loopback gRPC, with real SST-2 rows and real training.
// The tests are split by service: training_service_test.cc, inference_service_test.cc,
// model_service_test.cc, and server_test.cc for what spans the server (errors, auth, limits,
// TLS, failing disks).
#ifndef BERTH_TESTS_INTEGRATION_SERVICE_FIXTURE_H_
#define BERTH_TESTS_INTEGRATION_SERVICE_FIXTURE_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
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
#include "server/server.h"
#include "tests/unit/test_util.h"

namespace berth {
namespace testing {
const char* CliBinaryPath();  // the berth CLI (service_paths.cc)
}  // namespace testing

// One definition for every file that includes this (gtest requires one fixture class per test
// suite across the program): not in an anonymous namespace, and every function inline.
inline namespace service_fixture {

using testing::TempDir;

// The header and first `rows` rows of the shipped SST-2 sample.
inline std::string Sst2Rows(int rows, int skip = 0) {
  std::ifstream in(std::string(berth::testing::ShippedDataDir()) + "/sst2-sample/train.tsv");
  std::string line, out;
  std::getline(in, line);
  out = line + "\n";
  for (int i = 0; i < skip && std::getline(in, line); ++i) {
  }
  for (int i = 0; i < rows && std::getline(in, line); ++i) out += line + "\n";
  return out;
}

inline v1::ClassifyRequest ClassifyReq(const std::string& model, std::vector<std::string> texts) {
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
    o.http_listen = "127.0.0.1:0";
    o.request_threads = 8;
    o.training.progress_interval = std::chrono::milliseconds(20);
    o.training.threads_per_job = 1;
    o.training.base_models.model_roots = {
        testing::DataPath("fixtures")};  // the XLM-R test starts from a fixture
    o.training.max_train_procs = 2;
    o.training.worker_binary = testing::CliBinaryPath();  // ranks 1..N-1 of data-parallel jobs
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

// The processes this test process started whose command line contains `word` (children
// belong to the thread that started them, so every thread's list is read).
inline std::vector<pid_t> ChildrenRunning(const std::string& word) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(task.path() / "children");
    for (pid_t pid; in >> pid;) {
      std::ifstream cmd("/proc/" + std::to_string(pid) + "/cmdline");
      std::string all((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
      if (all.find(word) != std::string::npos) out.push_back(pid);
    }
  }
  return out;
}

}  // namespace service_fixture
}  // namespace berth

#endif  // BERTH_TESTS_INTEGRATION_SERVICE_FIXTURE_H_
