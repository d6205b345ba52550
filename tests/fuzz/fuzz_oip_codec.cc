// libFuzzer target: the Open Inference Protocol's HTTP request parsing (server/http/
// oip_codec.h): JSON, with or without the binary tensor extension, and BYTES in binary.
// Input: two bytes of Inference-Header-Content-Length (0xffff: all JSON), then the body.
// Accepted requests must hold, per input, as many elements as its shape says (BYTES) and no
// more than kMaxElements; their BYTES must survive a binary round trip, and the reply encoder
// must take whatever the parse gave it.
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/http/oip_codec.h"
#include "tests/fuzz/fuzz_util.h"

namespace oip = berth::server::oip;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int length = data[0] | data[1] << 8;
  const std::optional<int64_t> header =
      length == 0xffff ? std::nullopt : std::optional<int64_t>(length);
  const absl::string_view body = berth::fuzz::AsText(data + 2, size - 2);
  auto r = oip::ParseHttpInferRequest(body, header);
  if (!r.ok()) {
    berth::fuzz::CheckError(r.status());
    return 0;
  }
  std::vector<oip::OutputTensor> outputs;
  for (const oip::InputTensor& t : r->inputs) {
    auto count = oip::ElementCount(t.shape, "shape");
    BERTH_FUZZ_CHECK(count.ok() && *count <= oip::kMaxElements, t.name);
    if (t.datatype != "BYTES") {
      BERTH_FUZZ_CHECK(t.bytes.empty(), "non-BYTES data is not read");
      continue;
    }
    BERTH_FUZZ_CHECK(static_cast<int64_t>(t.bytes.size()) == *count,
                     absl::StrCat(t.bytes.size(), " vs ", *count));
    auto back = oip::DecodeBytes(oip::EncodeBytes(t.bytes), *count, "round trip");
    BERTH_FUZZ_CHECK(back.ok() && *back == t.bytes, "BYTES round trip");
    outputs.push_back({t.name, "BYTES", t.shape, {}, t.bytes});
  }
  const oip::EncodedReply reply = oip::EncodeHttpInferReply("m", "1", outputs, *r);
  BERTH_FUZZ_CHECK(!reply.body.empty(), "reply");
  return 0;
}
