/* The transaction harness: real runtime code on a real PostgreSQL, messages made here. */
#include "txh.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lmp/base/error.h"

/* A message made here: its bytes and headers, which the raw view points into. */
struct fake {
  char topic[128];
  unsigned char *key, *value;
  size_t keylen, len;
  char event_id[200];
  char event_type[128];
};

static void release(void *msg) {
  struct fake *f = msg;
  free(f->key);
  free(f->value);
  free(f);
}

static const struct lmp_ops txh_ops = {.release = release, .txn = lmp__txn_run};

static const void *header(const void *ctx, const char *name, size_t *n) {
  const struct fake *f = ctx;
  const char *v = strcmp(name, "event_id") == 0 ? f->event_id : strcmp(name, "event_type") == 0 ? f->event_type : "";
  *n = strlen(v);
  return *v ? v : NULL;
}

static int header_at(const void *ctx, size_t i, const char **name, const void **value, size_t *n) {
  static const char *const names[] = {"event_id", "event_type"};
  for (size_t k = 0, seen = 0; k < 2; k++) {
    size_t len;
    const void *v = header(ctx, names[k], &len);
    if (v && seen++ == i) {
      *name = names[k];
      *value = v;
      *n = len;
      return 0;
    }
  }
  return -1;
}

/* The test stack's superuser: on a secured stack (deploy/stack made a CA) over TLS
 * that verifies the server, with the password deploy/stack wrote. */
static struct {
  char port[16], password[128], rootcert[1024];
  int secured;
} stack;

static void stack_settings(void) {
  const char *port = getenv("LMP_PG_PORT"), *dir = getenv("LMP_STACK_DIR");
  snprintf(stack.port, sizeof(stack.port), "%s", port ? port : "25432");
  if (dir == NULL)
    return;
  char path[1024];
  snprintf(stack.rootcert, sizeof(stack.rootcert), "%s/secrets/ca.crt", dir);
  snprintf(path, sizeof(path), "%s/secrets/pg-lmp.password", dir);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return; /* a plaintext stack */
  if (fgets(stack.password, sizeof(stack.password), f) == NULL)
    fail_msg("%s is empty", path);
  fclose(f);
  stack.password[strcspn(stack.password, "\n")] = 0;
  stack.secured = 1;
}

static PGconn *admin(void) {
  stack_settings();
  const char *keys[] = {"host", "port", "user", "dbname", "password", "sslmode", "sslrootcert", NULL};
  const char *vals[] = {"127.0.0.1", stack.port, "lmp", "postgres", stack.password,
                        stack.secured ? "verify-full" : "disable", stack.rootcert, NULL};
  PGconn *c = PQconnectdbParams(keys, vals, 0);
  if (PQstatus(c) != CONNECTION_OK)
    fail_msg("the test stack's PostgreSQL is not reachable: %s", PQerrorMessage(c));
  return c;
}

