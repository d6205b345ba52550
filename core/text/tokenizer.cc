// Special-token framing and truncation shared by all tokenizers, and loading from a model
// directory.
#include "core/text/tokenizer.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "core/text/bpe.h"
#include "core/text/sentencepiece.h"
#include "core/text/wordpiece.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/status_macros.h"

namespace berth::text {
namespace {

// Keeps `n` of `ids`, cutting on `side`.
void TruncateTo(std::vector<int32_t>* ids, size_t n, TruncationSide side) {
  if (ids->size() <= n) return;
  if (side == TruncationSide::kRight) {
    ids->resize(n);
  } else {
    ids->erase(ids->begin(), ids->end() - static_cast<std::ptrdiff_t>(n));
  }
}

// longest_first for a pair that is `budget` tokens too long, as the Hugging Face tokenizers
// library (every transformers tokenizer since v5, and every fast tokenizer before) does it:
// the shorter sequence is kept whole when the longer one can take the rest of the budget;
// otherwise both are cut to half the budget, the second sequence taking the odd token.
// (transformers' old pure-Python tokenizers gave the odd token to the first sequence.)
void LongestFirst(std::vector<int32_t>* a, std::vector<int32_t>* b, size_t budget,
                  TruncationSide side) {
  size_t n1 = a->size(), n2 = b->size();
  if (n1 + n2 <= budget) return;
  const bool swap = n1 > n2;
  if (swap) std::swap(n1, n2);
  n2 = n1 > budget ? n1 : std::max(n1, budget - n1);
  if (n1 + n2 > budget) {
    n1 = budget / 2;
    n2 = n1 + budget % 2;
  }
  if (swap) std::swap(n1, n2);
  TruncateTo(a, n1, side);
  TruncateTo(b, n2, side);
}

absl::StatusOr<int> EffectiveMaxLength(const Tokenizer& t, const EncodeOptions& o, bool pair) {
  int max_length = o.max_length > 0 ? o.max_length : t.model_max_length();
  if (o.max_length < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_length must be positive, got ", o.max_length));
  }
  if (o.truncation && max_length < t.NumSpecialTokens(pair)) {
    return absl::InvalidArgumentError(absl::StrCat("max_length ", max_length,
                                                   " leaves no room for the ",
                                                   t.NumSpecialTokens(pair), " special tokens"));
  }
  return max_length;
}

// Without truncation an encoding longer than max_length is refused, not silently returned.
absl::Status CheckFits(int32_t length, int max_length, const EncodeOptions& o) {
  if (o.truncation || length <= max_length) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("the input is ", length,
                                                 " tokens long, more than max_length ", max_length,
                                                 ", and truncation is off"));
}

}  // namespace

int Tokenizer::NumSpecialTokens(bool pair) const {
  return pair ? 2 + layout().separators_between_pair : 2;
}

Encoding Tokenizer::BuildInputs(const std::vector<int32_t>& a, const std::vector<int32_t>* b,
                                bool return_tokens) const {
  const SpecialTokenLayout& l = layout();
  Encoding e;
  size_t n = a.size() + (b ? b->size() : 0) + NumSpecialTokens(b != nullptr);
  e.input_ids.reserve(n);
  e.input_ids.push_back(l.cls_id);
  e.input_ids.insert(e.input_ids.end(), a.begin(), a.end());
  e.input_ids.push_back(l.sep_id);
  size_t first_len = e.input_ids.size();
  if (b != nullptr) {
    for (int i = 1; i < l.separators_between_pair; ++i) e.input_ids.push_back(l.sep_id);
    first_len = e.input_ids.size();
    e.input_ids.insert(e.input_ids.end(), b->begin(), b->end());
    e.input_ids.push_back(l.sep_id);
  }
  e.token_type_ids.assign(e.input_ids.size(), 0);
  for (size_t i = first_len; i < e.input_ids.size(); ++i) {
    e.token_type_ids[i] = l.second_segment_type_id;
  }
  e.attention_mask.assign(e.input_ids.size(), 1);
  if (return_tokens) {
    e.tokens.reserve(e.input_ids.size());
    for (int32_t id : e.input_ids) e.tokens.push_back(IdToToken(id));
  }
  e.num_tokens_untruncated = static_cast<int32_t>(e.input_ids.size());
  return e;
}

