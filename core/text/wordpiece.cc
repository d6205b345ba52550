// WordPiece tokenization following transformers' BertTokenizer (4.36, slow tokenizer), step by
// step: lower-case pre-pass outside special tokens, split on no-split tokens, BasicTokenizer
// (clean, CJK spacing, NFC, whitespace split, lower + strip accents, punctuation split),
// then greedy longest-match-first WordPiece.
#include "core/text/wordpiece.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/status_macros.h"

namespace berth::text {
namespace {

constexpr absl::string_view kContinuationPrefix = "##";

bool AllAscii(std::u32string_view s) {
  return std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x80; });
}

// Python's str.strip() family on code points.
std::u32string_view LStrip(std::u32string_view s) {
  size_t i = 0;
  while (i < s.size() && IsPythonSpace(s[i])) ++i;
  return s.substr(i);
}
std::u32string_view RStrip(std::u32string_view s) {
  size_t n = s.size();
  while (n > 0 && IsPythonSpace(s[n - 1])) --n;
  return s.substr(0, n);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> WordPieceTokenizer::ReadVocabFile(
    const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  std::vector<std::string> vocab;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    vocab.emplace_back(text, start, nl - start);
    start = nl + 1;
  }
  if (vocab.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": vocabulary is empty"));
  for (size_t i = 0; i < vocab.size(); ++i) {
    std::u32string unused;
    if (!DecodeUtf8(vocab[i], InvalidUtf8::kReject, &unused).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", i + 1, ": vocabulary entry is not valid UTF-8"));
    }
  }
  return vocab;
}

absl::StatusOr<std::unique_ptr<WordPieceTokenizer>> WordPieceTokenizer::Create(
    std::vector<std::string> vocab, WordPieceOptions options) {
  if (vocab.empty()) return absl::InvalidArgumentError("WordPiece vocabulary is empty");
  if (options.max_input_chars_per_word <= 0) {
    return absl::InvalidArgumentError("max_input_chars_per_word must be positive");
  }
  std::unique_ptr<WordPieceTokenizer> t(new WordPieceTokenizer(std::move(options)));
  const WordPieceOptions& o = t->options_;
  t->strip_accents_ = o.strip_accents.value_or(o.do_lower_case);
  t->id_to_token_ = std::move(vocab);
  t->base_vocab_size_ = t->id_to_token_.size();
  for (size_t i = 0; i < t->id_to_token_.size(); ++i) {
    const std::string& tok = t->id_to_token_[i];
    int32_t id = static_cast<int32_t>(i);
    t->token_to_id_.insert_or_assign(tok, id);  // a repeated line: the later id wins, as in HF
    if (tok.size() > kContinuationPrefix.size() &&
        absl::string_view(tok).substr(0, kContinuationPrefix.size()) == kContinuationPrefix) {
      std::string rest = tok.substr(kContinuationPrefix.size());
      t->max_continuation_bytes_ = std::max(t->max_continuation_bytes_, rest.size());
      t->continuation_.insert_or_assign(std::move(rest), id);
    }
    t->max_word_start_bytes_ = std::max(t->max_word_start_bytes_, tok.size());
    t->word_start_.insert_or_assign(tok, id);
  }

  // No-split tokens: the special tokens first, then the added ones.
  std::vector<AddedToken> all;
  for (const std::string* s :
       {&o.unk_token, &o.sep_token, &o.pad_token, &o.cls_token, &o.mask_token}) {
    if (!s->empty()) all.push_back(AddedToken{*s, std::nullopt, false, false, true});
  }
  for (const AddedToken& a : o.added_tokens) {
    auto same = std::find_if(all.begin(), all.end(),
                             [&](const AddedToken& b) { return b.content == a.content; });
    if (same != all.end()) {
      *same = a;  // flags and id from added_tokens_decoder win
    } else {
      all.push_back(a);
    }
  }
  int32_t next_id = static_cast<int32_t>(t->id_to_token_.size());
  for (const AddedToken& a : all) {
    if (a.content.empty()) continue;
    int32_t id;
    if (a.id.has_value()) {
      id = *a.id;
    } else if (auto it = t->token_to_id_.find(a.content); it != t->token_to_id_.end()) {
      id = it->second;
    } else {
      id = next_id++;
    }
    if (id < 0)
      return absl::InvalidArgumentError(absl::StrCat("token '", a.content, "' has a negative id"));
    if (static_cast<size_t>(id) >= t->id_to_token_.size()) t->id_to_token_.resize(id + 1);
    if (t->id_to_token_[id].empty()) t->id_to_token_[id] = a.content;
    t->token_to_id_.insert_or_assign(a.content, id);
    std::u32string content;
    RETURN_IF_ERROR(DecodeUtf8(a.content, InvalidUtf8::kReject, &content));
    t->no_split_.push_back(NoSplitToken{std::move(content), id, a.lstrip, a.rstrip, a.special});
  }
  // Longest first, so MatchNoSplit's first hit is the longest.
  std::stable_sort(t->no_split_.begin(), t->no_split_.end(),
                   [](const NoSplitToken& a, const NoSplitToken& b) {
                     return a.content.size() > b.content.size();
                   });

  auto id_of = [&](const std::string& tok, const char* what) -> absl::StatusOr<int32_t> {
    auto it = t->token_to_id_.find(tok);
    if (it == t->token_to_id_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " '", tok, "' is not in the vocabulary"));
    }
    return it->second;
  };
  ASSIGN_OR_RETURN(t->layout_.unk_id, id_of(o.unk_token, "unk_token"));
  ASSIGN_OR_RETURN(t->layout_.cls_id, id_of(o.cls_token, "cls_token"));
  ASSIGN_OR_RETURN(t->layout_.sep_id, id_of(o.sep_token, "sep_token"));
  ASSIGN_OR_RETURN(t->layout_.pad_id, id_of(o.pad_token, "pad_token"));
  t->layout_.separators_between_pair = 1;
  t->layout_.second_segment_type_id = t->options_.tokenizer_class == "DistilBertTokenizer" ? 0 : 1;
  return t;
}