static void admin_exec(const char *sql) {
  PGconn *c = admin();
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    fail_msg("%s: %s", sql, PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
}

static void setup_rt(struct txh *h, const struct lmp_service *svc) {
  struct rt *rt = &h->rt;
  memset(rt, 0, sizeof(*rt));
  rt->svc = svc;
  rt->ops = &txh_ops;
  stack_settings();
  rt->cfg.pg_host = "127.0.0.1";
  rt->cfg.pg_port = atoi(stack.port);
  rt->cfg.pg_user = "lmp";
  rt->cfg.pg_password = stack.password;
  rt->cfg.pg_sslmode = stack.secured ? "verify-full" : "disable";
  rt->cfg.pg_sslrootcert = stack.rootcert;
  rt->cfg.pg_connect_timeout_s = 5;
  rt->cfg.pg_statement_timeout_ms = 30000;
  rt->cfg.topic_prefix = "t.";
  rt->cfg.dead_letter_topic = "t.dead-letter";
  rt->cfg.retry_isolate_after = 3;
  lmp_metrics_init(&rt->m);
  char err[600];
  if (lmp_schemas_new(&rt->schemas, err, sizeof(err)) < 0)
    fail_msg("schemas: %s", err);
  assert_int_equal(lmp__db_init(&rt->db, &rt->cfg, h->dbname, "txh"), 0);
  assert_int_equal(lmp__db_ensure(&rt->db), 0);
  h->tx = (struct lmp_tx){.rt = rt, .db = &rt->db};
}

void txh_open(struct txh *h, const struct lmp_service *svc) {
  static int seq;
  memset(h, 0, sizeof(*h));
  snprintf(h->dbname, sizeof(h->dbname), "unit_%.20s_%d_%d", svc->name, (int)getpid(), seq++);
  for (char *c = h->dbname; *c; c++)
    if (*c == '-')
      *c = '_';
  char sql[200];
  snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", h->dbname);
  admin_exec(sql);
  h->owner = 1;
  setup_rt(h, svc);
  if (lmp__db_migrate(&h->rt.db, "runtime", lmp_runtime_migrations) < 0 ||
      lmp__db_migrate(&h->rt.db, svc->name, svc->migrations) < 0)
    fail_msg("migrations: %s", h->rt.db.err);
  atomic_store(&h->rt.m.migrated, 1);
}

void txh_attach(struct txh *h, const struct lmp_service *svc, const struct txh *other) {
  memset(h, 0, sizeof(*h));
  snprintf(h->dbname, sizeof(h->dbname), "%s", other->dbname);
  setup_rt(h, svc);
  atomic_store(&h->rt.m.migrated, 1);
}

void txh_close(struct txh *h) {
  txh_done(h);
  lmp__db_close(&h->rt.db);
  lmp_schemas_free(h->rt.schemas);
  if (h->owner) {
    char sql[200];
    snprintf(sql, sizeof(sql), "DROP DATABASE \"%s\" WITH (FORCE)", h->dbname);
    admin_exec(sql);
  }
}

void txh_batch(struct txh *h, size_t n) {
  txh_done(h);
  struct batch *b = calloc(1, sizeof(*b));
  assert_non_null(b);
  b->kind = BATCH_MESSAGES;
  b->ops = &txh_ops;
  b->n = n;
  b->raws = calloc(n, sizeof(*b->raws));
  b->msgs = calloc(n, sizeof(*b->msgs));
  b->retried = calloc(n, 1);
  h->b = b;
  h->tx.b = b;
}

void txh_raw(struct txh *h, size_t i, const char *event_type, const void *key, size_t keylen, const char *event_id,
             const void *value, size_t len) {
  struct fake *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  /* A type several daemons write: its first writer's topic (txh_event picks by content). */
  const struct lmp_writers *w = lmp_event_writers(event_type);
  if (w)
    snprintf(f->topic, sizeof(f->topic), "t.%s.%s", event_type, w->writers[0]);
  else
    snprintf(f->topic, sizeof(f->topic), "t.%s", event_type);
  snprintf(f->event_id, sizeof(f->event_id), "%s", event_id ? event_id : "");
  snprintf(f->event_type, sizeof(f->event_type), "%s", event_type);
  if (key) {
    f->key = malloc(keylen ? keylen : 1);
    memcpy(f->key, key, keylen);
    f->keylen = keylen;
  }
  f->value = malloc(len ? len : 1);
  memcpy(f->value, value, len);
  f->len = len;
  h->b->msgs[i] = f;
  h->b->raws[i] = (struct lmp_raw){f->topic, 0, (int64_t)i, f->key, f->keylen, f->value, f->len, header, header_at, f};
}

void txh_event(struct txh *h, size_t i, const char *event_type, const char *key, const char *event_id,
               const char *json) {
  const struct lmp_schema *s = lmp_schemas_get(h->rt.schemas, event_type);
  assert_non_null(s);
  json_error_t je;
  json_t *j = json_loads(json, 0, &je);
  if (j == NULL)
    fail_msg("test event is not JSON: %s", je.text);
  avro_value_t v;
  char err[300];
  avro_generic_value_new(s->iface, &v);
  if (lmp_avro_from_json(&v, j, err, sizeof(err)) < 0)
    fail_msg("test event does not fit %s: %s", event_type, err);
  struct lmp_buf enc = {0};
  assert_int_equal(lmp_avro_encode(s, &v, &enc), 0);
  txh_raw(h, i, event_type, key, key ? strlen(key) : 0, event_id, enc.data, enc.len);
  /* A type several daemons write is on the topic of the writer it names, or, naming
   * none of them, on the first one's (where the runtime refuses it). */
  const struct lmp_writers *w = lmp_event_writers(event_type);
  if (w) {
    const char *named = json_string_value(json_object_get(j, w->field)), *writer = w->writers[0];
    for (const char *const *x = w->writers; named && *x; x++)
      if (strcmp(*x, named) == 0)
        writer = *x;
    struct fake *f = h->b->msgs[i];
    snprintf(f->topic, sizeof(f->topic), "t.%s.%s", event_type, writer);
  }
  lmp_buf_free(&enc);
  avro_value_decref(&v);
  json_decref(j);
}

int txh_run(struct txh *h) {
  h->b->attempts++; /* as the pipeline counts them */
  lmp__txn_run(&h->rt, h->b);
  return h->b->rc;
}

void txh_done(struct txh *h) {
  lmp__batch_free(h->b);
  h->b = NULL;
  h->tx.b = NULL;
}

json_t *txh_rows(struct txh *h) {
  json_t *out = json_array();
  for (size_t i = 0; h->b && i < h->b->nrows; i++) {
    const struct outrow *r = &h->b->rows[i];
    json_t *hd = json_object();
    for (size_t k = 0; k < r->nhdrs; k++) {
      json_t *v = json_stringn((const char *)r->hdrs[k].value, r->hdrs[k].len);
      json_object_set_new(hd, r->hdrs[k].name, v ? v : json_string("(bytes)"));
    }
    json_t *ev = json_null();
    const struct lmp_schema *s;
    avro_value_t v;
    char err[300];
    if (strcmp(r->topic, h->rt.cfg.dead_letter_topic) != 0 &&
        lmp_avro_decode(h->rt.schemas, r->value, r->len, &s, &v, err, sizeof(err)) == 0) {
      json_decref(ev);
      ev = lmp_avro_to_json(&v);
      avro_value_decref(&v);
    }
    json_t *key = r->key ? json_stringn((const char *)r->key, r->keylen) : json_null();
    json_array_append_new(out, json_pack("{s:s, s:o, s:o, s:o, s:I}", "topic", r->topic, "key",
                                         key ? key : json_string("(bytes)"), "headers", hd, "event", ev,
                                         "value_len", (json_int_t)r->len));
  }
  return out;
}

const char *txh_dead_codes(struct txh *h) {
  static char codes[1000];
  codes[0] = '\0';
  for (size_t i = 0; h->b && i < h->b->nrows; i++) {
    const struct outrow *r = &h->b->rows[i];
    for (size_t k = 0; k < r->nhdrs; k++)
      if (strcmp(r->hdrs[k].name, "error_code") == 0)
        snprintf(codes + strlen(codes), sizeof(codes) - strlen(codes), "%s%.*s", *codes ? " " : "",
                 (int)r->hdrs[k].len, (const char *)r->hdrs[k].value);
  }
  return codes;
}

long txh_long(struct txh *h, const char *sql) {
  PGresult *r = PQexec(h->rt.db.conn, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fail_msg("%s: %s", sql, PQresultErrorMessage(r));
  long v = PQntuples(r) && !PQgetisnull(r, 0, 0) ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
  PQclear(r);
  return v;
}

void txh_exec(struct txh *h, const char *sql) {
  PGresult *r = PQexec(h->rt.db.conn, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    fail_msg("%s: %s", sql, PQresultErrorMessage(r));
  PQclear(r);
}
