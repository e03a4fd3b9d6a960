/* Prometheus rendering of the runtime's counters. */
#include "io/metrics.h"

#include "lmp/io/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double bucket_le[LMP_LATENCY_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,  0.1,    0.25,  1.0,  5.0};

void lmp_metrics_init(struct lmp_metrics *m) {
  pthread_mutex_init(&m->lag_lock, NULL);
  atomic_store(&m->consumer_lag, -1);
  m->started_s = (int64_t)time(NULL);
}

void lmp__metrics_lag(struct lmp_metrics *m, json_t *stats) {
  int64_t total = 0;
  int known = 0, n = 0;
  struct lmp_lag lags[LMP_LAG_PARTITIONS];
  const char *tk, *pk;
  json_t *tv, *pv;
  json_object_foreach(json_object_get(stats, "topics"), tk, tv) {
    json_object_foreach(json_object_get(tv, "partitions"), pk, pv) {
      json_t *l = json_object_get(pv, "consumer_lag");
      if (strcmp(pk, "-1") == 0 || !json_is_integer(l) || json_integer_value(l) < 0)
        continue;
      total += json_integer_value(l);
      known = 1;
      if (n < LMP_LAG_PARTITIONS) {
        snprintf(lags[n].topic, sizeof(lags[n].topic), "%s", tk);
        lags[n].partition = (int32_t)strtol(pk, NULL, 10);
        lags[n].lag = json_integer_value(l);
        n++;
      }
    }
  }
  atomic_store(&m->consumer_lag, known ? total : -1);
  pthread_mutex_lock(&m->lag_lock);
  memcpy(m->lags, lags, (size_t)n * sizeof(lags[0]));
  m->nlags = n;
  pthread_mutex_unlock(&m->lag_lock);
}

void lmp_metrics_observe_batch(struct lmp_metrics *m, uint64_t micros) {
  int i = 0;
  while (i < LMP_LATENCY_BUCKETS && (double)micros / 1e6 > bucket_le[i])
    i++;
  atomic_fetch_add(&m->latency_bucket[i], 1);
  atomic_fetch_add(&m->latency_sum_us, micros);
  atomic_fetch_add(&m->batches, 1);
}

#define COUNTER(name, help, v)                                                              \
  r = r ? r : lmp_buf_printf(out, "# HELP lmp_" name " " help "\n# TYPE lmp_" name " counter\n" \
                             "lmp_" name "{service=\"%s\"} %llu\n", service,                  \
                             (unsigned long long)atomic_load(&(v)))
#define GAUGE(name, help, v)                                                                \
  r = r ? r : lmp_buf_printf(out, "# HELP lmp_" name " " help "\n# TYPE lmp_" name " gauge\n" \
                             "lmp_" name "{service=\"%s\"} %lld\n", service, (long long)(v))

int lmp_metrics_ready(struct lmp_metrics *m) {
  return atomic_load(&m->db_up) && atomic_load(&m->kafka_up) && !atomic_load(&m->consumer_refused) &&
         !atomic_load(&m->producer_refused) && !atomic_load(&m->draining) && atomic_load(&m->migrated);
}