std::string WordPieceTokenizer::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return "";
  return id_to_token_[id];
}

std::optional<int32_t> WordPieceTokenizer::TokenToId(absl::string_view token) const {
  auto it = token_to_id_.find(token);
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

int WordPieceTokenizer::MatchNoSplit(std::u32string_view text, size_t pos) const {
  for (size_t i = 0; i < no_split_.size(); ++i) {
    const std::u32string& c = no_split_[i].content;
    if (c.size() <= text.size() - pos && c[0] == text[pos] && text.compare(pos, c.size(), c) == 0) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

absl::Status WordPieceTokenizer::Tokenize(absl::string_view text, InvalidUtf8 invalid_utf8,
                                          std::vector<int32_t>* ids,
                                          std::vector<std::string>* pieces) const {
  ids->clear();
  std::u32string cps;
  RETURN_IF_ERROR(DecodeUtf8(text, invalid_utf8, &cps));

  // PreTrainedTokenizer.tokenize: with do_lower_case, lower-case every character that is not
  // part of a special token (one character at a time, so no context-dependent casing).
  if (options_.do_lower_case) {
    std::u32string lowered;
    lowered.reserve(cps.size());
    for (size_t i = 0; i < cps.size();) {
      int m = MatchNoSplit(cps, i);
      if (m >= 0) {
        const std::u32string& c = no_split_[m].content;
        lowered.append(c);
        i += c.size();
      } else {
        AppendLower(cps[i], &lowered);
        ++i;
      }
    }
    cps.swap(lowered);
  }

  // Split around no-split tokens (the added-tokens trie), honouring lstrip / rstrip.
  struct Part {
    std::u32string_view text;
    int token = -1;  // index into no_split_, or -1 for text
  };
  std::vector<Part> parts;
  std::u32string_view all(cps);
  size_t seg_start = 0;
  for (size_t i = 0; i < all.size();) {
    int m = no_split_.empty() ? -1 : MatchNoSplit(all, i);
    if (m < 0) {
      ++i;
      continue;
    }
    if (i > seg_start) parts.push_back(Part{all.substr(seg_start, i - seg_start), -1});
    parts.push_back(Part{all.substr(i, no_split_[m].content.size()), m});
    i += no_split_[m].content.size();
    seg_start = i;
  }
  if (seg_start < all.size()) parts.push_back(Part{all.substr(seg_start), -1});
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].token < 0) continue;
    const NoSplitToken& t = no_split_[parts[i].token];
    if (t.rstrip && i + 1 < parts.size() && parts[i + 1].token < 0) {
      parts[i + 1].text = LStrip(parts[i + 1].text);
    }
    if (t.lstrip && i > 0 && parts[i - 1].token < 0) parts[i - 1].text = RStrip(parts[i - 1].text);
  }

  for (const Part& p : parts) {
    if (p.token >= 0) {
      ids->push_back(no_split_[p.token].id);
    } else if (!p.text.empty()) {
      TokenizeSegment(p.text, ids);
    }
  }
  if (pieces != nullptr) {
    pieces->clear();
    pieces->reserve(ids->size());
    for (int32_t id : *ids) pieces->push_back(IdToToken(id));
  }
  return absl::OkStatus();
}

