// berth-server's options (see flags.h).
#include "server/flags.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "core/infer/precision.h"
#include "core/runtime/device.h"
#include "core/store/store.h"
#include "core/util/files.h"

namespace berth::server {
namespace {

// The options that are not ServerOptions fields as such: converted once parsed (FinishCommand).
struct RawFlags {
  std::string precision = "fp32", log_format = "text";
  std::vector<std::string> model_precision;  // NAME=PRECISION
  double drain_timeout_seconds = 30;
  double batch_max_wait_ms = 2;
  double http_header_timeout = 10, http_read_timeout = 60, http_idle_timeout = 75;
  double job_lease_seconds = 0;
  int64_t model_memory_mb = 0;
  int inference_threads = 0;
};

// Where state lives and what this process does.
void AddStoreAndRoleOptions(CLI::App& app, ServerCommand* c, RawFlags* r) {
  ServerOptions& o = c->options;
  app.add_option("--data-dir", o.data_dir,
                 "Where the database, datasets, models and checkpoints live")
      ->envname("BERTH_DATA_DIR")
      ->capture_default_str();
  app.add_option("--store", o.store,
                 "The database: sqlite:PATH, or postgresql://USER:PASSWORD@HOST:PORT/DB "
                 "(default: SQLite at DATA_DIR/berth.db)")
      ->envname("BERTH_STORE");
  app.add_option("--role", o.role,
                 "all: serve and train; serve: answer every RPC, never claim jobs (replicas over "
                 "a shared --store); train: claim and train jobs")
      ->envname("BERTH_ROLE")
      ->check(CLI::IsMember({"all", "serve", "train"}))
      ->capture_default_str();
  app.add_option("--worker-id", o.training.worker_id,
                 "Who holds this process's job leases (default: the host name). A worker id "
                 "that starts again takes back its jobs at once; two live processes must not "
                 "share one")
      ->envname("BERTH_WORKER_ID");
  app.add_option("--job-lease", r->job_lease_seconds,
                 "Seconds a training worker's claim on a job lasts without renewal (renewed "
                 "every third); a dead worker's job resumes elsewhere after about this long")
      ->envname("BERTH_JOB_LEASE")
      ->check(CLI::Range(1.0, 3600.0))
      ->capture_default_str();
}

// Ports, logs and the drain.
void AddListenOptions(CLI::App& app, ServerCommand* c, RawFlags* r) {
  ServerOptions& o = c->options;
  app.add_option("--listen", o.listen, "HOST:PORT to serve on (port 0: any free port)")
      ->envname("BERTH_LISTEN")
      ->capture_default_str();
  app.add_option(
         "--port-file", c->port_file,
         "Write the bound gRPC port to this file once serving (written after the other port files)")
      ->envname("BERTH_PORT_FILE");
  app.add_option("--metrics-listen", o.metrics_listen,
                 "HOST:PORT for Prometheus metrics at /metrics (port 0: any free port; empty: off)")
      ->envname("BERTH_METRICS_LISTEN")
      ->capture_default_str();
  app.add_option("--metrics-port-file", c->metrics_port_file,
                 "Write the bound metrics port to this file")
      ->envname("BERTH_METRICS_PORT_FILE");
  app.add_option("--http-listen", o.http_listen,
                 "HOST:PORT for HTTP/JSON: Hugging Face TEI's routes, the Hub Inference API, the "
                 "Open Inference Protocol and Berth's own API (/v1; GET /openapi.json describes "
                 "them all) (port 0: any free port; empty: off)")
      ->envname("BERTH_HTTP_LISTEN")
      ->capture_default_str();
  app.add_option("--http-port-file", c->http_port_file, "Write the bound HTTP port to this file")
      ->envname("BERTH_HTTP_PORT_FILE");
  app.add_option("--http-threads", o.http_threads,
                 "Network threads of the HTTP server (request work runs on --request-threads)")
      ->envname("BERTH_HTTP_THREADS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--http-header-timeout", r->http_header_timeout,
                 "Seconds a request's line and headers may take to arrive (a slower client is "
                 "closed)")
      ->envname("BERTH_HTTP_HEADER_TIMEOUT")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--http-read-timeout", r->http_read_timeout,
                 "Seconds a request's body may take to arrive")
      ->envname("BERTH_HTTP_READ_TIMEOUT")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--http-idle-timeout", r->http_idle_timeout,
                 "Seconds an idle keep-alive connection is kept open")
      ->envname("BERTH_HTTP_IDLE_TIMEOUT")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  app.add_option("--default-model", o.default_model,
                 "The model of the HTTP routes that name none (/predict, /info, POST /): NAME, "
                 "NAME:VERSION or NAME@ALIAS")
      ->envname("BERTH_DEFAULT_MODEL");
  app.add_option("--drain-timeout", r->drain_timeout_seconds,
                 "Seconds in-flight calls get to finish after SIGTERM/SIGINT")
      ->envname("BERTH_DRAIN_TIMEOUT")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--log-format", r->log_format,
                 "Event log lines on stderr: text (key=value) or json")
      ->envname("BERTH_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

// Tokens and TLS.
void AddSecurityOptions(CLI::App& app, ServerCommand* c, RawFlags* /*r*/) {
  ServerOptions& o = c->options;
  app.add_option(
         "--auth-tokens", o.auth_tokens_file,
         "API tokens, one JSON object per line {id, sha256, role, model_prefix}; re-read on SIGHUP")
      ->envname("BERTH_AUTH_TOKENS");
  app.add_option("--tls-cert", o.tls_cert,
                 "Serve TLS with this PEM certificate chain (re-read on SIGHUP)")
      ->envname("BERTH_SERVER_TLS_CERT");
  app.add_option("--tls-key", o.tls_key, "The PEM private key of --tls-cert")
      ->envname("BERTH_SERVER_TLS_KEY");
  app.add_option("--tls-client-ca", o.tls_client_ca,
                 "Require client certificates signed by this PEM CA bundle (mutual TLS)")
      ->envname("BERTH_SERVER_TLS_CLIENT_CA");
  app.add_option("--tls-reload-seconds", o.tls_reload_seconds,
                 "Also re-read the TLS files this often (0: only on SIGHUP); open connections stay")
      ->envname("BERTH_TLS_RELOAD_SECONDS")
      ->check(CLI::Range(0u, 86400u))
      ->capture_default_str();
  app.add_flag("--allow-insecure", o.allow_insecure,
               "Serve a non-loopback address without authentication (refused otherwise)")
      ->envname("BERTH_ALLOW_INSECURE");
}

// Training workers and base models.
void AddTrainingOptions(CLI::App& app, ServerCommand* c, RawFlags* /*r*/) {
  ServerOptions& o = c->options;
  app.add_option("--training-workers", o.training.workers, "Jobs trained at the same time")
      ->envname("BERTH_TRAINING_WORKERS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--training-threads", o.training.threads_per_job,
                 "Intra-op threads per job (0: one per core)")
      ->envname("BERTH_TRAINING_THREADS")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option(
         "--device", o.training.default_device,
         "cpu, cuda or cuda:N: where models classify and where jobs that name no device train")
      ->envname("BERTH_DEVICE")
      ->capture_default_str();
  app.add_option("--max-train-procs", o.training.max_train_procs,
                 "Most processes one data-parallel job (workers: N) may use; 1 turns them off")
      ->envname("BERTH_MAX_TRAIN_PROCS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--worker-binary", o.training.worker_binary,
                 "The berth CLI that runs ranks 1..N-1 of data-parallel jobs (default: beside "
                 "berth-server)")
      ->envname("BERTH_WORKER_BINARY");
  app.add_option("--model-roots", o.training.base_models.model_roots,
                 "Directories under which StartTraining may name a local base model (absolute "
                 "path; symbolic "
                 "links resolved); none by default")
      ->envname("BERTH_MODEL_ROOTS")
      ->delimiter(',');
  app.add_flag_function(
         "--no-hub", [&o](int64_t) { o.training.base_models.allow_hub = false; },
         "Refuse Hugging Face Hub ids as base models (no downloads by the server)")
      ->envname("BERTH_NO_HUB");
}

// Loaded models and the request pool.
void AddInferenceOptions(CLI::App& app, ServerCommand* c, RawFlags* r) {
  ServerOptions& o = c->options;
  app.add_option("--inference-threads", r->inference_threads,
                 "Intra-op threads per loaded model (0: one per core)")
      ->envname("BERTH_INFERENCE_THREADS")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--precision", r->precision,
                 "Inference weights: auto (bf16 on a GPU or a CPU with avx512_bf16 or AMX, else "
                 "fp32), fp32, bf16, or int8 (CPU; encoder linear layers quantized at load)")
      ->envname("BERTH_PRECISION")
      ->check(CLI::IsMember(PrecisionChoices()))
      ->capture_default_str();
  app.add_option("--model-precision", r->model_precision,
                 "NAME=PRECISION: that model's precision (every version), over --precision; "
                 "repeat it, or separate by commas")
      ->envname("BERTH_MODEL_PRECISION")
      ->delimiter(',');
  app.add_option("--model-memory-mb", r->model_memory_mb,
                 "Weights of loaded models kept in memory; the least recently used go first")
      ->envname("BERTH_MODEL_MEMORY_MB")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-batch-tokens", o.models.engine.batcher.max_batch_tokens,
                 "Padded tokens per inference batch")
      ->envname("BERTH_MAX_BATCH_TOKENS")
      ->check(CLI::Range(int64_t{64}, int64_t{1} << 20))
      ->capture_default_str();
  app.add_option("--batch-max-wait-ms", r->batch_max_wait_ms,
                 "Milliseconds a batch waits for more callers once its first is queued")
      ->envname("BERTH_BATCH_MAX_WAIT_MS")
      ->check(CLI::Range(0.0, 10000.0))
      ->capture_default_str();
  app.add_option("--preload", o.preload,
                 "Models to load at start: NAME, NAME:VERSION or NAME@ALIAS (repeatable). The gRPC "
                 "health service "
                 "reports 'model:SPEC' SERVING once the model can answer")
      ->envname("BERTH_PRELOAD")
      ->delimiter(',');
  app.add_option("--request-threads", o.request_threads,
                 "Threads for blocking request work (loading, batching)")
      ->envname("BERTH_REQUEST_THREADS")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--max-queued-requests", o.max_queued_requests,
                 "Requests waiting for a request thread; beyond this, RESOURCE_EXHAUSTED")
      ->envname("BERTH_MAX_QUEUED_REQUESTS")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
}

