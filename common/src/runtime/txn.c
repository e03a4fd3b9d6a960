/* The batch transaction, on the worker thread: checks each message, records it in the
 * inbox, applies it with its handler, writes what it emits to the outbox, and by the
 * failure rule of service.h dead-letters a message or gives the batch back to retry. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/avro/codec.h"
#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"
#include "lmp/runtime/events.h"
#include "runtime/rt.h"

/* Returned inside this file when a message failed for its own sake in a batch run
 * without savepoints: the batch is then run again one message at a time. */
#define ISOLATE 1

/* ---- The handler's API ---------------------------------------------------------- */

static int sets_send(struct lmp_tx *tx);

int lmp_tx_query(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params,
                 PGresult **res) {
  int r = sets_send(tx);
  return r ? r : lmp__db_query(tx->db, sql, nparams, params, NULL, NULL, 1, res);
}

int lmp_tx_command(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params) {
  return lmp_tx_query(tx, sql, nparams, params, NULL);
}

int lmp_tx_command_set(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params) {
  int r = sets_send(tx);
  return r ? r : lmp__db_query(tx->db, sql, nparams, params, NULL, NULL, 0, NULL);
}

int lmp_tx_send(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params) {
  int r = sets_send(tx);
  return r ? r : lmp__db_send(tx->db, sql, nparams, params, NULL, NULL, 1);
}

int lmp_tx_exists(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params, int *found) {
  PGresult *res;
  int r = lmp_tx_query(tx, sql, nparams, params, &res);
  if (r < 0)
    return r;
  *found = PQntuples(res) > 0;
  PQclear(res);
  return 0;
}

const char *lmp_tx_db_error(struct lmp_tx *tx) { return tx->db->err; }

int lmp_tx_reject(struct lmp_tx *tx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tx->why, sizeof(tx->why), fmt, ap);
  va_end(ap);
  return LMP_EREJECT;
}

void *lmp_tx_ctx(struct lmp_tx *tx) { return tx->rt->svc->ctx; }

const char *lmp_tx_traceparent(struct lmp_tx *tx) { return *tx->traceparent ? tx->traceparent : NULL; }

void lmp_tx_span_fail(struct lmp_tx *tx, const char *fmt, ...) {
  if (tx->span == NULL)
    return;
  char why[LMP_SPAN_TEXT];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  lmp_span_fail(tx->span, "%s", why);
  lmp_span_str(tx->span, "lmp.outcome", "failed");
}

int lmp_tx_value(struct lmp_tx *tx, const char *event_type, avro_value_t *out) {
  const struct lmp_schema *s = lmp_schemas_get(tx->rt->schemas, event_type);
  if (s == NULL)
    return LMP_ESCHEMA;
  return avro_generic_value_new(s->iface, out) == 0 ? 0 : LMP_ENOMEM;
}

int lmp_tx_emit_json(struct lmp_tx *tx, const char *event_type, const char *key, const char *json) {
  json_t *j = json_loads(json, 0, NULL);
  avro_value_t v;
  char err[256];
  int r = j ? lmp_tx_value(tx, event_type, &v) : LMP_EINVAL;
  if (r < 0) {
    json_decref(j);
    return r;
  }
  if ((r = lmp_avro_from_json(&v, j, err, sizeof(err))) < 0)
    lmp_warn(NULL, "%s keyed %s does not fit its schema: %s", event_type, key, err);
  else
    r = lmp_tx_emit(tx, event_type, key, &v);
  avro_value_decref(&v);
  json_decref(j);
  return r;
}

int lmp_tx_emit_query(struct lmp_tx *tx, const char *event_type, const char *sql, int limit) {
  PGresult *res;
  int r = lmp_tx_query(tx, sql, 0, NULL, &res);
  if (r < 0)
    return r;
  int n = PQntuples(res);
  /* A row that does not fit the schema is logged (lmp_tx_emit_json) and left out: it
   * must not hold back every other announcement. */
  for (int i = 0; r == 0 && i < n; i++)
    if ((r = lmp_tx_emit_json(tx, event_type, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1))) == LMP_EINVAL)
      r = 0;
  PQclear(res);
  if (r == 0 && n >= limit)
    lmp_tx_wake(tx); /* perhaps more are due: the tick runs again at once */
  return r;
}

