// Importing existing classifiers (tar extraction, staging, validation, registration) and listing
// a version's files for export.
#include "core/service/model_import.h"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "core/infer/sequence_classifier.h"
#include "core/model/hub.h"
#include "core/model/model_dir.h"
#include "core/model/pooling_files.h"
#include "core/util/digest.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/log.h"
#include "core/util/status_macros.h"

namespace berth::service {
namespace {

constexpr const char* kModelFiles[] = {"config.json", "model.safetensors", "pytorch_model.bin",
                                       "tokenizer.json", "tokenizer_config.json",
                                       "special_tokens_map.json", "vocab.txt", "vocab.json",
                                       "merges.txt", "sentencepiece.bpe.model", "added_tokens.json",
                                       // Berth's own: the version's description and its
                                       // evaluation, so that an export imported elsewhere
                                       // keeps them.
                                       "berth.json", "metrics.json"};

// What an imported version keeps of the berth.json it arrived with (an export of a Berth
// version): its evaluation and how it was trained. Its labels and type come from the model.
constexpr const char* kCarriedMetadata[] = {"metrics", "base_model", "train_loss", "updates"};

absl::Status TarError(const std::string& member, const std::string& why) {
  return absl::InvalidArgumentError(member.empty()
                                        ? absl::StrCat("archive: ", why)
                                        : absl::StrCat("archive: member '", member, "': ", why));
}

// A tar header's numeric field: octal text, or GNU's base-256 when the top bit is set.
absl::StatusOr<uint64_t> TarNumber(absl::string_view field, const std::string& member,
                                   const char* what) {
  if (!field.empty() && (static_cast<uint8_t>(field[0]) & 0x80)) {
    if (static_cast<uint8_t>(field[0]) != 0x80) return TarError(member, absl::StrCat("bad ", what));
    uint64_t v = 0;
    for (size_t i = 1; i < field.size(); ++i) {
      if (v >> 56) return TarError(member, absl::StrCat(what, " is too large"));
      v = (v << 8) | static_cast<uint8_t>(field[i]);
    }
    return v;
  }
  uint64_t v = 0;
  bool any = false;
  for (char c : field) {
    if (c == '\0' || c == ' ') {
      if (any) break;
      continue;
    }
    if (c < '0' || c > '7') return TarError(member, absl::StrCat("bad ", what));
    if (v >> 60) return TarError(member, absl::StrCat(what, " is too large"));
    v = v * 8 + static_cast<uint64_t>(c - '0');
    any = true;
  }
  return v;
}

std::string CString(absl::string_view field) {
  return std::string(field.substr(0, std::min(field.find('\0'), field.size())));
}

// PAX extended header records: "LEN key=value\n" ...; returns path and size when present.
absl::Status ParsePax(absl::string_view body, const std::string& member,
                      std::map<std::string, std::string>* out) {
  while (!body.empty()) {
    const size_t space = body.find(' ');
    uint64_t len = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtoi(body.substr(0, space), &len) ||
        len <= space + 1 || len > body.size() || body[len - 1] != '\n') {
      return TarError(member, "malformed PAX header");
    }
    const absl::string_view record = body.substr(space + 1, len - space - 2);
    const size_t eq = record.find('=');
    if (eq == absl::string_view::npos) return TarError(member, "malformed PAX record");
    (*out)[std::string(record.substr(0, eq))] = std::string(record.substr(eq + 1));
    body.remove_prefix(len);
  }
  return absl::OkStatus();
}

// A member's path made relative and checked: no absolute path, no "..", no empty name.
absl::StatusOr<std::string> SafeMemberPath(const std::string& raw) {
  if (raw.empty()) return TarError(raw, "empty name");
  if (raw[0] == '/') return TarError(raw, "absolute path");
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(raw, '/')) {
    if (p == "..") return TarError(raw, "path leaves the archive (\"..\")");
    if (p.empty() || p == ".") continue;
    parts.emplace_back(p);
  }
  if (raw.find('\\') != std::string::npos) return TarError(raw, "backslash in the path");
  return absl::StrJoin(parts, "/");
}

std::string RandomHex() {
  static std::mt19937_64 rng(std::random_device{}());
  static absl::Mutex mu;
  absl::MutexLock lock(&mu);
  return absl::StrCat(absl::Hex(rng(), absl::kZeroPad16));
}

// Copies `from` to `to` (atomically) in 1 MiB pieces.
absl::Status CopyFile(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", from));
  return WriteFileAtomically(to, [&](ByteSink& sink) -> absl::Status {
    std::string buf(1 << 20, '\0');
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      if (in.gcount() > 0) RETURN_IF_ERROR(sink.Append(buf.data(), in.gcount()));
    }
    if (in.bad()) return absl::DataLossError(absl::StrCat("reading ", from, " failed"));
    return absl::OkStatus();
  });
}

