/* The batch transaction against the test PostgreSQL: the inbox, isolation of a failing
 * message, the failure rule as service.h states it (which codes dead-letter, which
 * retry), dead letters of poison recognised by position, and the error classes of
 * the database layer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lmp/base/error.h"
#include "lmp/runtime/events.h"
#include "txh.h"

/* A set's statement (lmp_tx_add): every row an effect, and each run of it noted with
 * the rows it wrote. */
static const struct lmp_set effects_set = {
    "WITH r AS (SELECT * FROM unnest($1::text[]) WITH ORDINALITY AS r(id, ord)), "
    "ins AS (INSERT INTO effects(id) SELECT id FROM r ORDER BY ord RETURNING 1) "
    "INSERT INTO set_runs(nrows) SELECT count(*) FROM ins",
    1};

/* "set": the effect added to the set; "setsee": that, once the previous event's
 * effect (its key's last digit one less) is seen; "setreject": added, then refused;
 * "setcmd": written by lmp_tx_command_set, from an array of one. */
static const char *const set_command = "INSERT INTO effects(id) SELECT id FROM unnest($1::text[]) AS r(id)";
static int set_handle(struct lmp_tx *tx, const char *id, const char *what) {
  if (strcmp(what, "setcmd") == 0) {
    char ids[64];
    snprintf(ids, sizeof(ids), "{%s}", id);
    const char *p[] = {ids};
    return lmp_tx_command_set(tx, set_command, 1, p);
  }
  if (strcmp(what, "setsee") == 0) {
    char prev[8];
    snprintf(prev, sizeof(prev), "%c%c", id[0], id[1] - 1);
    const char *p[] = {prev};
    int seen, r = lmp_tx_exists(tx, "SELECT 1 FROM effects WHERE id = $1", 1, p, &seen);
    if (r < 0 || !seen)
      return r < 0 ? r : lmp_tx_reject(tx, "%s does not see %s", id, prev);
  }
  const char *row[] = {id};
  int r = lmp_tx_add(tx, &effects_set, row);
  return r == 0 && strcmp(what, "setreject") == 0 ? lmp_tx_reject(tx, "the test says no to %s", id) : r;
}

/* The test service: what it does with an onboarding.failed event is what its first
 * reason's code says; its effect is named by the event's key. */
static int handle(struct lmp_tx *tx, const struct lmp_event *ev) {
  const char *id = ev->key;
  avro_value_t reasons, first;
  const char *what = lmp_av_field(ev->value, "reasons", &reasons) == 0 &&
                             avro_value_get_by_index(&reasons, 0, &first, NULL) == 0
                         ? lmp_av_str(&first, "code")
                         : "";
  const char *p[] = {id};
  int r;
  if (strncmp(what, "set", 3) == 0)
    return set_handle(tx, id, what);
  if ((r = lmp_tx_command(tx, "INSERT INTO effects(id) VALUES ($1)", 1, p)) < 0)
    return r;
  if (strcmp(what, "reject") == 0)
    return lmp_tx_reject(tx, "the test says no to %s", id);
  if (strcmp(what, "dbfail") == 0)
    return lmp_tx_command(tx, "SELECT 1 / 0", 0, NULL);
  if (strcmp(what, "sendfail") == 0) /* fails where the next statement reads it */
    return lmp_tx_send(tx, "SELECT 1 / 0", 0, NULL);
  if (strcmp(what, "sendreject") == 0) { /* a failing write sent, then refused */
    lmp_tx_send(tx, "SELECT 1 / 0", 0, NULL);
    return lmp_tx_reject(tx, "the test says no to %s after a write", id);
  }
  if (strcmp(what, "retry") == 0 || strcmp(what, "nomem") == 0)
    return strcmp(what, "retry") == 0 ? LMP_ERETRY : LMP_ENOMEM;
  avro_value_t out;
  if ((r = lmp_tx_value(tx, "onboarding.rejected", &out)) < 0)
    return r;
  lmp_av_set_str(&out, "onboarding_id", lmp_av_str(ev->value, "onboarding_id"));
  lmp_av_set_str(&out, "partner_id", "p");
  if (strcmp(what, "toobig") == 0) { /* over LMP_MAX_EVENT_BYTES */
    char *big = malloc(1000 * 1024);
    memset(big, 'x', 1000 * 1024 - 1);
    big[1000 * 1024 - 1] = '\0';
    lmp_av_set_str(&out, "partner_id", big);
    free(big);
  }
  lmp_av_set_long(&out, "rejected_at", 0);
  r = lmp_tx_emit(tx, "onboarding.rejected", id, &out);
  avro_value_decref(&out);
  return r;
}

