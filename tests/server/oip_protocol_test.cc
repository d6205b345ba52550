// The Open Inference Protocol's rules apart from any transport (server/oip/protocol.h) and its
// HTTP wire form (server/http/oip_codec.h): BYTES in binary, tensors to one Classify call, the
// outputs asked for, and the errors, each naming its field.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/http/oip_codec.h"
#include "server/oip/protocol.h"

namespace berth::server::oip {
namespace {

std::string Error(const absl::Status& s) { return s.ok() ? "OK" : std::string(s.message()); }

TEST(OipProtocolTest, BytesRoundTripAndTruncatedDataIsNamed) {
  const std::vector<std::string> texts = {"a", "", std::string(300, 'x'), "café"};
  const std::string raw = EncodeBytes(texts);
  EXPECT_EQ(raw.size(), 4 * 4 + 1 + 300 + 5);
  auto back = DecodeBytes(raw, 4, "raw_input_contents[0]");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, texts);
  EXPECT_EQ(Error(DecodeBytes(raw.substr(0, 2), 1, "in").status()),
            "in: binary BYTES data ends inside an element's length");
  EXPECT_EQ(Error(DecodeBytes(raw.substr(0, 20), 4, "in").status()),
            "in: a binary BYTES element is longer than the data left");
  EXPECT_EQ(Error(DecodeBytes(raw, 3, "in").status()),
            "in: the binary data holds 4 elements, the shape says 3");
  EXPECT_EQ(Error(DecodeBytes(raw + EncodeBytes({"e"}), 2, "in").status()),
            "in: the binary data holds more elements, the shape says 2");
  EXPECT_EQ(Error(DecodeBytes(raw, 5, "in").status()),
            "in: the binary data holds 4 elements, the shape says 5");
}

TEST(OipProtocolTest, ShapesAreCountedWithinBounds) {
  EXPECT_EQ(*ElementCount({3, 1}, "s"), 3);
  EXPECT_EQ(*ElementCount({}, "s"), 1);
  EXPECT_EQ(Error(ElementCount({-1}, "s").status()), "s: sizes must be in [0, 16777216]");
  EXPECT_EQ(Error(ElementCount({1 << 20, 1 << 20}, "s").status()), "s: too many elements");
}

TEST(OipProtocolTest, InputsBecomeOneClassifyCall) {
  auto r = ClassifyRequestOf(SelectorOf("m", "prod"), {{"text_pair", "BYTES", {2, 1}, {"p1", "p2"}},
                                                       {"text", "BYTES", {2}, {"t1", "t2"}}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model.model, "m");
  EXPECT_EQ(r->model.alias, "prod");
  EXPECT_EQ(r->texts, (std::vector<std::string>{"t1", "t2"}));
  EXPECT_EQ(r->text_pairs, (std::vector<std::string>{"p1", "p2"}));
  EXPECT_EQ(SelectorOf("m", "3").version, 3);
  EXPECT_EQ(SelectorOf("m", "").version, 0);

  auto error = [](std::vector<InputTensor> in) {
    return Error(ClassifyRequestOf(SelectorOf("m", ""), std::move(in)).status());
  };
  EXPECT_EQ(error({{"txt", "BYTES", {1}, {"a"}}}),
            "inputs[0].name: 'txt' is not an input (text, text_pair)");
  EXPECT_EQ(error({{"text", "FP32", {1}, {}}}),
            "inputs[0].datatype: 'FP32': Berth's models take BYTES (text)");
  EXPECT_EQ(error({{"text", "BYTES", {1, 2}, {"a", "b"}}}),
            "inputs[0].shape: [1, 2]: must be [N] or [N, 1], one text per row");
  EXPECT_EQ(error({{"text", "BYTES", {1}, {"a"}}, {"text", "BYTES", {1}, {"b"}}}),
            "inputs[1].name: 'text' given twice");
  EXPECT_EQ(error({{"text_pair", "BYTES", {1}, {"a"}}}), "inputs: needs a 'text' tensor");
  EXPECT_EQ(error({{"text", "BYTES", {1}, {"a"}}, {"text_pair", "BYTES", {2}, {"b", "c"}}}),
            "inputs: 'text_pair' has 2 elements and 'text' 1");
}

TEST(OipProtocolTest, OutputsInTheOrderAskedAndUnknownOnesNamed) {
  service::ClassifyReply reply;
  reply.labels = {"neg", "pos"};
  ClassifyResult c;
  c.label = "pos";
  c.scores = {0.25f, 0.75f};
  reply.results = {c, c};
  auto all = OutputsOf(reply, {});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ((*all)[0].fp32, (std::vector<float>{0.25f, 0.75f, 0.25f, 0.75f}));
  EXPECT_EQ((*all)[1].bytes, (std::vector<std::string>{"pos", "pos"}));
  auto asked = OutputsOf(reply, {"label"});
  ASSERT_TRUE(asked.ok());
  ASSERT_EQ(asked->size(), 1u);
  EXPECT_EQ((*asked)[0].name, "label");
  EXPECT_EQ(Error(OutputsOf(reply, {"label", "logits"}).status()),
            "outputs[1].name: 'logits' is not an output (probabilities, label, embedding)");
}

TEST(OipProtocolTest, ConfigLeavesOutTheBatchDimension) {
  service::ModelInfo info;
  info.name = "m";
  info.version = 4;
  info.labels = {"a", "b", "c"};
  const ModelConfig c = ConfigOf(info, 64);
  EXPECT_EQ(c.max_batch_size, 64);
  EXPECT_EQ(c.version, 4);
  ASSERT_EQ(c.inputs.size(), 2u);
  EXPECT_EQ(c.inputs[0].data_type, "TYPE_STRING");
  EXPECT_EQ(c.inputs[0].dims, (std::vector<int64_t>{1}));
  EXPECT_TRUE(c.inputs[1].optional);
  EXPECT_EQ(c.outputs[0].data_type, "TYPE_FP32");
  EXPECT_EQ(c.outputs[0].dims, (std::vector<int64_t>{3}));
  EXPECT_EQ(MetadataOf(info).outputs[0].shape, (std::vector<int64_t>{-1, 3}));
}

TEST(OipHttpCodecTest, JsonAndBinaryRequestsAndTheirErrors) {
  auto json = ParseHttpInferRequest(
      R"({"id":"7","inputs":[{"name":"text","datatype":"BYTES","shape":[2],"data":["a","b"]}],
          "outputs":[{"name":"label"}]})",
      std::nullopt);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->id, "7");
  EXPECT_EQ(json->inputs[0].bytes, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(RequestedNames(*json), std::vector<std::string>{"label"});

  const std::string header =
      R"({"inputs":[{"name":"text","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":11}}],)"
      R"("parameters":{"binary_data_output":true}})";
  auto binary =
      ParseHttpInferRequest(header + EncodeBytes({"ab", "c"}), static_cast<int64_t>(header.size()));
  ASSERT_TRUE(binary.ok()) << binary.status();
  EXPECT_EQ(binary->inputs[0].bytes, (std::vector<std::string>{"ab", "c"}));
  EXPECT_TRUE(binary->binary_outputs);

  auto error = [](const std::string& body) {
    return Error(ParseHttpInferRequest(body, std::nullopt).status());
  };
  EXPECT_EQ(error("{\"inputs\": "), "request body: not valid JSON");
  EXPECT_EQ(error("[]"), "request body: must be a JSON object");
  EXPECT_EQ(error("{}"), "inputs: must be a list of tensors");
  EXPECT_EQ(error(R"({"inputs":[{"name":"text","shape":[1],"data":["a"]}]})"),
            "inputs[0].datatype: required");
  EXPECT_EQ(error(R"({"inputs":[{"name":"text","datatype":"BYTES","shape":["1"],"data":["a"]}]})"),
            "inputs[0].shape: sizes must be integers");
  EXPECT_EQ(error(R"({"inputs":[{"name":"text","datatype":"BYTES","shape":[2],"data":["a"]}]})"),
            "inputs[0].data: 1 elements, the shape says 2");
  EXPECT_EQ(error(R"({"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":[1]}]})"),
            "inputs[0].data: BYTES data must be strings");
  EXPECT_EQ(error(R"({"id":3,"inputs":[]})"), "id: must be a string");
  EXPECT_EQ(Error(ParseHttpInferRequest(header, 999).status()),
            "Inference-Header-Content-Length: not within the body");
  EXPECT_EQ(Error(ParseHttpInferRequest(header + EncodeBytes({"ab", "c"}) + "x",
                                        static_cast<int64_t>(header.size()))
                      .status()),
            "request body: binary data that no input claims");
}