std::string RealPath(const std::string& path) {
  char resolved[PATH_MAX];
  return ::realpath(path.c_str(), resolved) != nullptr ? std::string(resolved) : "";
}

// Every file a version keeps: the model's (flat) and sentence-transformers' pooling files (one
// of them in a folder).
std::vector<std::string> AllModelFiles() {
  std::vector<std::string> names(std::begin(kModelFiles), std::end(kModelFiles));
  names.insert(names.end(), std::begin(kPoolingFiles), std::end(kPoolingFiles));
  return names;
}

// Writes `dir`/`name` with `write`, making the folder of a nested name first.
absl::Status WriteModelFile(const std::string& dir, const std::string& name,
                            const std::function<absl::Status(const std::string&)>& write) {
  const std::string path = JoinPath(dir, name);
  const size_t slash = name.rfind('/');
  if (slash != std::string::npos)
    RETURN_IF_ERROR(MakeDirectories(JoinPath(dir, name.substr(0, slash))));
  return write(path);
}

// Copies the model files of `dir` into `staging`. With `confine`, a file that resolves (through
// symbolic links) outside `dir` is refused.
absl::Status CopyModelFiles(const std::string& dir, const std::string& staging, bool confine,
                            const std::string& field) {
  const std::string root = RealPath(dir);
  for (const std::string& name : AllModelFiles()) {
    const std::string path = JoinPath(dir, name);
    if (!IsRegularFile(path)) continue;
    if (confine && !absl::StartsWith(RealPath(path), root + "/")) {
      return absl::PermissionDeniedError(
          absl::StrCat(field, ": ", path, " links outside the directory"));
    }
    RETURN_IF_ERROR(
        WriteModelFile(staging, name, [&](const std::string& to) { return CopyFile(path, to); }));
  }
  return absl::OkStatus();
}

// Checks the labels, loads the staged model as the server will serve it (strictly: every
// parameter, the head's included, from the file), classifies one text; returns the metadata to
// record.
absl::StatusOr<Json> Validate(const std::string& staging) {
  ASSIGN_OR_RETURN(Json config, ReadJsonFile(JoinPath(staging, "config.json")));
  if (!config.is_object() || !config.contains("id2label") || !config["id2label"].is_object() ||
      config["id2label"].empty()) {
    return absl::InvalidArgumentError(
        "config.json: no id2label, so the model has no labels to classify into");
  }
  ASSIGN_OR_RETURN(auto model, SequenceClassifier::Load(staging));
  if (!model->has_head()) {
    return absl::InvalidArgumentError(
        "the weights have no classification head (no classifier.* tensors): this is a base "
        "model; fine-tune it with `berth train --base-model` instead");
  }
  // The warm-up: the first batch through every layer, as the engine's first request would be.
  ASSIGN_OR_RETURN(text::Encoding e, model->tokenizer().Encode("Berth warm-up", {}));
  RETURN_IF_ERROR(model->PredictBatch({e}).status());
  const ModelConfig& c = model->config();
  return Json{{"labels", c.id2label},
              {"multi_label", c.multi_label()},
              {"model_type", config.value("model_type", "")}};
}

}  // namespace

bool IsModelFile(absl::string_view name) {
  for (const char* f : kModelFiles) {
    if (name == f) return true;
  }
  for (const char* f : kPoolingFiles) {
    if (name == f) return true;
  }
  return false;
}

