/* The batch transaction a handler works in, on the worker thread (never the loop).
 * Every function returns 0 or an error code a handler can return as it is: the
 * runtime then retries (LMP_ERETRY, LMP_ENOMEM) or dead-letters the event. */
#ifndef LMP_TX_H
#define LMP_TX_H

#include <avro.h>
#include <libpq-fe.h>

struct lmp_tx;

/* Runs a statement (a string literal: it is prepared once per connection) with text
 * parameters; on success *res (the caller PQclear's it) holds the result. */
int lmp_tx_query(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params,
                 PGresult **res);
/* The same, when the result is not needed. */
int lmp_tx_command(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params);
/* lmp_tx_command for a statement that joins a table to a set of rows passed as one
 * parameter (jsonb_to_recordset, unnest): planned for its parameters each time, never
 * prepared. A prepared statement's plan is kept, and one made while the table was
 * small (a new database, the first seconds of a burst) hashes the whole table on every
 * call once it has grown, where looking each row up by its key costs a few buffers. */
int lmp_tx_command_set(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params);
/* A write whose answer the handler does not read, sent without waiting for it: it
 * travels with the next statement, or with the outbox's insert and COMMIT, so it
 * costs no round trip of its own. Its failure fails the handling all the same, at
 * that next statement (a batch then runs one message at a time, each checked before
 * the next, so a failure is still the message's own). For a handler's last writes;
 * sql is a string literal, as lmp_tx_query's. */
int lmp_tx_send(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params);
/* A write made once for a whole batch: each event's handler adds its row of values,
 * and one statement writes them all, where a statement per event would cost the
 * server a parse, a plan and an execution each. sql takes one text[] parameter per
 * column ($1 the first column of every row, in the order they were added: unnest()
 * WITH ORDINALITY gives it) and must do what running it once per row, in that order,
 * would do. It is a string literal, as lmp_tx_query's. */
#define LMP_SET_COLS 12
struct lmp_set {
  const char *sql;
  int ncols; /* at most LMP_SET_COLS */
};
/* Adds a row (ncols values; NULL is SQL NULL). The rows are sent, without waiting for
 * the answer (as lmp_tx_send), before any other statement of the transaction, so every
 * statement sees the writes of the events before it; a batch's last rows go with its
 * outbox insert and COMMIT. The sets held are sent in the order of their first row: a
 * handler that adds to sets in one order (shipments, then their items) has them
 * written in that order. Run one message at a time (a batch being isolated), each
 * event's rows are its own statements. Outside a batch a row is sent at once. Like
 * lmp_tx_command_set, a set's statement is planned for its rows each time it is sent. */
int lmp_tx_add(struct lmp_tx *tx, const struct lmp_set *set, const char *const *cols);
/* Sets *found to whether the query returns a row. */
int lmp_tx_exists(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params,
                  int *found);
/* Why the last statement failed (the server's message), for logs. */
const char *lmp_tx_db_error(struct lmp_tx *tx);

/* Refuses the event being handled: returns LMP_EREJECT, and the reason (printf-like)
 * goes into the dead letter's error_message. */
int lmp_tx_reject(struct lmp_tx *tx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A new empty value of an event type's schema; the caller avro_value_decref's it. */
int lmp_tx_value(struct lmp_tx *tx, const char *event_type, avro_value_t *out);
/* Stores an event in the outbox; it is published once the transaction commits, keyed
 * by key, with the trace and correlation id of the event being handled (or those set
 * by lmp_tx_follow). The value stays the caller's. LMP_ETOOBIG when its encoding is
 * over LMP_MAX_EVENT_BYTES. */
int lmp_tx_emit(struct lmp_tx *tx, const char *event_type, const char *key, avro_value_t *value);
/* lmp_tx_emit of the event's plain JSON form (see lmp_avro_from_json); LMP_EINVAL, and
 * a warning, when it does not fit the event type's schema. */
int lmp_tx_emit_json(struct lmp_tx *tx, const char *event_type, const char *key, const char *json);
/* One event per row of a query that answers (key, JSON of the event) and holds at
 * most limit rows: announcements of what changed, from a tick. A row that does not
 * fit the schema is logged and left out. When the query filled its limit, the tick
 * runs again at once for the rest. */
int lmp_tx_emit_query(struct lmp_tx *tx, const char *event_type, const char *sql, int limit);
/* Outside a consumed event (in a tick): the correlation id and the span the next
 * emitted events continue (their parent), as stored when the onboarding's event was
 * handled; when traceparent is not one, each event emitted starts a trace. */
void lmp_tx_follow(struct lmp_tx *tx, const char *correlation_id, const char *traceparent);
/* Asks for the service's tick as soon as this transaction commits. */
void lmp_tx_wake(struct lmp_tx *tx);
/* In background work: whether the daemon is draining, so work done in steps (a batch
 * of mails) ends after the step in hand. 0 anywhere else. */
int lmp_tx_stopping(struct lmp_tx *tx);
/* In a tick only: commits the work so far and begins a new transaction, so an effect
 * outside the database (a mail sent) is recorded at once rather than at the end. */
int lmp_tx_checkpoint(struct lmp_tx *tx);
/* The W3C traceparent of the current span (the event being handled's, or what
 * lmp_tx_follow set), or NULL when there is none: kept with work done later (a mail
 * sent by a background thread), which continues the trace with it. */
const char *lmp_tx_traceparent(struct lmp_tx *tx);
/* Marks the span of the event being handled as an error (an onboarding failed at this
 * stage): the transaction still commits; the trace shows where the flow broke. */
void lmp_tx_span_fail(struct lmp_tx *tx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The service context given in struct lmp_service. */
void *lmp_tx_ctx(struct lmp_tx *tx);

#endif
