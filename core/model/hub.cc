// Hub downloads with libcurl: HEAD for the commit and blob id, then a (resumed) GET into blobs/.
#include "core/model/hub.h"

#include <curl/curl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "core/model/pooling_files.h"
#include "core/util/digest.h"
#include "core/util/files.h"
#include "core/util/status_macros.h"

namespace berth {
namespace {

const char* Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

bool ValidPart(absl::string_view s) {
  if (s.empty() || s.size() > 96 || s == "." || s == ".." || absl::StrContains(s, ".."))
    return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  }
  return true;
}

struct HeadResult {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names, first response only
};

size_t HeaderCallback(char* data, size_t size, size_t n, void* user) {
  auto* h = static_cast<HeadResult*>(user);
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) return size * n;
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, colon)));
    std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    h->headers.emplace(std::move(key), std::move(value));
  }
  return size * n;
}

struct Curl {
  CURL* handle = curl_easy_init();
  curl_slist* headers = nullptr;
  ~Curl() {
    if (headers) curl_slist_free_all(headers);
    if (handle) curl_easy_cleanup(handle);
  }
};

void CommonOptions(Curl& c, const std::string& url, const HubOptions& o) {
  curl_easy_setopt(c.handle, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.handle, CURLOPT_CONNECTTIMEOUT, o.timeout_seconds);
  curl_easy_setopt(c.handle, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c.handle, CURLOPT_LOW_SPEED_TIME, o.timeout_seconds);
  curl_easy_setopt(c.handle, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.handle, CURLOPT_USERAGENT, "berth/0.1");
  if (!o.token.empty()) {
    c.headers = curl_slist_append(c.headers, ("Authorization: Bearer " + o.token).c_str());
  }
  if (c.headers) curl_easy_setopt(c.handle, CURLOPT_HTTPHEADER, c.headers);
}

// HEAD without following redirects: a 302 to the LFS store still carries X-Linked-Etag.
absl::StatusOr<HeadResult> Head(const std::string& url, const HubOptions& o) {
  Curl c;
  if (!c.handle) return absl::InternalError("curl_easy_init failed");
  CommonOptions(c, url, o);
  HeadResult r;
  curl_easy_setopt(c.handle, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(c.handle, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c.handle, CURLOPT_HEADERFUNCTION, HeaderCallback);
  curl_easy_setopt(c.handle, CURLOPT_HEADERDATA, &r);
  CURLcode rc = curl_easy_perform(c.handle);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("cannot reach ", url, ": ", curl_easy_strerror(rc)));
  }
  curl_easy_getinfo(c.handle, CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

struct Sink {
  FILE* f;
  int64_t done;
  int64_t total;
  const HubOptions* o;
  const std::string* file;
};

size_t WriteCallback(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  size_t w = std::fwrite(data, size, n, s->f);
  s->done += static_cast<int64_t>(w * size);
  if (s->o->on_progress) s->o->on_progress(*s->file, s->done, s->total);
  return w * size;
}

// GET into `path`, continuing an existing partial file with a Range request.
absl::Status Get(const std::string& url, const std::string& path, int64_t total,
                 const std::string& name, const HubOptions& o) {
  struct stat st;
  int64_t have = ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
  if (total > 0 && have > total) {
    ::unlink(path.c_str());
    have = 0;
  }
  FILE* f = std::fopen(path.c_str(), have > 0 ? "ab" : "wb");
  if (f == nullptr) return absl::PermissionDeniedError(absl::StrCat("cannot write ", path));
  Curl c;
  CommonOptions(c, url, o);
  Sink sink{f, have, total, &o, &name};
  curl_easy_setopt(c.handle, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c.handle, CURLOPT_WRITEFUNCTION, WriteCallback);
  curl_easy_setopt(c.handle, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c.handle, CURLOPT_FAILONERROR, 1L);
  if (have > 0)
    curl_easy_setopt(c.handle, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(have));
  CURLcode rc = curl_easy_perform(c.handle);
  long status = 0;
  curl_easy_getinfo(c.handle, CURLINFO_RESPONSE_CODE, &status);
  const bool flushed = std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  std::fclose(f);
  if (rc == CURLE_RANGE_ERROR || (have > 0 && status == 200)) {
    // The server ignored the range: start over.
    ::unlink(path.c_str());
    if (have > 0) return Get(url, path, total, name, o);
  }
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("download of ", url, " failed after ", sink.done,
                                               " bytes: ", curl_easy_strerror(rc),
                                               " (run again to resume)"));
  }
  if (!flushed) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> HashFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  Sha256 h;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) h.Update(buf, n);
  std::fclose(f);
  return h.HexDigest();
}