static const struct lmp_route routes[] = {{"onboarding.failed", handle, NULL, 0}, {NULL, NULL, NULL, 0}};
static const struct lmp_embedded migrations[] = {
    {"001_effects.sql", "CREATE TABLE effects (id text PRIMARY KEY);"},
    {"002_set_runs.sql", "CREATE TABLE set_runs (nrows int NOT NULL);"},
    {NULL, NULL}};
static const struct lmp_service svc = {.name = "txntest", .routes = routes, .migrations = migrations};

static struct txh H;

static int setup(void **state) {
  txh_open(&H, &svc);
  return 0;
}

static int teardown(void **state) {
  txh_close(&H);
  return 0;
}

/* An event keyed key, of event id evid, whose onboarding id ends in oid (two
 * hexadecimal digits). */
static void event_as(size_t i, const char *key, const char *evid, const char *oid, const char *what) {
  char json[300];
  snprintf(json, sizeof(json),
           "{\"onboarding_id\": \"00000000-0000-4000-8000-0000000000%.2s\", \"partner_id\": \"p\", \"stage\": "
           "\"allocation\", \"reasons\": [{\"code\": \"%s\", \"field\": \"\", \"message\": \"\"}], "
           "\"onboarding\": null, \"failed_at\": 0}", oid, what);
  txh_event(&H, i, "onboarding.failed", key, evid, json);
}

/* An event keyed id (two hexadecimal digits), whose onboarding id ends in it. */
static void event(size_t i, const char *id, const char *what) {
  char evid[64];
  snprintf(evid, sizeof(evid), "ev-%s", id);
  event_as(i, id, evid, id, what);
}

static long effects(const char *like) {
  char sql[200];
  snprintf(sql, sizeof(sql), "SELECT count(*) FROM effects WHERE id LIKE '%s%%'", like);
  return txh_long(&H, sql);
}

/* Runs the batch; it commits, run one message at a time (isolated) or not, with this
 * many applied and dead-lettered, the dead letters' codes in order. */
static void run_expect(int isolated, size_t applied, size_t dead, const char *codes) {
  assert_int_equal(txh_run(&H), 0);
  assert_int_equal(H.b->isolate, isolated);
  assert_int_equal(H.b->applied, applied);
  assert_int_equal(H.b->dead, dead);
  assert_string_equal(txh_dead_codes(&H), codes);
}

static void applies_a_batch_once(void **state) {
  txh_batch(&H, 5);
  for (size_t i = 0; i < 5; i++)
    event(i, (const char *[]){"a0", "a1", "a2", "a3", "a4"}[i], "ok");
  assert_int_equal(txh_run(&H), 0);
  assert_int_equal(H.b->applied, 5);
  assert_int_equal(H.b->isolate, 0);
  assert_int_equal(effects("a"), 5);
  assert_int_equal(txh_long(&H, "SELECT count(*) FROM lmp_outbox"), 5);
  assert_int_equal(txh_long(&H, "SELECT count(*) FROM lmp_inbox WHERE event_id LIKE 'ev-a%'"), 5);
  json_t *rows = txh_rows(&H);
  assert_int_equal(json_array_size(rows), 5);
  json_t *h = json_object_get(json_array_get(rows, 0), "headers");
  assert_string_equal(json_string_value(json_object_get(h, "event_type")), "onboarding.rejected");
  assert_string_equal(json_string_value(json_object_get(h, "correlation_id")), "a0"); /* the key, no header */
  json_decref(rows);
  /* Redelivered: every event is a duplicate, nothing is applied twice. */
  txh_batch(&H, 5);
  for (size_t i = 0; i < 5; i++)
    event(i, (const char *[]){"a0", "a1", "a2", "a3", "a4"}[i], "ok");
  assert_int_equal(txh_run(&H), 0);
  assert_int_equal(H.b->dups, 5);
  assert_int_equal(H.b->applied, 0);
  assert_int_equal(H.b->nrows, 0);
  assert_int_equal(effects("a"), 5);
  txh_done(&H);
}

