// Prometheus metrics of a Berth server: families created once at start-up, series for bounded
// label sets (method × code, loaded model, running job) created on first use and cached, and
// gauges read at scrape time (queue depths, jobs by state, models loaded, process stats).
// Served in the Prometheus text format on its own port at /metrics.
#ifndef BERTH_SERVER_METRICS_H_
#define BERTH_SERVER_METRICS_H_

#include <grpcpp/support/status.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/data/progress.h"
#include "core/infer/batcher.h"
#include "core/service/limits.h"
#include "core/service/model_registry.h"
#include "core/store/store.h"
#include "server/metrics_http.h"

namespace berth::server {

// Also the facades' observer (core/service/limits.h): what they refuse and serve becomes
// metrics here.
class Metrics final : public service::Observer {
 public:
  // `listen` ("HOST:PORT", port 0 for any): where /metrics is served; "" records without serving.
  static absl::StatusOr<std::unique_ptr<Metrics>> Create(const std::string& listen);
  ~Metrics() override;

  int port() const { return port_; }  // 0 when not serving

  // The scrape-time sources; both must outlive this object or be cleared with nullptr.
  void SetSources(store::Store* store, service::ModelRegistry* registry);

  // Counts one finished RPC ("/berth.v1.InferenceService/Classify", its code, its duration).
  void RecordRequest(const std::string& full_method, grpc::StatusCode code, double seconds);
  // One answered HTTP request: its route's pattern ("/models/{model}/predict"), status, time.
  void RecordHttpRequest(const std::string& route, int status, double seconds);

  // service::Observer.
  void OnRefusal(const std::string& limit) override { RecordRefusal(limit); }
  void OnClassified(const std::string& model, int64_t texts,
                    const std::vector<double>& queue_seconds) override {
    RecordClassify(model, texts, queue_seconds);
  }
  void OnDatasetStored(int64_t bytes) override { RecordDatasetBytes(bytes); }

  // Inference.
  void RecordClassify(const std::string& model, int64_t texts,
                      const std::vector<double>& queue_seconds);
  BatchObserver MakeBatchObserver();
  void RecordModelLoad(double seconds, bool ok);

  // Training and datasets.
  void OnJobState(const store::JobRecord& job);
  void OnProgress(const std::string& job_id, const data::Progress& progress);
  void RecordDatasetBytes(int64_t bytes);
  // A call refused by a server limit ("upload_bytes", "queued_jobs", ...).
  void RecordRefusal(const std::string& limit);

  // The store: one SQL statement's time and outcome; a lease event of the job runner
  // ("renewed", "renew_failed", "lost", "rescued"); a registry change heard from the store.
  void RecordStatement(double seconds, bool ok);
  void RecordLeaseEvent(const std::string& event);
  void RecordRegistryChange(const std::string& kind);
  void RecordRegistryNotification(const std::string& kind);  // "version", "alias", "delete"

  // The text exposition of every family (what GET /metrics returns).
  std::string Render() const;

 private:
  Metrics();
  struct JobSeries {
    prometheus::Counter* updates = nullptr;
    prometheus::Gauge* loss = nullptr;
    prometheus::Gauge* samples_per_second = nullptr;
    // Data-parallel jobs only: ranks, throughput per rank, share of step time in all-reduce.
    prometheus::Gauge* ranks = nullptr;
    prometheus::Gauge* rank_samples_per_second = nullptr;
    prometheus::Gauge* allreduce_share = nullptr;
    std::map<std::string, prometheus::Gauge*> eval;
    int64_t last_update = 0;
  };
  JobSeries& JobLocked(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> scrape_gauges_;
  std::unique_ptr<MetricsHttpServer> http_;
  int port_ = 0;

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Histogram>& http_duration_;
  prometheus::Family<prometheus::Counter>& classify_texts_;
  prometheus::Histogram& queue_duration_;
  prometheus::Histogram& compute_duration_;
  prometheus::Histogram& batch_size_;
  prometheus::Histogram& batch_tokens_;
  prometheus::Histogram& padding_efficiency_;
  prometheus::Histogram& model_load_duration_;
  prometheus::Counter& model_load_failures_;
  prometheus::Family<prometheus::Counter>& training_updates_;
  prometheus::Family<prometheus::Gauge>& training_loss_;
  prometheus::Family<prometheus::Gauge>& training_sps_;
  prometheus::Family<prometheus::Gauge>& training_eval_;
  prometheus::Family<prometheus::Gauge>& training_ranks_;
  prometheus::Family<prometheus::Gauge>& training_rank_sps_;
  prometheus::Family<prometheus::Gauge>& training_allreduce_share_;
  prometheus::Counter& dataset_bytes_;
  prometheus::Family<prometheus::Counter>& refusals_;
  prometheus::Histogram& store_statement_duration_;
  prometheus::Counter& store_statement_errors_;
  prometheus::Family<prometheus::Counter>& lease_events_;
  prometheus::Family<prometheus::Counter>& registry_changes_;
  prometheus::Family<prometheus::Counter>& registry_notifications_;

  absl::Mutex mu_;
  std::map<std::string, prometheus::Counter*> request_counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Histogram*> request_histograms_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Counter*> http_counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Histogram*> http_histograms_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Counter*> classify_counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, JobSeries> jobs_ ABSL_GUARDED_BY(mu_);
  // Increments the counter of `family` whose one label `label` is `value`, created once and
  // kept in the map `cache` names (under mu_).
  using LabelledCache = std::map<std::string, prometheus::Counter*> Metrics::*;
  void IncrementLabelled(LabelledCache cache, prometheus::Family<prometheus::Counter>& family,
                         const std::string& label, const std::string& value);

  std::map<std::string, prometheus::Counter*> refusal_counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Counter*> lease_counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Counter*> registry_change_counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, prometheus::Counter*> registry_notification_counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace berth::server

#endif  // BERTH_SERVER_METRICS_H_