int lmp_tx_emit(struct lmp_tx *tx, const char *event_type, const char *key, avro_value_t *value) {
  if (tx->b == NULL)
    return lmp_tx_reject(tx, "background work emits nothing: its tick does (lmp_tx_wake)");
  return lmp__row_emit(tx, event_type, key, value);
}

void lmp_tx_follow(struct lmp_tx *tx, const char *correlation_id, const char *traceparent) {
  snprintf(tx->correlation, sizeof(tx->correlation), "%s", correlation_id ? correlation_id : "");
  /* The stored span itself is the parent of what is emitted now (each emitted event
   * is a span of its own, lmp__row_emit); without one, none: each emitted event then
   * starts a trace, rather than naming a parent no span was ever sent for. */
  snprintf(tx->traceparent, sizeof(tx->traceparent), "%s", lmp_traceparent_valid(traceparent) ? traceparent : "");
}

void lmp_tx_wake(struct lmp_tx *tx) {
  if (tx->b)
    tx->b->wake = 1; /* acted on once the batch commits */
  else
    tx->wake = 1; /* background work: once its own transaction commits */
}

int lmp_tx_checkpoint(struct lmp_tx *tx) {
  if (tx->b == NULL || tx->b->kind != BATCH_TICK)
    return LMP_EINVAL; /* a consumed batch commits once, with its inbox */
  int r = lmp__outbox_flush(tx->rt, tx->b, 1);
  if (r == 0)
    r = lmp_tx_command(tx, "COMMIT", 0, NULL);
  return r ? r : lmp__db_send(tx->db, "BEGIN", 0, NULL, NULL, NULL, 1);
}

static void msgs_free(struct lmp_msg *xs, size_t n) {
  for (size_t i = 0; xs && i < n; i++)
    lmp__message_clear(&xs[i]);
  free(xs);
}

/* ---- Sets: one statement for a batch's rows ----------------------------------------- */

/* Item i of a PostgreSQL array literal (without its braces): quoted, or NULL. */
static int put_array_item(struct lmp_buf *b, size_t i, const char *s) {
  if (s == NULL)
    return lmp_buf_puts(b, i ? ",NULL" : "NULL");
  int r = lmp_buf_puts(b, i ? ",\"" : "\"");
  for (; r == 0 && *s; s++)
    r = (*s == '"' || *s == '\\') ? lmp_buf_printf(b, "\\%c", *s) : lmp_buf_append(b, s, 1);
  return r ? r : lmp_buf_puts(b, "\"");
}

#define NSETS (sizeof(((struct lmp_tx *)0)->sets) / sizeof(((struct lmp_tx *)0)->sets[0]))

/* The rows added are forgotten (the transaction is undone, or their event refused);
 * release also gives their memory back. */
static void sets_clear(struct lmp_tx *tx, int release) {
  for (size_t k = 0; k < NSETS; k++) {
    for (int c = 0; c < LMP_SET_COLS; c++)
      release ? lmp_buf_free(&tx->sets[k].cols[c]) : lmp_buf_reset(&tx->sets[k].cols[c]);
    tx->sets[k].n = 0;
    tx->sets[k].set = NULL;
  }
}

/* Each set's rows as its one statement, sent ahead (lmp__db_send), in the order of
 * their first row (the slots fill in that order). */
