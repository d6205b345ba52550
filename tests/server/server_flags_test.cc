// berth-server's command line (server/flags.h), parsed without starting a server: the defaults
// are ServerOptions', flags and BERTH_* variables set the same fields, units are converted once,
// and bad values are usage errors.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "core/runtime/runtime.h"
#include "server/flags.h"

namespace berth::server {
namespace {

ParsedCommand Parse(std::vector<std::string> args) {
  std::vector<const char*> argv = {"berth-server"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  return ParseServerCommand(static_cast<int>(argv.size()), argv.data(), "berth-server test");
}

TEST(ServerFlagsTest, DefaultsAreServerOptions) {
  ParsedCommand p = Parse({});
  ASSERT_FALSE(p.exit_code.has_value());
  const ServerOptions defaults;
  const ServerOptions& o = p.command.options;
  EXPECT_EQ(o.listen, defaults.listen);
  EXPECT_EQ(o.data_dir, defaults.data_dir);
  EXPECT_EQ(o.role, "all");
  EXPECT_EQ(o.drain_timeout, defaults.drain_timeout);
  EXPECT_EQ(o.training.lease, defaults.training.lease);
  EXPECT_EQ(o.models.memory_budget_bytes, defaults.models.memory_budget_bytes);
  EXPECT_EQ(o.limits.max_texts, defaults.limits.max_texts);
  EXPECT_EQ(o.limits.max_streams, defaults.limits.max_streams);
  EXPECT_EQ(o.http_listen, defaults.http_listen);
  EXPECT_EQ(o.http_header_timeout, defaults.http_header_timeout);
  EXPECT_EQ(o.http_read_timeout, defaults.http_read_timeout);
  EXPECT_EQ(o.http_idle_timeout, defaults.http_idle_timeout);
  EXPECT_EQ(o.models.engine.batcher.max_wait, defaults.models.engine.batcher.max_wait);
  EXPECT_EQ(o.models.engine.classifier.precision, InferencePrecision::kFp32);
  EXPECT_FALSE(p.command.json_logs);
  EXPECT_FALSE(o.training.worker_binary.empty()) << "the berth beside the program";
}

TEST(ServerFlagsTest, FlagsAndTheEnvironmentSetTheSameFields) {
  ParsedCommand p = Parse(
      {"--listen",          "0.0.0.0:7000", "--drain-timeout", "2.5",   "--job-lease", "4",
       "--model-memory-mb", "64",           "--precision",     "bf16",  "--max-texts", "9",
       "--log-format",      "json",         "--model-roots",   "/a,/b", "--no-hub",    "--preload",
       "x,y@prod",          "--port-file",  "/tmp/p"});
  ASSERT_FALSE(p.exit_code.has_value());
  const ServerOptions& o = p.command.options;
  EXPECT_EQ(o.listen, "0.0.0.0:7000");
  EXPECT_EQ(o.drain_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(o.training.lease, std::chrono::milliseconds(4000));
  EXPECT_EQ(o.models.memory_budget_bytes, int64_t{64} << 20);
  EXPECT_EQ(o.models.engine.classifier.precision, InferencePrecision::kBf16);
  EXPECT_EQ(o.limits.max_texts, 9);
  EXPECT_TRUE(p.command.json_logs);
  EXPECT_EQ(o.training.base_models.model_roots, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_FALSE(o.training.base_models.allow_hub);
  EXPECT_EQ(o.preload, (std::vector<std::string>{"x", "y@prod"}));
  EXPECT_EQ(p.command.port_file, "/tmp/p");

  ::setenv("BERTH_MAX_STREAMS", "17", 1);
  ::setenv("BERTH_ROLE", "serve", 1);
  ParsedCommand e = Parse({});
  ::unsetenv("BERTH_MAX_STREAMS");
  ::unsetenv("BERTH_ROLE");
  ASSERT_FALSE(e.exit_code.has_value());
  EXPECT_EQ(e.command.options.limits.max_streams, 17);
  EXPECT_EQ(e.command.options.role, "serve");
}

TEST(ServerFlagsTest, PrecisionInt8AndAuto) {
  ParsedCommand int8 = Parse({"--precision", "int8"});
  ASSERT_FALSE(int8.exit_code.has_value());
  EXPECT_EQ(int8.command.options.models.engine.classifier.precision, InferencePrecision::kInt8);
  // auto never picks int8: bf16 where the CPU has the instructions for it, fp32 elsewhere.
  ParsedCommand automatic = Parse({"--precision", "auto"});
  ASSERT_FALSE(automatic.exit_code.has_value());
  const CpuFeatures& cpu = HostCpuFeatures();
  EXPECT_EQ(automatic.command.options.models.engine.classifier.precision,
            cpu.avx512_bf16 || cpu.amx ? InferencePrecision::kBf16 : InferencePrecision::kFp32)
      << cpu.Summary();
}

TEST(ServerFlagsTest, PrecisionPerModel) {
  ParsedCommand p = Parse({"--precision", "fp32", "--model-precision", "fast=int8,exact=fp32",
                           "--model-precision", "half=bf16"});
  ASSERT_FALSE(p.exit_code.has_value());
  const auto& own = p.command.options.models.precision_by_model;
  EXPECT_EQ(own.size(), 3u);
  EXPECT_EQ(own.at("fast"), InferencePrecision::kInt8);
  EXPECT_EQ(own.at("exact"), InferencePrecision::kFp32);
  EXPECT_EQ(own.at("half"), InferencePrecision::kBf16);
  EXPECT_EQ(p.command.options.models.engine.classifier.precision, InferencePrecision::kFp32);
  for (const char* bad : {"fast", "fast=fp8", "=int8", "bad name=int8"}) {
    ParsedCommand refused = Parse({"--model-precision", bad});
    ASSERT_TRUE(refused.exit_code.has_value()) << bad;
    EXPECT_EQ(*refused.exit_code, 2) << bad;
  }
}

TEST(ServerFlagsTest, HttpTimeoutsAndTheBatchWaitInTheirUnits) {
  ParsedCommand p = Parse({"--http-header-timeout", "1.5", "--http-read-timeout", "2",
                           "--http-idle-timeout", "0.25", "--batch-max-wait-ms", "3000",
                           "--http-listen", "", "--default-model", "m@prod"});
  ASSERT_FALSE(p.exit_code.has_value());
  const ServerOptions& o = p.command.options;
  EXPECT_EQ(o.http_header_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(o.http_read_timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(o.http_idle_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(o.models.engine.batcher.max_wait, std::chrono::seconds(3));
  EXPECT_EQ(o.http_listen, "");
  EXPECT_EQ(o.default_model, "m@prod");
}

TEST(ServerFlagsTest, BadValuesAreUsageErrors) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--role", "boss"},
                                             {"--max-texts", "0"},
                                             {"--precision", "fp8"},
                                             {"--drain-timeout", "-1"},
                                             {"--no-such-flag"},
                                             {"--device", "tpu"},
                                             {"--http-header-timeout", "0"},
                                             {"--batch-max-wait-ms", "-1"}}) {
    ParsedCommand p = Parse(args);
    ASSERT_TRUE(p.exit_code.has_value()) << args[0];
    EXPECT_NE(*p.exit_code, 0) << args[0];
  }
  ParsedCommand help = Parse({"--help"});
  ASSERT_TRUE(help.exit_code.has_value());
  EXPECT_EQ(*help.exit_code, 0);
}

}  // namespace
}  // namespace berth::server
