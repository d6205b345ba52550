// Berth's Prometheus metrics.
#include "server/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <sstream>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/util/status_macros.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace berth::server {
namespace {

using prometheus::Histogram;

Histogram::BucketBoundaries LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

// gRPC and absl share the canonical codes, so absl's names are gRPC's ("OK", "NOT_FOUND", ...).
std::string GrpcCodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

prometheus::MetricFamily Gauge(const std::string& name, const std::string& help) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = prometheus::MetricType::Gauge;
  return f;
}

void AddValue(prometheus::MetricFamily* f, double value,
              std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (f->type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f->metric.push_back(std::move(m));
}

// Values read when Prometheus scrapes: jobs by state, loaded models and their queues, and the
// process's memory, CPU time, open files and start time.
class ScrapeGauges final : public prometheus::Collectable {
 public:
  ScrapeGauges() : start_time_(static_cast<double>(std::time(nullptr))) {}

  void SetSources(store::Store* store, service::ModelRegistry* registry) {
    absl::MutexLock lock(&mu_);
    store_ = store;
    registry_ = registry;
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    absl::MutexLock lock(&mu_);
    if (store_ != nullptr) {
      auto info = Gauge("berth_store_info", "The store's backend (sqlite or postgresql)");
      AddValue(&info, 1, {{"backend", store_->backend()}});
      out.push_back(std::move(info));
      if (auto counts = store_->CountJobs(); counts.ok()) {
        auto f = Gauge("berth_jobs", "Fine-tuning jobs by state");
        for (const auto& [state, n] : *counts) {
          AddValue(&f, static_cast<double>(n),
                   {{"state", std::string(store::JobStateName(state))}});
        }
        out.push_back(std::move(f));
      }
    }
    if (registry_ != nullptr) {
      auto depth = Gauge("berth_inference_queue_depth",
                         "Requests waiting for a batch, per loaded model version");
      auto loaded = Gauge("berth_models_loaded", "Model versions loaded for inference");
      auto bytes = Gauge("berth_models_loaded_bytes", "Weight bytes of the loaded model versions");
      auto dropped = Gauge(
          "berth_inference_dropped_total",
          "Queued texts dropped before their forward pass, per loaded model version, by reason: "
          "cancelled (the client cancelled or went away) or expired (its deadline passed)");
      dropped.type = prometheus::MetricType::Counter;
      int64_t n = 0;
      registry_->ForEachLoaded(
          [&](const std::string& name, int64_t version, const InferenceEngine& engine) {
            const BatcherStats stats = engine.batcher().stats();
            const std::string model = absl::StrCat(name, ":", version);
            AddValue(&depth, static_cast<double>(stats.queue_depth), {{"model", model}});
            AddValue(&dropped, static_cast<double>(stats.cancelled),
                     {{"model", model}, {"reason", "cancelled"}});
            AddValue(&dropped, static_cast<double>(stats.expired),
                     {{"model", model}, {"reason", "expired"}});
            ++n;
          });
      AddValue(&loaded, static_cast<double>(n));
      AddValue(&bytes, static_cast<double>(registry_->loaded_bytes()));
      out.push_back(std::move(depth));
      out.push_back(std::move(loaded));
      out.push_back(std::move(bytes));
      out.push_back(std::move(dropped));
    }
    AddProcessMetrics(&out);
    return out;
  }

 private:
  void AddProcessMetrics(std::vector<prometheus::MetricFamily>* out) const {
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    std::ifstream statm("/proc/self/statm");
    double size_pages = 0, resident_pages = 0;
    if (statm >> size_pages >> resident_pages) {
      auto rss = Gauge("process_resident_memory_bytes", "Resident memory size in bytes");
      AddValue(&rss, resident_pages * page);
      out->push_back(std::move(rss));
      auto vms = Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes");
      AddValue(&vms, size_pages * page);
      out->push_back(std::move(vms));
    }
    std::ifstream stat("/proc/self/stat");
    std::string line;
    if (std::getline(stat, line)) {
      // Fields after the command name (which may hold spaces) start at state (field 3);
      // utime and stime are fields 14 and 15.
      std::istringstream rest(line.substr(line.rfind(')') + 2));
      std::string field;
      double utime = 0, stime = 0;
      for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stod(field);
        if (i == 15) stime = std::stod(field);
      }
      prometheus::MetricFamily cpu;
      cpu.name = "process_cpu_seconds_total";
      cpu.help = "Total user and system CPU time spent in seconds";
      cpu.type = prometheus::MetricType::Counter;
      AddValue(&cpu, (utime + stime) / ticks);
      out->push_back(std::move(cpu));
    }
    int fds = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
      while (readdir(d) != nullptr) ++fds;
      closedir(d);
      auto open_fds = Gauge("process_open_fds", "Number of open file descriptors");
      AddValue(&open_fds, fds - 2);  // without . and ..
      out->push_back(std::move(open_fds));
    }
    auto start = Gauge("process_start_time_seconds",
                       "Start time of the process since the Unix epoch in seconds");
    AddValue(&start, start_time_);
    out->push_back(std::move(start));
  }

  const double start_time_;
  mutable absl::Mutex mu_;
  store::Store* store_ ABSL_GUARDED_BY(mu_) = nullptr;
  service::ModelRegistry* registry_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// The series of `family` for a label set, created on first use and cached under `key`;
