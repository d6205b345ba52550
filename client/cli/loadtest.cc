// Open-loop load: requests start on a fixed schedule (rate × duration) whatever the server's
// latency, and each latency is measured from the request's scheduled start, so a slow server
// cannot hide behind a slowed-down client (no coordinated omission).
#include "client/cli/loadtest.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "client/lib/client.h"
#include "core/data/training_spec.h"
#include "core/util/data_dir.h"
#include "core/util/files.h"
#include "nlohmann/json.hpp"

namespace berth::cli {
namespace {

using Clock = std::chrono::steady_clock;

// What the calls in flight report, from gRPC's callback threads.
struct Tally {
  absl::Mutex mu;
  absl::CondVar done;  // signalled when the last call in flight answers
  int64_t outstanding ABSL_GUARDED_BY(mu) = 0;
  int64_t completed ABSL_GUARDED_BY(mu) = 0;
  int64_t skipped ABSL_GUARDED_BY(mu) = 0;
  std::map<std::string, int64_t> codes ABSL_GUARDED_BY(mu);
  std::map<std::string, int64_t> errors ABSL_GUARDED_BY(mu);  // "CODE: message" -> count
  std::vector<double> latencies_ms ABSL_GUARDED_BY(mu);
};

struct LoadFlags {
  std::string server, model, file, allow_codes, token;
  double rate = 50, duration = 10, timeout = 30;
  int concurrency = 256, texts_per_request = 1;
  int max_attempts = 1;  // 1: measure the server, not the retry policy
};

// gRPC and absl share the canonical codes, so absl's names are gRPC's.
std::string CodeName(grpc::StatusCode c) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(c));
}

std::vector<std::string> LoadTexts(const std::string& file) {
  std::string path = file;
  if (path.empty()) path = JoinPath(JoinPath(BerthDataDir(), "sst2-sample"), "validation.tsv");
  std::ifstream in(path);
  std::vector<std::string> texts;
  std::string line;
  const bool tsv = path.size() > 4 && path.substr(path.size() - 4) == ".tsv";
  for (bool first = true; std::getline(in, line); first = false) {
    if (tsv && first) continue;  // header
    if (tsv) line = line.substr(0, line.find('\t'));
    if (!line.empty()) texts.push_back(line);
  }
  return texts;
}

struct Call {
  grpc::ClientContext context;
  v1::ClassifyRequest request;
  v1::ClassifyResponse response;
  Clock::time_point scheduled;
};