static int sets_send(struct lmp_tx *tx) {
  int r = 0;
  for (size_t k = 0; k < NSETS; k++) {
    struct txset *s = &tx->sets[k];
    if (s->n == 0)
      continue;
    char *lits[LMP_SET_COLS] = {0};
    for (int c = 0; r == 0 && c < s->set->ncols; c++) {
      struct lmp_buf lit = {0};
      if ((r = lmp_buf_printf(&lit, "{%s}", s->cols[c].data ? s->cols[c].data : "")) == 0)
        lits[c] = lmp_buf_steal(&lit);
    }
    if (r == 0)
      r = lmp__db_send(tx->db, s->set->sql, s->set->ncols, (const char *const *)lits, NULL, NULL, 0);
    for (int c = 0; c < s->set->ncols; c++) {
      free(lits[c]);
      lmp_buf_reset(&s->cols[c]);
    }
    s->n = 0;
    s->set = NULL;
  }
  return r;
}

int lmp_tx_add(struct lmp_tx *tx, const struct lmp_set *set, const char *const *cols) {
  if (set->ncols < 1 || set->ncols > LMP_SET_COLS)
    return LMP_EINVAL;
  size_t k = 0;
  while (k < NSETS && tx->sets[k].n && tx->sets[k].set != set)
    k++;
  int r = k == NSETS ? sets_send(tx) : 0; /* more sets than slots: what is held goes first */
  if (r < 0)
    return r;
  if (k == NSETS)
    k = 0;
  struct txset *s = &tx->sets[k];
  s->set = set;
  for (int c = 0; r == 0 && c < set->ncols; c++)
    r = put_array_item(&s->cols[c], s->n, cols[c]);
  if (r == 0)
    s->n++;
  if (tx->b == NULL) { /* background work: no batch to gather */
    if (r == 0)
      r = sets_send(tx);
    sets_clear(tx, 1);
  }
  return r; /* failed, the transaction fails and forgets the rows (sets_clear) */
}

/* ---- The inbox --------------------------------------------------------------------- */

/* One statement records every message of the batch; the ids it returns are the
 * messages never seen before (the first of two with one id in a batch). */
static int inbox_all(struct rt *rt, struct lmp_msg *xs, size_t n) {
  struct lmp_buf ids = {0}, topics = {0}, parts = {0}, offs = {0};
  int r = 0;
  for (size_t i = 0; r == 0 && i < n; i++) {
    char num[32];
    r = put_array_item(&ids, i, xs[i].id);
    if (r == 0) r = put_array_item(&topics, i, xs[i].raw->topic);
    snprintf(num, sizeof(num), "%d", (int)xs[i].raw->partition);
    if (r == 0) r = put_array_item(&parts, i, num);
    snprintf(num, sizeof(num), "%lld", (long long)xs[i].raw->offset);
    if (r == 0) r = put_array_item(&offs, i, num);
  }
  struct lmp_buf *arrays[] = {&ids, &topics, &parts, &offs};
  char *lits[4] = {0};
  for (int k = 0; r == 0 && k < 4; k++) {
    struct lmp_buf lit = {0};
    r = lmp_buf_printf(&lit, "{%s}", arrays[k]->data ? arrays[k]->data : "");
    lits[k] = lmp_buf_steal(&lit);
  }
  PGresult *res = NULL;
  if (r == 0)
    r = lmp__db_query(&rt->db, "INSERT INTO lmp_inbox(event_id, topic, partition, \"offset\") "
                               "SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[]) "
                               "ON CONFLICT DO NOTHING RETURNING event_id",
                      4, (const char *const *)lits, NULL, NULL, 1, &res);
  for (int k = 0; k < 4; k++) {
    free(lits[k]);
    lmp_buf_free(arrays[k]);
  }
  if (r < 0)
    return r;
  for (int t = 0; t < PQntuples(res); t++) {
    const char *id = PQgetvalue(res, t, 0);
    for (size_t i = 0; i < n; i++)
      if (strcmp(xs[i].id, id) == 0) {
        xs[i].fresh = 1;
        break;
      }
  }
  PQclear(res);
  return 0;
}

