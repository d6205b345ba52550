// Helpers shared by the unit tests: test data paths, JSON Lines, temporary directories.
#ifndef BERTH_TESTS_UNIT_TEST_UTIL_H_
#define BERTH_TESTS_UNIT_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/util/json.h"

namespace berth::testing {

// tests/data and data/ of this checkout. Defined in test_main.cc, the one file compiled with
// their absolute paths (so that ccache reuses every other test object across checkouts).
const char* TestDataDir();
const char* ShippedDataDir();

// No CUDA device to run on here. A CUDA test skips for this reason only (ParseDevice's
// FailedPrecondition with no GPU visible); any other device error fails it.
bool NoGpuVisible();

inline std::string DataPath(const std::string& rel) {
  return std::string(TestDataDir()) + "/" + rel;
}
inline std::string FixturePath(const std::string& model) { return DataPath("fixtures/" + model); }

// The gap between the two highest scores (how far the top label is from changing).
inline double TopTwoMargin(std::vector<float> scores) {
  if (scores.size() < 2) return 1.0;
  std::partial_sort(scores.begin(), scores.begin() + 2, scores.end(), std::greater<float>());
  return static_cast<double>(scores[0]) - static_cast<double>(scores[1]);
}

inline std::vector<Json> ReadJsonLines(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::vector<Json> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(Json::parse(line));
  }
  return rows;
}

// A fresh directory under $TMPDIR, removed with its plain files at destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp") + std::string("/berth-test-XXXXXX");
    path_ = mkdtemp(tmpl.data()) ? tmpl : "";
    EXPECT_FALSE(path_.empty());
  }
  ~TempDir() { (void)!system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary);
  out << contents;
}

}  // namespace berth::testing

#endif  // BERTH_TESTS_UNIT_TEST_UTIL_H_
