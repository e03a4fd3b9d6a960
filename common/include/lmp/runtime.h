/* The daemon runtime: consume a batch, apply it in one transaction with inbox and
 * outbox, publish the outbox, then commit offsets. Services supply the handler. */
#ifndef LMP_RUNTIME_H
#define LMP_RUNTIME_H

#include <avro.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "lmp/buf.h"
#include "lmp/codec.h"
#include "lmp/config.h"
#include "lmp/embed.h"

/* One consumed and decoded event, as a handler sees it. */
struct lmp_event {
  const struct lmp_schema *schema; /* the writer's schema; schema->name is the event type */
  avro_value_t *value;             /* decoded body */
  const char *event_id;            /* header event_id, or topic/partition/offset */
  const char *correlation_id;      /* header correlation_id: the request id */
  const char *key;                 /* message key: the onboarding id */
  const char *topic;
  int32_t partition;
  int64_t offset;
};

/* The batch transaction a handler works in (on a worker thread, never the loop). */
struct lmp_tx;

/* Runs SQL in the batch transaction. NULL on failure; the handler then returns
 * LMP_EDB and the runtime retries the batch or dead-letters the event. */
PGresult *lmp_tx_exec(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params);
/* Shorthand for statements whose result is not needed. */
int lmp_tx_command(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params);
/* Sets *found to whether the query returns a row. */
int lmp_tx_exists(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params, int *found);
/* A new empty value of an event type's schema; the caller avro_value_decref's it. */
int lmp_tx_value(struct lmp_tx *tx, const char *event_type, avro_value_t *out);
/* Stores an event in the outbox, published after commit with the current event's
 * correlation id and trace. */
int lmp_tx_emit(struct lmp_tx *tx, const char *event_type, const char *key, avro_value_t *value);
/* In a tick only: commits the work so far and begins a new transaction, so an effect
 * outside the database (a mail sent) is recorded at once rather than at the end. */
int lmp_tx_checkpoint(struct lmp_tx *tx);
/* The service context given to lmp_service_run. */
void *lmp_tx_ctx(struct lmp_tx *tx);

/* HTTP routes a service adds next to /healthz, /readyz and /metrics. Runs on the HTTP
 * thread with its own database connection; while the database is away the runtime
 * answers 503 itself and the route is not called. */
typedef int (*lmp_http_fn)(void *ctx, PGconn *db, const char *method, const char *path,
                           const char *body, size_t body_len, int *status, struct lmp_buf *out);

struct lmp_service {
  const char *name;                          /* "intake": log name, group and database */
  const char *const *consumes;               /* event types, NULL-terminated */
  const struct lmp_embedded *migrations;     /* the service's tables */
  /* Applies one event. 0 = applied; LMP_EREJECT = invalid, dead-letter it (its
   * writes are rolled back); other negative codes = transient, retry the batch. */
  int (*handle)(struct lmp_tx *tx, const struct lmp_event *ev);
  const struct lmp_conf_entry *conf;         /* the service's own settings */
  size_t conf_n;
  void *conf_base;
  int (*configured)(void *ctx, char *err, size_t errlen); /* validates its settings */
  lmp_http_fn http;
  /* Optional periodic work in its own transaction (mail sending, say), every tick_ms
   * while no batch is in flight. Returns like handle; emitted events are published. */
  int (*tick)(struct lmp_tx *tx);
  int tick_ms;
  void *ctx;
};

/* The whole daemon: options (-c FILE, --print-config), configuration, loop, drain.
 * Returns the process exit status. */
int lmp_service_main(const struct lmp_service *svc, int argc, char **argv);

/* Topic of an event type under the configured prefix. */
void lmp_topic_name(const struct lmp_config *cfg, const char *event_type, char *out, size_t outlen);

#endif
