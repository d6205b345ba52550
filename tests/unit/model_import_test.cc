// Importing existing classifiers: from a directory under --model-roots and from tar archives
// (ustar, PAX, one folder), what a version's export lists, and hostile or broken archives
// refused with INVALID_ARGUMENT, leaving no files and no version.
#include "core/service/model_import.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "core/model/safetensors.h"
#include "core/util/digest.h"
#include "core/util/files.h"
#include "core/util/json.h"
#include "core/util/tar.h"
#include "tests/unit/test_util.h"

namespace berth::service {
namespace {

using berth::testing::FixturePath;
using berth::testing::TempDir;

std::string TarMember(const std::string& name, const std::string& data, char type = '0',
                      const std::string& link = "") {
  std::string tar;
  AppendTarMember(&tar, name, data, type, link);
  return tar;
}

std::string EndOfArchive() {
  std::string tar;
  AppendTarEnd(&tar);
  return tar;
}

std::string Fixture(const std::string& model, const std::string& file) {
  auto bytes = ReadFileToString(FixturePath(model) + "/" + file);
  EXPECT_TRUE(bytes.ok()) << file;
  return bytes.ok() ? *bytes : "";
}

// roberta-tiny's directory (written by transformers' save_pretrained) as a tar, its files
// under `folder`.
std::string RobertaTar(const std::string& folder = "") {
  std::string tar;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json",
                        "tokenizer_config.json", "vocab.json", "merges.txt"}) {
    tar += TarMember(folder + f, Fixture("roberta-tiny", f));
  }
  tar += TarMember(folder + "README.md", "not a model file: left behind");
  return tar + EndOfArchive();
}

class ModelImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::Open(dir_.File("data"));
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    roots_ = dir_.File("roots");
    ASSERT_TRUE(MakeDirectories(roots_).ok());
    policy_ =
        std::make_unique<BaseModelPolicy>(store_.get(), BaseModelPolicyOptions{{roots_}, false});
    importer_ = std::make_unique<ModelImporter>(store_.get(), policy_.get());
  }

  ImportSource Archive(std::string tar) {
    ImportSource s;
    s.kind = ImportSource::Kind::kArchive;
    s.archive = std::move(tar);
    return s;
  }

  // Nothing was registered and nothing is left under models/.
  void ExpectNoTrace() {
    auto models = store_->ListModels();
    ASSERT_TRUE(models.ok());
    EXPECT_TRUE(models->empty());
    auto entries = ListDirectory(JoinPath(store_->data_dir(), "models"));
    ASSERT_TRUE(entries.ok());
    EXPECT_TRUE(entries->empty()) << (*entries)[0];
  }

  void ExpectRefused(const std::string& tar, const std::string& needle) {
    auto r = importer_->Import("m", Archive(tar));
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_NE(r.status().message().find(needle), absl::string_view::npos) << r.status();
    ExpectNoTrace();
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::string roots_;
  std::unique_ptr<BaseModelPolicy> policy_;
  std::unique_ptr<ModelImporter> importer_;
};

TEST_F(ModelImportTest, AnArchiveBecomesTheNextVersionWithItsProvenance) {
  const std::string tar = RobertaTar("roberta-tiny/");
  ImportSource src = Archive(tar);
  src.sha256 = Sha256Hex(tar);
  auto r = importer_->Import("sentiment", src);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->version, 1);
  EXPECT_NE(r->metadata.find("archive:sha256:" + Sha256Hex(tar)), std::string::npos);
  EXPECT_NE(r->metadata.find("\"negative\""), std::string::npos) << r->metadata;
  auto files = ListModelFiles(*store_, *r);
  ASSERT_TRUE(files.ok()) << files.status();
  std::vector<std::string> names;
  for (const ModelFile& f : *files) names.push_back(f.name);
  // The model's files and Berth's description of the version (exported since issue #32, so
  // that an export imported elsewhere keeps its evaluation).
  EXPECT_EQ(names, (std::vector<std::string>{"berth.json", "config.json", "merges.txt",
                                             "model.safetensors", "tokenizer.json",
                                             "tokenizer_config.json", "vocab.json"}));
  // The same files, byte for byte; the README stayed behind.
  for (const ModelFile& f : *files) {
    if (f.name == "berth.json") continue;  // written by the import
    auto bytes = ReadFileToString(f.path);
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ(*bytes, Fixture("roberta-tiny", f.name)) << f.name;
  }
  // A second import is the next version.
  auto again = importer_->Import("sentiment", Archive(RobertaTar()));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->version, 2);
}