int lmp_metrics_render(struct lmp_metrics *m, const char *service, struct lmp_buf *out) {
  int r = 0;
  COUNTER("consumed_total", "Messages consumed from Kafka.", m->consumed);
  COUNTER("applied_total", "Events applied by the service handler.", m->applied);
  COUNTER("duplicates_total", "Redelivered events skipped by the inbox.", m->duplicates);
  COUNTER("produced_total", "Events acknowledged by Kafka.", m->produced);
  COUNTER("dead_lettered_total", "Messages sent to the dead-letter topic.", m->dead_lettered);
  COUNTER("failed_batches_total", "Batches rolled back by a transient fault and retried.", m->failed_batches);
  COUNTER("isolated_batches_total", "Batches run again one message at a time to find a failing message.", m->isolated_batches);
  COUNTER("publish_failures_total", "Event deliveries that failed.", m->publish_failures);
  COUNTER("outbox_parked_total", "Events the broker refused for good, parked in lmp_outbox_parked.", m->parked);
  GAUGE("outbox_backlog", "Events committed to the outbox and not yet acknowledged.", atomic_load(&m->outbox_backlog));
  GAUGE("outbox_parked", "Events parked in lmp_outbox_parked waiting for an operator (counted at each sweep).",
        atomic_load(&m->parked_waiting));
  GAUGE("http_long_polls", "Status long polls held open, at most half of http.max_connections.",
        atomic_load(&m->long_polls));
  GAUGE("consumer_lag", "Messages behind the end of the assigned partitions (-1 unknown).", atomic_load(&m->consumer_lag));
  r = r ? r : lmp_buf_printf(out, "# HELP lmp_consumer_partition_lag Messages behind the end of one assigned partition.\n"
                                  "# TYPE lmp_consumer_partition_lag gauge\n");
  pthread_mutex_lock(&m->lag_lock);
  for (int i = 0; r == 0 && i < m->nlags; i++)
    r = lmp_buf_printf(out, "lmp_consumer_partition_lag{service=\"%s\",topic=\"%s\",partition=\"%d\"} %lld\n",
                       service, m->lags[i].topic, (int)m->lags[i].partition, (long long)m->lags[i].lag);
  pthread_mutex_unlock(&m->lag_lock);
  uint64_t exported, dropped, queued;
  lmp_trace_counts(&exported, &dropped, &queued);
  r = r ? r : lmp_buf_printf(out, "# HELP lmp_trace_spans_exported_total Spans the OTLP collector took.\n"
                                  "# TYPE lmp_trace_spans_exported_total counter\n"
                                  "lmp_trace_spans_exported_total{service=\"%s\"} %llu\n"
                                  "# HELP lmp_trace_spans_dropped_total Spans dropped: the queue full, or the collector "
                                  "away or slow.\n# TYPE lmp_trace_spans_dropped_total counter\n"
                                  "lmp_trace_spans_dropped_total{service=\"%s\"} %llu\n"
                                  "# HELP lmp_trace_spans_queued Spans waiting to be sent.\n"
                                  "# TYPE lmp_trace_spans_queued gauge\n"
                                  "lmp_trace_spans_queued{service=\"%s\"} %llu\n",
                             service, (unsigned long long)exported, service, (unsigned long long)dropped, service,
                             (unsigned long long)queued);
  GAUGE("up", "1 when the database and the broker are reachable.", atomic_load(&m->db_up) && atomic_load(&m->kafka_up));
  GAUGE("ready", "1 when /readyz answers 200: reachable, credentials taken, migrated, not draining.",
        lmp_metrics_ready(m));
  /* The standard name, so restarts are seen by the usual rules (changes()). */
  r = r ? r : lmp_buf_printf(out, "# HELP process_start_time_seconds Start time of the process since the Unix epoch.\n"
                                  "# TYPE process_start_time_seconds gauge\n"
                                  "process_start_time_seconds{service=\"%s\"} %lld\n",
                             service, (long long)m->started_s);
  r = r ? r : lmp_buf_printf(out, "# HELP lmp_batch_duration_seconds Time from consuming a batch to committing its offsets.\n"
                                  "# TYPE lmp_batch_duration_seconds histogram\n");
  uint64_t cum = 0;
  for (int i = 0; i <= LMP_LATENCY_BUCKETS; i++) {
    cum += atomic_load(&m->latency_bucket[i]);
    if (i < LMP_LATENCY_BUCKETS)
      r = r ? r : lmp_buf_printf(out, "lmp_batch_duration_seconds_bucket{service=\"%s\",le=\"%g\"} %llu\n",
                                 service, bucket_le[i], (unsigned long long)cum);
    else
      r = r ? r : lmp_buf_printf(out, "lmp_batch_duration_seconds_bucket{service=\"%s\",le=\"+Inf\"} %llu\n",
                                 service, (unsigned long long)cum);
  }
  r = r ? r : lmp_buf_printf(out, "lmp_batch_duration_seconds_sum{service=\"%s\"} %.6f\n"
                                  "lmp_batch_duration_seconds_count{service=\"%s\"} %llu\n",
                             service, (double)atomic_load(&m->latency_sum_us) / 1e6, service,
                             (unsigned long long)cum);
  return r;
}