/* One message failing for its own sake: the batch is run again one message at a
 * time, that message alone is dead-lettered, its writes undone. */
static void isolates_the_failing_message(void **state) {
  txh_batch(&H, 5);
  event(0, "b0", "ok");
  event(1, "b1", "reject");
  event(2, "b2", "ok");
  event(3, "b3", "dbfail");
  event(4, "b4", "ok");
  run_expect(1, 3, 2, "HANDLER_REJECTED DATABASE_REFUSED");
  assert_int_equal(effects("b"), 3); /* b1's and b3's inserts were rolled back */
  json_t *rows = txh_rows(&H);
  int found = 0;
  size_t i;
  json_t *r;
  json_array_foreach(rows, i, r) {
    const char *msg = json_string_value(json_object_get(json_object_get(r, "headers"), "error_message"));
    found += msg && strstr(msg, "the test says no to b1") != NULL;
  }
  assert_int_equal(found, 1); /* the handler's reason travels with the dead letter */
  json_decref(rows);
  assert_int_equal(txh_long(&H, "SELECT count(*) FROM lmp_inbox WHERE event_id LIKE 'ev-b%'"), 5);
  txh_done(&H);
}

/* A failing write the handler sent ahead (lmp_tx_send) fails its own message: in the
 * batch it surfaces at a later statement, so the batch runs one message at a time,
 * where each handling is checked before the next; the others are applied. */
static void a_failure_sent_ahead_is_its_messages(void **state) {
  txh_batch(&H, 3);
  event(0, "90", "ok");
  event(1, "91", "sendfail");
  event(2, "92", "ok");
  run_expect(1, 2, 1, "DATABASE_REFUSED");
  assert_int_equal(effects("90") + effects("91") + effects("92"), 2); /* 91's insert went with its savepoint */
  txh_done(&H);
  /* A handler that refuses its event with a failed write still in flight: the event
   * is dead-lettered for the refusal, its write undone with it (the savepoint's
   * rollback goes after the failed write has been read, not behind it). */
  txh_batch(&H, 2);
  event(0, "94", "sendreject");
  event(1, "95", "ok");
  run_expect(1, 1, 1, "HANDLER_REJECTED");
  assert_int_equal(effects("94") + effects("95"), 1);
  txh_done(&H);
  /* Alone in its batch, the same: it fails at COMMIT, then alone again. */
  txh_batch(&H, 1);
  event(0, "93", "sendfail");
  assert_int_equal(txh_run(&H), 0);
  assert_int_equal(H.b->dead, 1);
  assert_int_equal(effects("93"), 0);
  txh_done(&H);
}

/* Statements sent ahead of their answers (libpq's pipeline mode) behave as if each
 * had waited: seen by what follows, their failure the failure of the call that reads
 * it (with their own message), nothing of them left after a rollback, a statement
 * prepared behind a failure made again, and more than a flight's worth sent. */
