/* Counters and gauges a daemon exposes on /metrics, updated from any thread. */
#ifndef LMP_METRICS_H
#define LMP_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "lmp/buf.h"

#define LMP_LATENCY_BUCKETS 10

struct lmp_metrics {
  atomic_uint_fast64_t consumed;        /* messages taken from Kafka */
  atomic_uint_fast64_t applied;         /* events whose handler committed */
  atomic_uint_fast64_t duplicates;      /* events skipped by the inbox */
  atomic_uint_fast64_t produced;        /* events acknowledged by Kafka */
  atomic_uint_fast64_t dead_lettered;   /* messages sent to the dead-letter topic */
  atomic_uint_fast64_t failed_batches;  /* transactions rolled back by a transient fault */
  atomic_uint_fast64_t publish_failures;/* deliveries refused or timed out */
  atomic_uint_fast64_t batches;         /* committed transactions */
  atomic_uint_fast64_t latency_bucket[LMP_LATENCY_BUCKETS + 1]; /* cumulative at render */
  atomic_uint_fast64_t latency_sum_us;
  atomic_int_fast64_t outbox_backlog;   /* events committed, not yet acknowledged */
  atomic_int_fast64_t consumer_lag;     /* sum over assigned partitions, -1 unknown */
  atomic_int db_up, kafka_up, draining, migrated;
  atomic_int_fast64_t heartbeat_ms;     /* last loop tick, monotonic ms */
};

void lmp_metrics_observe_batch(struct lmp_metrics *m, uint64_t micros);
/* Prometheus text exposition format. */
int lmp_metrics_render(struct lmp_metrics *m, const char *service, struct lmp_buf *out);

#endif