absl::StatusOr<Encoding> Tokenizer::Encode(absl::string_view text,
                                           const EncodeOptions& options) const {
  ASSIGN_OR_RETURN(int max_length, EffectiveMaxLength(*this, options, /*pair=*/false));
  std::vector<int32_t> ids;
  RETURN_IF_ERROR(Tokenize(text, options.invalid_utf8, &ids, nullptr));
  const int32_t untruncated = static_cast<int32_t>(ids.size()) + NumSpecialTokens(false);
  RETURN_IF_ERROR(CheckFits(untruncated, max_length, options));
  bool truncated = false;
  if (options.truncation) {
    size_t budget = static_cast<size_t>(max_length - NumSpecialTokens(false));
    if (ids.size() > budget) {
      truncated = true;
      if (options.side.value_or(truncation_side()) == TruncationSide::kRight) {
        ids.resize(budget);
      } else {
        ids.erase(ids.begin(), ids.end() - static_cast<std::ptrdiff_t>(budget));
      }
    }
  }
  Encoding e = BuildInputs(ids, nullptr, options.return_tokens);
  e.truncated = truncated;
  e.num_tokens_untruncated = untruncated;
  return e;
}

absl::StatusOr<Encoding> Tokenizer::EncodePair(absl::string_view text, absl::string_view text_pair,
                                               const EncodeOptions& options) const {
  ASSIGN_OR_RETURN(int max_length, EffectiveMaxLength(*this, options, /*pair=*/true));
  std::vector<int32_t> a, b;
  RETURN_IF_ERROR(Tokenize(text, options.invalid_utf8, &a, nullptr));
  RETURN_IF_ERROR(Tokenize(text_pair, options.invalid_utf8, &b, nullptr));
  const int32_t untruncated = static_cast<int32_t>(a.size() + b.size()) + NumSpecialTokens(true);
  RETURN_IF_ERROR(CheckFits(untruncated, max_length, options));
  bool truncated = false;
  if (options.truncation) {
    const TruncationSide side = options.side.value_or(truncation_side());
    const int64_t budget = static_cast<int64_t>(max_length) - NumSpecialTokens(true);
    truncated = untruncated > max_length;
    if (truncated) LongestFirst(&a, &b, static_cast<size_t>(std::max<int64_t>(budget, 0)), side);
  }
  Encoding e = BuildInputs(a, &b, options.return_tokens);
  e.truncated = truncated;
  e.num_tokens_untruncated = untruncated;
  return e;
}

namespace {

// Larger ids are refused: a vocabulary that size is a hostile file, not a model.
constexpr int64_t kMaxVocabularyId = 10000000;

// A special token in tokenizer_config.json / special_tokens_map.json is a string or an
// AddedToken object {"content": ...}.
absl::StatusOr<std::optional<std::string>> TokenContent(const Json& obj, const char* key,
                                                        const std::string& what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<std::string>();
  if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return std::optional<std::string>(c->get<std::string>());
  }
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": field '", key, "' must be a string or {\"content\": string}"));
}

absl::Status ApplySpecialTokens(const Json& j, const std::string& what, WordPieceOptions* o) {
  struct Field {
    const char* key;
    std::string* dst;
  } fields[] = {{"unk_token", &o->unk_token},
                {"sep_token", &o->sep_token},
                {"pad_token", &o->pad_token},
                {"cls_token", &o->cls_token},
                {"mask_token", &o->mask_token}};
  for (const Field& f : fields) {
    ASSIGN_OR_RETURN(std::optional<std::string> v, TokenContent(j, f.key, what));
    if (v) *f.dst = *v;
  }
  return absl::OkStatus();
}