// Request limits (core/service/limits.h).
void AddLimitOptions(CLI::App& app, ServerCommand* c, RawFlags* /*r*/) {
  ServerOptions& o = c->options;
  app.add_option("--max-texts", o.limits.max_texts, "Texts per Classify/Tokenize request")
      ->envname("BERTH_MAX_TEXTS")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--max-text-bytes", o.limits.max_text_bytes, "Bytes per text")
      ->envname("BERTH_MAX_TEXT_BYTES")
      ->check(CLI::Range(int64_t{16}, int64_t{16} << 20))
      ->capture_default_str();
  app.add_option("--max-upload-bytes", o.limits.max_upload_bytes,
                 "Bytes per dataset upload or ImportModel archive")
      ->envname("BERTH_MAX_UPLOAD_BYTES")
      ->check(CLI::Range(int64_t{1}, int64_t{64} << 30))
      ->capture_default_str();
  app.add_option("--max-dataset-rows", o.limits.max_dataset_rows, "Rows per dataset upload")
      ->envname("BERTH_MAX_DATASET_ROWS")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--max-concurrent-uploads", o.limits.max_concurrent_uploads,
                 "Uploads in progress at once (each is held in memory until checked)")
      ->envname("BERTH_MAX_CONCURRENT_UPLOADS")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--max-queued-jobs", o.limits.max_queued_jobs,
                 "Jobs waiting in the queue, all tokens together")
      ->envname("BERTH_MAX_QUEUED_JOBS")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--max-queued-jobs-per-token", o.limits.max_queued_jobs_per_token,
                 "Jobs waiting, per API token")
      ->envname("BERTH_MAX_QUEUED_JOBS_PER_TOKEN")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--max-streams", o.limits.max_streams,
                 "Open WatchJob, ClassifyStream and ExportModel calls")
      ->envname("BERTH_MAX_STREAMS")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--max-message-bytes", o.max_message_bytes,
                 "Size limit of a gRPC message (both directions) and of an HTTP request body")
      ->envname("BERTH_MAX_MESSAGE_BYTES")
      ->check(CLI::Range(int64_t{1} << 20, int64_t{1} << 30))
      ->capture_default_str();
}

