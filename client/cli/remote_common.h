// What the remote commands share: the server flags, connecting, printing, and the train and
// classify runs that `berth demo` chains. Internal to client/cli.
#ifndef BERTH_CLIENT_CLI_REMOTE_COMMON_H_
#define BERTH_CLIENT_CLI_REMOTE_COMMON_H_

#include <google/protobuf/message.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/cli/spec_flags.h"
#include "client/lib/client.h"

namespace berth::cli {

struct ServerFlags {
  std::string server, token, tls_ca, tls_cert, tls_key;
  double timeout_seconds = 60;
};

// --server, --token, --tls-*, --timeout (with their environment variables).
void AddServerFlags(CLI::App* cmd, ServerFlags* f);
// Prints "berth: WHAT: CODE: message" to stderr; the exit code (2 for invalid arguments, else 1).
int Fail(const absl::Status& s, absl::string_view what);
// nullptr (and a message on stderr) when the options are unusable.
std::unique_ptr<client::Client> Connect(const ServerFlags& f);
std::string ToJson(const google::protobuf::Message& m, bool pretty);
std::string StateName(v1::JobState s);
// Follows a job with a progress bar on stderr until it ends.
absl::StatusOr<v1::JobStatus> WatchWithProgress(client::Client& c, const std::string& job_id);
// Prints a job's final status; the exit code (0 only when it succeeded).
int PrintFinal(const v1::JobStatus& s, bool json, bool print_json = true);

struct TrainFlags {
  ServerFlags server;
  SpecFlags spec;
  std::string base_model, train, validation, name, request_id;
  double validation_split = 0;
  int workers = 1;
  bool watch = false, json = false;
  bool print_result = true;  // the final status as JSON on stdout
};
// With --watch, `final_status` (when given) receives the job's last status.
int RunTrain(TrainFlags& f, v1::JobStatus* final_status = nullptr);

struct ClassifyFlags {
  ServerFlags server;
  std::string model, file, truncation = "right";
  std::vector<std::string> texts;
  int top_k = 0, max_length = 0, stride = 0, batch_size = 64;
  bool raw_scores = false, with_text = false;
  bool stream = false;  // one ClassifyStream call; each stdin line is sent as it is read
};
int RunClassify(const ClassifyFlags& f);

// One per noun, each registering its subcommands.
void AddJobCommands(CLI::App& app,
                    std::function<int()>* run);  // upload, train, status, watch, cancel, jobs
void AddClassifyCommand(CLI::App& app, std::function<int()>* run);  // classify
void AddModelCommands(CLI::App& app,
                      std::function<int()>* run);  // models, model, alias, delete-model
void AddDemoCommand(CLI::App& app, std::function<int()>* run);  // demo

}  // namespace berth::cli

#endif  // BERTH_CLIENT_CLI_REMOTE_COMMON_H_
