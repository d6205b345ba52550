// Readers for labelled CSV (RFC 4180), GLUE-style TSV and JSON Lines.
#include "core/data/dataset.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/text/unicode.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/status_macros.h"

namespace berth::data {
namespace {

struct Row {
  std::vector<std::string> fields;
  int64_t line;
};

absl::Status LineError(const std::string& source, int64_t line, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(source, ":", line, ": ", problem));
}

// RFC 4180 CSV: quoted fields may hold separators, doubled quotes and newlines.
absl::StatusOr<std::vector<Row>> ParseCsv(absl::string_view s, const std::string& source) {
  std::vector<Row> rows;
  Row row{{}, 1};
  std::string field;
  int64_t line = 1;
  size_t i = 0;
  bool field_started = false;
  auto end_field = [&] {
    row.fields.push_back(std::move(field));
    field.clear();
    field_started = false;
  };
  auto end_row = [&] {
    end_field();
    bool blank = row.fields.size() == 1 && row.fields[0].empty();
    if (!blank) rows.push_back(std::move(row));
    row = Row{{}, line};
  };
  while (i < s.size()) {
    char c = s[i];
    if (c == '"' && !field_started) {
      const int64_t start_line = line;
      ++i;
      while (true) {
        if (i >= s.size()) {
          return LineError(source, start_line, "unterminated quoted field");
        }
        if (s[i] == '"') {
          if (i + 1 < s.size() && s[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        if (s[i] == '\n') ++line;
        field.push_back(s[i++]);
      }
      field_started = true;
      if (i < s.size() && s[i] != ',' && s[i] != '\n' && s[i] != '\r') {
        return LineError(source, line, "unexpected character after a closing quote");
      }
      continue;
    }
    if (c == ',') {
      end_field();
      ++i;
    } else if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') {
      ++i;
    } else if (c == '\n') {
      ++line;
      ++i;
      end_row();
    } else {
      if (c == '"') return LineError(source, line, "quote inside an unquoted field");
      field.push_back(c);
      field_started = true;
      ++i;
    }
  }
  if (field_started || !row.fields.empty()) end_row();
  return rows;
}

// GLUE TSV: tab-separated, no quoting (quotes are ordinary characters).
std::vector<Row> ParseTsv(absl::string_view s) {
  std::vector<Row> rows;
  int64_t line = 0;
  for (absl::string_view l : absl::StrSplit(s, '\n')) {
    ++line;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (l.empty()) continue;
    Row r{{}, line};
    for (absl::string_view f : absl::StrSplit(l, '\t')) r.fields.emplace_back(f);
    rows.push_back(std::move(r));
  }
  return rows;
}

absl::Status CheckUtf8(const std::string& s, const std::string& source, int64_t line,
                       absl::string_view column) {
  std::u32string unused;
  absl::Status st = text::DecodeUtf8(s, text::InvalidUtf8::kReject, &unused);
  if (!st.ok())
    return LineError(source, line, absl::StrCat("column '", column, "': ", st.message()));
  return absl::OkStatus();
}

std::vector<std::string> SplitMultiLabel(const std::string& field) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(field, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (!part.empty()) out.emplace_back(part);
  }
  return out;
}

absl::StatusOr<Dataset> FromTable(std::vector<Row> rows, const std::string& source,
                                  const DatasetOptions& o) {
  if (rows.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ": the file is empty"));
  const std::vector<std::string>& header = rows[0].fields;
  auto column = [&](const std::string& name) -> int {
    auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : static_cast<int>(it - header.begin());
  };
  auto missing = [&](const std::string& name) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":1: no column '", name,
                     "' in the header (columns: ", absl::StrJoin(header, ", "), ")"));
  };
  std::string text_name = o.text_column;
  if (text_name.empty()) text_name = column("text") >= 0 ? "text" : "sentence";
  const int text_col = column(text_name);
  if (text_col < 0) return missing(o.text_column.empty() ? "text' or 'sentence" : text_name);
  const int pair_col = o.text_pair_column.empty() ? -1 : column(o.text_pair_column);
  if (!o.text_pair_column.empty() && pair_col < 0) return missing(o.text_pair_column);
  const int label_col = column(o.label_column);
  if (label_col < 0) return missing(o.label_column);

  Dataset d;
  d.source = source;
  for (size_t r = 1; r < rows.size(); ++r) {
    Row& row = rows[r];
    if (row.fields.size() != header.size()) {
      return LineError(source, row.line,
                       absl::StrCat("expected ", header.size(), " fields as in the header, found ",
                                    row.fields.size()));
    }
    Example e;
    e.line = row.line;
    e.text = std::move(row.fields[text_col]);
    RETURN_IF_ERROR(CheckUtf8(e.text, source, row.line, text_name));
    if (absl::StripAsciiWhitespace(e.text).empty()) {
      return LineError(source, row.line, absl::StrCat("empty text in column '", text_name, "'"));
    }
    if (pair_col >= 0) {
      e.text_pair = std::move(row.fields[pair_col]);
      RETURN_IF_ERROR(CheckUtf8(e.text_pair, source, row.line, o.text_pair_column));
    }
    std::string label(absl::StripAsciiWhitespace(row.fields[label_col]));
    RETURN_IF_ERROR(CheckUtf8(label, source, row.line, o.label_column));
    if (o.multi_label) {
      e.labels = SplitMultiLabel(label);
    } else if (!label.empty()) {
      e.labels = {label};
    }
    if (e.labels.empty() && !o.multi_label) {
      return LineError(source, row.line,
                       absl::StrCat("empty label in column '", o.label_column, "'"));
    }
    d.examples.push_back(std::move(e));
  }
  if (d.examples.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": no rows after the header"));
  }
  return d;
}