// `labels()` is only called then. The caller holds the lock that guards `cache`.
template <typename T, typename LabelsFn, typename... Args>
T* CachedSeries(std::map<std::string, T*>& cache, prometheus::Family<T>& family,
                const std::string& key, const LabelsFn& labels, Args&&... args) {
  auto it = cache.find(key);
  if (it == cache.end())
    it = cache.emplace(key, &family.Add(labels(), std::forward<Args>(args)...)).first;
  return it->second;
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      scrape_gauges_(std::make_shared<ScrapeGauges>()),
      requests_(prometheus::BuildCounter()
                    .Name("berth_requests_total")
                    .Help("gRPC calls handled, by service, method and status code")
                    .Register(*registry_)),
      request_duration_(prometheus::BuildHistogram()
                            .Name("berth_request_duration_seconds")
                            .Help("gRPC call latency from arrival to status, by method")
                            .Register(*registry_)),
      http_requests_(prometheus::BuildCounter()
                         .Name("berth_http_requests_total")
                         .Help("HTTP requests answered, by route pattern and status")
                         .Register(*registry_)),
      http_duration_(prometheus::BuildHistogram()
                         .Name("berth_http_request_duration_seconds")
                         .Help("HTTP request latency from its headers to its answer, by route")
                         .Register(*registry_)),
      classify_texts_(prometheus::BuildCounter()
                          .Name("berth_classify_texts_total")
                          .Help("Texts classified, by model")
                          .Register(*registry_)),
      queue_duration_(prometheus::BuildHistogram()
                          .Name("berth_inference_queue_duration_seconds")
                          .Help("Time a text waited for its batch")
                          .Register(*registry_)
                          .Add({}, LatencyBuckets())),
      compute_duration_(prometheus::BuildHistogram()
                            .Name("berth_inference_compute_duration_seconds")
                            .Help("Forward pass time per batch")
                            .Register(*registry_)
                            .Add({}, LatencyBuckets())),
      batch_size_(prometheus::BuildHistogram()
                      .Name("berth_batch_size")
                      .Help("Rows per inference batch")
                      .Register(*registry_)
                      .Add({}, Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128})),
      batch_tokens_(prometheus::BuildHistogram()
                        .Name("berth_batch_tokens")
                        .Help("Padded tokens per inference batch")
                        .Register(*registry_)
                        .Add({}, Histogram::BucketBoundaries{64, 128, 256, 512, 1024, 2048, 4096,
                                                             8192, 16384})),
      padding_efficiency_(
          prometheus::BuildHistogram()
              .Name("berth_batch_padding_efficiency")
              .Help("Real tokens / padded tokens per inference batch")
              .Register(*registry_)
              .Add({}, Histogram::BucketBoundaries{0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0})),
      model_load_duration_(
          prometheus::BuildHistogram()
              .Name("berth_model_load_duration_seconds")
              .Help("Time to load a model version for inference")
              .Register(*registry_)
              .Add({}, Histogram::BucketBoundaries{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60})),
      model_load_failures_(prometheus::BuildCounter()
                               .Name("berth_model_load_failures_total")
                               .Help("Model loads that failed")
                               .Register(*registry_)
                               .Add({})),
      training_updates_(
          prometheus::BuildCounter()
              .Name("berth_training_updates_total")
              .Help("Optimizer updates of running jobs (series removed when a job ends)")
              .Register(*registry_)),
      training_loss_(prometheus::BuildGauge()
                         .Name("berth_training_loss")
                         .Help("Latest training loss of running jobs")
                         .Register(*registry_)),
      training_sps_(prometheus::BuildGauge()
                        .Name("berth_training_samples_per_second")
                        .Help("Training throughput of running jobs")
                        .Register(*registry_)),
      training_eval_(prometheus::BuildGauge()
                         .Name("berth_training_eval_metric")
                         .Help("Latest evaluation of running jobs, by metric")
                         .Register(*registry_)),
      training_ranks_(prometheus::BuildGauge()
                          .Name("berth_training_ranks")
                          .Help("Processes (c10d ranks) of running data-parallel jobs")
                          .Register(*registry_)),
      training_rank_sps_(prometheus::BuildGauge()
                             .Name("berth_training_rank_samples_per_second")
                             .Help("Training throughput per rank of running data-parallel jobs")
                             .Register(*registry_)),
      training_allreduce_share_(
          prometheus::BuildGauge()
              .Name("berth_training_allreduce_share")
              .Help("Share of the latest update's time spent averaging gradients across ranks")
              .Register(*registry_)),
      dataset_bytes_(prometheus::BuildCounter()
                         .Name("berth_dataset_bytes_total")
                         .Help("Bytes of datasets accepted by UploadDataset")
                         .Register(*registry_)
                         .Add({})),
      refusals_(prometheus::BuildCounter()
                    .Name("berth_limit_refusals_total")
                    .Help("Calls refused by a server limit, by limit")
                    .Register(*registry_)),
      store_statement_duration_(
          prometheus::BuildHistogram()
              .Name("berth_store_statement_duration_seconds")
              .Help("Time of each SQL statement against the store (see berth_store_info)")
              .Register(*registry_)
              .Add({}, Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                   0.1, 0.25, 0.5, 1, 2.5})),
      store_statement_errors_(prometheus::BuildCounter()
                                  .Name("berth_store_statement_errors_total")
                                  .Help("SQL statements against the store that failed")
                                  .Register(*registry_)
                                  .Add({})),
      lease_events_(prometheus::BuildCounter()
                        .Name("berth_job_lease_events_total")
                        .Help("Job leases by event: renewed, renew_failed (store unreachable), "
                              "lost (a job of this worker was taken over), rescued (another "
                              "worker's expired job put back in the queue)")
                        .Register(*registry_)),
      registry_changes_(prometheus::BuildCounter()
                            .Name("berth_registry_changes_total")
                            .Help("Model registry changes heard from the store that dropped a "
                                  "loaded model, by kind")
                            .Register(*registry_)),
      registry_notifications_(
          prometheus::BuildCounter()
              .Name("berth_registry_notifications_total")
              .Help("Registry changes other processes announced through the store (PostgreSQL "
                    "NOTIFY), by kind: version, alias, delete")
              .Register(*registry_)) {
  // Every known label value exported from the start at zero, so that rates and alerts see the
  // first event.
  absl::MutexLock lock(&mu_);
  for (const char* event : {"renewed", "renew_failed", "lost", "rescued"})
    lease_counters_[event] = &lease_events_.Add({{"event", event}});
  registry_change_counters_["deleted"] = &registry_changes_.Add({{"kind", "deleted"}});
  for (const char* kind : {"version", "alias", "delete"})
    registry_notification_counters_[kind] = &registry_notifications_.Add({{"kind", kind}});
}

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::Create(const std::string& listen) {
  std::unique_ptr<Metrics> m(new Metrics());
  if (!listen.empty()) {
    Metrics* raw = m.get();
    ASSIGN_OR_RETURN(m->http_, MetricsHttpServer::Start(listen, [raw] { return raw->Render(); }));
    m->port_ = m->http_->port();
  }
  return m;
}