// One added token's flags (an AddedToken object in tokenizer.json or tokenizer_config.json);
// `where` names it in errors.
absl::StatusOr<AddedToken> ParseAddedToken(const Json& value, int64_t id,
                                           const std::string& where) {
  if (id < 0 || id > kMaxVocabularyId) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": token id ", id, " is out of range"));
  }
  AddedToken t;
  t.content = value["content"].get<std::string>();
  t.id = static_cast<int32_t>(id);
  ASSIGN_OR_RETURN(std::optional<bool> lstrip, GetOptionalBool(value, "lstrip", where));
  ASSIGN_OR_RETURN(std::optional<bool> rstrip, GetOptionalBool(value, "rstrip", where));
  ASSIGN_OR_RETURN(std::optional<bool> special, GetOptionalBool(value, "special", where));
  t.lstrip = lstrip.value_or(false);
  t.rstrip = rstrip.value_or(false);
  t.special = special.value_or(true);
  return t;
}

absl::StatusOr<std::vector<AddedToken>> ParseAddedTokensDecoder(const Json& j,
                                                                const std::string& what) {
  std::vector<AddedToken> out;
  auto it = j.find("added_tokens_decoder");
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": 'added_tokens_decoder' must be an object"));
  }
  for (auto& [key, value] : it->items()) {
    int32_t id = 0;
    try {
      size_t used = 0;
      id = std::stoi(key, &used);
      if (used != key.size() || id < 0) throw std::invalid_argument(key);
    } catch (const std::exception&) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": added_tokens_decoder key '", key, "' is not a token id"));
    }
    if (!value.is_object() || !value.contains("content") || !value["content"].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": added_tokens_decoder[", key, "] needs a string 'content'"));
    }
    ASSIGN_OR_RETURN(
        AddedToken t,
        ParseAddedToken(value, id, absl::StrCat(what, ": added_tokens_decoder[", key, "]")));
    out.push_back(std::move(t));
  }
  return out;
}

// tokenizer_config.json's model_max_length and truncation_side.
absl::Status ReadLengthAndSide(const Json& c, const std::string& config_path, int* max_length,
                               TruncationSide* side) {
  ASSIGN_OR_RETURN(auto max_len, GetOptionalInt(c, "model_max_length", config_path));
  if (max_len && *max_len > 0) {
    *max_length = static_cast<int>(std::min<int64_t>(*max_len, 1 << 30));
  }
  ASSIGN_OR_RETURN(auto named, GetOptionalString(c, "truncation_side", config_path));
  if (named) {
    if (*named == "left") {
      *side = TruncationSide::kLeft;
    } else if (*named != "right") {
      return absl::InvalidArgumentError(
          absl::StrCat(config_path, ": truncation_side must be 'left' or 'right'"));
    }
  }
  return absl::OkStatus();
}

// The RoBERTa-style special tokens (XLM-R and RoBERTa) of a tokenizer_config.json or
// special_tokens_map.json object.
struct RobertaSpecialTokens {
  std::string *bos, *eos, *unk, *pad, *mask;
};
absl::Status ReadRobertaSpecialTokens(const Json& c, const std::string& path,
                                      const RobertaSpecialTokens& dst) {
  if (!c.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  const std::pair<const char*, std::string*> fields[] = {{"bos_token", dst.bos},
                                                         {"eos_token", dst.eos},
                                                         {"unk_token", dst.unk},
                                                         {"pad_token", dst.pad},
                                                         {"mask_token", dst.mask}};
  for (const auto& [key, out] : fields) {
    ASSIGN_OR_RETURN(std::optional<std::string> v, TokenContent(c, key, path));
    if (v) *out = *v;
  }
  return absl::OkStatus();
}

// The ids of a vocabulary of n entries are 0..n-1, each once, as tokenizers writes them: an id
// past the end would size the id table by a number the file merely claims (ten million ids for
// one entry), and a repeated one would make two tokens one. `ids[i]` is entry i's.
absl::Status CheckVocabularyIds(const std::vector<std::pair<std::string, int64_t>>& ids,
                                const std::string& where) {
  std::vector<const std::string*> seen(ids.size(), nullptr);
  for (const auto& [token, id] : ids) {
    if (id < 0 || id >= static_cast<int64_t>(ids.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": vocab entry '", token, "' has id ", id, ", but the vocabulary has ", ids.size(),
          " entries (ids 0 to ", static_cast<int64_t>(ids.size()) - 1, ")"));
    }
    if (seen[id] != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": vocab entries '", *seen[id],
                                                     "' and '", token, "' have the same id ", id));
    }
    seen[id] = &token;
  }
  return absl::OkStatus();
}