static void statements_sent_ahead(void **state) {
  struct lmp_db *db = &H.rt.db;
  const char *p1[] = {"ahead-1"}, *p2[] = {"ahead-2"}, *p3[] = {"ahead-3"};
  PGresult *res = NULL;
  assert_int_equal(lmp__db_send(db, "BEGIN", 0, NULL, NULL, NULL, 1), 0);
  assert_int_equal(lmp__db_send(db, "INSERT INTO effects(id) SELECT $1", 1, p1, NULL, NULL, 1), 0);
  assert_int_equal(db->nqueue, 3); /* BEGIN, and the insert's preparation and itself */
  assert_int_equal(lmp__db_query(db, "SELECT count(*) FROM effects WHERE id = 'ahead-1'", 0, NULL, NULL, NULL, 0,
                                 &res), 0);
  assert_string_equal(PQgetvalue(res, 0, 0), "1");
  PQclear(res);
  assert_int_equal(lmp__db_query(db, "COMMIT", 0, NULL, NULL, NULL, 0, NULL), 0);
  assert_int_equal(effects("ahead-1"), 1);

  /* A failure first: the prepared insert behind it never ran, nor was prepared. */
  int before = db->ncache;
  assert_int_equal(lmp__db_send(db, "BEGIN", 0, NULL, NULL, NULL, 1), 0);
  assert_int_equal(lmp__db_send(db, "SELECT 1 / 0", 0, NULL, NULL, NULL, 0), 0);
  assert_int_equal(lmp__db_send(db, "INSERT INTO effects(id) SELECT $1 WHERE true", 1, p2, NULL, NULL, 1), 0);
  assert_int_equal(lmp__db_query(db, "SELECT 1", 0, NULL, NULL, NULL, 0, NULL), LMP_EDB);
  assert_non_null(strstr(db->err, "division by zero"));
  assert_int_equal(db->ncache, before);
  lmp__db_rollback(db);
  assert_int_equal(lmp__db_query(db, "INSERT INTO effects(id) SELECT $1 WHERE true", 1, p2, NULL, NULL, 1, NULL), 0);
  assert_int_equal(effects("ahead-2"), 1);

  /* Rolled back before anything read their answers: gone. */
  assert_int_equal(lmp__db_send(db, "BEGIN", 0, NULL, NULL, NULL, 1), 0);
  assert_int_equal(lmp__db_send(db, "INSERT INTO effects(id) VALUES ($1)", 1, p3, NULL, NULL, 1), 0);
  lmp__db_rollback(db);
  assert_int_equal(db->nqueue, 0);
  assert_int_equal(effects("ahead-3"), 0);

  /* More than LMP_DB_QUEUE: the flight is read when full, nothing lost. */
  assert_int_equal(lmp__db_send(db, "BEGIN", 0, NULL, NULL, NULL, 1), 0);
  char ids[40][16];
  for (int i = 0; i < 40; i++) {
    snprintf(ids[i], sizeof(ids[i]), "many-%02d", i);
    const char *p[] = {ids[i]};
    assert_int_equal(lmp__db_send(db, "INSERT INTO effects(id) VALUES ($1)", 1, p, NULL, NULL, 1), 0);
    assert_true(db->nqueue <= LMP_DB_QUEUE);
  }
  assert_int_equal(lmp__db_sync(db), 0);
  assert_int_equal(lmp__db_query(db, "COMMIT", 0, NULL, NULL, NULL, 0, NULL), 0);
  assert_int_equal(effects("many-"), 40);
}

/* Rows added to a set (lmp_tx_add) are one statement for the batch, seen by every
 * statement after them; when it fails, the batch runs one message at a time and each
 * row is its own event's statement, so only the failing one is dead-lettered; a row
 * whose event is refused is never written. */
