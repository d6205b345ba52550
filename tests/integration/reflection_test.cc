// Generic gRPC tooling works against berth-server: reflection lists the berth.v1 services and
// serves their descriptors, and grpc.health.v1 answers SERVING. The server runs as a process
// (this binary links no server code, so its reflection protos cannot clash with the server's).
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "reflection.grpc.pb.h"
#include "tests/unit/test_util.h"

namespace berth {
namespace {

namespace refl = grpc::reflection::v1alpha;

class ServerProcess {
 public:
  explicit ServerProcess(const std::string& dir) {
    const std::string port_file = dir + "/port";
    pid_ = fork();
    if (pid_ == 0) {
      execl(BERTH_SERVER_BIN, BERTH_SERVER_BIN, "--data-dir", (dir + "/data").c_str(), "--listen",
            "127.0.0.1:0", "--port-file", port_file.c_str(), "--metrics-listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0", static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::ifstream in(port_file);
      if (!(in >> port_)) port_ = 0;
      if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
  }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

TEST(ReflectionTest, ListsServicesAndServesDescriptors) {
  testing::TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_GT(server.port(), 0) << "berth-server did not start";
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server.port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = refl::ServerReflection::NewStub(channel);
  grpc::ClientContext ctx;
  auto stream = stub->ServerReflectionInfo(&ctx);

  refl::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  refl::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::set<std::string> services;
  for (const auto& s : resp.list_services_response().service()) services.insert(s.name());
  for (const char* want : {"berth.v1.TrainingService", "berth.v1.InferenceService",
                           "berth.v1.ModelService", "grpc.health.v1.Health"}) {
    EXPECT_TRUE(services.count(want)) << want << " is not listed";
  }

  refl::ServerReflectionRequest symbol;
  symbol.set_file_containing_symbol("berth.v1.ClassifyRequest");
  ASSERT_TRUE(stream->Write(symbol));
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_GT(resp.file_descriptor_response().file_descriptor_proto_size(), 0)
      << resp.error_response().error_message();
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(resp.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(file.name(), "berth/v1/inference.proto");
  EXPECT_EQ(file.package(), "berth.v1");
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());

  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext hctx;
  grpc::health::v1::HealthCheckRequest hreq;
  grpc::health::v1::HealthCheckResponse hresp;
  ASSERT_TRUE(health->Check(&hctx, hreq, &hresp).ok());
  EXPECT_EQ(hresp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

}  // namespace
}  // namespace berth