// An export of a Berth version carries berth.json and metrics.json; imported elsewhere, the
// new version keeps the evaluation and how it was trained, with its own provenance.
TEST_F(ModelImportTest, AnExportImportedElsewhereKeepsItsEvaluation) {
  const std::string src = JoinPath(roots_, "exported");
  ASSERT_TRUE(MakeDirectories(src).ok());
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json",
                        "tokenizer_config.json", "vocab.json", "merges.txt"}) {
    testing::WriteFile(JoinPath(src, f), Fixture("roberta-tiny", f));
  }
  const std::string metrics = R"({"accuracy": 0.875, "macro_f1": 0.86, "examples": 64})";
  testing::WriteFile(JoinPath(src, "metrics.json"), metrics);
  testing::WriteFile(JoinPath(src, "berth.json"),
                     R"({"name": "sst2", "job_id": "job-1", "base_model": "roberta-base",
                         "train_loss": 0.31, "updates": 120, "metrics": )" +
                         metrics + "}");
  ImportSource s;
  s.kind = ImportSource::Kind::kDirectory;
  s.location = src;
  auto r = importer_->Import("copy", s);
  ASSERT_TRUE(r.ok()) << r.status();
  auto meta = ParseJson(r->metadata, "metadata");
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ((*meta)["metrics"]["accuracy"], 0.875);
  EXPECT_EQ((*meta)["base_model"], "roberta-base");
  EXPECT_EQ((*meta)["updates"], 120);
  EXPECT_EQ((*meta)["name"], "copy");
  EXPECT_FALSE(meta->contains("job_id")) << "the job was another server's";
  EXPECT_EQ((*meta)["imported_from"].get<std::string>().rfind("directory:", 0), 0u)
      << (*meta).dump();
  auto files = ListModelFiles(*store_, *r);
  ASSERT_TRUE(files.ok());
  bool has_metrics = false;
  for (const ModelFile& f : *files) has_metrics |= f.name == "metrics.json";
  EXPECT_TRUE(has_metrics);
}

// Staging directories a crashed import left go at start-up: all of them when the data
// directory is this process's alone, only day-old ones when others share it.
TEST_F(ModelImportTest, InterruptedImportsAreSweptAtStartUp) {
  const std::string models = dir_.File("data/models");
  for (const char* d : {".import-young", ".import-old", "kept/1"}) {
    ASSERT_TRUE(MakeDirectories(JoinPath(models, d)).ok());
    testing::WriteFile(JoinPath(JoinPath(models, d), "config.json"), "{}");
  }
  struct timeval two_days_ago[2] = {{::time(nullptr) - 2 * 86400, 0},
                                    {::time(nullptr) - 2 * 86400, 0}};
  ASSERT_EQ(::utimes(JoinPath(models, ".import-old").c_str(), two_days_ago), 0);
  EXPECT_EQ(importer_->SweepStaging(/*shared=*/true), 1);
  EXPECT_FALSE(IsDirectory(JoinPath(models, ".import-old")));
  EXPECT_TRUE(IsDirectory(JoinPath(models, ".import-young"))) << "may be another process's";
  EXPECT_EQ(importer_->SweepStaging(/*shared=*/false), 1);
  EXPECT_FALSE(IsDirectory(JoinPath(models, ".import-young")));
  EXPECT_TRUE(IsDirectory(JoinPath(models, "kept/1")));
}

TEST_F(ModelImportTest, ADirectoryUnderTheModelRootsImports) {
  const std::string src = JoinPath(roots_, "xlmr");
  ASSERT_TRUE(MakeDirectories(src).ok());
  for (const char* f : {"config.json", "model.safetensors", "sentencepiece.bpe.model",
                        "tokenizer_config.json", "special_tokens_map.json"}) {
    ASSERT_TRUE(WriteFileAtomically(JoinPath(src, f), Fixture("xlmr-tiny", f)).ok());
  }
  ImportSource s;
  s.location = src;
  auto r = importer_->Import("xlmr", s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(r->metadata.find("directory:"), std::string::npos);
  // Outside the roots: refused, nothing left.
  s.location = FixturePath("xlmr-tiny");
  auto outside = importer_->Import("other", s);
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.status().code(), absl::StatusCode::kPermissionDenied) << outside.status();
  EXPECT_NE(outside.status().message().find("info.directory"), absl::string_view::npos);
  // A file that links out of the directory is refused.
  ASSERT_EQ(::unlink(JoinPath(src, "tokenizer_config.json").c_str()), 0);
  ASSERT_EQ(::symlink((FixturePath("xlmr-tiny") + "/tokenizer_config.json").c_str(),
                      JoinPath(src, "tokenizer_config.json").c_str()),
            0);
  s.location = src;
  auto linked = importer_->Import("linked", s);
  ASSERT_FALSE(linked.ok());
  EXPECT_NE(linked.status().message().find("links outside"), absl::string_view::npos)
      << linked.status();
}

