// berth.v1.InferenceService over loopback: streaming, tokenizing, cancellation, preloading.
#include "core/service/inference.h"
#include "core/util/json.h"
#include "core/util/status_macros.h"
#include "tests/integration/service_fixture.h"

namespace berth {
namespace {

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

// A Classify whose client cancels while its texts wait in the batcher's queue costs no forward
// pass: the batcher asks the call's context before running it, drops it, and the drop shows in
// berth_inference_dropped_total. The batcher here waits 3 s for company after the model loads,
// and the client cancels as soon as the server's figures show its text queued
// (berth_inference_queue_depth), so the call is certainly still waiting then.
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
  const std::string queued = "berth_inference_queue_depth{model=\"cancelled:1\"} 1";
  for (int i = 0; i < 6000 && server_->metrics().Render().find(queued) == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
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
  bad.http_listen = "127.0.0.1:0";
  bad.preload = {"no such:name"};
  auto refused = server::Server::Start(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--preload"), absl::string_view::npos)
      << refused.status();
}

// ---- A JSON door onto the inference facade, in under 100 lines ------------------------------
// It converts JSON to the facade's request and the reply back, and nothing else: every rule,
// limit and message comes from the facade, so it answers bad requests exactly as gRPC does.
absl::StatusOr<Json> ClassifyJson(const service::Inference& inference, const std::string& body) {
  auto parsed = ParseJson(body, "request");
  if (!parsed.ok() || !parsed->is_object())
    return absl::InvalidArgumentError("request: not a JSON object");
  const Json& j = *parsed;
  service::ClassifyRequest r;
  try {
    r.model.model = j.value("model", "");
    r.model.version = j.value("version", int64_t{0});
    r.model.alias = j.value("alias", "");
    r.texts = j.value("texts", std::vector<std::string>{});
    r.text_pairs = j.value("text_pairs", std::vector<std::string>{});
    r.top_k = j.value("top_k", int64_t{0});
    r.raw_scores = j.value("raw_scores", false);
    r.max_length = j.value("max_length", int64_t{0});
    r.stride = j.value("stride", int64_t{0});
    const std::string t = j.value("truncation", "");
    r.truncation = t.empty()       ? service::Truncation::kDefault
                   : t == "right"  ? service::Truncation::kRight
                   : t == "left"   ? service::Truncation::kLeft
                   : t == "window" ? service::Truncation::kWindow
                                   : service::Truncation::kInvalid;
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("request: ", e.what()));
  }
  ASSIGN_OR_RETURN(service::ClassifyReply reply, inference.Classify(r));
  Json out = {{"model", reply.model},
              {"model_version", reply.model_version},
              {"labels", reply.labels},
              {"results", Json::array()}};
  for (const ClassifyResult& c : reply.results) {
    out["results"].push_back({{"label", c.label}, {"score", c.score}, {"scores", c.scores}});
  }
  return out;
}
// ---- end of the JSON door ---------------------------------------------------------------------

// The same bad requests through gRPC and through the JSON door get the same code and the same
// message, byte for byte: the rules live in the facade, not in either door.
TEST_F(ServiceTest, AJsonDoorGetsTheErrorsGrpcCallersGet) {
  struct Case {
    std::function<void(v1::ClassifyRequest*)> edit;
    Json json;
  };
  const std::string long_text(2001, 'x');
  const std::vector<Case> cases = {
      {[](auto* r) { r->set_model(""); }, {{"model", ""}, {"texts", {"t"}}}},
      {[](auto* r) { r->set_model("m:zero"); }, {{"model", "m:zero"}, {"texts", {"t"}}}},
      {[](auto* r) { r->set_model("../m"); }, {{"model", "../m"}, {"texts", {"t"}}}},
      {[](auto* r) { r->set_alias("a b"); }, {{"model", "m"}, {"alias", "a b"}, {"texts", {"t"}}}},
      {[](auto* r) { r->set_model("m@x"), r->set_version(2); },
       {{"model", "m@x"}, {"version", 2}, {"texts", {"t"}}}},
      {[](auto* r) { r->clear_texts(); }, {{"model", "m"}, {"texts", Json::array()}}},
      {[](auto* r) {
         for (int i = 0; i < 16; ++i) r->add_texts("t");
       },
       {{"model", "m"}, {"texts", std::vector<std::string>(17, "t")}}},
      {[&](auto* r) { r->set_texts(0, long_text); }, {{"model", "m"}, {"texts", {long_text}}}},
      {[](auto* r) { r->add_text_pairs("a"), r->add_texts("u"); },
       {{"model", "m"}, {"texts", {"t", "u"}}, {"text_pairs", {"a"}}}},
      {[](auto* r) { r->set_top_k(5000); }, {{"model", "m"}, {"texts", {"t"}}, {"top_k", 5000}}},
      {[](auto* r) { r->set_max_length(2); },
       {{"model", "m"}, {"texts", {"t"}}, {"max_length", 2}}},
      {[](auto* r) { r->set_stride(-3); }, {{"model", "m"}, {"texts", {"t"}}, {"stride", -3}}},
      {[](auto* r) { r->set_truncation(static_cast<v1::Truncation>(9)); },
       {{"model", "m"}, {"texts", {"t"}}, {"truncation", "sideways"}}},
      {[](auto* r) { r->set_model("nope"); }, {{"model", "nope"}, {"texts", {"t"}}}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    v1::ClassifyRequest r = ClassifyReq("m", {"t"});
    cases[i].edit(&r);
    const absl::Status grpc = client_->Classify(r).status();
    const absl::Status json = ClassifyJson(server_->inference(), cases[i].json.dump()).status();
    EXPECT_FALSE(grpc.ok()) << "case " << i;
    EXPECT_EQ(grpc.code(), json.code()) << "case " << i << ": " << grpc << " / " << json;
    EXPECT_EQ(grpc.message(), json.message()) << "case " << i;
  }

  // And a good request gets the same answer through both.
  v1::ImportModelInfo info;
  info.set_name("tiny");
  info.set_directory(testing::FixturePath("bert-tiny-uncased"));
  ASSERT_TRUE(client_->ImportModel(info).ok());
  auto grpc = client_->Classify(ClassifyReq("tiny", {"a gorgeous, witty movie."}));
  auto json = ClassifyJson(server_->inference(),
                           R"({"model": "tiny", "texts": ["a gorgeous, witty movie."]})");
  ASSERT_TRUE(grpc.ok() && json.ok()) << grpc.status() << " / " << json.status();
  EXPECT_EQ((*json)["results"][0]["label"], grpc->results(0).label());
  ASSERT_EQ((*json)["results"][0]["scores"].size(),
            static_cast<size_t>(grpc->results(0).scores_size()));
  for (int k = 0; k < grpc->results(0).scores_size(); ++k)
    EXPECT_EQ((*json)["results"][0]["scores"][k].get<float>(), grpc->results(0).scores(k));
}

}  // namespace
}  // namespace berth