std::string CleanEtag(std::string e) {
  if (absl::StartsWith(e, "W/")) e = e.substr(2);
  absl::StripAsciiWhitespace(&e);
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

bool IsSha256Hex(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string RepoFolder(const HubRef& ref) {
  return "models--" + absl::StrReplaceAll(ref.repo, {{"/", "--"}});
}

// The snapshot a cached revision points to, if it holds a config.json.
std::string CachedSnapshot(const std::string& repo_dir, const std::string& revision) {
  std::string commit = revision;
  auto ref = ReadFileToString(JoinPath(repo_dir, "refs/" + revision));
  if (ref.ok()) commit = std::string(absl::StripAsciiWhitespace(*ref));
  std::string snap = JoinPath(repo_dir, "snapshots/" + commit);
  return IsRegularFile(JoinPath(snap, "config.json")) ? snap : "";
}

struct FileSpec {
  const char* name;
  bool required;
  bool weights = false;  // one of the weights files: the first found is fetched, the rest skipped
};

}  // namespace

HubOptions HubOptions::FromEnvironment() {
  HubOptions o;
  if (const char* e = Env("HF_ENDPOINT")) o.endpoint = e;
  while (!o.endpoint.empty() && o.endpoint.back() == '/') o.endpoint.pop_back();
  if (const char* c = Env("HF_HUB_CACHE")) {
    o.cache_dir = c;
  } else if (const char* h = Env("HF_HOME")) {
    o.cache_dir = JoinPath(h, "hub");
  } else if (const char* x = Env("XDG_CACHE_HOME")) {
    o.cache_dir = JoinPath(x, "huggingface/hub");
  } else {
    o.cache_dir = JoinPath(Env("HOME") ? Env("HOME") : "/tmp", ".cache/huggingface/hub");
  }
  if (const char* t = Env("HF_TOKEN")) o.token = t;
  if (const char* off = Env("HF_HUB_OFFLINE")) {
    std::string v = absl::AsciiStrToLower(off);
    o.offline = v == "1" || v == "true" || v == "yes" || v == "on";
  }
  return o;
}

absl::StatusOr<HubRef> ParseHubId(absl::string_view id) {
  HubRef ref;
  absl::string_view name = id;
  size_t at = id.find('@');
  if (at != absl::string_view::npos) {
    name = id.substr(0, at);
    ref.revision = std::string(id.substr(at + 1));
    if (!ValidPart(ref.revision)) {
      return absl::InvalidArgumentError(absl::StrCat("'", id, "': invalid revision"));
    }
  }
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.empty() || parts.size() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", id, "' is not a Hub id (name or org/name[@revision])"));
  }
  for (absl::string_view p : parts) {
    if (!ValidPart(p)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", id, "' is not a Hub id (name or org/name[@revision])"));
    }
  }
  ref.repo = std::string(name);
  return ref;
}