std::string Metrics::Render() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (auto& f : scrape_gauges_->Collect()) families.push_back(std::move(f));
  return prometheus::TextSerializer().Serialize(families);
}

Metrics::~Metrics() { http_.reset(); }

void Metrics::SetSources(store::Store* store, service::ModelRegistry* registry) {
  static_cast<ScrapeGauges*>(scrape_gauges_.get())->SetSources(store, registry);
}

void Metrics::RecordRequest(const std::string& full_method, grpc::StatusCode code, double seconds) {
  const std::string code_name = GrpcCodeName(code);
  // "/berth.v1.InferenceService/Classify" → service, method.
  const size_t slash = full_method.rfind('/');
  auto service = [&] { return slash == std::string::npos ? "" : full_method.substr(1, slash - 1); };
  auto method = [&] {
    return slash == std::string::npos ? full_method : full_method.substr(slash + 1);
  };
  prometheus::Counter* counter;
  prometheus::Histogram* histogram;
  {
    absl::MutexLock lock(&mu_);
    counter =
        CachedSeries(request_counters_, requests_, absl::StrCat(full_method, " ", code_name), [&] {
          return prometheus::Labels{
              {"service", service()}, {"method", method()}, {"code", code_name}};
        });
    histogram = CachedSeries(
        request_histograms_, request_duration_, full_method,
        [&] {
          return prometheus::Labels{{"method", method()}};
        },
        LatencyBuckets());
  }
  counter->Increment();
  histogram->Observe(seconds);
}