absl::Status ExtractModelTar(absl::string_view tar, const std::string& dir,
                             const TarLimits& limits) {
  struct Member {
    std::string path;
    absl::string_view data;
  };
  std::vector<Member> files;
  std::map<std::string, std::string> pax;  // applies to the next member
  std::string gnu_long_name;
  uint64_t total = 0;
  int members = 0;
  size_t pos = 0;
  bool ended = false;
  while (true) {
    if (tar.size() - pos < 512) {
      if (pos == tar.size() && pos > 0 && ended) break;
      return TarError("", pos == tar.size() && pos > 0 ? "truncated (no end-of-archive block)"
                                                       : "truncated (a header is cut short)");
    }
    const absl::string_view h = tar.substr(pos, 512);
    pos += 512;
    if (h.find_first_not_of('\0') == absl::string_view::npos) {
      ended = true;  // end of archive; anything after it (more zero blocks, padding) is ignored
      break;
    }
    if (++members > limits.max_members) {
      return TarError("", absl::StrCat("more than ", limits.max_members, " members"));
    }
    std::string name = CString(h.substr(0, 100));
    const std::string prefix = CString(h.substr(345, 155));
    if (h.substr(257, 5) == "ustar" && !prefix.empty()) name = prefix + "/" + name;
    if (!gnu_long_name.empty()) name = std::exchange(gnu_long_name, "");
    if (pax.count("path")) name = pax["path"];
    ASSIGN_OR_RETURN(uint64_t checksum, TarNumber(h.substr(148, 8), name, "checksum"));
    uint64_t sum = 0;
    for (size_t i = 0; i < 512; ++i) {
      sum += (i >= 148 && i < 156) ? ' ' : static_cast<uint8_t>(h[i]);
    }
    if (sum != checksum) return TarError(name, "bad header checksum (not a tar archive?)");
    ASSIGN_OR_RETURN(uint64_t size, TarNumber(h.substr(124, 12), name, "size"));
    if (pax.count("size") && !absl::SimpleAtoi(pax["size"], &size)) {
      return TarError(name, "bad PAX size");
    }
    pax.clear();
    if (size > tar.size() - pos) return TarError(name, "truncated (its data is cut short)");
    const absl::string_view data = tar.substr(pos, size);
    pos +=
        (size + 511) / 512 * 512 > tar.size() - pos ? tar.size() - pos : (size + 511) / 512 * 512;
    const char type = h[156];
    switch (type) {
      case 'x':
        RETURN_IF_ERROR(ParsePax(data, name, &pax));
        continue;
      case 'g':  // global PAX header: nothing in it matters here
        continue;
      case 'L':
        gnu_long_name = CString(data);
        continue;
      case '5': {  // a directory: its name must be safe too
        ASSIGN_OR_RETURN(std::string unused, SafeMemberPath(name));
        continue;
      }
      case '0':
      case '\0':
      case '7':
        break;
      case '1':
        return TarError(name, "hard links are not accepted");
      case '2':
        return TarError(name, "symbolic links are not accepted");
      case '3':
      case '4':
        return TarError(name, "device files are not accepted");
      case '6':
        return TarError(name, "FIFOs are not accepted");
      default:
        return TarError(name,
                        absl::StrCat("member type '", std::string(1, type), "' is not accepted"));
    }
    ASSIGN_OR_RETURN(std::string path, SafeMemberPath(name));
    total += size;
    if (total > static_cast<uint64_t>(limits.max_bytes)) {
      return TarError(
          name, absl::StrCat("the archive unpacks to more than ", limits.max_bytes, " bytes"));
    }
    files.push_back({path, data});
  }
  // The model files sit at the top level, or all inside one folder (`tar -cf m.tar model/`).
  std::string folder;
  bool top_level = false;
  for (const Member& m : files) {
    const size_t slash = m.path.find('/');
    if (slash == std::string::npos) {
      top_level |= IsModelFile(m.path);
    } else if (IsModelFile(m.path.substr(slash + 1)) && folder.empty()) {
      folder = m.path.substr(0, slash + 1);
    }
  }
  if (top_level) folder.clear();
  std::map<std::string, absl::string_view> chosen;
  for (const Member& m : files) {
    if (!absl::StartsWith(m.path, folder)) continue;
    const std::string rel = m.path.substr(folder.size());
    if (!IsModelFile(rel)) continue;
    if (!chosen.emplace(rel, m.data).second) return TarError(m.path, "appears twice");
  }
  if (!chosen.count("config.json")) {
    return TarError("", "no config.json at the top level or in one folder");
  }
  for (const auto& [rel, data] : chosen) {
    RETURN_IF_ERROR(WriteModelFile(
        dir, rel, [&, d = data](const std::string& to) { return WriteFileAtomically(to, d); }));
  }
  return absl::OkStatus();
}