void WordPieceTokenizer::TokenizeSegment(std::u32string_view segment,
                                         std::vector<int32_t>* ids) const {
  if (!options_.do_basic_tokenize) {
    // Whitespace split only, then WordPiece.
    size_t i = 0;
    while (i < segment.size()) {
      while (i < segment.size() && IsPythonSpace(segment[i])) ++i;
      size_t j = i;
      while (j < segment.size() && !IsPythonSpace(segment[j])) ++j;
      if (j > i) WordPiece(segment.substr(i, j - i), ids);
      i = j;
    }
    return;
  }

  // BasicTokenizer._clean_text and _tokenize_chinese_chars.
  std::u32string buf;
  buf.reserve(segment.size() + 8);
  for (char32_t c : segment) {
    if (c == 0 || c == 0xFFFD || IsBertControl(c)) continue;
    if (IsBertWhitespace(c)) {
      buf.push_back(' ');
    } else if (options_.tokenize_chinese_chars && IsCjkIdeograph(c)) {
      buf.push_back(' ');
      buf.push_back(c);
      buf.push_back(' ');
    } else {
      buf.push_back(c);
    }
  }
  const bool ascii = AllAscii(buf);
  if (!ascii) buf = NormalizeNfc(buf);

  std::u32string word_buf;
  std::u32string_view text(buf);
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsPythonSpace(text[i])) ++i;
    size_t j = i;
    while (j < text.size() && !IsPythonSpace(text[j])) ++j;
    if (j == i) break;
    std::u32string_view word = text.substr(i, j - i);
    i = j;

    // Lower-case and strip accents (NFD, drop Mn).
    if (options_.do_lower_case || strip_accents_) {
      word_buf.clear();
      if (options_.do_lower_case) {
        for (char32_t c : word) AppendLower(c, &word_buf);
      } else {
        word_buf.assign(word);
      }
      if (strip_accents_ && !AllAscii(word_buf)) {
        std::u32string nfd = NormalizeNfd(word_buf);
        word_buf.clear();
        for (char32_t c : nfd) {
          if (!IsNonspacingMark(c)) word_buf.push_back(c);
        }
      }
      word = word_buf;
    }

    // _run_split_on_punc: every punctuation character is a word of its own.
    size_t start = 0;
    for (size_t k = 0; k < word.size(); ++k) {
      if (IsBertPunctuation(word[k])) {
        if (k > start) WordPiece(word.substr(start, k - start), ids);
        WordPiece(word.substr(k, 1), ids);
        start = k + 1;
      }
    }
    if (start < word.size()) WordPiece(word.substr(start), ids);
  }
}