// Added tokens take the vocabulary's ids or the ones right after it.
absl::Status CheckAddedTokenIds(const std::vector<AddedToken>& added, size_t vocab_size,
                                const std::string& where) {
  const int64_t end = static_cast<int64_t>(vocab_size + added.size());
  for (const AddedToken& a : added) {
    if (a.id && *a.id >= end) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": added token '", a.content, "' has id ", *a.id, ", past the ",
                       vocab_size, " vocabulary entries and ", added.size(), " added tokens"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadWordPiece(const std::string& dir,
                                                         const TokenizerOverrides& overrides) {
  WordPieceOptions o;
  std::vector<std::string> vocab;
  const std::string vocab_path = JoinPath(dir, "vocab.txt");
  const std::string tok_json_path = JoinPath(dir, "tokenizer.json");
  const std::string config_path = JoinPath(dir, "tokenizer_config.json");
  const std::string map_path = JoinPath(dir, "special_tokens_map.json");

  if (IsRegularFile(vocab_path)) {
    ASSIGN_OR_RETURN(vocab, WordPieceTokenizer::ReadVocabFile(vocab_path));
  } else if (IsRegularFile(tok_json_path)) {
    // Only tokenizer.json: take the WordPiece vocabulary and the BertNormalizer settings.
    ASSIGN_OR_RETURN(Json tj, ReadJsonFile(tok_json_path));
    const Json* model = tj.contains("model") ? &tj["model"] : nullptr;
    if (model == nullptr || !model->is_object() || !model->contains("type") ||
        (*model)["type"] != "WordPiece" || !model->contains("vocab") ||
        !(*model)["vocab"].is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(tok_json_path, ": expected a WordPiece model with a 'vocab' object"));
    }
    std::vector<std::pair<std::string, int64_t>> ids;
    for (auto& [token, id] : (*model)["vocab"].items()) {
      if (!id.is_number_integer()) {
        return absl::InvalidArgumentError(
            absl::StrCat(tok_json_path, ": vocab entry '", token, "' has no valid id"));
      }
      ids.emplace_back(token, id.get<int64_t>());
    }
    RETURN_IF_ERROR(CheckVocabularyIds(ids, tok_json_path));
    vocab.resize(ids.size());
    for (auto& [token, id] : ids) vocab[id] = std::move(token);
    if (model->contains("unk_token") && (*model)["unk_token"].is_string()) {
      o.unk_token = (*model)["unk_token"].get<std::string>();
    }
    if (model->contains("max_input_chars_per_word") &&
        (*model)["max_input_chars_per_word"].is_number_integer()) {
      o.max_input_chars_per_word = (*model)["max_input_chars_per_word"].get<int>();
    }
    if (tj.contains("normalizer") && tj["normalizer"].is_object()) {
      const Json& n = tj["normalizer"];
      if (n.contains("type") && n["type"] == "BertNormalizer") {
        if (n.contains("lowercase") && n["lowercase"].is_boolean())
          o.do_lower_case = n["lowercase"];
        if (n.contains("strip_accents") && n["strip_accents"].is_boolean()) {
          o.strip_accents = n["strip_accents"].get<bool>();
        }
        if (n.contains("handle_chinese_chars") && n["handle_chinese_chars"].is_boolean()) {
          o.tokenize_chinese_chars = n["handle_chinese_chars"];
        }
      }
    }
    if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
      for (const Json& a : tj["added_tokens"]) {
        if (!a.is_object() || !a.contains("content") || !a["content"].is_string() ||
            !a.contains("id") || !a["id"].is_number_integer()) {
          continue;
        }
        ASSIGN_OR_RETURN(AddedToken t,
                         ParseAddedToken(a, a["id"].get<int64_t>(),
                                         absl::StrCat(tok_json_path, ": added_tokens")));
        o.added_tokens.push_back(std::move(t));
      }
    }
    RETURN_IF_ERROR(CheckAddedTokenIds(o.added_tokens, vocab.size(), tok_json_path));
  } else {
    return absl::NotFoundError(
        absl::StrCat(dir, ": no tokenizer found (expected vocab.txt or tokenizer.json)"));
  }

  if (IsRegularFile(map_path)) {
    ASSIGN_OR_RETURN(Json m, ReadJsonFile(map_path));
    if (!m.is_object())
      return absl::InvalidArgumentError(absl::StrCat(map_path, ": not a JSON object"));
    RETURN_IF_ERROR(ApplySpecialTokens(m, map_path, &o));
  }
  if (IsRegularFile(config_path)) {
    ASSIGN_OR_RETURN(Json c, ReadJsonFile(config_path));
    if (!c.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(config_path, ": not a JSON object"));
    }
    ASSIGN_OR_RETURN(auto lower, GetOptionalBool(c, "do_lower_case", config_path));
    if (lower) o.do_lower_case = *lower;
    ASSIGN_OR_RETURN(auto strip, GetOptionalBool(c, "strip_accents", config_path));
    if (strip) o.strip_accents = strip;
    ASSIGN_OR_RETURN(auto cjk, GetOptionalBool(c, "tokenize_chinese_chars", config_path));
    if (cjk) o.tokenize_chinese_chars = *cjk;
    ASSIGN_OR_RETURN(auto basic, GetOptionalBool(c, "do_basic_tokenize", config_path));
    if (basic) o.do_basic_tokenize = *basic;
    ASSIGN_OR_RETURN(auto cls, GetOptionalString(c, "tokenizer_class", config_path));
    if (cls && (*cls == "DistilBertTokenizer" || *cls == "DistilBertTokenizerFast")) {
      o.tokenizer_class = "DistilBertTokenizer";
    }
    RETURN_IF_ERROR(ReadLengthAndSide(c, config_path, &o.model_max_length, &o.truncation_side));
    RETURN_IF_ERROR(ApplySpecialTokens(c, config_path, &o));
    ASSIGN_OR_RETURN(std::vector<AddedToken> added, ParseAddedTokensDecoder(c, config_path));
    for (AddedToken& a : added) o.added_tokens.push_back(std::move(a));
  }
  if (overrides.do_lower_case) o.do_lower_case = *overrides.do_lower_case;

  auto created = WordPieceTokenizer::Create(std::move(vocab), std::move(o));
  if (!created.ok()) {
    return absl::Status(created.status().code(),
                        absl::StrCat(dir, ": ", created.status().message()));
  }
  return std::unique_ptr<Tokenizer>(std::move(created).value());
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePiece(const std::string& dir) {
  const std::string model_path = JoinPath(dir, "sentencepiece.bpe.model");
  const std::string config_path = JoinPath(dir, "tokenizer_config.json");
  SentencePieceOptions o;
  for (const std::string& path : {JoinPath(dir, "special_tokens_map.json"), config_path}) {
    if (!IsRegularFile(path)) continue;
    ASSIGN_OR_RETURN(Json c, ReadJsonFile(path));
    RETURN_IF_ERROR(ReadRobertaSpecialTokens(
        c, path, {&o.bos_token, &o.eos_token, &o.unk_token, &o.pad_token, &o.mask_token}));
    if (path != config_path) continue;
    RETURN_IF_ERROR(ReadLengthAndSide(c, config_path, &o.model_max_length, &o.truncation_side));
    ASSIGN_OR_RETURN(o.added_tokens, ParseAddedTokensDecoder(c, config_path));
  }
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(model_path));
  auto created = SentencePieceTokenizer::Create(std::move(bytes), std::move(o));
  if (!created.ok()) {
    return absl::Status(created.status().code(),
                        absl::StrCat(model_path, ": ", created.status().message()));
  }
  return std::unique_ptr<Tokenizer>(std::move(created).value());
}