absl::StatusOr<store::ModelRecord> ModelImporter::Import(const std::string& name,
                                                         const ImportSource& source) const {
  RETURN_IF_ERROR(store::ValidateName(name, "info.name"));
  std::string provenance;
  // Sources are checked before anything is written.
  std::string source_dir;
  switch (source.kind) {
    case ImportSource::Kind::kUnset:
      return absl::InvalidArgumentError("info: give one source: directory, hub_id or archive");
    case ImportSource::Kind::kDirectory: {
      if (!absl::StartsWith(source.location, "/")) {
        return absl::InvalidArgumentError("info.directory: must be an absolute path");
      }
      auto ref = policy_->Pin(source.location);
      if (!ref.ok()) {
        return absl::Status(
            ref.status().code(),
            absl::StrCat("info.directory: ",
                         absl::StripPrefix(ref.status().message(), "base_model: ")));
      }
      source_dir = ref->path;
      provenance = absl::StrCat("directory:", source_dir);
      break;
    }
    case ImportSource::Kind::kHub: {
      if (source.location.find('/') == std::string::npos || !ParseHubId(source.location).ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("info.hub_id: '", source.location, "' is not org/name[@revision]"));
      }
      auto dir = policy_->Resolve(source.location);
      if (!dir.ok()) {
        return absl::Status(dir.status().code(),
                            absl::StrCat("info.hub_id: ", absl::StripPrefix(dir.status().message(),
                                                                            "base_model: ")));
      }
      source_dir = *dir;
      const std::string commit = source_dir.substr(source_dir.find_last_of('/') + 1);
      provenance = absl::StrCat("hub:", ParseHubId(source.location)->repo, "@", commit);
      break;
    }
    case ImportSource::Kind::kArchive: {
      const std::string digest = Sha256Hex(source.archive);
      if (!source.sha256.empty() && absl::AsciiStrToLower(source.sha256) != digest) {
        return absl::InvalidArgumentError(absl::StrCat("sha256: the archive's SHA-256 is ", digest,
                                                       ", not ", source.sha256,
                                                       " (the upload was damaged or cut short)"));
      }
      provenance = absl::StrCat("archive:sha256:", digest);
      break;
    }
  }

  const std::string staging =
      JoinPath(store_->data_dir(), JoinPath("models", ".import-" + RandomHex()));
  RETURN_IF_ERROR(MakeDirectories(staging));
  auto staged = [&]() -> absl::StatusOr<store::ModelRecord> {
    if (source.kind == ImportSource::Kind::kArchive) {
      RETURN_IF_ERROR(ExtractModelTar(source.archive, staging, limits_));
    } else {
      const bool confine = source.kind == ImportSource::Kind::kDirectory;
      RETURN_IF_ERROR(
          CopyModelFiles(source_dir, staging, confine, confine ? "info.directory" : "info.hub_id"));
    }
    auto checked = Validate(staging);
    if (!checked.ok()) {
      // A model that does not load is the request's fault: the files were given.
      const absl::StatusCode code = checked.status().code() == absl::StatusCode::kInternal
                                        ? absl::StatusCode::kInvalidArgument
                                        : checked.status().code();
      return absl::Status(code,
                          absl::StrCat("the model does not load: ", checked.status().message()));
    }
    Json meta = *checked;
    if (auto earlier = ReadJsonFile(JoinPath(staging, "berth.json"));
        earlier.ok() && earlier->is_object()) {
      for (const char* key : kCarriedMetadata) {
        if (earlier->contains(key)) meta[key] = (*earlier)[key];
      }
    }
    meta["name"] = name;
    meta["imported_from"] = provenance;
    RETURN_IF_ERROR(WriteFileAtomically(JoinPath(staging, "berth.json"), meta.dump(2)));
    return store_->AddModelVersion(
        name, "", meta.dump(), [&](int64_t version) -> absl::StatusOr<std::string> {
          const std::string rel = JoinPath("models", JoinPath(name, std::to_string(version)));
          const std::string to = JoinPath(store_->data_dir(), rel);
          RETURN_IF_ERROR(MakeDirectories(to.substr(0, to.rfind('/'))));
          if (IsDirectory(to)) RETURN_IF_ERROR(RemoveAll(to));  // a crashed earlier attempt
          if (std::rename(staging.c_str(), to.c_str()) != 0) {
            return absl::InternalError(absl::StrCat("cannot move ", staging, " to ", to));
          }
          return rel;
        });
  }();
  if (!staged.ok() || IsDirectory(staging)) {
    LogIfError(RemoveAll(staging), "model.cleanup_failed", {{"path", staging}});
  }
  if (staged.ok()) {
    LogEvent("model.imported",
             {{"model", name}, {"version", std::to_string(staged->version)}, {"from", provenance}});
  }
  return staged;
}

int ModelImporter::SweepStaging(bool shared) const {
  const std::string models = JoinPath(store_->data_dir(), "models");
  auto names = ListDirectory(models);
  if (!names.ok()) return 0;
  const time_t day_ago = ::time(nullptr) - 24 * 3600;
  int swept = 0;
  for (const std::string& n : *names) {
    const std::string path = JoinPath(models, n);
    struct stat st;
    if (!absl::StartsWith(n, ".import-") || ::lstat(path.c_str(), &st) != 0 ||
        !S_ISDIR(st.st_mode) || (shared && st.st_mtime > day_ago)) {
      continue;
    }
    if (RemoveAll(path).ok()) ++swept;
    LogEvent("model.import_staging_swept", {{"path", path}});
  }
  return swept;
}

absl::StatusOr<std::vector<ModelFile>> ListModelFiles(const store::Store& store,
                                                      const store::ModelRecord& record) {
  const std::string dir = JoinPath(store.data_dir(), record.path);
  std::vector<ModelFile> out;
  for (const std::string& name : AllModelFiles()) {
    const std::string path = JoinPath(dir, name);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    out.push_back({name, path, static_cast<int64_t>(st.st_size)});
  }
  if (out.empty()) {
    return absl::NotFoundError(absl::StrCat(record.name, ":", record.version, " has no files"));
  }
  std::sort(out.begin(), out.end(),
            [](const ModelFile& a, const ModelFile& b) { return a.name < b.name; });
  return out;
}

}  // namespace berth::service