int RunLoadtest(const LoadFlags& f) {
  const std::vector<std::string> texts = LoadTexts(f.file);
  if (texts.empty()) {
    std::cerr << "berth: loadtest: no texts (give --file with one text per line)\n";
    return 2;
  }
  std::set<std::string> allowed = {"OK"};
  for (absl::string_view c : absl::StrSplit(f.allow_codes, ',', absl::SkipEmpty()))
    allowed.insert(std::string(c));
  client::ClientOptions o;
  o.target = f.server;
  o.max_attempts = f.max_attempts;
  auto c = client::Client::Create(o);
  if (!c.ok()) {
    std::cerr << "berth: " << c.status().message() << "\n";
    return 1;
  }
  auto stub = v1::InferenceService::NewStub((*c)->channel());

  Tally tally;
  const int64_t total = static_cast<int64_t>(f.rate * f.duration);
  const bool tty = ::isatty(STDERR_FILENO);

  const Clock::time_point start = Clock::now();
  auto last_report = start;
  for (int64_t i = 0; i < total; ++i) {
    const Clock::time_point when = start + std::chrono::duration_cast<Clock::duration>(
                                               std::chrono::duration<double>(i / f.rate));
    std::this_thread::sleep_until(when);
    {
      absl::MutexLock lock(&tally.mu);
      if (tally.outstanding >= f.concurrency) {
        ++tally.skipped;  // the client is saturated: this request never starts (reported, not
                          // hidden)
        continue;
      }
      ++tally.outstanding;
    }
    auto* call = new Call();
    call->scheduled = when;
    call->request.set_model(f.model);
    for (int k = 0; k < f.texts_per_request; ++k)
      call->request.add_texts(texts[(i * f.texts_per_request + k) % texts.size()]);
    if (!f.token.empty()) call->context.AddMetadata("authorization", "Bearer " + f.token);
    call->context.set_deadline(std::chrono::system_clock::now() +
                               std::chrono::milliseconds(static_cast<int64_t>(f.timeout * 1000)));
    stub->async()->Classify(
        &call->context, &call->request, &call->response, [&, call](grpc::Status s) {
          const double ms =
              std::chrono::duration<double, std::milli>(Clock::now() - call->scheduled).count();
          delete call;
          absl::MutexLock lock(&tally.mu);
          ++tally.codes[CodeName(s.error_code())];
          // Distinct messages say who answered (a handler, the transport, the client's channel); a
          // few dozen are enough to tell, and the map stays small under a flood of one failure.
          if (!s.ok()) {
            const std::string key = CodeName(s.error_code()) + ": " + s.error_message();
            if (tally.errors.size() < 32 || tally.errors.count(key)) ++tally.errors[key];
          }
          tally.latencies_ms.push_back(ms);
          ++tally.completed;
          if (--tally.outstanding == 0) tally.done.SignalAll();
        });
    const auto now = Clock::now();
    if (now - last_report > std::chrono::seconds(1)) {
      last_report = now;
      absl::MutexLock lock(&tally.mu);
      std::cerr << (tty ? "\r" : "")
                << absl::StrFormat("loadtest: %d/%d sent, %d done, %d in flight", i + 1, total,
                                   tally.completed, tally.outstanding)
                << (tty ? "   " : "\n") << std::flush;
    }
  }
  // Every call has answered: the tally is this thread's alone from here.
  int64_t completed = 0, skipped = 0;
  std::map<std::string, int64_t> codes, errors;
  std::vector<double> latencies_ms;
  {
    absl::MutexLock lock(&tally.mu);
    while (tally.outstanding > 0) tally.done.Wait(&tally.mu);
    completed = tally.completed;
    skipped = tally.skipped;
    codes = std::move(tally.codes);
    errors = std::move(tally.errors);
    latencies_ms = std::move(tally.latencies_ms);
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  if (tty) std::cerr << "\n";

  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double q) {
    if (latencies_ms.empty()) return 0.0;
    return latencies_ms[std::min(latencies_ms.size() - 1,
                                 static_cast<size_t>(q * latencies_ms.size()))];
  };
  int64_t unexpected = 0;
  for (const auto& [code, n] : codes) {
    if (!allowed.count(code)) unexpected += n;
  }
  nlohmann::json out = {{"target_rate", f.rate},
                        {"duration_seconds", elapsed},
                        {"scheduled", total},
                        {"sent", total - skipped},
                        {"skipped_client_saturated", skipped},
                        {"completed", completed},
                        {"achieved_rate", completed / elapsed},
                        {"ok_rate", (codes.count("OK") ? codes["OK"] : 0) / elapsed},
                        {"codes", codes},
                        {"errors", errors},
                        {"unexpected", unexpected},
                        {"latency_ms",
                         {{"p50", pct(0.50)},
                          {"p95", pct(0.95)},
                          {"p99", pct(0.99)},
                          {"max", latencies_ms.empty() ? 0 : latencies_ms.back()}}}};
  std::cout << out.dump(2) << "\n";
  if (unexpected > 0) {
    std::cerr << "berth: loadtest: " << unexpected
              << " calls ended with an unexpected code (allowed: OK"
              << (f.allow_codes.empty() ? "" : "," + f.allow_codes) << ")\n";
    return 1;
  }
  return 0;
}

}  // namespace

void AddLoadtestCommand(CLI::App& app, std::function<int()>* run) {
  auto f = std::make_shared<LoadFlags>();
  CLI::App* cmd = app.add_subcommand("loadtest",
                                     "Open-loop load on Classify: requests start at a constant "
                                     "rate whatever the latency; prints achieved rate, "
                                     "latency percentiles (from each request's scheduled start) "
                                     "and counts per status code as JSON; exits 1 on any "
                                     "code not allowed");
  const char* env = std::getenv("BERTH_SERVER");
  f->server = env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
  cmd->add_option("--server", f->server,
                  "Berth server HOST:PORT, or several replicas as dns:///NAME:PORT or "
                  "ipv4:HOST:PORT,HOST:PORT (calls go round-robin) (env BERTH_SERVER)")
      ->capture_default_str();
  if (const char* token = std::getenv("BERTH_TOKEN")) f->token = token;
  cmd->add_option("--token", f->token, "API token (env BERTH_TOKEN)");
  cmd->add_option("--model", f->model, "NAME, NAME:VERSION or NAME@ALIAS")->required();
  cmd->add_option("--rate", f->rate, "Requests started per second")
      ->check(CLI::Range(0.1, 1e6))
      ->capture_default_str();
  cmd->add_option("--duration", f->duration, "Seconds of load")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  cmd->add_option("--concurrency", f->concurrency,
                  "Most requests in flight; beyond it a request is skipped and counted")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--texts-per-request", f->texts_per_request, "Texts in each Classify")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cmd->add_option(
         "--file", f->file,
         "Texts, one per line (.tsv: first column, header skipped); default: the SST-2 sample")
      ->check(CLI::ExistingFile);
  cmd->add_option("--timeout", f->timeout, "Deadline per request in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-attempts", f->max_attempts,
                  "Attempts per request on UNAVAILABLE, the retries going to the next replica "
                  "(1: no retries, measuring the server alone)")
      ->check(CLI::Range(1, 5))
      ->capture_default_str();
  cmd->add_option("--allow-codes", f->allow_codes,
                  "Comma-separated status codes that are expected besides OK (e.g. UNAVAILABLE "
                  "during a drain)");
  cmd->callback([run, f] { *run = [f] { return RunLoadtest(*f); }; });
}

}  // namespace berth::cli
