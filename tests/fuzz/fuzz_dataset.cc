// libFuzzer target: the CSV, TSV and JSON Lines dataset readers.
// Input: one byte choosing the format (CSV, TSV, JSON Lines), single/multi-label and whether a
// text_pair column is asked for, then the file's contents. Accepted rows must have a text, one
// label (any number when multi-label, none empty) and a line number inside the file; the label
// helpers must work on what was accepted.
#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/data/dataset.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  berth::data::DatasetOptions o;
  static const char* const kNames[] = {"fuzz.csv", "fuzz.tsv", "fuzz.jsonl"};
  const std::string source = kNames[mode % 3];
  o.multi_label = (mode & 0x10) != 0;
  if (mode & 0x20) o.text_pair_column = "text_pair";
  if (mode & 0x40) o.text_column = "sentence";
  const absl::string_view contents = berth::fuzz::AsText(data + 1, size - 1);
  auto ds = berth::data::ParseDataset(contents, source, o);
  if (!ds.ok()) {
    berth::fuzz::CheckError(ds.status());
    return 0;
  }
  const int64_t lines = std::count(contents.begin(), contents.end(), '\n') + 1;
  for (const berth::data::Example& e : ds->examples) {
    BERTH_FUZZ_CHECK(!e.text.empty(), absl::StrCat("line ", e.line));
    // Multi-label rows may have no label at all (every class negative).
    BERTH_FUZZ_CHECK(o.multi_label || e.labels.size() == 1, absl::StrCat("line ", e.line));
    for (const std::string& l : e.labels)
      BERTH_FUZZ_CHECK(!l.empty(), absl::StrCat("line ", e.line));
    BERTH_FUZZ_CHECK(e.line >= 1 && e.line <= lines, absl::StrCat("line ", e.line, " of ", lines));
  }
  const auto labels = berth::data::CollectLabels(*ds);
  const auto counts = berth::data::LabelCounts(*ds);
  BERTH_FUZZ_CHECK(labels.size() == counts.size(), "label sets");
  if (ds->examples.size() >= 2) {
    auto split = berth::data::SplitDataset(*ds, 0.5, mode);
    if (split.ok()) {
      BERTH_FUZZ_CHECK(
          split->first.examples.size() + split->second.examples.size() == ds->examples.size(),
          "split sizes");
    }
  }
  return 0;
}