TEST(OipHttpCodecTest, RepliesInJsonOrBinaryAsAsked) {
  std::vector<OutputTensor> outputs = {{"probabilities", "FP32", {1, 2}, {0.5f, 0.5f}, {}},
                                       {"label", "BYTES", {1}, {}, {"pos"}}};
  HttpInferRequest json_request;
  json_request.id = "x";
  EncodedReply json = EncodeHttpInferReply("m", "2", outputs, json_request);
  EXPECT_FALSE(json.header_length.has_value());
  EXPECT_EQ(json.body,
            R"({"id":"x","model_name":"m","model_version":"2","outputs":[{"data":[0.5,0.5],)"
            R"("datatype":"FP32","name":"probabilities","shape":[1,2]},{"data":["pos"],)"
            R"("datatype":"BYTES","name":"label","shape":[1]}]})");
  HttpInferRequest binary_request;
  binary_request.outputs = {{"label", true}};
  EncodedReply binary = EncodeHttpInferReply("m", "2", {outputs[1]}, binary_request);
  ASSERT_TRUE(binary.header_length.has_value());
  EXPECT_EQ(binary.body.substr(static_cast<size_t>(*binary.header_length)), EncodeBytes({"pos"}));
}

}  // namespace
}  // namespace berth::server::oip