absl::StatusOr<std::string> DownloadModel(const HubRef& ref, const HubOptions& o) {
  static const bool curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!curl_ready) return absl::InternalError("libcurl failed to initialise");
  const std::string repo_dir = JoinPath(o.cache_dir, RepoFolder(ref));
  if (o.offline) {
    std::string snap = CachedSnapshot(repo_dir, ref.revision);
    if (snap.empty()) {
      return absl::NotFoundError(absl::StrCat(ref.repo, "@", ref.revision, " is not in the cache ",
                                              o.cache_dir, " and HF_HUB_OFFLINE is set"));
    }
    return snap;
  }
  // The weights as from_pretrained prefers them: model.safetensors, else pytorch_model.bin.
  const FileSpec files[] = {{"config.json", true},
                            {"model.safetensors", false, true},
                            {"pytorch_model.bin", false, true},
                            {"tokenizer_config.json", false},
                            {"special_tokens_map.json", false},
                            {"vocab.txt", false},
                            {"tokenizer.json", false},
                            {"vocab.json", false},
                            {"merges.txt", false},
                            {"sentencepiece.bpe.model", false},
                            {"added_tokens.json", false},
                            // sentence-transformers' pooling (core/model/pooling_files.h)
                            {kPoolingFiles[0], false},
                            {kPoolingFiles[1], false},
                            {kPoolingFiles[2], false}};
  static_assert(std::size(kPoolingFiles) == 3, "every pooling file is fetched");
  std::string commit;
  bool have_tokenizer = false, have_weights = false;
  for (const FileSpec& f : files) {
    if (f.weights && have_weights) continue;
    const std::string url =
        absl::StrCat(o.endpoint, "/", ref.repo, "/resolve/", ref.revision, "/", f.name);
    auto head = Head(url, o);
    if (!head.ok()) {
      // No network: fall back to a complete cached snapshot, as huggingface_hub does.
      std::string snap = CachedSnapshot(repo_dir, ref.revision);
      if (!snap.empty()) return snap;
      return head.status();
    }
    if (head->status == 401 || head->status == 403) {
      return absl::PermissionDeniedError(
          absl::StrCat(url, ": HTTP ", head->status,
                       o.token.empty() ? " (set HF_TOKEN for private or gated models)" : ""));
    }
    if (head->status == 404) {
      if (f.required) {
        return absl::NotFoundError(
            absl::StrCat(ref.repo, "@", ref.revision, " has no ", f.name, " (", url, ")"));
      }
      continue;
    }
    if (head->status >= 400 || head->status < 200) {
      return absl::UnavailableError(absl::StrCat(url, ": HTTP ", head->status));
    }
    auto& h = head->headers;
    std::string this_commit = h.count("x-repo-commit") ? h["x-repo-commit"] : "";
    if (this_commit.empty())
      return absl::UnavailableError(absl::StrCat(url, ": no X-Repo-Commit header"));
    if (!ValidPart(this_commit))
      return absl::UnavailableError(absl::StrCat(url, ": bad X-Repo-Commit"));
    if (commit.empty()) commit = this_commit;
    std::string etag = CleanEtag(h.count("x-linked-etag") ? h["x-linked-etag"]
                                                          : (h.count("etag") ? h["etag"] : ""));
    if (etag.empty() || !ValidPart(etag))
      return absl::UnavailableError(absl::StrCat(url, ": no usable ETag"));
    int64_t size = 0;
    const std::string size_header = h.count("x-linked-size")    ? h["x-linked-size"]
                                    : h.count("content-length") ? h["content-length"]
                                                                : "0";
    size = std::atoll(size_header.c_str());

    const std::string blobs = JoinPath(repo_dir, "blobs");
    const std::string snapshot = JoinPath(repo_dir, "snapshots/" + commit);
    RETURN_IF_ERROR(MakeDirectories(blobs));
    RETURN_IF_ERROR(MakeDirectories(snapshot));
    const std::string blob = JoinPath(blobs, etag);
    if (!IsRegularFile(blob)) {
      const std::string partial = blob + ".incomplete";
      RETURN_IF_ERROR(Get(url, partial, size, f.name, o));
      struct stat st;
      const int64_t got = ::stat(partial.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
      if (size > 0 && got != size) {
        return absl::DataLossError(
            absl::StrCat(url, ": got ", got, " bytes, expected ", size, " (run again to resume)"));
      }
      if (IsSha256Hex(etag)) {
        ASSIGN_OR_RETURN(std::string digest, HashFile(partial));
        if (digest != absl::AsciiStrToLower(etag)) {
          ::unlink(partial.c_str());
          return absl::DataLossError(absl::StrCat(url, ": SHA-256 ", digest, " does not match ",
                                                  etag, "; the partial download was removed"));
        }
      }
      if (std::rename(partial.c_str(), blob.c_str()) != 0) {
        return absl::InternalError(absl::StrCat("cannot move ", partial, " into the cache"));
      }
    }
    // The snapshot links to the blob relatively, as huggingface_hub does: up out of the
    // snapshot (and out of a nested file's folders) to the repository's blobs.
    const std::string link = JoinPath(snapshot, f.name);
    const std::string tmp_link = link + ".tmp";
    std::string up = "../../";
    for (const char* c = f.name; *c != '\0'; ++c) {
      if (*c == '/') up += "../";
    }
    const std::string name_dir = link.substr(0, link.rfind('/'));
    RETURN_IF_ERROR(MakeDirectories(name_dir));
    ::unlink(tmp_link.c_str());
    if (::symlink((up + "blobs/" + etag).c_str(), tmp_link.c_str()) != 0 ||
        std::rename(tmp_link.c_str(), link.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("cannot link ", link));
    }
    const absl::string_view name = f.name;
    if (name == "vocab.txt" || name == "tokenizer.json" || name == "merges.txt" ||
        name == "sentencepiece.bpe.model") {
      have_tokenizer = true;
    }
    have_weights = have_weights || f.weights;
  }
  if (!have_weights) {
    return absl::NotFoundError(absl::StrCat(
        ref.repo, "@", ref.revision, " has neither model.safetensors nor pytorch_model.bin"));
  }
  if (!have_tokenizer) {
    return absl::NotFoundError(absl::StrCat(
        ref.repo, "@", ref.revision,
        " has no tokenizer (vocab.txt, tokenizer.json, merges.txt or sentencepiece.bpe.model)"));
  }
  if (ref.revision != commit) {
    RETURN_IF_ERROR(MakeDirectories(JoinPath(repo_dir, "refs")));
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(repo_dir, "refs/" + ref.revision), commit));
  }
  return JoinPath(repo_dir, "snapshots/" + commit);
}

absl::StatusOr<std::string> ResolveModelPath(const std::string& model, const HubOptions& options) {
  if (IsDirectory(model)) return model;
  if (absl::StartsWith(model, "/") || absl::StartsWith(model, "./") ||
      absl::StartsWith(model, "../")) {
    return absl::NotFoundError(absl::StrCat("model directory '", model, "' does not exist"));
  }
  auto ref = ParseHubId(model);
  if (!ref.ok()) {
    return absl::NotFoundError(
        absl::StrCat("'", model, "' is neither a model directory nor a Hub id"));
  }
  return DownloadModel(*ref, options);
}

}  // namespace berth
