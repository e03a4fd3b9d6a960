/* Counters and gauges a daemon exposes on /metrics, updated from any thread. */
#ifndef LMP_METRICS_H
#define LMP_METRICS_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "lmp/base/buf.h"

#define LMP_LATENCY_BUCKETS 10
#define LMP_LAG_PARTITIONS 256 /* partitions whose lag is shown one by one */

struct lmp_lag {
  char topic[250];
  int32_t partition;
  int64_t lag;
};

struct lmp_metrics {
  atomic_uint_fast64_t consumed;        /* messages taken from Kafka */
  atomic_uint_fast64_t applied;         /* events whose handler committed */
  atomic_uint_fast64_t duplicates;      /* events skipped by the inbox */
  atomic_uint_fast64_t produced;        /* events acknowledged by Kafka */
  atomic_uint_fast64_t dead_lettered;   /* messages sent to the dead-letter topic */
  atomic_uint_fast64_t failed_batches;  /* transactions rolled back and retried */
  atomic_uint_fast64_t isolated_batches;/* batches run again one message at a time */
  atomic_uint_fast64_t publish_failures;/* deliveries refused or timed out */
  atomic_uint_fast64_t parked;          /* events the broker refused for good */
  atomic_uint_fast64_t batches;         /* committed transactions */
  atomic_uint_fast64_t latency_bucket[LMP_LATENCY_BUCKETS + 1]; /* cumulative at render */
  atomic_uint_fast64_t latency_sum_us;
  atomic_int_fast64_t outbox_backlog;   /* events committed, not yet acknowledged */
  atomic_int_fast64_t parked_waiting;   /* rows in lmp_outbox_parked, as the last sweep counted */
  int64_t started_s;                    /* the process's start, Unix seconds */
  atomic_int_fast64_t consumer_lag;     /* sum over assigned partitions, -1 unknown */
  atomic_int long_polls;                /* HTTP long polls held */
  atomic_int db_up, kafka_up, draining, migrated;
  /* Why the broker turns this daemon away, as enum lmp_kafka_refusal, for what the
   * consumer and the producer last saw; cleared by their next success. */
  atomic_int consumer_refused, producer_refused;
  atomic_int db_refused;                /* the database turned the last connection away */
  atomic_int_fast64_t heartbeat_ms;     /* last loop tick, monotonic ms */
  pthread_mutex_t lag_lock;             /* guards lags: written by stats, read by HTTP */
  struct lmp_lag lags[LMP_LAG_PARTITIONS];
  int nlags;
};

enum lmp_kafka_refusal {
  LMP_KAFKA_ACCEPTED,
  LMP_KAFKA_UNAUTHENTICATED, /* TLS or SASL failed: the broker does not know us */
  LMP_KAFKA_DENIED,          /* an ACL refuses us a topic or the group */
};

void lmp_metrics_init(struct lmp_metrics *m);
/* Whether the daemon is ready, as /readyz answers: database and broker reachable and
 * taking its credentials, migrations applied, not draining. */
int lmp_metrics_ready(struct lmp_metrics *m);
void lmp_metrics_observe_batch(struct lmp_metrics *m, uint64_t micros);
/* Takes consumer lag per partition from librdkafka's statistics JSON. */
void lmp__metrics_lag(struct lmp_metrics *m, json_t *stats);
/* Prometheus text exposition format. */
int lmp_metrics_render(struct lmp_metrics *m, const char *service, struct lmp_buf *out);

#endif
