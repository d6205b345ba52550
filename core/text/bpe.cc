// Byte-level BPE, following the semantics of Hugging Face tokenizers (ByteLevel pre-tokenizer,
// BPE model, RobertaProcessing).
#include "core/text/bpe.h"

#include <algorithm>
#include <queue>

#include "absl/strings/str_cat.h"
#include "core/text/unicode.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/status_macros.h"

namespace berth::text {
namespace {

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the other 68 are shifted to
// U+0100 and up in byte order.
char32_t ByteChar(int b) {
  auto printable = [](int c) {
    return (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
  };
  if (printable(b)) return static_cast<char32_t>(b);
  int n = 0;
  for (int c = 0; c < b; ++c) {
    if (!printable(c)) ++n;
  }
  return static_cast<char32_t>(256 + n);
}

bool IsSpace(char32_t c) { return IsUnicodeWhiteSpace(c); }
bool IsLetter(char32_t c) { return IsUnicodeLetter(c); }
bool IsNumber(char32_t c) { return IsUnicodeNumber(c); }
bool IsOther(char32_t c) { return !IsSpace(c) && !IsLetter(c) && !IsNumber(c); }

// Length of the GPT-2 regex's match at `i` (every position matches at least one character).
size_t MatchAt(std::u32string_view s, size_t i) {
  const size_t n = s.size();
  // 's|'t|'re|'ve|'m|'ll|'d
  if (s[i] == U'\'' && i + 1 < n) {
    const char32_t c = s[i + 1];
    if (c == U's' || c == U't' || c == U'm' || c == U'd') return 2;
    if (i + 2 < n) {
      const char32_t d = s[i + 2];
      if ((c == U'r' && d == U'e') || (c == U'v' && d == U'e') || (c == U'l' && d == U'l')) {
        return 3;
      }
    }
  }
  // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`, in that order.
  for (bool (*cls)(char32_t) : {IsLetter, IsNumber, IsOther}) {
    size_t j = i;
    if (s[j] == U' ' && j + 1 < n && cls(s[j + 1])) ++j;
    if (!cls(s[j])) continue;
    while (j < n && cls(s[j])) ++j;
    return j - i;
  }
  // \s+(?!\S), then \s+.
  size_t j = i;
  while (j < n && IsSpace(s[j])) ++j;
  if (j == n) return j - i;
  if (j - i >= 2) return j - i - 1;  // backs off one so that the space can lead the next word
  return j - i;
}

}  // namespace

std::vector<std::string> ByteLevelBpeTokenizer::PreTokenize(std::u32string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t len = MatchAt(text, i);
    out.push_back(EncodeUtf8(text.substr(i, len)));
    i += len;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<ByteLevelBpeTokenizer>> ByteLevelBpeTokenizer::Create(
    std::vector<std::pair<std::string, int32_t>> vocab,
    std::vector<std::pair<std::string, std::string>> merges, BpeOptions options) {
  std::unique_ptr<ByteLevelBpeTokenizer> t(new ByteLevelBpeTokenizer());
  t->options_ = std::move(options);
  for (auto& [token, id] : vocab) {
    if (id < 0) return absl::InvalidArgumentError(absl::StrCat("token '", token, "' has id ", id));
    if (static_cast<size_t>(id) >= t->id_to_token_.size()) t->id_to_token_.resize(id + 1);
    if (!t->id_to_token_[id].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("id ", id, " is given to both '",
                                                     t->id_to_token_[id], "' and '", token, "'"));
    }
    t->id_to_token_[id] = token;
    t->vocab_[token] = id;
  }
  if (t->vocab_.empty()) return absl::InvalidArgumentError("the vocabulary is empty");
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = t->vocab_.find(a), ib = t->vocab_.find(b), im = t->vocab_.find(a + b);
    if (ia == t->vocab_.end() || ib == t->vocab_.end() || im == t->vocab_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "merge ", rank + 1, " '", a, " ", b, "' uses or makes a token not in the vocabulary"));
    }
    // A repeated merge keeps its first (highest-priority) rank, as tokenizers does.
    t->merge_ranks_.try_emplace(PairKey(ia->second, ib->second), static_cast<int32_t>(rank),
                                im->second);
  }
  t->merges_ = std::move(merges);
  for (int b = 0; b < 256; ++b) {
    t->byte_chars_[b] = EncodeUtf8(std::u32string(1, ByteChar(b)));
    auto it = t->vocab_.find(t->byte_chars_[b]);
    t->byte_ids_[b] = it == t->vocab_.end() ? -1 : it->second;
  }

  // The special tokens: the five RoBERTa names, then every added token, each with its flags.
  const BpeOptions& o = t->options_;
  for (const std::string* name :
       {&o.bos_token, &o.pad_token, &o.eos_token, &o.unk_token, &o.mask_token}) {
    auto it = t->vocab_.find(*name);
    if (it != t->vocab_.end()) t->specials_.push_back({*name, it->second, false, false});
  }
  for (const AddedToken& a : o.added_tokens) {
    auto it = std::find_if(t->specials_.begin(), t->specials_.end(),
                           [&](const SpecialToken& s) { return s.content == a.content; });
    int32_t id = a.id.value_or(-1);
    if (id < 0) {
      auto v = t->vocab_.find(a.content);
      if (v == t->vocab_.end()) continue;
      id = v->second;
    }
    if (it != t->specials_.end()) {
      it->lstrip = a.lstrip;
      it->rstrip = a.rstrip;
      continue;
    }
    t->specials_.push_back({a.content, id, a.lstrip, a.rstrip});
    if (static_cast<size_t>(id) >= t->id_to_token_.size()) t->id_to_token_.resize(id + 1);
    if (t->id_to_token_[id].empty()) t->id_to_token_[id] = a.content;
    t->vocab_.try_emplace(a.content, id);
  }
  SortLongestFirst(&t->specials_);

  auto id_of = [&](const std::string& token, const char* role) -> absl::StatusOr<int32_t> {
    auto it = t->vocab_.find(token);
    if (it == t->vocab_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the ", role, " token '", token, "' is not in the vocabulary"));
    }
    return it->second;
  };
  ASSIGN_OR_RETURN(t->layout_.cls_id, id_of(o.bos_token, "bos/cls"));
  ASSIGN_OR_RETURN(t->layout_.sep_id, id_of(o.eos_token, "eos/sep"));
  ASSIGN_OR_RETURN(t->layout_.pad_id, id_of(o.pad_token, "pad"));
  auto unk = t->vocab_.find(o.unk_token);
  t->layout_.unk_id = unk == t->vocab_.end() ? -1 : unk->second;
  t->layout_.separators_between_pair = 2;
  t->layout_.second_segment_type_id = 0;
  return t;
}