// merges.txt: an optional "#version" line, then one "left right" pair per line.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ReadMergesFile(
    const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  std::vector<std::pair<std::string, std::string>> merges;
  size_t line_no = 0, start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && absl::StartsWith(line, "#version"))) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": expected two tokens separated by one space"));
    }
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  return merges;
}

absl::StatusOr<std::vector<std::pair<std::string, int32_t>>> ParseBpeVocab(
    const Json& v, const std::string& where) {
  if (!v.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": the vocabulary must be an object"));
  }
  std::vector<std::pair<std::string, int32_t>> vocab;
  vocab.reserve(v.size());
  for (auto& [token, id] : v.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxVocabularyId) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": vocab entry '", token, "' has no valid id"));
    }
    vocab.emplace_back(token, static_cast<int32_t>(id.get<int64_t>()));
  }
  std::vector<std::pair<std::string, int64_t>> ids(vocab.begin(), vocab.end());
  RETURN_IF_ERROR(CheckVocabularyIds(ids, where));
  return vocab;
}

// The ByteLevel pre-tokenizer of tokenizer.json, alone or inside a Sequence; null if none.
const Json* FindByteLevel(const Json& pre) {
  if (!pre.is_object()) return nullptr;
  if (pre.value("type", "") == "ByteLevel") return &pre;
  if (pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
      pre["pretokenizers"].is_array() && pre["pretokenizers"].size() == 1) {
    return FindByteLevel(pre["pretokenizers"][0]);
  }
  return nullptr;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> ReadByteLevelBpe(const std::string& dir,
                                                            const TokenizerOverrides& overrides);

// A field of the wrong type (a flag that is a string, say) is an error naming the directory,
// never an exception out of the loader.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadByteLevelBpe(const std::string& dir,
                                                            const TokenizerOverrides& overrides) {
  try {
    return ReadByteLevelBpe(dir, overrides);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": byte-level BPE files: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> ReadByteLevelBpe(const std::string& dir,
                                                            const TokenizerOverrides& overrides) {
  const std::string tok_json_path = JoinPath(dir, "tokenizer.json");
  const std::string vocab_path = JoinPath(dir, "vocab.json");
  const std::string merges_path = JoinPath(dir, "merges.txt");
  const std::string config_path = JoinPath(dir, "tokenizer_config.json");
  BpeOptions o;
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  if (IsRegularFile(tok_json_path)) {
    ASSIGN_OR_RETURN(Json tj, ReadJsonFile(tok_json_path));
    if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object() ||
        tj["model"].value("type", "") != "BPE") {
      return absl::InvalidArgumentError(absl::StrCat(tok_json_path, ": expected a BPE model"));
    }
    const Json& model = tj["model"];
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty()) {
        return absl::UnimplementedError(
            absl::StrCat(tok_json_path, ": BPE with a '", key, "' is not supported"));
      }
    }
    if (model.value("byte_fallback", false)) {
      return absl::UnimplementedError(
          absl::StrCat(tok_json_path, ": BPE with byte_fallback is not supported"));
    }
    if (tj.contains("normalizer") && !tj["normalizer"].is_null()) {
      return absl::UnimplementedError(
          absl::StrCat(tok_json_path,
                       ": a normalizer before byte-level BPE is not supported (RoBERTa has none)"));
    }
    const Json* byte_level =
        tj.contains("pre_tokenizer") ? FindByteLevel(tj["pre_tokenizer"]) : nullptr;
    if (byte_level == nullptr || !byte_level->value("use_regex", true)) {
      return absl::UnimplementedError(absl::StrCat(
          tok_json_path, ": only the ByteLevel pre-tokenizer (with its regex) is supported"));
    }
    o.add_prefix_space = byte_level->value("add_prefix_space", false);
    o.ignore_merges = model.value("ignore_merges", false);
    if (!model.contains("vocab")) {
      return absl::InvalidArgumentError(absl::StrCat(tok_json_path, ": the model has no vocab"));
    }
    ASSIGN_OR_RETURN(vocab, ParseBpeVocab(model["vocab"], tok_json_path));
    if (!model.contains("merges") || !model["merges"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(tok_json_path, ": the model has no merges"));
    }
    for (const Json& m : model["merges"]) {
      // "left right" (tokenizers before 0.20) or ["left", "right"].
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t space = s.find(' ');
        if (space != std::string::npos && space > 0 && space + 1 < s.size()) {
          merges.emplace_back(s.substr(0, space), s.substr(space + 1));
          continue;
        }
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
        continue;
      }
      return absl::InvalidArgumentError(
          absl::StrCat(tok_json_path, ": merge ", merges.size() + 1, " is not a pair of tokens"));
    }
    if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
      for (const Json& a : tj["added_tokens"]) {
        if (!a.is_object() || !a.contains("content") || !a["content"].is_string() ||
            !a.contains("id") || !a["id"].is_number_integer()) {
          return absl::InvalidArgumentError(absl::StrCat(
              tok_json_path, ": added_tokens entries need a string 'content' and an integer 'id'"));
        }
        ASSIGN_OR_RETURN(AddedToken t,
                         ParseAddedToken(a, a["id"].get<int64_t>(),
                                         absl::StrCat(tok_json_path, ": added_tokens")));
        o.added_tokens.push_back(std::move(t));
      }
    }
    RETURN_IF_ERROR(CheckAddedTokenIds(o.added_tokens, vocab.size(), tok_json_path));
  } else if (IsRegularFile(vocab_path) && IsRegularFile(merges_path)) {
    ASSIGN_OR_RETURN(Json v, ReadJsonFile(vocab_path));
    ASSIGN_OR_RETURN(vocab, ParseBpeVocab(v, vocab_path));
    ASSIGN_OR_RETURN(merges, ReadMergesFile(merges_path));
  } else {
    return absl::NotFoundError(absl::StrCat(
        dir,
        ": no byte-level BPE tokenizer found (expected tokenizer.json, or vocab.json and "
        "merges.txt)"));
  }
  for (const std::string& path : {JoinPath(dir, "special_tokens_map.json"), config_path}) {
    if (!IsRegularFile(path)) continue;
    ASSIGN_OR_RETURN(Json c, ReadJsonFile(path));
    RETURN_IF_ERROR(ReadRobertaSpecialTokens(
        c, path, {&o.bos_token, &o.eos_token, &o.unk_token, &o.pad_token, &o.mask_token}));
    // RobertaProcessing frames with cls and sep, which RoBERTa sets to bos and eos.
    ASSIGN_OR_RETURN(std::optional<std::string> cls, TokenContent(c, "cls_token", path));
    if (cls) o.bos_token = *cls;
    ASSIGN_OR_RETURN(std::optional<std::string> sep, TokenContent(c, "sep_token", path));
    if (sep) o.eos_token = *sep;
    if (path != config_path) continue;
    // transformers applies tokenizer_config.json's add_prefix_space over tokenizer.json's.
    ASSIGN_OR_RETURN(auto prefix, GetOptionalBool(c, "add_prefix_space", config_path));
    if (prefix) o.add_prefix_space = *prefix;
    RETURN_IF_ERROR(ReadLengthAndSide(c, config_path, &o.model_max_length, &o.truncation_side));
    ASSIGN_OR_RETURN(std::vector<AddedToken> added, ParseAddedTokensDecoder(c, config_path));
    for (AddedToken& a : added) o.added_tokens.push_back(std::move(a));
  }
  if (overrides.add_prefix_space) o.add_prefix_space = *overrides.add_prefix_space;
  auto created = ByteLevelBpeTokenizer::Create(std::move(vocab), std::move(merges), std::move(o));
  if (!created.ok()) {
    return absl::Status(created.status().code(),
                        absl::StrCat(dir, ": ", created.status().message()));
  }
  return std::unique_ptr<Tokenizer>(std::move(created).value());
}

