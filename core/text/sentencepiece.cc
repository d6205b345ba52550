// XLMRobertaTokenizer over the dlopen'd SentencePiece module.
#include "core/text/sentencepiece.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/text/sp_module/sp_module.h"
#include "core/text/unicode.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/status_macros.h"

namespace berth::text {
namespace {

// fairseq's dictionary order that XLM-R keeps in front of the SentencePiece ids.
constexpr int32_t kBos = 0, kPad = 1, kEos = 2, kUnk = 3, kOffset = 1;

struct Module {
  int (*abi_version)();
  void* (*load)(const char*, size_t, char*, size_t);
  void (*free_model)(void*);
  int (*piece_count)(void*);
  int (*encode)(void*, const char*, size_t, berth_sp_piece_fn, void*, char*, size_t);
  int (*piece_to_id)(void*, const char*, size_t);
  void (*id_to_piece)(void*, int, berth_sp_piece_fn, void*);
};

// RTLD_DEEPBIND keeps the module's bundled protobuf-lite apart from the process's protobuf
// (libtorch's and gRPC's 3.21). The sanitizer runtimes refuse RTLD_DEEPBIND, so sanitized builds
// load the module, built without sanitizers, into a link-map namespace of its own (dlmopen):
// it then has its own copies of everything it links, and only the plain-C interface is shared.
#if defined(__SANITIZE_ADDRESS__)
#define BERTH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BERTH_SANITIZED 1
#endif
#endif
void* OpenModule(const std::string& path) {
#ifdef BERTH_SANITIZED
  return ::dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
#else
  return ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
#endif
}

// Loads the module once per process: $BERTH_SP_MODULE, else beside the executable (or in
// ../lib/berth), else where the build put it.
absl::StatusOr<const Module*> LoadModule() {
  static std::once_flag once;
  static Module module;
  static absl::Status status;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("BERTH_SP_MODULE"); env != nullptr && *env != '\0')
      candidates.push_back(env);
    const std::string exe = ExecutableDir();
    if (!exe.empty()) {
      candidates.push_back(JoinPath(exe, "libberth_sentencepiece.so"));
      candidates.push_back(JoinPath(exe, "../lib/berth/libberth_sentencepiece.so"));
    }
#ifdef BERTH_SP_MODULE_PATH
    candidates.push_back(BERTH_SP_MODULE_PATH);
#endif
    void* handle = nullptr;
    std::string tried;
    for (const std::string& c : candidates) {
      if (!IsRegularFile(c)) {
        absl::StrAppend(&tried, tried.empty() ? "" : ", ", c);
        continue;
      }
      handle = OpenModule(c);
      if (handle != nullptr) break;
      absl::StrAppend(&tried, tried.empty() ? "" : ", ", c, " (", ::dlerror(), ")");
    }
    if (handle == nullptr) {
      status = absl::FailedPreconditionError(absl::StrCat(
          "the SentencePiece module libberth_sentencepiece.so was not found (tried: ", tried,
          "); set BERTH_SP_MODULE to its path"));
      return;
    }
    auto sym = [&](const char* name) { return ::dlsym(handle, name); };
    module.abi_version = reinterpret_cast<int (*)()>(sym("berth_sp_abi_version"));
    module.load =
        reinterpret_cast<void* (*)(const char*, size_t, char*, size_t)>(sym("berth_sp_load"));
    module.free_model = reinterpret_cast<void (*)(void*)>(sym("berth_sp_free"));
    module.piece_count = reinterpret_cast<int (*)(void*)>(sym("berth_sp_piece_count"));
    module.encode = reinterpret_cast<int (*)(void*, const char*, size_t, berth_sp_piece_fn, void*,
                                             char*, size_t)>(sym("berth_sp_encode"));
    module.piece_to_id =
        reinterpret_cast<int (*)(void*, const char*, size_t)>(sym("berth_sp_piece_to_id"));
    module.id_to_piece = reinterpret_cast<void (*)(void*, int, berth_sp_piece_fn, void*)>(
        sym("berth_sp_id_to_piece"));
    if (!module.abi_version || !module.load || !module.free_model || !module.piece_count ||
        !module.encode || !module.piece_to_id || !module.id_to_piece ||
        module.abi_version() != BERTH_SP_ABI_VERSION) {
      status = absl::FailedPreconditionError(
          "libberth_sentencepiece.so does not match this build of Berth");
    }
  });
  if (!status.ok()) return status;
  return &module;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Create(
    std::string model_bytes, SentencePieceOptions options) {
  ASSIGN_OR_RETURN(const Module* m, LoadModule());
  std::unique_ptr<SentencePieceTokenizer> t(new SentencePieceTokenizer());
  t->options_ = std::move(options);
  t->model_bytes_ = std::move(model_bytes);
  char err[512] = {0};
  t->model_ = m->load(t->model_bytes_.data(), t->model_bytes_.size(), err, sizeof(err));
  if (t->model_ == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("not a valid SentencePiece model: ", err));
  }
  t->piece_count_ = m->piece_count(t->model_);
  const int32_t mask_id = t->piece_count_ + kOffset;
  const SentencePieceOptions& o = t->options_;
  // The specials, with HF's defaults: <mask> swallows the whitespace on its left.
  std::vector<SpecialToken> specials = {{o.bos_token, kBos, false, false},
                                        {o.pad_token, kPad, false, false},
                                        {o.eos_token, kEos, false, false},
                                        {o.unk_token, kUnk, false, false},
                                        {o.mask_token, mask_id, true, false}};
  for (const AddedToken& a : o.added_tokens) {
    auto it = std::find_if(specials.begin(), specials.end(),
                           [&](const SpecialToken& s) { return s.content == a.content; });
    if (it != specials.end()) {
      it->lstrip = a.lstrip;
      it->rstrip = a.rstrip;
    } else if (a.id) {
      specials.push_back({a.content, *a.id, a.lstrip, a.rstrip});
    }
  }
  SortLongestFirst(&specials);
  t->specials_ = std::move(specials);
  t->layout_.cls_id = kBos;
  t->layout_.sep_id = kEos;
  t->layout_.pad_id = kPad;
  t->layout_.unk_id = kUnk;
  t->layout_.separators_between_pair = 2;
  t->layout_.second_segment_type_id = 0;
  return t;
}