void WordPieceTokenizer::WordPiece(std::u32string_view word, std::vector<int32_t>* ids) const {
  if (word.size() > static_cast<size_t>(options_.max_input_chars_per_word)) {
    ids->push_back(layout_.unk_id);
    return;
  }
  // UTF-8 bytes of the word and the byte offset of every code point (plus the end).
  std::string utf8;
  utf8.reserve(word.size() * 2);
  size_t offsets[256];
  std::vector<size_t> big_offsets;
  size_t* off = offsets;
  if (word.size() + 1 > 256) {
    big_offsets.resize(word.size() + 1);
    off = big_offsets.data();
  }
  for (size_t k = 0; k < word.size(); ++k) {
    off[k] = utf8.size();
    AppendUtf8(word[k], &utf8);
  }
  off[word.size()] = utf8.size();

  const size_t first = ids->size();
  size_t start = 0;
  const size_t n = word.size();
  while (start < n) {
    const auto& table = start == 0 ? word_start_ : continuation_;
    const size_t max_bytes = start == 0 ? max_word_start_bytes_ : max_continuation_bytes_;
    size_t end = n;
    int32_t found = -1;
    while (end > start) {
      size_t bytes = off[end] - off[start];
      if (bytes <= max_bytes) {
        auto it = table.find(absl::string_view(utf8.data() + off[start], bytes));
        if (it != table.end()) {
          found = it->second;
          break;
        }
      }
      --end;
    }
    if (found < 0) {
      ids->resize(first);
      ids->push_back(layout_.unk_id);
      return;
    }
    ids->push_back(found);
    start = end;
  }
}

absl::Status WordPieceTokenizer::Save(const std::string& dir) const {
  std::string vocab;
  for (size_t i = 0; i < base_vocab_size_; ++i) absl::StrAppend(&vocab, id_to_token_[i], "\n");
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "vocab.txt"), vocab));

  Json special = {{"unk_token", options_.unk_token},
                  {"sep_token", options_.sep_token},
                  {"pad_token", options_.pad_token},
                  {"cls_token", options_.cls_token},
                  {"mask_token", options_.mask_token}};
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(dir, "special_tokens_map.json"), DumpJson(special)));

  Json config = special;
  config["tokenizer_class"] = options_.tokenizer_class;
  config["do_lower_case"] = options_.do_lower_case;
  config["do_basic_tokenize"] = options_.do_basic_tokenize;
  config["tokenize_chinese_chars"] = options_.tokenize_chinese_chars;
  config["strip_accents"] = options_.strip_accents ? Json(*options_.strip_accents) : Json(nullptr);
  config["model_max_length"] = options_.model_max_length;
  config["never_split"] = nullptr;
  config["clean_up_tokenization_spaces"] = true;
  if (options_.truncation_side == TruncationSide::kLeft) config["truncation_side"] = "left";
  Json added = Json::object();
  for (const NoSplitToken& t : no_split_) {
    added[std::to_string(t.id)] = {{"content", EncodeUtf8(t.content)},
                                   {"lstrip", t.lstrip},
                                   {"normalized", false},
                                   {"rstrip", t.rstrip},
                                   {"single_word", false},
                                   {"special", t.special}};
  }
  config["added_tokens_decoder"] = added;
  return WriteFileAtomically(JoinPath(dir, "tokenizer_config.json"), DumpJson(config));
}

bool WordPieceTokenizer::IsSpecialId(int32_t id) const {
  for (const NoSplitToken& t : no_split_) {
    if (t.id == id && t.special) return true;
  }
  return false;
}

std::string WordPieceTokenizer::DecodeTokens(const std::vector<std::string>& tokens) const {
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string token = tokens[i];
    if (i != 0) token = absl::StartsWith(token, "##") ? token.substr(2) : " " + token;
    // The decoder's own cleanup, token by token (tokenizers' WordPiece decoder, cleanup=true).
    out += CleanUpTokenizationSpaces(std::move(token), /*wordpiece_decoder=*/true);
  }
  return out;
}

}  // namespace berth::text