static void rows_added_are_one_statement(void **state) {
  long runs = txh_long(&H, "SELECT count(*) FROM set_runs"), rows = txh_long(&H, "SELECT count(*) FROM effects");
  txh_batch(&H, 4);
  event(0, "50", "set");
  event(1, "51", "setsee");
  event(2, "52", "setsee");
  event(3, "53", "set");
  run_expect(0, 4, 0, "");
  assert_int_equal(effects("5"), 4);
  /* 51's read took 50's row first, 52's 51's; 52's and 53's went with COMMIT, as one. */
  assert_int_equal(txh_long(&H, "SELECT count(*) FROM set_runs") - runs, 3);
  assert_int_equal(txh_long(&H, "SELECT max(nrows) FROM set_runs"), 2);
  txh_done(&H);

  runs = txh_long(&H, "SELECT count(*) FROM set_runs");
  txh_batch(&H, 5);
  for (size_t i = 0; i < 5; i++)
    event(i, (const char *[]){"60", "61", "62", "63", "64"}[i], "set");
  run_expect(0, 5, 0, "");
  assert_int_equal(txh_long(&H, "SELECT count(*) FROM set_runs") - runs, 1);
  assert_int_equal(txh_long(&H, "SELECT max(nrows) FROM set_runs"), 5);
  txh_done(&H);
  /* Planned for their rows each time: a set's statement and lmp_tx_command_set's are
   * never prepared on the runtime's connection, where the statements it runs otherwise
   * are (statements_planned_again says why). */
  txh_batch(&H, 1);
  event(0, "65", "setcmd");
  run_expect(0, 1, 0, "");
  assert_int_equal(effects("65"), 1);
  txh_done(&H);
  PGresult *res = NULL;
  const char *set_sql[] = {effects_set.sql, set_command};
  assert_int_equal(lmp__db_query(&H.rt.db, "SELECT count(*) FILTER (WHERE statement IN ($1, $2)), count(*) "
                                           "FROM pg_prepared_statements", 2, set_sql, NULL, NULL, 0, &res), 0);
  assert_string_equal(PQgetvalue(res, 0, 0), "0");
  assert_true(atol(PQgetvalue(res, 0, 1)) > 0);
  PQclear(res);

  /* 61 is there already: the batch's one statement fails at COMMIT, then each row is
   * its event's own. */
  runs = txh_long(&H, "SELECT count(*) FROM set_runs");
  txh_batch(&H, 3);
  event(0, "70", "set");
  event_as(1, "61", "ev-61-again", "61", "set");
  event(2, "72", "set");
  run_expect(1, 2, 1, "DATABASE_REFUSED");
  assert_int_equal(effects("7"), 2);
  assert_int_equal(txh_long(&H, "SELECT count(*) FROM set_runs") - runs, 2);
  txh_done(&H);

  /* A row added by an event then refused is never written, not even tried: 62's
   * would fail (62 is there), and the savepoint's rollback must not go behind it. */
  txh_batch(&H, 3);
  event(0, "80", "setreject");
  event_as(1, "62", "ev-62-again", "62", "setreject");
  event(2, "81", "set");
  run_expect(1, 1, 2, "HANDLER_REJECTED HANDLER_REJECTED");
  assert_int_equal(effects("8"), 1);
  txh_done(&H);

  /* Values travel as they are: quotes, a backslash, braces and commas in an array. */
  const char *odd = "9\"\\{a,b} NULL";
  txh_batch(&H, 1);
  event_as(0, odd, "ev-odd", "f9", "set");
  run_expect(0, 1, 0, "");
  assert_int_equal(txh_long(&H, "SELECT count(*) FROM effects WHERE id = '9\"\\{a,b} NULL'"), 1);
  assert_int_equal(txh_long(&H, "SELECT count(*) FROM effects") - rows, 4 + 5 + 1 + 2 + 1 + 1);
  txh_done(&H);
}

/* A generic plan made while a table was small scans the grown table whole: every
 * LMP_DB_REPLAN_MS the prepared statements go and are made again, planned for the
 * table as it is. Here a join planned on a table of 40 rows (of a mail's size) is
 * planned again after it grew to 20,000: a hash join over the whole table before,
 * its index after. The same join unprepared (lmp_tx_command_set, the sets) takes
 * the index as soon as the table has grown. */
/* How sql reads grows: "seq" or "index", from the scans it adds to the counts this
 * connection has not yet reported (pg_stat_xact_user_tables). */
static void scans(struct lmp_db *db, long *seq, long *idx) {
  PGresult *res = NULL;
  assert_int_equal(lmp__db_query(db, "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'grows'",
                                 0, NULL, NULL, NULL, 0, &res), 0);
  *seq = atol(PQgetvalue(res, 0, 0));
  *idx = atol(PQgetvalue(res, 0, 1));
  PQclear(res);
}

static const char *scan_of(struct lmp_db *db, const char *sql, const char *const *p, int prepare) {
  long seq0, idx0, seq1, idx1;
  assert_int_equal(lmp__db_query(db, "BEGIN", 0, NULL, NULL, NULL, 0, NULL), 0);
  scans(db, &seq0, &idx0);
  assert_int_equal(lmp__db_query(db, sql, 1, p, NULL, NULL, prepare, NULL), 0);
  scans(db, &seq1, &idx1);
  assert_int_equal(lmp__db_query(db, "ROLLBACK", 0, NULL, NULL, NULL, 0, NULL), 0);
  return seq1 > seq0 ? "seq" : idx1 > idx0 ? "index" : "none";
}

