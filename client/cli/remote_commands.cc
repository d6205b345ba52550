// Remote commands over berth::client. Results go to stdout as JSON (or JSON Lines for
// classify); progress and messages go to stderr. This file: what the commands share, and
// AddRemoteCommands; each noun's commands are in remote_{jobs,classify,models,demo}.cc.
#include "client/cli/remote_commands.h"

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/progress.h"
#include "client/cli/remote_common.h"
#include "client/lib/client.h"
#include "nlohmann/json.hpp"

namespace berth::cli {

void AddServerFlags(CLI::App* cmd, ServerFlags* f) {
  const char* env = std::getenv("BERTH_SERVER");
  f->server = env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
  cmd->add_option("--server", f->server,
                  "Berth server HOST:PORT, or several replicas as dns:///NAME:PORT or "
                  "ipv4:HOST:PORT,HOST:PORT (calls go round-robin) (env BERTH_SERVER)")
      ->capture_default_str();
  const char* token = std::getenv("BERTH_TOKEN");
  if (token != nullptr) f->token = token;
  cmd->add_option("--token", f->token,
                  "API token (env BERTH_TOKEN; the server's --auth-tokens holds its SHA-256)");
  cmd->add_option("--tls-ca", f->tls_ca, "Use TLS, trusting this PEM CA bundle")
      ->envname("BERTH_TLS_CA");
  cmd->add_option("--tls-cert", f->tls_cert, "Client certificate for mutual TLS (PEM)")
      ->envname("BERTH_TLS_CERT");
  cmd->add_option("--tls-key", f->tls_key, "Private key of --tls-cert (PEM)")
      ->envname("BERTH_TLS_KEY");
  cmd->add_option("--timeout", f->timeout_seconds, "Deadline of each call in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

int Fail(const absl::Status& s, absl::string_view what) {
  std::cerr << "berth: " << what << ": " << absl::StatusCodeToString(s.code()) << ": "
            << s.message() << "\n";
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

std::unique_ptr<client::Client> Connect(const ServerFlags& f) {
  client::ClientOptions o;
  o.target = f.server;
  o.token = f.token;
  o.tls_ca = f.tls_ca;
  o.tls_cert = f.tls_cert;
  o.tls_key = f.tls_key;
  o.timeout = std::chrono::milliseconds(static_cast<int64_t>(f.timeout_seconds * 1000));
  auto c = client::Client::Create(o);
  if (!c.ok()) {
    std::cerr << "berth: " << c.status().message() << "\n";
    return nullptr;
  }
  return std::move(*c);
}

std::string ToJson(const google::protobuf::Message& m, bool pretty) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = pretty;
  o.always_print_primitive_fields = true;
  o.preserve_proto_field_names = true;
  std::string out;
  // Fails only on an Any whose type cannot be resolved, and Berth's messages hold none.
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string StateName(v1::JobState s) {
  std::string n = v1::JobState_Name(s);
  return absl::StartsWith(n, "JOB_STATE_") ? n.substr(10) : n;
}

// Watches a job, drawing progress on stderr; returns the final status.
absl::StatusOr<v1::JobStatus> WatchWithProgress(client::Client& c, const std::string& job_id) {
  const bool tty = ::isatty(STDERR_FILENO);
  v1::JobState last_state = v1::JOB_STATE_UNSPECIFIED;
  int64_t last_eval_update = -1;
  auto last_line = std::chrono::steady_clock::now() - std::chrono::hours(1);
  auto result = c.WatchJob(job_id, [&](const v1::JobStatus& s) {
    if (s.state() != last_state) {
      if (tty && last_state == v1::JOB_STATE_RUNNING) std::cerr << "\n";
      std::cerr << "job " << s.job_id() << ": " << StateName(s.state()) << "\n";
      last_state = s.state();
    }
    const v1::JobProgress& p = s.progress();
    if (s.state() == v1::JOB_STATE_RUNNING && p.total_updates() > 0) {
      if (p.has_last_eval() && p.last_eval().update() != last_eval_update) {
        last_eval_update = p.last_eval().update();
        if (tty) std::cerr << "\n";
        const v1::EvalMetrics& e = p.last_eval();
        if (e.scored()) {
          std::cerr << absl::StrFormat(
              "eval  update %d  epoch %.2f  loss %.4f  pearson %.4f  spearman %.4f\n", e.update(),
              e.epoch(), e.loss(), e.pearson(), e.spearman());
        } else {
          std::cerr << absl::StrFormat(
              "eval  update %d  epoch %.2f  loss %.4f  accuracy %.4f  macro_f1 %.4f\n", e.update(),
              e.epoch(), e.loss(), e.accuracy(), e.macro_f1());
        }
      }
      const auto now = std::chrono::steady_clock::now();
      if (tty || now - last_line > std::chrono::seconds(5)) {
        last_line = now;
        const std::string line =
            ProgressLine(p.update(), p.total_updates(), p.epoch(), p.loss(), p.learning_rate(),
                         p.samples_per_second(), p.eta_seconds(), tty);
        std::cerr << (tty ? "\r" : "train ") << line << (tty ? "   " : "\n") << std::flush;
      }
    }
    return true;
  });
  if (tty && last_state == v1::JOB_STATE_RUNNING) std::cerr << "\n";
  return result;
}

int PrintFinal(const v1::JobStatus& s, bool json, bool print_json) {
  if (print_json) std::cout << ToJson(s, !json) << "\n";
  if (s.state() == v1::JOB_STATE_SUCCEEDED) {
    std::cerr << "berth: job " << s.job_id() << " succeeded: model " << s.model_name() << ":"
              << s.model_version() << "\n";
    return 0;
  }
  if (s.state() == v1::JOB_STATE_FAILED)
    std::cerr << "berth: job " << s.job_id() << " failed: " << s.error() << "\n";
  return 1;
}

void AddRemoteCommands(CLI::App& app, std::function<int()>* run) {
  AddJobCommands(app, run);
  AddClassifyCommand(app, run);
  AddModelCommands(app, run);
  AddDemoCommand(app, run);
}

}  // namespace berth::cli