// Whether the directory's tokenizer.json holds a BPE model (an unreadable one is not: the
// WordPiece loader then says what is wrong with it).
bool TokenizerJsonIsBpe(const std::string& dir) {
  auto tj = ReadJsonFile(JoinPath(dir, "tokenizer.json"));
  if (!tj.ok() || !tj->is_object() || !tj->contains("model")) return false;
  const Json& model = (*tj)["model"];
  return model.is_object() && model.contains("type") && model["type"] == "BPE";
}

}  // namespace

namespace {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFiles(const std::string& model_dir,
                                                              const TokenizerOverrides& overrides);

}  // namespace

std::string CleanUpTokenizationSpaces(std::string s, bool wordpiece_decoder) {
  // transformers' clean_up_tokenization; tokenizers' WordPiece decoder adds " do not".
  static const std::vector<std::pair<std::string, std::string>> kRules = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},    {" ,", ","},
      {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},  {" do not", " don't"},
      {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    if (from == " do not" && !wordpiece_decoder) continue;
    s = absl::StrReplaceAll(s, {{from, to}});
  }
  return s;
}

absl::StatusOr<std::string> Tokenizer::Decode(const std::vector<int32_t>& ids,
                                              bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "[", i, "]: ", ids[i], " is not a token id (the vocabulary has ", vocab_size(), ")"));
    }
    if (skip_special_tokens && IsSpecialId(ids[i])) continue;
    tokens.push_back(IdToToken(ids[i]));
  }
  std::string text = DecodeTokens(tokens);
  return clean_up_tokenization_spaces_ ? CleanUpTokenizationSpaces(std::move(text), false) : text;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_dir,
                                                         const TokenizerOverrides& overrides) {
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> t, LoadTokenizerFiles(model_dir, overrides));
  // Decoding's clean-up, when the config says (a malformed config was refused above).
  if (auto c = ReadJsonFile(JoinPath(model_dir, "tokenizer_config.json"));
      c.ok() && c->is_object() && c->contains("clean_up_tokenization_spaces") &&
      (*c)["clean_up_tokenization_spaces"].is_boolean()) {
    t->set_clean_up_tokenization_spaces((*c)["clean_up_tokenization_spaces"].get<bool>());
  }
  return t;
}