SentencePieceTokenizer::~SentencePieceTokenizer() {
  if (model_ != nullptr) {
    auto m = LoadModule();
    if (m.ok()) (*m)->free_model(model_);
  }
}

int32_t SentencePieceTokenizer::PieceId(absl::string_view piece) const {
  const Module* m = *LoadModule();
  const int sp_id = m->piece_to_id(model_, piece.data(), piece.size());
  return sp_id != 0 ? sp_id + kOffset : kUnk;  // SentencePiece's unk is id 0
}

absl::Status SentencePieceTokenizer::EncodeChunk(absl::string_view chunk, std::vector<int32_t>* ids,
                                                 std::vector<std::string>* pieces) const {
  if (chunk.empty()) return absl::OkStatus();
  const Module* m = *LoadModule();
  struct Out {
    const SentencePieceTokenizer* self;
    std::vector<int32_t>* ids;
    std::vector<std::string>* pieces;
  } out{this, ids, pieces};
  char err[512] = {0};
  const int rc = m->encode(
      model_, chunk.data(), chunk.size(),
      [](const char* piece, size_t len, int sp_id, void* user) {
        auto* o = static_cast<Out*>(user);
        o->ids->push_back(sp_id != 0 ? sp_id + kOffset : kUnk);
        if (o->pieces != nullptr) o->pieces->emplace_back(piece, len);
      },
      &out, err, sizeof(err));
  if (rc != 0) return absl::InvalidArgumentError(absl::StrCat("SentencePiece: ", err));
  return absl::OkStatus();
}

absl::Status SentencePieceTokenizer::Tokenize(absl::string_view text, InvalidUtf8 invalid_utf8,
                                              std::vector<int32_t>* ids,
                                              std::vector<std::string>* pieces) const {
  // Split around the special tokens (leftmost, longest), as transformers' trie does.
  return TokenizeAroundSpecialTokens(
      text, invalid_utf8, specials_, ids, pieces,
      [&](const std::string& plain) { return EncodeChunk(plain, ids, pieces); });
}

std::string SentencePieceTokenizer::IdToToken(int32_t id) const {
  for (const SpecialToken& s : specials_) {
    if (s.id == id) return s.content;
  }
  std::string out;
  (*LoadModule())
      ->id_to_piece(
          model_, id - kOffset,
          [](const char* piece, size_t len, int, void* user) {
            static_cast<std::string*>(user)->assign(piece, len);
          },
          &out);
  return out;
}

std::optional<int32_t> SentencePieceTokenizer::TokenToId(absl::string_view token) const {
  for (const SpecialToken& s : specials_) {
    if (s.content == token) return s.id;
  }
  const int32_t id = PieceId(token);
  if (id == kUnk) return std::nullopt;
  return id;
}

absl::Status SentencePieceTokenizer::Save(const std::string& dir) const {
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "sentencepiece.bpe.model"), model_bytes_));
  const SentencePieceOptions& o = options_;
  Json special = {{"bos_token", o.bos_token},
                  {"eos_token", o.eos_token},
                  {"unk_token", o.unk_token},
                  {"sep_token", o.eos_token},
                  {"pad_token", o.pad_token},
                  {"cls_token", o.bos_token},
                  {"mask_token",
                   {{"content", o.mask_token},
                    {"lstrip", true},
                    {"normalized", true},
                    {"rstrip", false},
                    {"single_word", false}}}};
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "special_tokens_map.json"), DumpJson(special)));
  Json config = special;
  config["mask_token"] = o.mask_token;
  config["tokenizer_class"] = "XLMRobertaTokenizer";
  config["model_max_length"] = o.model_max_length;
  config["clean_up_tokenization_spaces"] = true;
  if (o.truncation_side == TruncationSide::kLeft) config["truncation_side"] = "left";
  config["added_tokens_decoder"] = AddedTokensDecoder(specials_);
  return WriteFileAtomically(JoinPath(dir, "tokenizer_config.json"), DumpJson(config));
}

bool SentencePieceTokenizer::IsSpecialId(int32_t id) const {
  for (const SpecialToken& t : specials_) {
    if (t.id == id) return true;
  }
  return false;
}

std::string SentencePieceTokenizer::DecodeTokens(const std::vector<std::string>& tokens) const {
  static constexpr absl::string_view kSpace = "\xe2\x96\x81";  // U+2581
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    out += absl::StrReplaceAll(tokens[i], {{kSpace, i == 0 ? "" : " "}});
  }
  return out;
}

}  // namespace berth::text
