// Dataset readers: CSV/TSV/JSONL parsing, label order, and every bad input named by file and line.
#include "core/data/dataset.h"

#include <gtest/gtest.h>

#include <set>

namespace berth::train {
namespace {

absl::StatusOr<data::Dataset> Parse(const std::string& contents, const std::string& name,
                                    data::DatasetOptions o = {}) {
  return data::ParseDataset(contents, name, o);
}

void ExpectError(const std::string& contents, const std::string& name, const std::string& needle,
                 data::DatasetOptions o = {}) {
  auto d = Parse(contents, name, o);
  ASSERT_FALSE(d.ok()) << contents;
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find(needle), absl::string_view::npos) << d.status().message();
}

TEST(DatasetTest, ReadsCsvWithQuotesCommasAndNewlines) {
  auto d = Parse("label,text\n1,\"Hello, \"\"world\"\"\"\n0,\"two\nlines\"\n2,plain\n", "a.csv");
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->examples.size(), 3u);
  EXPECT_EQ(d->examples[0].text, "Hello, \"world\"");
  EXPECT_EQ(d->examples[1].text, "two\nlines");
  EXPECT_EQ(d->examples[2].line, 5);
  EXPECT_EQ(d->examples[2].labels, std::vector<std::string>{"2"});
}

TEST(DatasetTest, ReadsGlueTsvWithSentenceColumnAndLiteralQuotes) {
  auto d = Parse("sentence\tlabel\nit 's \"fine\" \t1\nbad . \t0\n", "train.tsv");
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->examples.size(), 2u);
  EXPECT_EQ(d->examples[0].text, "it 's \"fine\" ");
  EXPECT_EQ(data::CollectLabels(*d), (std::vector<std::string>{"0", "1"}));
}

TEST(DatasetTest, ReadsJsonLinesWithNamedIntegerAndListLabels) {
  auto d = Parse("{\"text\":\"a\",\"label\":\"joy\"}\n\n{\"text\":\"b\",\"label\":\"anger\"}\n",
                 "x.jsonl");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(data::CollectLabels(*d), (std::vector<std::string>{"anger", "joy"}));
  auto n = Parse("{\"text\":\"a\",\"label\":10}\n{\"text\":\"b\",\"label\":9}\n", "x.jsonl");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(data::CollectLabels(*n), (std::vector<std::string>{"9", "10"}));  // numeric order
  data::DatasetOptions multi;
  multi.multi_label = true;
  auto m = Parse("{\"text\":\"a\",\"label\":[\"x\",\"y\"]}\n{\"text\":\"b\",\"label\":[]}\n",
                 "m.jsonl", multi);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->examples[0].labels, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(m->examples[1].labels.empty());
}

TEST(DatasetTest, ReadsSentencePairs) {
  data::DatasetOptions o;
  o.text_column = "premise";
  o.text_pair_column = "hypothesis";
  auto d = Parse("premise,hypothesis,label\nA man,A person,entail\n", "p.csv", o);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->examples[0].text_pair, "A person");
}

TEST(DatasetTest, EachBadInputIsNamedByFileAndLine) {
  ExpectError("", "e.csv", "e.csv: the file is empty");
  ExpectError("label,text\n", "h.csv", "no rows after the header");
  ExpectError("label,body\n1,x\n", "c.csv", "c.csv:1: no column 'text'");
  data::DatasetOptions o;
  o.label_column = "y";
  ExpectError("label,text\n1,x\n", "c.csv", "no column 'y'", o);
  ExpectError("label,text\n1,x\n0,  \n", "t.csv", "t.csv:3: empty text");
  ExpectError("label,text\n1,\"unterminated\n", "q.csv", "q.csv:2: unterminated quoted field");
  ExpectError("label,text\n1,\"a\"b\n", "q.csv",
              "q.csv:2: unexpected character after a closing quote");
  ExpectError("label,text\n1,a,b\n", "f.csv", "f.csv:2: expected 2 fields");
  ExpectError("label,text\n,x\n", "l.csv", "l.csv:2: empty label");
  ExpectError("label,text\n1,caf\xC3\n", "u.csv",
              "u.csv:2: column 'text': text is not valid UTF-8");
  ExpectError("{\"text\":\"a\",\"label\":1}\n{\"text\": oops}\n", "j.jsonl",
              "j.jsonl:2: invalid JSON");
  ExpectError("{\"text\":\"a\"}\n", "j.jsonl", "j.jsonl:1: no field 'label'");
  ExpectError("[1,2]\n", "j.jsonl", "j.jsonl:1: expected a JSON object");
  ExpectError("{\"text\":5,\"label\":1}\n", "j.jsonl", "j.jsonl:1: field 'text' must be a string");
  ExpectError("{\"text\":\"a\",\"label\":[\"x\"]}\n", "j.jsonl", "needs multi-label");
  ExpectError("x", "data.txt", "cannot tell the format");
}

TEST(DatasetTest, SplitIsSeededAndDisjoint) {
  std::string csv = "label,text\n";
  for (int i = 0; i < 100; ++i) csv += std::to_string(i % 2) + ",row" + std::to_string(i) + "\n";
  auto d = Parse(csv, "s.csv");
  ASSERT_TRUE(d.ok());
  auto a = data::SplitDataset(*d, 0.2, 7);
  auto b = data::SplitDataset(*d, 0.2, 7);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->second.examples.size(), 20u);
  EXPECT_EQ(a->first.examples.size(), 80u);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(a->second.examples[i].text, b->second.examples[i].text);
  // Disjoint, and together every row once.
  std::multiset<std::string> all;
  for (const auto& e : a->first.examples) all.insert(e.text);
  for (const auto& e : a->second.examples) {
    EXPECT_EQ(all.count(e.text), 0u) << e.text << " is in both halves";
    all.insert(e.text);
  }
  EXPECT_EQ(all.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(all.count("row" + std::to_string(i)), 1u) << i;
  // Another seed draws another split.
  auto c = data::SplitDataset(*d, 0.2, 8);
  ASSERT_TRUE(c.ok());
  std::set<std::string> held_a, held_c;
  for (const auto& e : a->second.examples) held_a.insert(e.text);
  for (const auto& e : c->second.examples) held_c.insert(e.text);
  EXPECT_NE(held_a, held_c);
  EXPECT_FALSE(data::SplitDataset(*d, 1.5, 7).ok());
}

}  // namespace
}  // namespace berth::train