absl::StatusOr<std::string> LabelName(const Json& v, const std::string& source, int64_t line,
                                      const std::string& column) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_boolean()) return std::string(v.get<bool>() ? "true" : "false");
  return LineError(source, line,
                   absl::StrCat("field '", column, "' must be a string or an integer"));
}

absl::StatusOr<Dataset> ParseJsonl(absl::string_view s, const std::string& source,
                                   const DatasetOptions& o) {
  Dataset d;
  d.source = source;
  int64_t line = 0;
  std::string text_name = o.text_column;
  for (absl::string_view l : absl::StrSplit(s, '\n')) {
    ++line;
    if (absl::StripAsciiWhitespace(l).empty()) continue;
    std::string ls(l);
    RETURN_IF_ERROR(CheckUtf8(ls, source, line, "(line)"));
    Json j = Json::parse(ls, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return LineError(source, line, "invalid JSON");
    if (!j.is_object()) return LineError(source, line, "expected a JSON object");
    if (text_name.empty()) text_name = j.contains("text") ? "text" : "sentence";
    auto t = j.find(text_name);
    if (t == j.end()) return LineError(source, line, absl::StrCat("no field '", text_name, "'"));
    if (!t->is_string())
      return LineError(source, line, absl::StrCat("field '", text_name, "' must be a string"));
    Example e;
    e.line = line;
    e.text = t->get<std::string>();
    if (absl::StripAsciiWhitespace(e.text).empty()) {
      return LineError(source, line, absl::StrCat("empty text in field '", text_name, "'"));
    }
    if (!o.text_pair_column.empty()) {
      auto p = j.find(o.text_pair_column);
      if (p == j.end() || !p->is_string()) {
        return LineError(source, line,
                         absl::StrCat("field '", o.text_pair_column, "' must be a string"));
      }
      e.text_pair = p->get<std::string>();
    }
    auto lab = j.find(o.label_column);
    if (lab == j.end() || lab->is_null()) {
      return LineError(source, line, absl::StrCat("no field '", o.label_column, "'"));
    }
    if (lab->is_array()) {
      if (!o.multi_label) {
        return LineError(source, line,
                         "a list of labels needs multi-label training (--multi-label)");
      }
      for (const Json& v : *lab) {
        ASSIGN_OR_RETURN(std::string name, LabelName(v, source, line, o.label_column));
        e.labels.push_back(std::move(name));
      }
    } else {
      ASSIGN_OR_RETURN(std::string name, LabelName(*lab, source, line, o.label_column));
      if (name.empty()) return LineError(source, line, "empty label");
      e.labels = o.multi_label ? SplitMultiLabel(name) : std::vector<std::string>{name};
    }
    d.examples.push_back(std::move(e));
  }
  if (d.examples.empty())
    return absl::InvalidArgumentError(absl::StrCat(source, ": the file is empty"));
  return d;
}

}  // namespace