static void statements_planned_again(void **state) {
  struct lmp_db *db = &H.rt.db;
  txh_exec(&H, "CREATE TABLE grows (id text, kind text, n int NOT NULL DEFAULT 0, body text, PRIMARY KEY (id, kind))");
  txh_exec(&H, "INSERT INTO grows(id, kind, body) SELECT g::text, k, repeat('x', 800) "
               "FROM generate_series(1, 20) g, unnest(ARRAY['a', 'b']) k");
  static const char *const join = "UPDATE grows g SET n = g.n + 1 FROM jsonb_to_recordset($1::jsonb) AS "
                                  "s(id text, kind text) WHERE g.id = s.id AND g.kind = s.kind";
  const char *p[] = {"[{\"id\": \"5\", \"kind\": \"a\"}, {\"id\": \"6\", \"kind\": \"b\"}]"};
  for (int i = 0; i < 8; i++) /* past the custom plans: the generic one is kept */
    assert_int_equal(lmp__db_query(db, join, 1, p, NULL, NULL, 1, NULL), 0);
  txh_exec(&H, "INSERT INTO grows(id, kind, body) SELECT g::text, k, repeat('x', 800) "
               "FROM generate_series(100, 10000) g, unnest(ARRAY['a', 'b']) k");
  assert_string_equal(scan_of(db, join, p, 1), "seq"); /* the plan of 40 rows, over 20,000 */
  /* Unprepared, as a set's statement and lmp_tx_command_set run, it is planned for the
   * table as it is now, at once. */
  assert_string_equal(scan_of(db, join, p, 0), "index");
  /* The statements' time is up: the next flight makes them again. */
  db->cache_ms -= LMP_DB_REPLAN_MS;
  assert_int_equal(lmp__db_send(db, "BEGIN", 0, NULL, NULL, NULL, 1), 0);
  assert_int_equal(db->nqueue, 3); /* DEALLOCATE ALL, then BEGIN prepared again and sent */
  assert_int_equal(db->ncache, 1);
  assert_int_equal(lmp__db_query(db, "COMMIT", 0, NULL, NULL, NULL, 0, NULL), 0);
  for (int i = 0; i < 8; i++) /* the custom plans, then the generic one */
    assert_string_equal(scan_of(db, join, p, 1), "index");
  txh_exec(&H, "DROP TABLE grows");
  /* A DEALLOCATE ALL that fails (here in a transaction already failed) leaves the
   * server's statements unknown to the cache: the connection goes, and the next one
   * prepares from nothing. */
  assert_int_equal(lmp__db_query(db, "BEGIN", 0, NULL, NULL, NULL, 1, NULL), 0);
  assert_int_equal(lmp__db_query(db, "SELECT 1 / 0", 0, NULL, NULL, NULL, 0, NULL), LMP_EDB);
  db->cache_ms -= LMP_DB_REPLAN_MS;
  assert_int_equal(lmp__db_send(db, "SELECT 1", 0, NULL, NULL, NULL, 1), 0);
  assert_true(lmp__db_sync(db) < 0);
  assert_null(db->conn);
  assert_int_equal(lmp__db_ensure(db), 0);
  assert_int_equal(lmp__db_query(db, "SELECT 1", 0, NULL, NULL, NULL, 1, NULL), 0);
}

/* The environment's faults roll everything back; a message that keeps failing alone
 * with a retry code is dead-lettered after retry.isolate_after attempts. */
static void retries_then_gives_up_on_one(void **state) {
  txh_batch(&H, 2);
  event(0, "c0", "ok");
  event(1, "c1", "retry");
  int attempts = 0, rc;
  while ((rc = txh_run(&H)) != 0) {
    assert_int_equal(rc, LMP_ERETRY);
    assert_int_equal(effects("c"), 0); /* nothing of a failed attempt stays */
    assert_true(++attempts < 20);
  }
  /* 3 attempts of the whole batch, then isolated: 3 more of c1 alone. */
  assert_int_equal(attempts, 5);
  assert_int_equal(H.b->attempts, 6);
  assert_string_equal(txh_dead_codes(&H), "RETRIES_EXHAUSTED");
  assert_int_equal(effects("c"), 1);
  txh_done(&H);
  /* Out of memory is the environment's too: retried, not dead-lettered. */
  txh_batch(&H, 1);
  event(0, "d0", "nomem");
  assert_int_equal(txh_run(&H), LMP_ENOMEM);
  assert_true(lmp_error_is_retry(H.b->rc));
  txh_done(&H);
}

static void too_large_an_event(void **state) {
  txh_batch(&H, 2);
  event(0, "e0", "toobig");
  event(1, "e1", "ok");
  assert_int_equal(txh_run(&H), 0);
  assert_string_equal(txh_dead_codes(&H), "EVENT_TOO_LARGE");
  assert_int_equal(effects("e"), 1);
  txh_done(&H);
}