namespace {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFiles(const std::string& model_dir,
                                                              const TokenizerOverrides& overrides) {
  if (!IsDirectory(model_dir)) {
    return absl::NotFoundError(absl::StrCat("model directory '", model_dir, "' does not exist"));
  }
  // XLM-R ships a SentencePiece model; BERT-style models a WordPiece vocabulary.
  if (IsRegularFile(JoinPath(model_dir, "sentencepiece.bpe.model")))
    return LoadSentencePiece(model_dir);
  const std::string config_path = JoinPath(model_dir, "tokenizer_config.json");
  if (IsRegularFile(config_path)) {
    // An unreadable or malformed config falls through: LoadWordPiece reads it again and says
    // what is wrong with it. A config that is not an object has no tokenizer_class.
    auto config = ReadJsonFile(config_path);
    std::string tokenizer_class;
    if (config.ok()) {
      ASSIGN_OR_RETURN(std::optional<std::string> named,
                       GetOptionalString(*config, "tokenizer_class", config_path));
      tokenizer_class = named.value_or("");
    }
    if (absl::StartsWith(tokenizer_class, "XLMRoberta")) {
      return absl::NotFoundError(absl::StrCat(model_dir, ": sentencepiece.bpe.model is missing (",
                                              config_path, " names XLMRobertaTokenizer)"));
    }
    if (absl::StartsWith(tokenizer_class, "Roberta")) return LoadByteLevelBpe(model_dir, overrides);
  }
  // No tokenizer_config.json naming the class: byte-level BPE files say it for themselves, as
  // merges.txt or as a tokenizer.json whose model is BPE (all a model may ship).
  if (!IsRegularFile(JoinPath(model_dir, "vocab.txt")) &&
      (IsRegularFile(JoinPath(model_dir, "merges.txt")) || TokenizerJsonIsBpe(model_dir))) {
    return LoadByteLevelBpe(model_dir, overrides);
  }
  return LoadWordPiece(model_dir, overrides);
}

}  // namespace

}  // namespace berth::text