static int inbox_one(struct rt *rt, struct lmp_msg *x) {
  char part[16], off[24];
  snprintf(part, sizeof(part), "%d", (int)x->raw->partition);
  snprintf(off, sizeof(off), "%lld", (long long)x->raw->offset);
  const char *p[] = {x->id, x->raw->topic, part, off};
  PGresult *res;
  int r = lmp__db_query(&rt->db, "INSERT INTO lmp_inbox(event_id, topic, partition, \"offset\") "
                                 "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        4, p, NULL, NULL, 1, &res);
  if (r < 0)
    return r;
  x->fresh = strcmp(PQcmdTuples(res), "1") == 0;
  PQclear(res);
  return 0;
}

/* ---- Spans ------------------------------------------------------------------------------ */

/* The span of x's handling starts: tx->traceparent becomes its context (a child of the
 * sender's, or a new trace), and tx->span the span, when it is sampled. It ends when
 * the batch commits (spans_end), or is forgotten with a rollback. */
static void span_begin(struct lmp_tx *tx, const struct lmp_msg *x) {
  lmp_traceparent(*x->parent ? x->parent : NULL, tx->traceparent);
  tx->span = NULL;
  if (!lmp_trace_enabled() || !lmp_traceparent_sampled(tx->traceparent))
    return;
  if (tx->nspans == tx->capspans) {
    size_t cap = tx->capspans ? 2 * tx->capspans : 16;
    struct lmp_span *more = realloc(tx->spans, cap * sizeof(*more));
    if (more == NULL)
      return; /* a span the less, never the event */
    tx->spans = more;
    tx->capspans = cap;
  }
  struct lmp_span *s = tx->span = &tx->spans[tx->nspans++];
  const char *type = x->schema ? x->schema->name : "message";
  char name[96];
  snprintf(name, sizeof(name), "process %s", type);
  lmp_span_begin(s, name, LMP_SPAN_CONSUMER, tx->traceparent, x->parent);
  lmp_span_str(s, "messaging.system", "kafka");
  lmp_span_str(s, "messaging.operation.type", "process");
  lmp_span_str(s, "messaging.destination.name", x->raw->topic);
  lmp_span_int(s, "messaging.destination.partition.id", x->raw->partition);
  lmp_span_int(s, "messaging.kafka.offset", x->raw->offset);
  lmp_span_str(s, "messaging.message.id", x->id);
  lmp_span_str(s, "messaging.consumer.group.name", tx->rt->group);
  lmp_span_str(s, "lmp.event_type", type);
  if (*x->corr)
    lmp_span_str(s, strncmp(type, "onboarding.", 11) == 0 ? "lmp.onboarding_id" : "lmp.correlation_id", x->corr);
}

static void span_outcome(struct lmp_tx *tx, const char *outcome) {
  if (tx->span) {
    struct lmp_span *s = tx->span;
    int failed = 0;
    for (int i = 0; i < s->nattrs; i++)
      failed |= strcmp(s->attrs[i].key, "lmp.outcome") == 0;
    if (!failed) /* a handler's lmp_tx_span_fail said it first */
      lmp_span_str(s, "lmp.outcome", outcome);
  }
  tx->span = NULL;
}

static void span_dead(struct lmp_tx *tx, const char *code, const char *why) {
  if (tx->span) {
    lmp_span_fail(tx->span, "dead-lettered %s: %s", code, why);
    lmp_span_str(tx->span, "lmp.outcome", "dead-lettered");
  }
  tx->span = NULL;
}

/* The batch committed: its spans end now, and go to the exporter. */
static void spans_end(struct lmp_tx *tx) {
  int64_t now = lmp_span_now();
  for (size_t i = 0; i < tx->nspans; i++) {
    tx->spans[i].end_ns = now;
    lmp_span_end(&tx->spans[i]);
  }
  tx->nspans = 0;
  tx->span = NULL;
}

/* ---- Applying ----------------------------------------------------------------------- */

static int handle(struct lmp_tx *tx, struct lmp_msg *x) {
  struct lmp_event ev = {.schema = x->schema,
                         .value = &x->value,
                         .event_id = x->id,
                         .correlation_id = *x->corr ? x->corr : NULL,
                         .key = *x->key ? x->key : NULL,
                         .topic = x->source,
                         .partition = x->raw->partition,
                         .offset = x->raw->offset,
                         .route = x->route};
  ev.traceparent = tx->traceparent; /* the span of this event's handling (span_begin) */
  snprintf(tx->correlation, sizeof(tx->correlation), "%s", x->corr);
  tx->why[0] = '\0';
  tx->ev = &ev;
  int r = x->route->handle(tx, &ev);
  tx->ev = NULL;
  return r;
}

/* Dead-letter code and text for a handler's failure. */
static const char *failure_code(struct lmp_tx *tx, int r, char *why, size_t len) {
  switch (r) {
  case LMP_EREJECT:
    snprintf(why, len, "%s", *tx->why ? tx->why : "the handler refused the event's values");
    return "HANDLER_REJECTED";
  case LMP_EDB:
    snprintf(why, len, "%s", tx->rt->db.err);
    return "DATABASE_REFUSED";
  case LMP_ETOOBIG:
    snprintf(why, len, "%s", *tx->why ? tx->why : lmp_strerror(r));
    return "EVENT_TOO_LARGE";
  case LMP_ERETRY:
    snprintf(why, len, "still failing after %d tries alone: %s", tx->rt->cfg.retry_isolate_after, tx->rt->db.err);
    return "RETRIES_EXHAUSTED";
  default:
    snprintf(why, len, "%s%s%s", lmp_strerror(r), *tx->why ? ": " : "", tx->why);
    return "HANDLER_FAILED";
  }
}

static int connected(struct rt *rt) { return rt->db.conn && PQstatus(rt->db.conn) == CONNECTION_OK; }

/* Without savepoints: the common case, one round trip for the inbox and one for the
 * outbox. A message that fails for its own sake sends the batch to isolation. */
static int apply_fast(struct lmp_tx *tx, struct lmp_msg *xs, size_t n) {
  struct rt *rt = tx->rt;
  struct batch *b = tx->b;
  int r = inbox_all(rt, xs, n);
  for (size_t i = 0; r == 0 && i < n; i++) {
    struct lmp_msg *x = &xs[i];
    span_begin(tx, x);
    if (!x->fresh) {
      b->dups++;
      span_outcome(tx, "duplicate");
      lmp_debug(*x->corr ? x->corr : NULL, "skip duplicate %s", x->id);
    } else if (x->code) {
      r = lmp__row_dead_letter(rt, b, x, x->code, x->why, *x->corr ? x->corr : NULL);
      span_dead(tx, x->code, x->why);
    } else if ((r = handle(tx, x)) == 0) {
      b->applied++;
      span_outcome(tx, "applied");
    } else if (!lmp_error_is_retry(r)) {
      return ISOLATE;
    }
  }
  return r;
}

/* One message at a time, each in a savepoint: a message that fails for its own
 * sake is undone and dead-lettered alone. */
static int apply_isolated(struct lmp_tx *tx, struct lmp_msg *xs, size_t n) {
  struct rt *rt = tx->rt;
  struct batch *b = tx->b;
  int r = 0;
  for (size_t i = 0; r == 0 && i < n; i++) {
    struct lmp_msg *x = &xs[i];
    const char *corr = *x->corr ? x->corr : NULL;
    size_t rows = b->nrows;
    if ((r = lmp_tx_command(tx, "SAVEPOINT lmp_msg", 0, NULL)) < 0 || (r = inbox_one(rt, x)) < 0)
      break;
    span_begin(tx, x);
    if (!x->fresh) {
      b->dups++;
      span_outcome(tx, "duplicate");
    } else if (x->code) {
      r = lmp__row_dead_letter(rt, b, x, x->code, x->why, corr);
      span_dead(tx, x->code, x->why);
    } else {
      r = handle(tx, x);
      if (r == 0)
        r = sets_send(tx); /* its rows, as a statement of its own */
      else
        sets_clear(tx, 0); /* never sent: the ROLLBACK below must not carry them */
      /* What the handler sent ahead is read now, whatever it returned: a failure there
       * is the message's own, and the ROLLBACK TO SAVEPOINT below must not travel
       * behind a failed statement (the server would skip it). */
      int s = lmp__db_sync(&rt->db);
      if (r == 0 || (s < 0 && !connected(rt)))
        r = s;
      if (r == 0 && (r = lmp__outbox_flush(rt, b, 0)) == 0)
        b->applied++;
      if (r < 0 && lmp_error_is_retry(r)) {
        /* The database away is no fault of the message; a deadlock or a timeout that
         * follows the message every time it runs alone is. */
        if (!connected(rt) || ++b->retried[i] < rt->cfg.retry_isolate_after)
          break;
      }
      if (r < 0) {
        char why[600];
        const char *code = failure_code(tx, r, why, sizeof(why));
        lmp__rows_truncate(b, rows);
        if ((r = lmp_tx_command(tx, "ROLLBACK TO SAVEPOINT lmp_msg", 0, NULL)) == 0 &&
            (r = inbox_one(rt, x)) == 0)
          r = lmp__row_dead_letter(rt, b, x, code, why, corr);
        span_dead(tx, code, why);
      } else {
        span_outcome(tx, "applied");
      }
    }
    if (r == 0)
      r = lmp__outbox_flush(rt, b, 0);
    if (r == 0)
      r = lmp_tx_command(tx, "RELEASE SAVEPOINT lmp_msg", 0, NULL);
  }
  return r;
}

static int apply_messages(struct lmp_tx *tx) {
  struct batch *b = tx->b;
  struct lmp_msg *xs = calloc(b->n, sizeof(*xs));
  if (xs == NULL)
    return LMP_ENOMEM;
  int r = 0;
  for (size_t i = 0; i < b->n; i++) {
    lmp__message_check(tx->rt->schemas, &tx->rt->cfg, tx->rt->svc->routes, &b->raws[i], &xs[i]);
    xs[i].raw = &b->raws[i];
    if (xs[i].retry && r == 0) {
      snprintf(b->err, sizeof(b->err), "%s", xs[i].why);
      r = LMP_ERETRY;
    }
  }
  if (r == 0)
    r = b->isolate ? apply_isolated(tx, xs, b->n) : apply_fast(tx, xs, b->n);
  msgs_free(xs, b->n);
  return r;
}

/* Retention: processed inbox rows past retention.days go, and the service purges its
 * own. The inbox only needs ids as long as a redelivery can come (the broker's
 * retention, far shorter); the onboarding's facts are the services'. A parked event
 * was never delivered, and only an operator may let it go: it goes retention.days
 * after an operator marked it reviewed (reviewed_at), never before. */
static int purge(struct lmp_tx *tx) {
  struct rt *rt = tx->rt;
  char days[16];
  snprintf(days, sizeof(days), "%d", rt->cfg.retention_days);
  const char *p[] = {days};
  int r = lmp_tx_command(tx, "DELETE FROM lmp_inbox WHERE processed_at < now() - $1::int * interval '1 day'", 1, p);
  if (r == 0)
    r = lmp_tx_command(tx, "DELETE FROM lmp_outbox_parked WHERE reviewed_at < now() - $1::int * interval '1 day'", 1,
                       p);
  if (r == 0 && rt->svc->purge)
    r = rt->svc->purge(tx, rt->cfg.retention_days);
  return r;
}

/* Round trips: BEGIN and the delete of published rows go ahead of the inbox's insert,
 * the outbox's insert with COMMIT (libpq's pipeline mode, lmp__db_send); a failure
 * of either fails the transaction as it did when each waited for its answer. */
static int transaction(struct lmp_tx *tx) {
  struct rt *rt = tx->rt;
  struct batch *b = tx->b;
  int r = lmp__db_send(&rt->db, "BEGIN", 0, NULL, NULL, NULL, 1);
  if (r == 0 && b->ndel)
    r = lmp__outbox_delete(rt, b->del_ids, b->ndel);
  if (r == 0 && b->npark)
    r = lmp__outbox_park(rt, b);
  if (r == 0 && b->kind == BATCH_SWEEP)
    r = lmp__outbox_sweep(rt, b, b->sweep_age_ms);
  if (r == 0 && b->purge)
    r = purge(tx);
  if (r == 0 && b->kind == BATCH_TICK)
    r = rt->svc->tick(tx);
  if (r == 0 && b->kind == BATCH_MESSAGES)
    r = apply_messages(tx);
  if (r == 0)
    r = lmp__outbox_flush(rt, b, 1); /* what it emits, and dead-letter copies of parked rows */
  if (r == 0)
    r = lmp_tx_command(tx, "COMMIT", 0, NULL);
  return r;
}

/* The database is at the daemon's schema: migrated now, or (pg.migrate_on_start
 * false) found migrated by someone else; until then the daemon waits, unready. */
static int migrate(struct rt *rt, char *err, size_t errlen) {
  const struct lmp_service *svc = rt->svc;
  int r;
  if (rt->cfg.pg_migrate_on_start) {
    if ((r = lmp__db_migrate_all(&rt->db, &rt->cfg, rt->dbname, svc->name, svc->migrations)) < 0)
      snprintf(err, errlen, "database migration: %s", rt->db.err);
    return r;
  }
  char first[256] = "";
  if ((r = lmp__db_pending(&rt->db, "runtime", lmp_runtime_migrations, first, sizeof(first))) == 0)
    r = lmp__db_pending(&rt->db, svc->name, svc->migrations, first, sizeof(first));
  if (r < 0)
    snprintf(err, errlen, "checking the database's migrations: %s", rt->db.err);
  else if (r > 0)
    snprintf(err, errlen, "database %s is not migrated (%s is not applied, pg.migrate_on_start is false): run "
             "lmp-%s --migrate", rt->dbname, first, svc->name);
  return r > 0 ? LMP_ERETRY : r;
}

void lmp__txn_run(struct rt *rt, struct batch *b) {
  struct lmp_tx tx = {.rt = rt, .db = &rt->db, .b = b};
  b->err[0] = '\0';
  int r = lmp__db_ensure(&rt->db);
  if (r == 0 && !atomic_load(&rt->m.migrated) && (r = migrate(rt, b->err, sizeof(b->err))) == 0)
    atomic_store(&rt->m.migrated, 1);
  for (;;) {
    b->applied = b->dups = b->dead = b->parked = 0;
    b->wake = 0;
    lmp__rows_truncate(b, 0);
    tx.nspans = 0; /* a transaction run again times its messages again */
    sets_clear(&tx, 0);
    if (r == 0)
      r = transaction(&tx);
    if (b->kind == BATCH_MESSAGES && !b->isolate && (r == ISOLATE || (r < 0 && !lmp_error_is_retry(r)))) {
      /* A message failed for its own sake (or a statement of the batch did, which
       * isolation pins on its message): rolled back, and at once again message by
       * message. No backoff: the environment is fine. */
      lmp__db_rollback(&rt->db);
      b->isolate = 1;
      atomic_fetch_add(&rt->m.isolated_batches, 1);
      r = 0;
      continue;
    }
    break;
  }
  if (r == 0)
    spans_end(&tx);
  free(tx.spans);
  sets_clear(&tx, 1);
  if (r < 0) {
    if (!*b->err && (r == LMP_ERETRY || r == LMP_EDB))
      snprintf(b->err, sizeof(b->err), "database: %s", rt->db.err);
    else if (!*b->err)
      snprintf(b->err, sizeof(b->err), "%s", lmp_strerror(r));
    lmp__db_rollback(&rt->db);
    lmp__rows_truncate(b, 0);
    /* A deadlock or timeout that keeps failing the whole batch, with the database
     * reachable: next time one message at a time, so the culprit can be found. */
    if (lmp_error_is_retry(r) && connected(rt) && b->kind == BATCH_MESSAGES &&
        b->attempts >= rt->cfg.retry_isolate_after)
      b->isolate = 1;
  }
  b->rc = r;
}