absl::StatusOr<Dataset> ParseDataset(absl::string_view contents, const std::string& source,
                                     const DatasetOptions& options) {
  DataFormat f = options.format;
  if (f == DataFormat::kAuto) {
    std::string lower = absl::AsciiStrToLower(source);
    if (absl::EndsWith(lower, ".csv")) {
      f = DataFormat::kCsv;
    } else if (absl::EndsWith(lower, ".tsv")) {
      f = DataFormat::kTsv;
    } else if (absl::EndsWith(lower, ".jsonl") || absl::EndsWith(lower, ".json") ||
               absl::EndsWith(lower, ".ndjson")) {
      f = DataFormat::kJsonl;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": cannot tell the format from the name; use .csv, .tsv or .jsonl"));
    }
  }
  if (absl::StripAsciiWhitespace(contents).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": the file is empty"));
  }
  switch (f) {
    case DataFormat::kCsv: {
      ASSIGN_OR_RETURN(std::vector<Row> rows, ParseCsv(contents, source));
      return FromTable(std::move(rows), source, options);
    }
    case DataFormat::kTsv:
      return FromTable(ParseTsv(contents), source, options);
    case DataFormat::kJsonl:
    case DataFormat::kAuto:
      break;
  }
  return ParseJsonl(contents, source, options);
}

absl::StatusOr<Dataset> ReadDataset(const std::string& path, const DatasetOptions& options) {
  ASSIGN_OR_RETURN(std::string contents, ReadFileToString(path));
  return ParseDataset(contents, path, options);
}

std::vector<std::string> CollectLabels(const Dataset& data) {
  std::vector<std::string> names;
  for (const Example& e : data.examples) {
    for (const std::string& l : e.labels) names.push_back(l);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  bool numeric = !names.empty();
  for (const std::string& n : names) {
    int64_t v;
    numeric = numeric && absl::SimpleAtoi(n, &v);
  }
  if (numeric) {
    std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
      int64_t x = 0, y = 0;
      (void)absl::SimpleAtoi(a, &x);
      (void)absl::SimpleAtoi(b, &y);
      return x < y;
    });
  }
  return names;
}

absl::StatusOr<std::pair<Dataset, Dataset>> SplitDataset(const Dataset& data, double fraction,
                                                         uint64_t seed) {
  if (!(fraction > 0 && fraction < 1)) {
    return absl::InvalidArgumentError("validation split fraction must be between 0 and 1");
  }
  std::vector<size_t> order(data.examples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  size_t n_val = static_cast<size_t>(static_cast<double>(order.size()) * fraction + 0.5);
  if (n_val == 0 || n_val >= order.size()) {
    return absl::InvalidArgumentError(absl::StrCat(data.source, ": ", data.examples.size(),
                                                   " rows are too few to split off ", fraction));
  }
  Dataset train{data.source, {}}, val{data.source + " (validation split)", {}};
  for (size_t k = 0; k < order.size(); ++k) {
    (k < order.size() - n_val ? train : val).examples.push_back(data.examples[order[k]]);
  }
  return std::make_pair(std::move(train), std::move(val));
}

std::map<std::string, int64_t> LabelCounts(const Dataset& data) {
  std::map<std::string, int64_t> counts;
  for (const Example& e : data.examples) {
    for (const std::string& l : e.labels) ++counts[l];
  }
  return counts;
}

absl::StatusOr<double> ScoreLabel(const Dataset& data, const Example& e, bool unit_interval) {
  double v = 0;
  if (e.labels.size() != 1 || !absl::SimpleAtod(e.labels[0], &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat(data.source, ":", e.line, ": label '", absl::StrJoin(e.labels, ";"),
                     "' is not a number (a scorer's labels are scores)"));
  }
  if (unit_interval && !(v >= 0 && v <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(data.source, ":", e.line, ": label ", e.labels[0],
                     " is outside [0, 1] (binary cross-entropy takes graded labels from 0 to 1)"));
  }
  return v;
}

}  // namespace berth::data