void ByteLevelBpeTokenizer::EncodeWord(absl::string_view word, std::vector<int32_t>* ids) const {
  if (options_.ignore_merges) {
    std::string mapped;
    for (unsigned char b : word) mapped += byte_chars_[b];
    auto it = vocab_.find(mapped);
    if (it != vocab_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  // A doubly linked list of symbols, merged in place (tokenizers' Word::merge_all).
  struct Symbol {
    int32_t id;
    int prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (unsigned char b : word) {
    // A byte with no token is dropped, as tokenizers' BPE without an unk token does.
    if (byte_ids_[b] < 0) continue;
    const int k = static_cast<int>(symbols.size());
    symbols.push_back({byte_ids_[b], k - 1, k + 1, true});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t merged;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int pos) {
    if (pos < 0 || symbols[pos].next < 0) return;
    auto it = merge_ranks_.find(PairKey(symbols[pos].id, symbols[symbols[pos].next].id));
    if (it != merge_ranks_.end()) queue.push({it->second.first, pos, it->second.second});
  };
  for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.pos];
    if (!left.alive || left.next < 0) continue;
    // Stale: one side has changed since this pair was queued.
    auto it = merge_ranks_.find(PairKey(left.id, symbols[left.next].id));
    if (it == merge_ranks_.end() || it->second.second != c.merged) continue;
    Symbol& right = symbols[left.next];
    left.id = c.merged;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = c.pos;
    consider(left.prev);
    consider(c.pos);
  }
  for (const Symbol& s : symbols) {
    if (s.alive) ids->push_back(s.id);
  }
}

absl::Status ByteLevelBpeTokenizer::Tokenize(absl::string_view text, InvalidUtf8 invalid_utf8,
                                             std::vector<int32_t>* ids,
                                             std::vector<std::string>* pieces) const {
  return TokenizeAroundSpecialTokens(
      text, invalid_utf8, specials_, ids, pieces, [&](const std::string& plain) {
        std::u32string part;
        RETURN_IF_ERROR(DecodeUtf8(plain, InvalidUtf8::kReject, &part));
        if (options_.add_prefix_space && part[0] != U' ') part.insert(part.begin(), U' ');
        const size_t first = ids->size();
        for (const std::string& word : PreTokenize(part)) EncodeWord(word, ids);
        if (pieces != nullptr) {
          for (size_t k = first; k < ids->size(); ++k) pieces->push_back(IdToToken((*ids)[k]));
        }
        return absl::OkStatus();
      });
}

std::string ByteLevelBpeTokenizer::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return "";
  return id_to_token_[id];
}

