// Hugging Face Hub downloads into the standard cache layout
// ($HF_HOME/hub/models--org--name/{blobs,snapshots/<commit>,refs/<revision>}), with libcurl.
#ifndef BERTH_CORE_MODEL_HUB_H_
#define BERTH_CORE_MODEL_HUB_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace berth {

struct HubOptions {
  std::string endpoint = "https://huggingface.co";  // HF_ENDPOINT
  std::string cache_dir;      // HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
  std::string token;          // HF_TOKEN (sent as a Bearer token)
  bool offline = false;       // HF_HUB_OFFLINE=1: use the cache only
  long timeout_seconds = 60;  // per request, for connecting and stalls
  // Called with (file, bytes so far, total bytes or 0) while downloading.
  std::function<void(const std::string&, int64_t, int64_t)> on_progress;

  static HubOptions FromEnvironment();
};

struct HubRef {
  std::string repo;               // "bert-base-uncased" or "org/name"
  std::string revision = "main";  // branch, tag or commit
};

// Parses "name", "org/name" or "org/name@revision"; rejects anything else (paths, "..", spaces).
absl::StatusOr<HubRef> ParseHubId(absl::string_view id);

// Makes sure the files of a classifier (config.json, model.safetensors or else
// pytorch_model.bin, the tokenizer files)
// are in the cache and returns the snapshot directory that holds them. Downloads are
// resumable (a partial blob continues with a Range request), size- and SHA-256-checked, and
// land in the cache only when complete. Offline, or when the Hub cannot be reached, a cached
// snapshot is used.
absl::StatusOr<std::string> DownloadModel(const HubRef& ref, const HubOptions& options);

// A model argument as users give it: an existing directory is used as is, anything else that
// parses as a Hub id is fetched into the cache.
absl::StatusOr<std::string> ResolveModelPath(const std::string& model, const HubOptions& options);

}  // namespace berth

#endif  // BERTH_CORE_MODEL_HUB_H_