void Metrics::RecordHttpRequest(const std::string& route, int status, double seconds) {
  const std::string code = std::to_string(status);
  prometheus::Counter* counter;
  prometheus::Histogram* histogram;
  {
    absl::MutexLock lock(&mu_);
    counter = CachedSeries(http_counters_, http_requests_, absl::StrCat(route, " ", code), [&] {
      return prometheus::Labels{{"route", route}, {"code", code}};
    });
    histogram = CachedSeries(
        http_histograms_, http_duration_, route,
        [&] {
          return prometheus::Labels{{"route", route}};
        },
        LatencyBuckets());
  }
  counter->Increment();
  histogram->Observe(seconds);
}

void Metrics::RecordClassify(const std::string& model, int64_t texts,
                             const std::vector<double>& queue_seconds) {
  prometheus::Counter* counter;
  {
    absl::MutexLock lock(&mu_);
    counter = CachedSeries(classify_counters_, classify_texts_, model, [&] {
      return prometheus::Labels{{"model", model}};
    });
  }
  counter->Increment(static_cast<double>(texts));
  for (double q : queue_seconds) queue_duration_.Observe(q);
}

BatchObserver Metrics::MakeBatchObserver() {
  return [this](int64_t rows, int64_t padded_tokens, int64_t real_tokens, double seconds) {
    batch_size_.Observe(static_cast<double>(rows));
    batch_tokens_.Observe(static_cast<double>(padded_tokens));
    if (padded_tokens > 0)
      padding_efficiency_.Observe(static_cast<double>(real_tokens) / padded_tokens);
    compute_duration_.Observe(seconds);
  };
}

void Metrics::RecordModelLoad(double seconds, bool ok) {
  if (ok) {
    model_load_duration_.Observe(seconds);
  } else {
    model_load_failures_.Increment();
  }
}