// The options given in their own units become ServerOptions; the device must be one this
// machine can name.
std::optional<int> FinishCommand(const RawFlags& r, ServerCommand* c) {
  ServerOptions& o = c->options;
  o.models.memory_budget_bytes = r.model_memory_mb << 20;
  o.models.engine.batcher.num_threads = r.inference_threads;
  o.models.engine.classifier.device = o.training.default_device;
  auto device = ParseDevice(o.training.default_device, "--device");
  if (!device.ok()) {
    std::cerr << "berth-server: " << device.status().message() << "\n";
    return 2;
  }
  // --precision and each --model-precision: int8 is refused off the CPU before any model loads.
  auto precision = [&](std::string_view text,
                       const std::string& field) -> absl::StatusOr<InferencePrecision> {
    absl::StatusOr<InferencePrecision> p = ParseInferencePrecision(text, field, !device->is_cpu());
    if (p.ok() && *p == InferencePrecision::kInt8 && !device->is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " int8 runs on the CPU only (--device is ", o.training.default_device, ")"));
    }
    return p;
  };
  auto refuse = [](const absl::Status& status) {
    std::cerr << "berth-server: " << status.message() << "\n";
    return 2;
  };
  absl::StatusOr<InferencePrecision> all = precision(r.precision, "--precision");
  if (!all.ok()) return refuse(all.status());
  o.models.engine.classifier.precision = *all;
  for (const std::string& item : r.model_precision) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos) {
      return refuse(absl::InvalidArgumentError(
          absl::StrCat("--model-precision: '", item, "' is not NAME=PRECISION")));
    }
    const std::string name = item.substr(0, eq);
    if (absl::Status named = store::ValidateName(name, "--model-precision"); !named.ok()) {
      return refuse(named);
    }
    absl::StatusOr<InferencePrecision> own =
        precision(item.substr(eq + 1), "--model-precision " + name);
    if (!own.ok()) return refuse(own.status());
    o.models.precision_by_model[name] = *own;
  }
  o.drain_timeout = std::chrono::milliseconds(static_cast<int64_t>(r.drain_timeout_seconds * 1000));
  auto ms = [](double seconds) {
    return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  };
  o.http_header_timeout = ms(r.http_header_timeout);
  o.http_read_timeout = ms(r.http_read_timeout);
  o.http_idle_timeout = ms(r.http_idle_timeout);
  o.models.engine.batcher.max_wait =
      std::chrono::microseconds(static_cast<int64_t>(r.batch_max_wait_ms * 1000));
  o.training.lease = std::chrono::milliseconds(static_cast<int64_t>(r.job_lease_seconds * 1000));
  c->json_logs = r.log_format == "json";
  if (o.training.worker_binary.empty())
    o.training.worker_binary = JoinPath(ExecutableDir(), "berth");
  return std::nullopt;
}

}  // namespace

ParsedCommand ParseServerCommand(int argc, const char* const* argv, const std::string& version) {
  ParsedCommand parsed;
  ServerCommand* c = &parsed.command;
  RawFlags r;
  r.job_lease_seconds = c->options.training.lease.count() / 1000.0;
  r.model_memory_mb = c->options.models.memory_budget_bytes >> 20;
  CLI::App app{
      "berth-server: fine-tune BERT-family classifiers and serve them over gRPC (berth.v1; health "
      "and reflection enabled). Every option can also be set by the environment variable shown."};
  app.set_version_flag("--version", version);
  for (auto add : {AddStoreAndRoleOptions, AddListenOptions, AddSecurityOptions, AddTrainingOptions,
                   AddInferenceOptions, AddLimitOptions}) {
    add(app, c, &r);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    parsed.exit_code = app.exit(e);
    return parsed;
  }
  parsed.exit_code = FinishCommand(r, c);
  return parsed;
}

}  // namespace berth::server