/* Poison is dead-lettered by its position, once, however often it comes back. */
static void poison_once(void **state) {
  static const unsigned char garbage[] = "not avro";
  static const unsigned char bad_key[] = {0xC3, 0x28};
  for (int round = 0; round < 2; round++) {
    txh_batch(&H, 4);
    txh_raw(&H, 0, "onboarding.failed", "k", 1, "p-0", garbage, sizeof(garbage) - 1);
    event(1, "f1", "ok");
    H.b->raws[1].key = bad_key; /* a key that is not UTF-8 */
    H.b->raws[1].keylen = sizeof(bad_key);
    txh_raw(&H, 2, "onboarding.failed", "k", 1, "p-2", garbage, 0);
    event(3, "f3", "ok");
    assert_int_equal(txh_run(&H), 0);
    if (round == 0) {
      assert_string_equal(txh_dead_codes(&H), "BAD_FRAMING BAD_KEY BAD_FRAMING");
      json_t *rows = txh_rows(&H);
      json_t *dl = json_array_get(rows, 1);
      assert_string_equal(json_string_value(json_object_get(dl, "key")), "(bytes)"); /* kept as it came */
      json_decref(rows);
    } else {
      assert_string_equal(txh_dead_codes(&H), ""); /* recognised: not dead-lettered again */
      assert_int_equal(H.b->dups, 4);
    }
    assert_int_equal(effects("f"), 1);
  }
  txh_done(&H);
}

/* What the header says the database layer does: the environment's faults are
 * LMP_ERETRY, a statement's own fault LMP_EDB. */
static void database_error_classes(void **state) {
  struct lmp_db *db = &H.rt.db;
  assert_int_equal(lmp__db_query(db, "SELECT 1 / 0", 0, NULL, NULL, NULL, 0, NULL), LMP_EDB);
  assert_int_equal(lmp__db_query(db, "INSERT INTO effects(id) VALUES (NULL)", 0, NULL, NULL, NULL, 0, NULL), LMP_EDB);
  assert_int_equal(lmp__db_query(db, "SET statement_timeout = 50", 0, NULL, NULL, NULL, 0, NULL), 0);
  assert_int_equal(lmp__db_query(db, "SELECT pg_sleep(1)", 0, NULL, NULL, NULL, 0, NULL), LMP_ERETRY); /* 57014 */
  assert_int_equal(lmp__db_query(db, "SET statement_timeout = 30000", 0, NULL, NULL, NULL, 0, NULL), 0);
  /* A server that is not there. */
  struct lmp_db away = {0};
  struct lmp_config cfg = H.rt.cfg;
  cfg.pg_port = 1;
  assert_int_equal(lmp__db_init(&away, &cfg, "nowhere", "txh"), 0);
  assert_int_equal(lmp__db_ensure(&away), LMP_ERETRY);
  assert_int_equal(lmp__db_query(&away, "SELECT 1", 0, NULL, NULL, NULL, 0, NULL), LMP_ERETRY);
  lmp__db_close(&away);
  /* The codes a caller retries, and those it does not. */
  assert_true(lmp_error_is_retry(LMP_ERETRY) && lmp_error_is_retry(LMP_ENOMEM));
  int final[] = {LMP_EINVAL, LMP_EFRAME, LMP_ESCHEMA, LMP_EDECODE, LMP_ETOOBIG, LMP_EDB, LMP_EREJECT};
  for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++)
    assert_false(lmp_error_is_retry(final[i]));
}

/* An id that is not one, or text with a control character, never reaches a handler
 * (nor a mail header or a log line through it): the message is dead-lettered with
 * what is wrong, the valid one beside it applied. */
