// libFuzzer target: config.json → ModelConfig (architecture, sizes, labels, family-specific
// names). Accepted configs must be usable: positive sizes, heads dividing the hidden size,
// at least one label.
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "core/model/config.h"
#include "core/util/json.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto json = berth::ParseJson(berth::fuzz::AsText(data, size), "config.json");
  if (!json.ok()) {
    berth::fuzz::CheckError(json.status());
    return 0;
  }
  auto config = berth::ModelConfig::FromJson(*json, "config.json");
  if (!config.ok()) {
    berth::fuzz::CheckError(config.status());
    return 0;
  }
  const berth::ModelConfig& c = *config;
  BERTH_FUZZ_CHECK(c.hidden_size > 0 && c.num_attention_heads > 0 && c.num_hidden_layers >= 0 &&
                       c.hidden_size % c.num_attention_heads == 0,
                   absl::StrCat(c.hidden_size, "/", c.num_attention_heads));
  BERTH_FUZZ_CHECK(c.vocab_size > 0 && c.max_position_embeddings > 0, "sizes");
  BERTH_FUZZ_CHECK(c.num_labels() > 0, "labels");
  // The config must survive a round trip through its own JSON.
  auto again = berth::ModelConfig::FromJson(c.ToJson(), "round trip");
  BERTH_FUZZ_CHECK(again.ok(), std::string(again.status().message()));
  return 0;
}