TEST_F(ModelImportTest, PathTraversalAbsolutePathsLinksAndDevicesAreRefused) {
  std::string good = RobertaTar();
  good.resize(good.size() - 1024);  // members only, no end blocks
  ExpectRefused(good + TarMember("../evil.json", "{}") + EndOfArchive(), "\"..\"");
  ExpectRefused(good + TarMember("a/../../evil.json", "{}") + EndOfArchive(), "\"..\"");
  ExpectRefused(good + TarMember("/etc/cron.d/evil", "x") + EndOfArchive(), "absolute path");
  ExpectRefused(good + TarMember("vocab.txt", "", '2', "/etc/passwd") + EndOfArchive(),
                "symbolic links");
  ExpectRefused(good + TarMember("merges.txt", "", '1', "config.json") + EndOfArchive(),
                "hard links");
  ExpectRefused(good + TarMember("dev", "", '3') + EndOfArchive(), "device files");
  ExpectRefused(good + TarMember("fifo", "", '6') + EndOfArchive(), "FIFOs");
}

TEST_F(ModelImportTest, TruncatedOversizeCorruptAndMisHashedArchivesAreRefused) {
  const std::string tar = RobertaTar();
  // Cut inside a member's data, inside a header, and before the end blocks.
  ExpectRefused(tar.substr(0, 512 + 100), "truncated");
  ExpectRefused(tar.substr(0, 512 * 3 + 17), "truncated");
  ExpectRefused(tar.substr(0, tar.size() - 1024), "truncated");
  std::string corrupt = tar;
  corrupt[10] ^= 0x20;
  ExpectRefused(corrupt, "checksum");
  ExpectRefused("this is not a tar archive", "truncated");
  ImportSource hashed = Archive(tar);
  hashed.sha256 = std::string(64, 'a');
  auto r = importer_->Import("m", hashed);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("sha256"), absl::string_view::npos) << r.status();
  ExpectNoTrace();
  ModelImporter small(store_.get(), policy_.get(), TarLimits{512 << 10, 1000});
  auto big = small.Import("m", Archive(tar));
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("more than 524288 bytes"), absl::string_view::npos)
      << big.status();
  ExpectNoTrace();
}

TEST_F(ModelImportTest, ModelsThatCannotServeAreRefused) {
  // No head: a base model.
  std::string headless;
  auto weights = berth::SafetensorsFile::Open(FixturePath("roberta-tiny") + "/model.safetensors");
  ASSERT_TRUE(weights.ok());
  std::vector<TensorToWrite> keep;
  for (const TensorView& t : (*weights)->tensors()) {
    if (t.name.rfind("classifier.", 0) != 0)
      keep.push_back({t.name, t.dtype, t.shape, t.data, t.nbytes});
  }
  const std::string path = dir_.File("headless.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, keep, {}).ok());
  auto bytes = ReadFileToString(path);
  ASSERT_TRUE(bytes.ok());
  std::string tar =
      TarMember("config.json", Fixture("roberta-tiny", "config.json")) +
      TarMember("model.safetensors", *bytes) +
      TarMember("tokenizer.json", Fixture("roberta-tiny", "tokenizer.json")) +
      TarMember("tokenizer_config.json", Fixture("roberta-tiny", "tokenizer_config.json")) +
      EndOfArchive();
  ExpectRefused(tar, "no classification head");
  // No config.json at all.
  ExpectRefused(TarMember("vocab.json", "{}") + EndOfArchive(), "no config.json");
  // Weights that do not fit the config.
  std::string mismatched =
      TarMember("config.json", Fixture("xlmr-tiny", "config.json")) +
      TarMember("model.safetensors", Fixture("roberta-tiny", "model.safetensors")) +
      TarMember("tokenizer.json", Fixture("roberta-tiny", "tokenizer.json")) +
      TarMember("tokenizer_config.json", Fixture("roberta-tiny", "tokenizer_config.json")) +
      EndOfArchive();
  ExpectRefused(mismatched, "does not load");
}

}  // namespace
}  // namespace berth::service
