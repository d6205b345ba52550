// Leftmost-longest special-token matching with lstrip/rstrip.
#include "core/text/special_tokens.h"

#include <algorithm>

#include "core/text/unicode.h"

namespace berth::text {
namespace {

// Python's str.rstrip()/lstrip() on UTF-8.
std::string StripRight(const std::string& s) {
  std::u32string u;
  if (!DecodeUtf8(s, InvalidUtf8::kReplace, &u).ok()) return s;
  while (!u.empty() && IsPythonSpace(u.back())) u.pop_back();
  return EncodeUtf8(u);
}

std::string StripLeft(const std::string& s) {
  std::u32string u;
  if (!DecodeUtf8(s, InvalidUtf8::kReplace, &u).ok()) return s;
  size_t i = 0;
  while (i < u.size() && IsPythonSpace(u[i])) ++i;
  return EncodeUtf8(std::u32string_view(u).substr(i));
}

}  // namespace

void SortLongestFirst(std::vector<SpecialToken>* tokens) {
  std::stable_sort(tokens->begin(), tokens->end(),
                   [](const SpecialToken& a, const SpecialToken& b) {
                     return a.content.size() > b.content.size();
                   });
}

std::vector<TextPart> SplitOnSpecialTokens(const std::string& text,
                                           const std::vector<SpecialToken>& tokens) {
  std::vector<TextPart> parts;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const SpecialToken* hit = nullptr;
    for (const SpecialToken& s : tokens) {
      if (!s.content.empty() && text.compare(i, s.content.size(), s.content) == 0) {
        hit = &s;
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    parts.push_back({text.substr(start, i - start), nullptr});
    parts.push_back({hit->content, hit});
    i += hit->content.size();
    start = i;
  }
  parts.push_back({text.substr(start), nullptr});
  for (size_t k = 0; k < parts.size(); ++k) {
    if (parts[k].special == nullptr) continue;
    if (parts[k].special->rstrip && k + 1 < parts.size())
      parts[k + 1].text = StripLeft(parts[k + 1].text);
    if (parts[k].special->lstrip && k > 0) parts[k - 1].text = StripRight(parts[k - 1].text);
  }
  return parts;
}

absl::Status TokenizeAroundSpecialTokens(
    absl::string_view text, InvalidUtf8 policy, const std::vector<SpecialToken>& tokens,
    std::vector<int32_t>* ids, std::vector<std::string>* pieces,
    const std::function<absl::Status(const std::string& plain)>& encode) {
  std::u32string decoded;
  if (absl::Status s = DecodeUtf8(text, policy, &decoded); !s.ok()) return s;
  for (const TextPart& p : SplitOnSpecialTokens(EncodeUtf8(decoded), tokens)) {
    if (p.special != nullptr) {
      ids->push_back(p.special->id);
      if (pieces != nullptr) pieces->push_back(p.special->content);
    } else if (!p.text.empty()) {
      if (absl::Status s = encode(p.text); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

Json AddedTokensDecoder(const std::vector<SpecialToken>& tokens) {
  Json added = Json::object();
  for (const SpecialToken& s : tokens) {
    added[std::to_string(s.id)] = {{"content", s.content}, {"lstrip", s.lstrip},
                                   {"rstrip", s.rstrip},   {"normalized", false},
                                   {"single_word", false}, {"special", true}};
  }
  return added;
}

}  // namespace berth::text
