/* What a daemon is: its name, the events it consumes and the handler of each, its
 * tables, settings and HTTP routes. The runtime (lmp_service_main) does the rest:
 * consume, apply in one transaction with inbox and outbox, publish, commit offsets.
 *
 * The failure rule. A message either applies, or is a duplicate (skipped), or is
 * dead-lettered with the reason; only a fault of the environment retries.
 *  - Faults of the message dead-letter it and the partition moves on: a key or
 *    header that is not short UTF-8 text, a body that does not decode, a schema
 *    that is not the topic's event type, text that is not UTF-8 (unless the route
 *    checks text itself), a handler that refuses it (LMP_EREJECT), a statement the
 *    database refuses for its content (LMP_EDB), an event it emits that is too
 *    large (LMP_ETOOBIG).
 *  - Faults of the environment (LMP_ERETRY, LMP_ENOMEM: database away, deadlock,
 *    serialization failure, statement timeout) roll the batch back and retry it
 *    with backoff, for as long as it takes.
 *  - A batch runs without savepoints. When one of its messages fails for its own
 *    sake, the batch is rolled back and run again one message at a time, each in a
 *    savepoint, so that message alone is dead-lettered. A message that fails with
 *    LMP_ERETRY while the database is reachable, retry.isolate_after times in a
 *    row, is dead-lettered too (RETRIES_EXHAUSTED): no content can hold a partition.
 *  - An event the broker refuses for good (too large, invalid) is parked: moved to
 *    lmp_outbox_parked, counted, and a copy sent to the dead-letter topic. */
#ifndef LMP_SERVICE_H
#define LMP_SERVICE_H

#include <avro.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "lmp/avro/codec.h"
#include "lmp/base/buf.h"
#include "lmp/base/config.h"
#include "lmp/base/embed.h"
#include "lmp/base/topics.h"
#include "lmp/io/http.h"

struct lmp_tx;
struct lmp_route;

/* One consumed and decoded event, as a handler sees it. Every pointer is valid for
 * the handler's call only. */
struct lmp_event {
  const struct lmp_schema *schema;  /* the current schema; schema->name is the event type */
  avro_value_t *value;              /* decoded body */
  const char *event_id;             /* header event_id, or topic/partition/offset */
  const char *correlation_id;       /* header correlation_id (the request id), or NULL */
  const char *traceparent;          /* the W3C trace context of the event's own span */
  const char *key;                  /* message key (the onboarding id), or NULL */
  const char *topic;
  int32_t partition;
  int64_t offset;
  const struct lmp_route *route;    /* the route that matched */
};

/* Applies one event in the batch transaction (on the worker thread). Returns 0, or an
 * error code by the failure rule above; on failure its writes are undone. */
typedef int (*lmp_handle_fn)(struct lmp_tx *tx, const struct lmp_event *ev);

/* An event type the daemon consumes, from the topic <prefix><event_type>, and its
 * handler. A topic carries exactly its event type: any other is dead-lettered. */
struct lmp_route {
  const char *event_type;  /* NULL ends the table */
  lmp_handle_fn handle;
  const void *data;        /* for the handler, as ev->route->data */
  int checks_text;         /* the handler checks its strings itself (the runtime then does
                            * not refuse text that is not UTF-8) */
};

struct lmp_service {
  const char *name;                          /* "intake": log name, group and database */
  const struct lmp_route *routes;            /* the events it consumes */
  const char *const *emits;                  /* the event types it may emit, NULL-terminated:
                                              * its write permissions (--print-acls) */
  const struct lmp_embedded *migrations;     /* the service's tables */
  const struct lmp_conf_entry *conf;         /* the service's own settings */
  size_t conf_n;
  void *conf_base;
  int (*configured)(void *ctx, char *err, size_t errlen); /* validates its settings */
  const struct lmp_http_route *http;         /* its HTTP routes, or NULL */
  /* Optional periodic work in its own transaction, every tick_ms, and at once after a
   * transaction that called lmp_tx_wake. Returns like a handler; what it emits is
   * published. */
  int (*tick)(struct lmp_tx *tx);
  int tick_ms;
  /* Optional: the least time between two ticks that wake-ups ask for. A wake-up
   * sooner than this after the last tick runs the tick when the gap is over: a burst
   * of wake-ups costs one tick a gap, not one each. A tick that asks for itself (more
   * is due) runs at once. 0: every wake-up runs the tick at once. */
  int tick_gap_ms;
  /* Optional: purges what the service stores of personal data beyond its facts (request
   * and mail bodies) once older than days; runs in its own transaction every
   * retention.interval_s, beside the runtime's purge of processed inbox rows. */
  int (*purge)(struct lmp_tx *tx, int days);
  /* Optional: work that must not hold the consumer (sending mail), on
   * background_threads threads, each with a database connection of its own. Each call
   * runs in a transaction of its own, committed when it returns >= 0: 0 to be called
   * again at once, or how many ms to wait before the next call unless woken sooner (a
   * transaction that called lmp_tx_wake committed). < 0 rolls back and tries again
   * after a second. It may not emit events; lmp_tx_wake from it runs the tick, which
   * may. The threads end when the daemon drains, after their current call. */
  int (*background)(struct lmp_tx *tx);
  int background_threads;
  /* Optional: the service's own Prometheus metrics, appended to /metrics (any thread). */
  int (*metrics)(void *ctx, const char *service, struct lmp_buf *out);
  void *ctx;
};

/* The whole daemon: options (-c FILE, --print-config, --check-config, --print-routes,
 * --print-acls),
 * configuration, loop, drain. Returns the process exit status. */
int lmp_service_main(const struct lmp_service *svc, int argc, char **argv);

/* Runs the service's tick soon; from any thread (background work calls it through
 * lmp_tx_wake). */
void lmp_service_wake(void);

#endif