static void hostile_ids_refused(void **state) {
  static const char *const hostile[][2] = {
      {"{\"onboarding_id\": \"x>\\r\\nBcc: eve@evil.example\", \"partner_id\": \"p\"", "BAD_TEXT"},
      {"{\"onboarding_id\": \"00000000-0000-4000-8000-0000000000g1\", \"partner_id\": \"p\"", "BAD_ID"},
      {"{\"onboarding_id\": \"00000000-0000-4000-8000-000000000099\", \"partner_id\": \"p q\"", "BAD_ID"},
      {"{\"onboarding_id\": \"00000000-0000-4000-8000-000000000099\", \"partner_id\": \"p\\u001b[31m\"",
       "BAD_TEXT"},
      {"{\"onboarding_id\": \"00000000-0000-4000-8000-000000000099\", \"partner_id\": \"p\\u0085\"", "BAD_TEXT"},
  };
  const size_t n = sizeof(hostile) / sizeof(hostile[0]);
  txh_batch(&H, n + 1);
  char want[200] = "";
  for (size_t i = 0; i < n; i++) {
    char json[400], evid[32], key[8];
    snprintf(json, sizeof(json), "%s, \"stage\": \"allocation\", \"reasons\": [{\"code\": \"ok\", \"field\": "
             "\"\", \"message\": \"\"}], \"onboarding\": null, \"failed_at\": 0}", hostile[i][0]);
    snprintf(evid, sizeof(evid), "ev-h%zu", i);
    snprintf(key, sizeof(key), "h%zu", i);
    txh_event(&H, i, "onboarding.failed", key, evid, json);
    H.b->raws[i].offset = 1000 + (int64_t)i; /* poison is known by its position: not poison_once's */
    strcat(want, i ? " " : "");
    strcat(want, hostile[i][1]);
  }
  event(n, "99", "ok");
  assert_int_equal(txh_run(&H), 0);
  assert_int_equal(H.b->applied, 1);
  assert_string_equal(txh_dead_codes(&H), want);
  txh_done(&H);
  assert_int_equal(effects("h"), 0);
  assert_int_equal(effects("99"), 1);
}

/* Retention: a parked event an operator marked reviewed goes retention.days later; one
 * nobody reviewed stays however old, as does one reviewed lately. */
static void parked_events_go_after_review(void **state) {
  txh_exec(&H, "INSERT INTO lmp_outbox_parked(event_id, topic, value, header_names, header_values, reason, "
               "parked_at, reviewed_at) VALUES "
               "('old-reviewed', 't', 'x', '{}', '{}', 'r', now() - interval '9 days', now() - interval '2 days'), "
               "('old-unreviewed', 't', 'x', '{}', '{}', 'r', now() - interval '9 days', NULL), "
               "('just-reviewed', 't', 'x', '{}', '{}', 'r', now() - interval '9 days', now())");
  H.rt.cfg.retention_days = 1;
  txh_batch(&H, 0);
  H.b->purge = 1;
  assert_int_equal(txh_run(&H), 0);
  txh_done(&H);
  assert_int_equal(txh_long(&H, "SELECT count(*) FROM lmp_outbox_parked WHERE event_id = 'old-reviewed'"), 0);
  assert_int_equal(txh_long(&H, "SELECT count(*) FROM lmp_outbox_parked WHERE event_id <> 'old-reviewed'"), 2);
}

/* An event type several daemons write names its writer, which must be the one whose
 * topic it is on (only that daemon's principal may write it): allocation's failure on
 * shipping's topic was written by shipping, and is refused. */
static void writer_bound_to_topic(void **state) {
  txh_batch(&H, 2);
  event(0, "b7", "ok");
  H.b->raws[0].topic = "t.onboarding.failed.shipping";
  H.b->raws[0].offset = 2000;
  event(1, "b8", "ok");
  assert_int_equal(txh_run(&H), 0);
  assert_int_equal(H.b->applied, 1);
  assert_string_equal(txh_dead_codes(&H), "WRONG_TOPIC");
  txh_done(&H);
  assert_int_equal(effects("b7"), 0);
  assert_int_equal(effects("b8"), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(applies_a_batch_once),  cmocka_unit_test(isolates_the_failing_message),
      cmocka_unit_test(retries_then_gives_up_on_one), cmocka_unit_test(too_large_an_event),
      cmocka_unit_test(poison_once),           cmocka_unit_test(database_error_classes),
      cmocka_unit_test(hostile_ids_refused),     cmocka_unit_test(parked_events_go_after_review),
      cmocka_unit_test(writer_bound_to_topic), cmocka_unit_test(a_failure_sent_ahead_is_its_messages),
      cmocka_unit_test(statements_sent_ahead), cmocka_unit_test(statements_planned_again),
      cmocka_unit_test(rows_added_are_one_statement),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