Metrics::JobSeries& Metrics::JobLocked(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it != jobs_.end()) return it->second;
  JobSeries s;
  s.updates = &training_updates_.Add({{"job", job_id}});
  s.loss = &training_loss_.Add({{"job", job_id}});
  s.samples_per_second = &training_sps_.Add({{"job", job_id}});
  return jobs_.emplace(job_id, std::move(s)).first->second;
}

void Metrics::OnJobState(const store::JobRecord& job) {
  if (!store::IsTerminal(job.state)) return;
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job.id);
  if (it == jobs_.end()) return;
  training_updates_.Remove(it->second.updates);
  training_loss_.Remove(it->second.loss);
  training_sps_.Remove(it->second.samples_per_second);
  if (it->second.ranks != nullptr) {
    training_ranks_.Remove(it->second.ranks);
    training_rank_sps_.Remove(it->second.rank_samples_per_second);
    training_allreduce_share_.Remove(it->second.allreduce_share);
  }
  for (auto& [name, gauge] : it->second.eval) training_eval_.Remove(gauge);
  jobs_.erase(it);
}

void Metrics::OnProgress(const std::string& job_id, const data::Progress& p) {
  absl::MutexLock lock(&mu_);
  JobSeries& s = JobLocked(job_id);
  if (p.update > s.last_update) {
    s.updates->Increment(static_cast<double>(p.update - s.last_update));
    s.last_update = p.update;
  }
  if (p.eval == nullptr) {
    s.loss->Set(p.loss);
    s.samples_per_second->Set(p.samples_per_second);
    if (p.world_size > 1) {
      if (s.ranks == nullptr) {
        s.ranks = &training_ranks_.Add({{"job", job_id}});
        s.rank_samples_per_second = &training_rank_sps_.Add({{"job", job_id}});
        s.allreduce_share = &training_allreduce_share_.Add({{"job", job_id}});
      }
      s.ranks->Set(p.world_size);
      s.rank_samples_per_second->Set(p.samples_per_second / p.world_size);
      s.allreduce_share->Set(p.allreduce_share);
    }
    return;
  }
  // A classifier has no correlations, a scorer no classes.
  static const std::vector<const char*> kClassifier = {"loss", "accuracy", "macro_f1", "micro_f1"};
  static const std::vector<const char*> kScorer = {"loss", "pearson", "spearman"};
  for (const char* name : p.eval->scored ? kScorer : kClassifier) {
    double v = 0;
    if (!p.eval->Get(name, &v)) continue;
    CachedSeries(s.eval, training_eval_, name, [&] {
      return prometheus::Labels{{"job", job_id}, {"metric", name}};
    })->Set(v);
  }
}

void Metrics::RecordDatasetBytes(int64_t bytes) {
  dataset_bytes_.Increment(static_cast<double>(bytes));
}

void Metrics::RecordRefusal(const std::string& limit) {
  IncrementLabelled(&Metrics::refusal_counters_, refusals_, "limit", limit);
}

void Metrics::RecordStatement(double seconds, bool ok) {
  store_statement_duration_.Observe(seconds);
  if (!ok) store_statement_errors_.Increment();
}

void Metrics::RecordLeaseEvent(const std::string& event) {
  IncrementLabelled(&Metrics::lease_counters_, lease_events_, "event", event);
}

void Metrics::RecordRegistryChange(const std::string& kind) {
  IncrementLabelled(&Metrics::registry_change_counters_, registry_changes_, "kind", kind);
}

void Metrics::RecordRegistryNotification(const std::string& kind) {
  IncrementLabelled(&Metrics::registry_notification_counters_, registry_notifications_, "kind",
                    kind);
}

void Metrics::IncrementLabelled(LabelledCache cache,
                                prometheus::Family<prometheus::Counter>& family,
                                const std::string& label, const std::string& value) {
  prometheus::Counter* c;
  {
    absl::MutexLock lock(&mu_);
    c = CachedSeries(this->*cache, family, value, [&] {
      return prometheus::Labels{{label, value}};
    });
  }
  c->Increment();
}

}  // namespace berth::server
