/* The transaction harness of the in-process tests: a daemon's runtime state on a
 * fresh database of the test stack's PostgreSQL, batches of messages made here, and
 * the batch transaction (lmp__txn_run) run on them as the worker thread runs it. */
#ifndef TXH_H
#define TXH_H

#include <jansson.h>
#include <libpq-fe.h>

#include "runtime/rt.h"

struct txh {
  struct rt rt;
  char dbname[64];
  int owner;           /* created the database, drops it on close */
  struct batch *b;     /* the batch being built or run */
  struct lmp_tx tx;    /* for calling a domain function directly */
};

/* A fresh database with the runtime's and the service's tables; cmocka-asserts. */
void txh_open(struct txh *h, const struct lmp_service *svc);
/* A second runtime on the database of another (its own connection). */
void txh_attach(struct txh *h, const struct lmp_service *svc, const struct txh *other);
void txh_close(struct txh *h);

/* A new batch of n messages (txh_message fills them). */
void txh_batch(struct txh *h, size_t n);
/* Message i: an event of event_type (JSON), on that event type's topic, with the
 * given key and event id (either may be NULL). */
void txh_event(struct txh *h, size_t i, const char *event_type, const char *key, const char *event_id,
               const char *json);
/* Message i from raw bytes, on the topic of event_type. */
void txh_raw(struct txh *h, size_t i, const char *event_type, const void *key, size_t keylen, const char *event_id,
             const void *value, size_t len);
/* Runs the batch transaction as the worker does (one attempt); returns b->rc. */
int txh_run(struct txh *h);
/* Frees the batch. */
void txh_done(struct txh *h);

/* The rows the last run wrote to the outbox, decoded: [{topic, key, headers{}, event
 * (JSON of the event, or null for a dead letter), value_len}]. */
json_t *txh_rows(struct txh *h);
/* The dead-letter rows' error codes, space-separated, in order. */
const char *txh_dead_codes(struct txh *h);

/* A statement on the harness's connection; the first column of the first row as a
 * long (0 when there is none). */
long txh_long(struct txh *h, const char *sql);
void txh_exec(struct txh *h, const char *sql);

#endif