std::optional<int32_t> ByteLevelBpeTokenizer::TokenToId(absl::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

absl::Status ByteLevelBpeTokenizer::Save(const std::string& dir) const {
  Json vocab = Json::object();
  for (size_t id = 0; id < id_to_token_.size(); ++id) {
    if (!id_to_token_[id].empty()) vocab[id_to_token_[id]] = id;
  }
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "vocab.json"), DumpJson(vocab)));
  std::string merges = "#version: 0.2\n";
  for (const auto& [a, b] : merges_) absl::StrAppend(&merges, a, " ", b, "\n");
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "merges.txt"), merges));
  const BpeOptions& o = options_;
  Json special = {{"bos_token", o.bos_token},  {"eos_token", o.eos_token},
                  {"unk_token", o.unk_token},  {"sep_token", o.eos_token},
                  {"pad_token", o.pad_token},  {"cls_token", o.bos_token},
                  {"mask_token", o.mask_token}};
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "special_tokens_map.json"), DumpJson(special)));
  Json config = special;
  config["tokenizer_class"] = "RobertaTokenizer";
  config["add_prefix_space"] = o.add_prefix_space;
  config["model_max_length"] = o.model_max_length;
  config["errors"] = "replace";
  if (o.truncation_side == TruncationSide::kLeft) config["truncation_side"] = "left";
  config["added_tokens_decoder"] = AddedTokensDecoder(specials_);
  return WriteFileAtomically(JoinPath(dir, "tokenizer_config.json"), DumpJson(config));
}

bool ByteLevelBpeTokenizer::IsSpecialId(int32_t id) const {
  for (const SpecialToken& t : specials_) {
    if (t.id == id) return true;
  }
  return false;
}

std::string ByteLevelBpeTokenizer::DecodeTokens(const std::vector<std::string>& tokens) const {
  static const absl::flat_hash_map<char32_t, char> byte_of = [] {
    absl::flat_hash_map<char32_t, char> m;
    for (int b = 0; b < 256; ++b) m[ByteChar(b)] = static_cast<char>(b);
    return m;
  }();
  std::string bytes;
  for (const std::string& token : tokens) {
    std::u32string chars;
    if (!DecodeUtf8(token, InvalidUtf8::kReplace, &chars).ok()) continue;
    for (char32_t c : chars) {
      auto it = byte_of.find(c);
      if (it != byte_of.end()) {
        bytes.push_back(it->second);
      } else {  // not a byte's character (an added token's own text): as it is
        bytes += EncodeUtf8(std::u32string(1, c));
      }
    }
  }
  std::u32string text;
  (void)DecodeUtf8(bytes, InvalidUtf8::kReplace, &text);
  return EncodeUtf8(text);
}

}  // namespace berth::text
