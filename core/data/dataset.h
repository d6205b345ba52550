// Labelled text datasets: CSV, TSV and JSON Lines readers with validation that names file and line.
#ifndef BERTH_CORE_DATA_DATASET_H_
#define BERTH_CORE_DATA_DATASET_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace berth::data {

enum class DataFormat { kAuto, kCsv, kTsv, kJsonl };

struct DatasetOptions {
  // Column holding the text. Empty: "text", or "sentence" when there is no "text" (GLUE TSV).
  std::string text_column;
  // Optional second text column: the rows are sentence pairs.
  std::string text_pair_column;
  std::string label_column = "label";
  // Multi-label rows carry several labels: a JSON array in JSON Lines, or names separated by
  // ';' in CSV/TSV.
  bool multi_label = false;
  DataFormat format = DataFormat::kAuto;  // kAuto: from the extension (.csv, .tsv, .jsonl/.json)
};

struct Example {
  std::string text;
  std::string text_pair;
  std::vector<std::string> labels;  // one for single-label rows
  int64_t line = 0;                 // 1-based line in the source file where the row starts
};

struct Dataset {
  std::string source;  // file name for messages
  std::vector<Example> examples;
};

// Parses `contents` (named `source` in errors). Errors: empty data, a missing column, an empty
// text, a missing label, malformed quotes or JSON, a wrong field count, invalid UTF-8 — each as
// InvalidArgument "<source>:<line>: <problem>".
absl::StatusOr<Dataset> ParseDataset(absl::string_view contents, const std::string& source,
                                     const DatasetOptions& options);
absl::StatusOr<Dataset> ReadDataset(const std::string& path, const DatasetOptions& options);

// The label names of a dataset in Berth's stable order: numeric order when every name is an
// integer (so "0", "1", "2" keep their ids), otherwise byte-wise lexicographic order.
std::vector<std::string> CollectLabels(const Dataset& data);

// Splits off a validation set: a seeded shuffle, then the last `fraction` of rows.
absl::StatusOr<std::pair<Dataset, Dataset>> SplitDataset(const Dataset& data, double fraction,
                                                         uint64_t seed);

// A scorer's label (a cross-encoder's or a regression's): the row's one label as a finite
// number, and with `unit_interval` (binary cross-entropy's graded labels) within [0, 1].
// InvalidArgument "<source>:<line>: ..." otherwise.
absl::StatusOr<double> ScoreLabel(const Dataset& data, const Example& e, bool unit_interval);

// Per-label row counts (for upload summaries and checks).
std::map<std::string, int64_t> LabelCounts(const Dataset& data);

}  // namespace berth::data

#endif  // BERTH_CORE_DATA_DATASET_H_
