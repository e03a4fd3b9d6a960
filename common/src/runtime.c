/* The daemon runtime: one libuv loop driving Kafka, a database worker, and HTTP. */
#include "lmp/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include <uv.h>

#include "lmp/db.h"
#include "lmp/error.h"
#include "lmp/events.h"
#include "lmp/http.h"
#include "lmp/log.h"
#include "lmp/metrics.h"

extern char **environ;

/* An event waiting in the outbox for the broker's acknowledgement. */
struct outrow {
  int64_t id;          /* lmp_outbox.id, known once inserted */
  char *event_id;
  char *topic;
  char *key;           /* may be NULL */
  char *value;
  size_t len;
  json_t *headers;     /* name -> string */
  int state;           /* 0 pending, 1 delivered, -1 failed */
  struct rt *rt;
};

struct batch {
  rd_kafka_message_t **msgs; /* owned; destroyed when the batch ends */
  size_t n;
  int sweep;                 /* an outbox sweep instead of consumed messages */
  int tick;                  /* the service's periodic work instead of messages */
  int sweep_age_ms;
  struct outrow *rows;
  size_t nrows, caprows;
  int64_t *del_ids;          /* acknowledged rows this transaction deletes */
  size_t ndel;
  int rc;                    /* worker result */
  char err[600];
  uint64_t started_ns;
  uint64_t applied, dups, dead;
  int attempts;
};

enum rt_state { RT_IDLE, RT_WORKING, RT_PUBLISHING, RT_WAITING };

struct rt {
  const struct lmp_service *svc;
  struct lmp_config cfg;
  char group[256];
  char dbname[64];
  struct lmp_schemas *schemas;
  uv_loop_t *loop;
  rd_kafka_t *consumer, *producer;
  rd_kafka_queue_t *cq, *pq;
  int cpipe[2], ppipe[2];
  uv_poll_t cpoll, ppoll;
  uv_timer_t tick, retry, sweep, deadline, svc_tick;
  uv_signal_t sigterm, sigint;
  uv_work_t work;
  struct lmp_db db;          /* the worker's connection */
  struct lmp_http *http;
  enum rt_state state;
  struct batch *cur;
  rd_kafka_message_t **carry; /* fetched while a batch was in flight: the next batch's head */
  size_t ncarry, capcarry;
  int64_t *published;        /* acknowledged outbox ids not yet deleted */
  size_t npublished, cappublished;
  int pending;               /* deliveries outstanding */
  int backoff_ms;
  int paused;
  int draining, closing, first_sweep_done;
  int exit_code;
  struct lmp_metrics m;
};

/* The transaction handed to handlers. */
struct lmp_tx {
  struct rt *rt;
  struct batch *b;
  const struct lmp_event *ev;
  int transient;             /* last SQL failure may succeed on retry */
  char traceparent[64];
};

static uint64_t now_ns(void) { return uv_hrtime(); }

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lmp_topic_name(const struct lmp_config *cfg, const char *event_type, char *out, size_t outlen) {
  snprintf(out, outlen, "%s%s", cfg->topic_prefix, event_type);
}

static void new_uuid(char out[37]) {
  uuid_t u;
  uuid_generate(u);
  uuid_unparse_lower(u, out);
}

/* ---- Outbox rows ------------------------------------------------------------- */

static void row_clear(struct outrow *r) {
  free(r->event_id);
  free(r->topic);
  free(r->key);
  free(r->value);
  json_decref(r->headers);
  memset(r, 0, sizeof(*r));
}

static struct outrow *row_add(struct batch *b) {
  if (b->nrows == b->caprows) {
    size_t cap = b->caprows ? b->caprows * 2 : 16;
    struct outrow *p = realloc(b->rows, cap * sizeof(*p));
    if (p == NULL)
      return NULL;
    b->rows = p;
    b->caprows = cap;
  }
  struct outrow *r = &b->rows[b->nrows++];
  memset(r, 0, sizeof(*r));
  return r;
}

static void rows_truncate(struct batch *b, size_t n) {
  while (b->nrows > n)
    row_clear(&b->rows[--b->nrows]);
}

static void batch_free(struct batch *b) {
  if (b == NULL)
    return;
  for (size_t i = 0; i < b->n; i++)
    rd_kafka_message_destroy(b->msgs[i]);
  free(b->msgs);
  rows_truncate(b, 0);
  free(b->rows);
  free(b->del_ids);
  free(b);
}

/* Inserts a row into lmp_outbox; on success the batch owns it for publishing. */
static int outbox_insert(struct lmp_tx *tx, struct outrow *row) {
  char *hdr = json_dumps(row->headers, JSON_COMPACT);
  if (hdr == NULL)
    return LMP_ENOMEM;
  const char *params[5] = {row->event_id, row->topic, row->key, row->value, hdr};
  int lengths[5] = {0, 0, 0, (int)row->len, 0};
  int formats[5] = {0, 0, 0, 1, 0};
  PGresult *res = lmp_db_exec_fmt(&tx->rt->db,
                                  "INSERT INTO lmp_outbox(event_id, topic, key, value, headers) "
                                  "VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING id",
                                  5, params, lengths, formats, &tx->transient);
  free(hdr);
  if (res == NULL)
    return LMP_EDB;
  row->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  return 0;
}

/* ---- The handler's API -------------------------------------------------------- */

PGresult *lmp_tx_exec(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params) {
  return lmp_db_exec(&tx->rt->db, sql, nparams, params, &tx->transient);
}

int lmp_tx_command(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params) {
  PGresult *res = lmp_tx_exec(tx, sql, nparams, params);
  if (res == NULL)
    return LMP_EDB;
  PQclear(res);
  return 0;
}

void *lmp_tx_ctx(struct lmp_tx *tx) { return tx->rt->svc->ctx; }

int lmp_tx_exists(struct lmp_tx *tx, const char *sql, int nparams, const char *const *params, int *found) {
  PGresult *res = lmp_tx_exec(tx, sql, nparams, params);
  if (res == NULL)
    return LMP_EDB;
  *found = PQntuples(res) > 0;
  PQclear(res);
  return 0;
}

int lmp_tx_checkpoint(struct lmp_tx *tx) {
  if (!tx->b->tick || tx->b->n)
    return LMP_EINVAL; /* a consumed batch commits once, with its inbox */
  int r = lmp_tx_command(tx, "COMMIT", 0, NULL);
  return r ? r : lmp_tx_command(tx, "BEGIN", 0, NULL);
}

int lmp_tx_value(struct lmp_tx *tx, const char *event_type, avro_value_t *out) {
  const struct lmp_schema *s = lmp_schemas_get(tx->rt->schemas, event_type);
  if (s == NULL)
    return LMP_ESCHEMA;
  return avro_generic_value_new(s->iface, out) == 0 ? 0 : LMP_ENOMEM;
}

int lmp_tx_emit(struct lmp_tx *tx, const char *event_type, const char *key, avro_value_t *value) {
  const struct lmp_schema *s = lmp_schemas_get(tx->rt->schemas, event_type);
  if (s == NULL)
    return LMP_ESCHEMA;
  struct lmp_buf enc = {0};
  int r = lmp_avro_encode(s, value, &enc);
  if (r < 0) {
    lmp_buf_free(&enc);
    return r;
  }
  struct outrow *row = row_add(tx->b);
  if (row == NULL) {
    lmp_buf_free(&enc);
    return LMP_ENOMEM;
  }
  char id[37], topic[300];
  new_uuid(id);
  lmp_topic_name(&tx->rt->cfg, event_type, topic, sizeof(topic));
  row->len = enc.len;
  row->value = lmp_buf_steal(&enc);
  row->event_id = strdup(id);
  row->topic = strdup(topic);
  row->key = key ? strdup(key) : NULL;
  const char *corr = tx->ev && tx->ev->correlation_id ? tx->ev->correlation_id : (key ? key : "");
  row->headers = json_pack("{s:s, s:s, s:s, s:s, s:s}", "event_id", id, "event_type", event_type,
                           "correlation_id", corr, "traceparent", tx->traceparent,
                           "content_type", "application/vnd.apache.avro+single-object");
  if (row->value == NULL || row->event_id == NULL || row->topic == NULL || row->headers == NULL ||
      (key && row->key == NULL)) {
    rows_truncate(tx->b, tx->b->nrows - 1);
    return LMP_ENOMEM;
  }
  return outbox_insert(tx, row);
}

/* ---- The batch transaction (worker thread) ------------------------------------ */

static const char *header(const rd_kafka_message_t *m, const char *name, char *buf, size_t len) {
  rd_kafka_headers_t *h = NULL;
  const void *v;
  size_t n;
  if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || v == NULL)
    return NULL;
  if (n >= len || memchr(v, '\0', n))
    return NULL;
  memcpy(buf, v, n);
  buf[n] = '\0';
  return buf;
}

static int inbox_add(struct lmp_tx *tx, const char *event_id, const rd_kafka_message_t *m,
                     int *fresh) {
  char part[16], off[24];
  snprintf(part, sizeof(part), "%d", (int)m->partition);
  snprintf(off, sizeof(off), "%lld", (long long)m->offset);
  const char *params[] = {event_id, rd_kafka_topic_name(m->rkt), part, off};
  PGresult *res = lmp_tx_exec(tx, "INSERT INTO lmp_inbox(event_id, topic, partition, \"offset\") "
                                  "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", 4, params);
  if (res == NULL)
    return LMP_EDB;
  *fresh = strcmp(PQcmdTuples(res), "1") == 0;
  PQclear(res);
  return 0;
}

/* The largest copy of a poison message the dead-letter topic receives. */
#define DEAD_LETTER_MAX_BYTES (256 * 1024)

/* Keeps the message, its headers and the reason: nothing is dropped silently. */
static int dead_letter(struct lmp_tx *tx, const rd_kafka_message_t *m, const char *code,
                       const char *why) {
  struct rt *rt = tx->rt;
  struct outrow *row = row_add(tx->b);
  if (row == NULL)
    return LMP_ENOMEM;
  char id[37];
  new_uuid(id);
  row->event_id = strdup(id);
  row->topic = strdup(rt->cfg.dead_letter_topic);
  row->key = m->key ? strndup(m->key, m->key_len) : NULL;
  /* The source topic keeps the original; a copy too large to publish would stall
   * the partition, so an oversized one is cut and says so. */
  row->len = m->len > DEAD_LETTER_MAX_BYTES ? DEAD_LETTER_MAX_BYTES : m->len;
  row->value = malloc(row->len ? row->len : 1);
  row->headers = json_object();
  if (row->event_id == NULL || row->topic == NULL || row->value == NULL || row->headers == NULL) {
    rows_truncate(tx->b, tx->b->nrows - 1);
    return LMP_ENOMEM;
  }
  if (row->len)
    memcpy(row->value, m->payload, row->len);
  rd_kafka_headers_t *h = NULL;
  if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char *name;
    const void *v;
    size_t n;
    for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
      json_t *s = v ? json_stringn(v, n) : NULL; /* skips values that are not UTF-8 */
      if (s)
        json_object_set_new(row->headers, name, s);
    }
  }
  char part[16], off[24];
  snprintf(part, sizeof(part), "%d", (int)m->partition);
  snprintf(off, sizeof(off), "%lld", (long long)m->offset);
  json_object_set_new(row->headers, "dlq_event_id", json_string(id));
  json_object_set_new(row->headers, "error_code", json_string(code));
  json_t *w = json_string(why);
  json_object_set_new(row->headers, "error_message", w ? w : json_string("(not UTF-8)"));
  json_object_set_new(row->headers, "source_topic", json_string(rd_kafka_topic_name(m->rkt)));
  json_object_set_new(row->headers, "source_partition", json_string(part));
  json_object_set_new(row->headers, "source_offset", json_string(off));
  json_object_set_new(row->headers, "source_service", json_string(rt->svc->name));
  if (row->len < m->len) {
    char size[24];
    snprintf(size, sizeof(size), "%zu", m->len);
    json_object_set_new(row->headers, "dlq_truncated_from", json_string(size));
  }
  tx->b->dead++;
  lmp_warn(tx->ev ? tx->ev->correlation_id : NULL, "dead-letter %s[%d]@%lld: %s: %s",
           rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset, code, why);
  return outbox_insert(tx, row);
}

static int consumes(const struct lmp_service *svc, const char *event_type) {
  for (const char *const *c = svc->consumes; *c; c++)
    if (strcmp(*c, event_type) == 0)
      return 1;
  return 0;
}

/* One message inside the batch transaction. Returns 0 when it was applied, skipped
 * as a duplicate or dead-lettered; a negative code aborts the batch. */
static int apply_message(struct lmp_tx *tx, const rd_kafka_message_t *m) {
  struct rt *rt = tx->rt;
  char evid[128], corr[128], tp[64], etype[128], pos[320];
  char err[600];
  snprintf(pos, sizeof(pos), "%s/%d/%lld", rd_kafka_topic_name(m->rkt), (int)m->partition,
           (long long)m->offset);
  const char *event_id = header(m, "event_id", evid, sizeof(evid));
  struct lmp_event ev = {.event_id = event_id ? event_id : pos,
                         .correlation_id = header(m, "correlation_id", corr, sizeof(corr)),
                         .topic = rd_kafka_topic_name(m->rkt),
                         .partition = m->partition,
                         .offset = m->offset};
  char key[256];
  if (m->key && m->key_len < sizeof(key) && !memchr(m->key, '\0', m->key_len)) {
    memcpy(key, m->key, m->key_len);
    key[m->key_len] = '\0';
    ev.key = key;
  }
  lmp_traceparent(header(m, "traceparent", tp, sizeof(tp)), tx->traceparent);
  tx->ev = &ev;
  int fresh, r;

  avro_value_t value;
  const struct lmp_schema *schema = NULL;
  int dr = lmp_avro_decode(rt->schemas, m->payload, m->len, &schema, &value, err, sizeof(err));
  const char *code = NULL;
  if (dr < 0) {
    code = dr == LMP_EFRAME ? "BAD_FRAMING" : dr == LMP_ESCHEMA ? "UNKNOWN_SCHEMA"
         : dr == LMP_ETOOBIG ? "TOO_LARGE" : "UNDECODABLE";
  } else if (!consumes(rt->svc, schema->name)) {
    code = "UNEXPECTED_EVENT_TYPE";
    snprintf(err, sizeof(err), "%s does not consume %s", rt->svc->name, schema->name);
  } else if (header(m, "event_type", etype, sizeof(etype)) && strcmp(etype, schema->name) != 0) {
    code = "EVENT_TYPE_MISMATCH";
    snprintf(err, sizeof(err), "header says %s, the schema is %s", etype, schema->name);
  }
  if (code) {
    if (dr == 0)
      avro_value_decref(&value);
    /* Poison is recognised by its position, so a redelivery is not dead-lettered twice. */
    if ((r = inbox_add(tx, pos, m, &fresh)) < 0)
      return r;
    return fresh ? dead_letter(tx, m, code, err) : 0;
  }
  ev.schema = schema;
  ev.value = &value;

  if ((r = lmp_tx_command(tx, "SAVEPOINT lmp_event", 0, NULL)) < 0)
    goto out;
  if ((r = inbox_add(tx, ev.event_id, m, &fresh)) < 0)
    goto out;
  if (!fresh) {
    tx->b->dups++;
    lmp_debug(ev.correlation_id, "skip duplicate %s %s", schema->name, ev.event_id);
    r = lmp_tx_command(tx, "RELEASE SAVEPOINT lmp_event", 0, NULL);
    goto out;
  }
  size_t rows_before = tx->b->nrows;
  tx->transient = 0;
  err[0] = '\0';
  r = rt->svc->handle(tx, &ev);
  if (r == 0) {
    tx->b->applied++;
    r = lmp_tx_command(tx, "RELEASE SAVEPOINT lmp_event", 0, NULL);
    goto out;
  }
  if (r == LMP_EDB && tx->transient)
    goto out; /* the batch is retried */
  /* Invalid values, or SQL that will never succeed for this event: undo its writes,
   * remember it was seen, and dead-letter it with the reason. */
  snprintf(err, sizeof(err), "%s", r == LMP_EDB ? rt->db.err : lmp_strerror(r));
  rows_truncate(tx->b, rows_before);
  if ((r = lmp_tx_command(tx, "ROLLBACK TO SAVEPOINT lmp_event", 0, NULL)) < 0)
    goto out;
  if ((r = inbox_add(tx, ev.event_id, m, &fresh)) < 0)
    goto out;
  r = dead_letter(tx, m, "HANDLER_REJECTED", err);
out:
  avro_value_decref(&value);
  tx->ev = NULL;
  return r;
}

static int sweep_rows(struct lmp_tx *tx, int age_ms) {
  char age[24];
  snprintf(age, sizeof(age), "%d", age_ms);
  const char *params[] = {age};
  PGresult *res = lmp_tx_exec(tx, "SELECT id, event_id, topic, key, value, headers::text "
                                  "FROM lmp_outbox WHERE created_at <= now() - $1 * interval '1 ms' "
                                  "ORDER BY id LIMIT 2000", 1, params);
  if (res == NULL)
    return LMP_EDB;
  for (int i = 0; i < PQntuples(res); i++) {
    struct outrow *row = row_add(tx->b);
    if (row == NULL) {
      PQclear(res);
      return LMP_ENOMEM;
    }
    size_t n = 0;
    unsigned char *v = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 4), &n);
    row->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    row->event_id = strdup(PQgetvalue(res, i, 1));
    row->topic = strdup(PQgetvalue(res, i, 2));
    row->key = PQgetisnull(res, i, 3) ? NULL : strdup(PQgetvalue(res, i, 3));
    row->value = v ? malloc(n ? n : 1) : NULL;
    if (row->value && n)
      memcpy(row->value, v, n);
    row->len = n;
    PQfreemem(v);
    row->headers = json_loads(PQgetvalue(res, i, 5), 0, NULL);
    if (row->event_id == NULL || row->topic == NULL || row->value == NULL || row->headers == NULL) {
      PQclear(res);
      return LMP_ENOMEM;
    }
  }
  PQclear(res);
  return 0;
}

static int run_batch(struct rt *rt, struct batch *b) {
  struct lmp_tx tx = {.rt = rt, .b = b};
  int r = lmp_db_ensure(&rt->db);
  if (r < 0) {
    snprintf(b->err, sizeof(b->err), "database: %s", rt->db.err);
    return r;
  }
  if (!atomic_load(&rt->m.migrated)) {
    if ((r = lmp_db_migrate(&rt->db, "runtime", lmp_runtime_migrations)) < 0 ||
        (r = lmp_db_migrate(&rt->db, rt->svc->name, rt->svc->migrations)) < 0) {
      snprintf(b->err, sizeof(b->err), "database migration: %s", rt->db.err);
      return r;
    }
    atomic_store(&rt->m.migrated, 1);
  }
  if ((r = lmp_tx_command(&tx, "BEGIN", 0, NULL)) < 0)
    goto fail;
  if (b->ndel) {
    struct lmp_buf ids = {0};
    lmp_buf_puts(&ids, "{");
    for (size_t i = 0; i < b->ndel; i++)
      lmp_buf_printf(&ids, "%s%lld", i ? "," : "", (long long)b->del_ids[i]);
    lmp_buf_puts(&ids, "}");
    const char *params[] = {ids.data};
    r = ids.data ? lmp_tx_command(&tx, "DELETE FROM lmp_outbox WHERE id = ANY($1::bigint[])", 1, params)
                 : LMP_ENOMEM;
    lmp_buf_free(&ids);
    if (r < 0)
      goto fail;
  }
  if (b->sweep && (r = sweep_rows(&tx, b->sweep_age_ms)) < 0)
    goto fail;
  if (b->tick && (r = rt->svc->tick(&tx)) < 0) {
    if (r == LMP_EDB)
      snprintf(b->err, sizeof(b->err), "tick: %s", rt->db.err);
    goto fail;
  }
  for (size_t i = 0; i < b->n; i++)
    if ((r = apply_message(&tx, b->msgs[i])) < 0)
      goto fail;
  if ((r = lmp_tx_command(&tx, "COMMIT", 0, NULL)) < 0)
    goto fail;
  return 0;
fail:
  if (r == LMP_EDB)
    snprintf(b->err, sizeof(b->err), "database: %s", rt->db.err);
  else
    snprintf(b->err, sizeof(b->err), "%s", lmp_strerror(r));
  if (rt->db.conn && PQstatus(rt->db.conn) == CONNECTION_OK)
    PQclear(PQexec(rt->db.conn, "ROLLBACK"));
  return r;
}

static void work_cb(uv_work_t *w) {
  struct rt *rt = w->data;
  struct batch *b = rt->cur;
  b->applied = b->dups = b->dead = 0;
  rows_truncate(b, 0);
  b->rc = run_batch(rt, b);
  if (b->rc < 0)
    rows_truncate(b, 0);
}

/* ---- The loop: consume, work, publish, commit ------------------------------------ */

static void consume_next(struct rt *rt);
static void publish_rows(struct rt *rt);
static void finish_shutdown(struct rt *rt);
static void after_work_cb(uv_work_t *w, int status);

static int backoff_next(struct rt *rt) {
  int ms = rt->backoff_ms ? rt->backoff_ms * 2 : rt->cfg.retry_initial_ms;
  if (ms > rt->cfg.retry_max_ms)
    ms = rt->cfg.retry_max_ms;
  rt->backoff_ms = ms;
  return ms;
}

static void start_work(struct rt *rt) {
  struct batch *b = rt->cur;
  /* Hand the acknowledged ids to this transaction; they come back if it fails. */
  if (rt->npublished && b->ndel == 0) {
    b->del_ids = rt->published;
    b->ndel = rt->npublished;
    rt->published = NULL;
    rt->npublished = rt->cappublished = 0;
  }
  rt->state = RT_WORKING;
  rt->work.data = rt;
  b->attempts++;
  int r = uv_queue_work(rt->loop, &rt->work, work_cb, after_work_cb);
  if (r < 0) {
    lmp_error(NULL, "cannot queue database work: %s", uv_strerror(r));
    rt->exit_code = 1;
    finish_shutdown(rt);
  }
}

static void retry_cb(uv_timer_t *t) {
  struct rt *rt = t->data;
  if (rt->state != RT_WAITING || rt->closing)
    return;
  if (rt->cur->rc < 0)
    start_work(rt);
  else
    publish_rows(rt);
}

static void remember_published(struct rt *rt, int64_t id) {
  if (rt->npublished == rt->cappublished) {
    size_t cap = rt->cappublished ? rt->cappublished * 2 : 256;
    int64_t *p = realloc(rt->published, cap * sizeof(*p));
    if (p == NULL)
      return; /* the sweeper will republish it; consumers dedupe by event id */
    rt->published = p;
    rt->cappublished = cap;
  }
  rt->published[rt->npublished++] = id;
}

static void commit_offsets(struct rt *rt, struct batch *b) {
  if (b->n == 0)
    return;
  rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new((int)b->n);
  for (size_t i = 0; i < b->n; i++) {
    rd_kafka_message_t *m = b->msgs[i];
    rd_kafka_topic_partition_t *p =
        rd_kafka_topic_partition_list_find(offs, rd_kafka_topic_name(m->rkt), m->partition);
    if (p == NULL)
      p = rd_kafka_topic_partition_list_add(offs, rd_kafka_topic_name(m->rkt), m->partition);
    if (m->offset + 1 > p->offset)
      p->offset = m->offset + 1;
  }
  rd_kafka_resp_err_t err = rd_kafka_commit(rt->consumer, offs, 1 /* async */);
  if (err)
    lmp_warn(NULL, "offset commit not sent: %s (events will be redelivered and deduplicated)",
             rd_kafka_err2str(err));
  rd_kafka_topic_partition_list_destroy(offs);
}

static void batch_done(struct rt *rt) {
  struct batch *b = rt->cur;
  for (size_t i = 0; i < b->nrows; i++)
    if (b->rows[i].id > 0)
      remember_published(rt, b->rows[i].id);
  commit_offsets(rt, b);
  atomic_fetch_add(&rt->m.applied, b->applied);
  atomic_fetch_add(&rt->m.duplicates, b->dups);
  atomic_fetch_add(&rt->m.dead_lettered, b->dead);
  atomic_store(&rt->m.outbox_backlog, 0);
  if (b->n)
    lmp_metrics_observe_batch(&rt->m, (now_ns() - b->started_ns) / 1000);
  if (b->n || b->nrows)
    lmp_debug(NULL, "batch of %zu: %llu applied, %llu duplicate, %llu dead-lettered, %zu published",
              b->n, (unsigned long long)b->applied, (unsigned long long)b->dups,
              (unsigned long long)b->dead, b->nrows);
  batch_free(b);
  rt->cur = NULL;
  rt->state = RT_IDLE;
  rt->backoff_ms = 0;
  if (rt->paused) {
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(rt->consumer, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR && parts) {
      rd_kafka_resume_partitions(rt->consumer, parts);
      rd_kafka_topic_partition_list_destroy(parts);
    }
    rt->paused = 0;
  }
  if (rt->draining)
    finish_shutdown(rt);
  else
    consume_next(rt);
}

static void after_work_cb(uv_work_t *w, int status) {
  struct rt *rt = w->data;
  struct batch *b = rt->cur;
  if (b->rc < 0) {
    atomic_fetch_add(&rt->m.failed_batches, 1);
    if (b->rc == LMP_EDB)
      atomic_store(&rt->m.db_up, 0);
    if (b->n == 0) {
      /* A sweep or a tick: its timer brings it back. Holding on to it would keep the
       * consumer from the messages that are waiting. */
      lmp_warn(NULL, "%s failed: %s", b->sweep ? "outbox sweep" : "tick", b->err);
      for (size_t i = 0; i < b->ndel; i++)
        remember_published(rt, b->del_ids[i]);
      batch_free(b);
      rt->cur = NULL;
      rt->state = RT_IDLE;
      if (rt->draining)
        finish_shutdown(rt);
      else
        consume_next(rt);
      return;
    }
    int ms = backoff_next(rt);
    lmp_warn(NULL, "batch of %zu rolled back (attempt %d): %s; retrying in %d ms", b->n,
             b->attempts, b->err, ms);
    rt->state = RT_WAITING;
    uv_timer_start(&rt->retry, retry_cb, (uint64_t)ms, 0);
    return;
  }
  atomic_store(&rt->m.db_up, 1);
  rt->backoff_ms = 0;
  atomic_store(&rt->m.outbox_backlog, (int64_t)b->nrows);
  publish_rows(rt);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  struct outrow *row = m->_private;
  struct rt *rt = row->rt;
  if (m->err) {
    row->state = -1;
    atomic_fetch_add(&rt->m.publish_failures, 1);
    lmp_warn(NULL, "delivery to %s failed: %s", row->topic, rd_kafka_err2str(m->err));
  } else {
    row->state = 1;
    atomic_fetch_add(&rt->m.produced, 1);
    atomic_fetch_sub(&rt->m.outbox_backlog, 1);
  }
  if (--rt->pending > 0)
    return;
  struct batch *b = rt->cur;
  for (size_t i = 0; i < b->nrows; i++)
    if (b->rows[i].state != 1) {
      int ms = backoff_next(rt);
      lmp_warn(NULL, "%zu events not acknowledged; retrying in %d ms", b->nrows, ms);
      rt->state = RT_WAITING;
      uv_timer_start(&rt->retry, retry_cb, (uint64_t)ms, 0);
      return;
    }
  batch_done(rt);
}

static void publish_rows(struct rt *rt) {
  struct batch *b = rt->cur;
  rt->state = RT_PUBLISHING;
  rt->pending = 0;
  for (size_t i = 0; i < b->nrows; i++) {
    struct outrow *row = &b->rows[i];
    if (row->state == 1)
      continue;
    row->state = 0;
    row->rt = rt;
    rd_kafka_headers_t *h = rd_kafka_headers_new(json_object_size(row->headers));
    const char *name;
    json_t *v;
    json_object_foreach(row->headers, name, v)
      rd_kafka_header_add(h, name, -1, json_string_value(v), (ssize_t)json_string_length(v));
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rt->producer, RD_KAFKA_V_TOPIC(row->topic),
        RD_KAFKA_V_KEY(row->key, row->key ? strlen(row->key) : 0),
        RD_KAFKA_V_VALUE(row->value, row->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(row), RD_KAFKA_V_END);
    if (err) {
      rd_kafka_headers_destroy(h); /* not owned by librdkafka on failure */
      row->state = -1;
      atomic_fetch_add(&rt->m.publish_failures, 1);
      lmp_warn(NULL, "cannot queue event for %s: %s", row->topic, rd_kafka_err2str(err));
      continue;
    }
    rt->pending++; /* h is owned by librdkafka now */
  }
  if (rt->pending == 0) {
    for (size_t i = 0; i < b->nrows; i++)
      if (b->rows[i].state != 1) {
        rt->state = RT_WAITING;
        uv_timer_start(&rt->retry, retry_cb, (uint64_t)backoff_next(rt), 0);
        return;
      }
    batch_done(rt);
  }
}

static void start_batch(struct rt *rt, rd_kafka_message_t **msgs, size_t n, int sweep, int age_ms,
                        int tick) {
  struct batch *b = calloc(1, sizeof(*b));
  if (b == NULL) {
    lmp_error(NULL, "out of memory for a batch");
    for (size_t i = 0; i < n; i++)
      rd_kafka_message_destroy(msgs[i]);
    free(msgs);
    return; /* offsets not committed: these messages come back after a restart */
  }
  b->msgs = msgs;
  b->n = n;
  b->sweep = sweep;
  b->sweep_age_ms = age_ms;
  b->tick = tick;
  b->started_ns = now_ns();
  rt->cur = b;
  start_work(rt);
}

/* Keeps a fetched message for the next batch; error events are logged and dropped. */
static void keep(struct rt *rt, rd_kafka_message_t *m, rd_kafka_message_t **msgs, size_t *n) {
  if (m->err) {
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      lmp_warn(NULL, "consumer: %s", rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
    return;
  }
  msgs[(*n)++] = m;
}

static void consume_next(struct rt *rt) {
  if (rt->state != RT_IDLE || rt->draining || rt->closing)
    return;
  size_t max = (size_t)rt->cfg.batch_max;
  if (max < rt->ncarry)
    max = rt->ncarry;
  rd_kafka_message_t **msgs = malloc(max * sizeof(*msgs));
  if (msgs == NULL)
    return;
  /* Messages fetched while the last batch ran come first: they are older. */
  size_t n = rt->ncarry;
  if (n)
    memcpy(msgs, rt->carry, n * sizeof(*msgs));
  rt->ncarry = 0;
  if (n < max) {
    size_t first = n;
    ssize_t got = rd_kafka_consume_batch_queue(rt->cq, 0, msgs + first, max - first);
    for (ssize_t i = 0; i < got; i++)
      keep(rt, msgs[first + (size_t)i], msgs, &n); /* n <= first + i: compacts in place */
  }
  if (n == 0) {
    free(msgs);
    return;
  }
  atomic_fetch_add(&rt->m.consumed, n);
  atomic_store(&rt->m.kafka_up, 1);
  start_batch(rt, msgs, n, 0, 0, 0);
}

static void drain_pipe(int fd) {
  char buf[256];
  while (read(fd, buf, sizeof(buf)) > 0)
    ;
}

static void consumer_readable(uv_poll_t *p, int status, int events) {
  struct rt *rt = p->data;
  drain_pipe(rt->cpipe[0]);
  consume_next(rt);
}

static void producer_readable(uv_poll_t *p, int status, int events) {
  struct rt *rt = p->data;
  drain_pipe(rt->ppipe[0]);
  rd_kafka_poll(rt->producer, 0); /* serves delivery reports: dr_cb */
}

static void sweep_cb(uv_timer_t *t) {
  struct rt *rt = t->data;
  if (rt->state != RT_IDLE || rt->draining || rt->closing)
    return;
  /* At start-up every row is a leftover; later, only rows older than a sweep period,
   * so rows another instance is publishing right now are left to it. */
  int age = rt->first_sweep_done ? rt->cfg.outbox_sweep_ms : 0;
  rt->first_sweep_done = 1;
  start_batch(rt, NULL, 0, 1, age, 0);
}

static void svc_tick_cb(uv_timer_t *t) {
  struct rt *rt = t->data;
  if (rt->state != RT_IDLE || rt->draining || rt->closing || !atomic_load(&rt->m.migrated))
    return;
  start_batch(rt, NULL, 0, 0, 0, 1);
}

/* Once a second: heartbeat, and keep the consumer inside max.poll.interval.ms while a
 * batch is stuck (database down): pause fetching and poll, so the group keeps us. */
static void tick_cb(uv_timer_t *t) {
  struct rt *rt = t->data;
  atomic_store(&rt->m.heartbeat_ms, mono_ms());
  if (rt->closing)
    return;
  /* Delivery reports arrive through the producer's pipe; serving the queue here as
   * well means a lost wake-up can only delay a report by a second, never stall. */
  rd_kafka_poll(rt->producer, 0);
  if (rt->state == RT_PUBLISHING && rt->cur && (now_ns() - rt->cur->started_ns) / 1000000 > 10000 &&
      (now_ns() - rt->cur->started_ns) / 1000000 % 10000 < 1000)
    lmp_warn(NULL, "%d events still wait for the broker's acknowledgement", rt->pending);
  if (rt->state == RT_IDLE) {
    consume_next(rt);
    return;
  }
  uint64_t age_ms = rt->cur ? (now_ns() - rt->cur->started_ns) / 1000000 : 0;
  if (rt->cur && age_ms > (uint64_t)rt->cfg.max_poll_interval_ms / 3) {
    if (!rt->paused) {
      rd_kafka_topic_partition_list_t *parts = NULL;
      if (rd_kafka_assignment(rt->consumer, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR && parts) {
        rd_kafka_pause_partitions(rt->consumer, parts);
        rd_kafka_topic_partition_list_destroy(parts);
      }
      rt->paused = 1;
      lmp_warn(NULL, "batch in progress for %llu ms: fetching paused", (unsigned long long)age_ms);
    }
    /* Polling keeps us in the group. A message fetched before the pause took effect
     * is kept for the next batch: the consumer's position has moved past it, so
     * dropping it would skip it for good. */
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rt->consumer, 0);
    if (m && m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        lmp_warn(NULL, "consumer: %s", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
    } else if (m) {
      if (rt->ncarry == rt->capcarry) {
        size_t cap = rt->capcarry ? rt->capcarry * 2 : 64;
        rd_kafka_message_t **p = realloc(rt->carry, cap * sizeof(*p));
        if (p == NULL) {
          lmp_error(NULL, "out of memory keeping a fetched message; exiting so it is redelivered");
          rd_kafka_message_destroy(m);
          rt->exit_code = 1;
          finish_shutdown(rt);
          return;
        }
        rt->carry = p;
        rt->capcarry = cap;
      }
      rt->carry[rt->ncarry++] = m;
    }
  }
}

/* ---- librdkafka callbacks (all served on the loop thread) --------------------------- */

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  struct rt *rt = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_fatal_error(rk, why, sizeof(why));
    lmp_error(NULL, "Kafka fatal error: %s; exiting (the outbox keeps unsent events)", why);
    rt->exit_code = 70;
    finish_shutdown(rt);
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT)
    atomic_store(&rt->m.kafka_up, 0);
  lmp_warn(NULL, "Kafka: %s", reason);
}

/* Broker reachability and consumer lag come from librdkafka's statistics. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
  struct rt *rt = opaque;
  json_t *j = json_loadb(json, len, 0, NULL);
  if (j == NULL)
    return 0;
  int up = 0;
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(j, "brokers"), k, v) {
    if (json_integer_value(json_object_get(v, "nodeid")) >= 0 &&
        strcmp(json_string_value(json_object_get(v, "state")) ?: "", "UP") == 0)
      up = 1;
  }
  atomic_store(&rt->m.kafka_up, up);
  if (rk == rt->consumer) {
    int64_t lag = 0;
    int known = 0;
    const char *tk, *pk;
    json_t *tv, *pv;
    json_object_foreach(json_object_get(j, "topics"), tk, tv) {
      json_object_foreach(json_object_get(tv, "partitions"), pk, pv) {
        json_int_t l = json_integer_value(json_object_get(pv, "consumer_lag"));
        if (strcmp(pk, "-1") != 0 && json_is_integer(json_object_get(pv, "consumer_lag")) && l >= 0) {
          lag += l;
          known = 1;
        }
      }
    }
    atomic_store(&rt->m.consumer_lag, known ? lag : -1);
  }
  json_decref(j);
  return 0;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  struct lmp_buf b = {0};
  for (int i = 0; i < parts->cnt; i++)
    lmp_buf_printf(&b, "%s%s[%d]", i ? " " : "", parts->elems[i].topic, parts->elems[i].partition);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    lmp_info(NULL, "assigned: %s", b.data ? b.data : "(none)");
    rd_kafka_assign(rk, parts);
  } else {
    lmp_info(NULL, "revoked: %s", b.data ? b.data : "(none)");
    rd_kafka_assign(rk, NULL);
  }
  lmp_buf_free(&b);
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque) {
  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
    lmp_warn(NULL, "offset commit failed: %s (events will be redelivered and deduplicated)",
             rd_kafka_err2str(err));
}

/* librdkafka's own log lines, as structured lines (called from its threads). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  enum lmp_log_level l = level <= 3 ? LMP_LOG_ERROR : level <= 5 ? LMP_LOG_WARN
                       : level == 6 ? LMP_LOG_INFO : LMP_LOG_DEBUG;
  lmp_log(l, NULL, "librdkafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static int kset(rd_kafka_conf_t *c, const char *k, const char *v, char *err, size_t errlen) {
  if (rd_kafka_conf_set(c, k, v, err, errlen) != RD_KAFKA_CONF_OK)
    return LMP_ECONFIG;
  return 0;
}

/* What the consumer and the producer share: brokers, name, statistics (broker
 * reachability and lag), reconnect pace, and the callbacks that log. */
static rd_kafka_conf_t *common_conf(struct rt *rt, const char *client, char *err, size_t errlen) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  if (kset(c, "bootstrap.servers", rt->cfg.kafka_brokers, err, errlen) < 0 ||
      kset(c, "client.id", client, err, errlen) < 0 ||
      kset(c, "statistics.interval.ms", "1000", err, errlen) < 0 ||
      kset(c, "reconnect.backoff.max.ms", "2000", err, errlen) < 0) {
    rd_kafka_conf_destroy(c);
    return NULL;
  }
  rd_kafka_conf_set_opaque(c, rt);
  rd_kafka_conf_set_error_cb(c, error_cb);
  rd_kafka_conf_set_log_cb(c, log_cb);
  rd_kafka_conf_set_stats_cb(c, stats_cb);
  return c;
}

static int fd_pipe(int fds[2]) {
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
    return LMP_EIO;
  return 0;
}

static int kafka_start(struct rt *rt, char *err, size_t errlen) {
  char num[32], client[128];
  snprintf(client, sizeof(client), "lmp-%s", rt->svc->name);
  rd_kafka_conf_t *c = common_conf(rt, client, err, errlen);
  snprintf(num, sizeof(num), "%d", rt->cfg.max_poll_interval_ms);
  int r = c ? kset(c, "group.id", rt->group, err, errlen) : LMP_ECONFIG;
  if (r == 0) r = kset(c, "enable.auto.commit", "false", err, errlen);
  if (r == 0) r = kset(c, "enable.auto.offset.store", "false", err, errlen);
  if (r == 0) r = kset(c, "auto.offset.reset", "earliest", err, errlen);
  if (r == 0) r = kset(c, "max.poll.interval.ms", num, err, errlen);
  if (r == 0) r = kset(c, "session.timeout.ms", "10000", err, errlen);
  if (r == 0) r = kset(c, "heartbeat.interval.ms", "1000", err, errlen);
  if (r < 0) {
    if (c)
      rd_kafka_conf_destroy(c);
    return r;
  }
  rd_kafka_conf_set_rebalance_cb(c, rebalance_cb);
  rd_kafka_conf_set_offset_commit_cb(c, commit_cb);
  rt->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, errlen);
  if (rt->consumer == NULL) {
    rd_kafka_conf_destroy(c);
    return LMP_EKAFKA;
  }
  c = NULL; /* owned by rt->consumer now */
  rd_kafka_poll_set_consumer(rt->consumer);

  c = common_conf(rt, client, err, errlen);
  r = c ? kset(c, "enable.idempotence", "true", err, errlen) : LMP_ECONFIG;
  if (r == 0) r = kset(c, "acks", "all", err, errlen);
  if (r == 0) r = kset(c, "linger.ms", "2", err, errlen);
  if (r == 0) r = kset(c, "message.timeout.ms", "60000", err, errlen);
  if (r < 0) {
    if (c)
      rd_kafka_conf_destroy(c);
    return r;
  }
  rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
  rt->producer = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, errlen);
  if (rt->producer == NULL) {
    rd_kafka_conf_destroy(c);
    return LMP_EKAFKA;
  }
  c = NULL; /* owned by rt->producer now */

  size_t ntopics = 0;
  while (rt->svc->consumes[ntopics])
    ntopics++;
  rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new((int)ntopics);
  for (size_t i = 0; i < ntopics; i++) {
    char topic[300];
    lmp_topic_name(&rt->cfg, rt->svc->consumes[i], topic, sizeof(topic));
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
  }
  rd_kafka_resp_err_t kerr = rd_kafka_subscribe(rt->consumer, subs);
  rd_kafka_topic_partition_list_destroy(subs);
  if (kerr) {
    snprintf(err, errlen, "subscribe: %s", rd_kafka_err2str(kerr));
    return LMP_EKAFKA;
  }

  /* librdkafka writes a byte to the pipe when a queue becomes non-empty: the loop
   * sleeps in epoll until there is work, no polling. */
  rt->cq = rd_kafka_queue_get_consumer(rt->consumer);
  rt->pq = rd_kafka_queue_get_main(rt->producer);
  if (fd_pipe(rt->cpipe) < 0 || fd_pipe(rt->ppipe) < 0) {
    snprintf(err, errlen, "pipe: %s", strerror(errno));
    return LMP_EIO;
  }
  rd_kafka_queue_io_event_enable(rt->cq, rt->cpipe[1], "1", 1);
  rd_kafka_queue_io_event_enable(rt->pq, rt->ppipe[1], "1", 1);
  uv_poll_init(rt->loop, &rt->cpoll, rt->cpipe[0]);
  uv_poll_init(rt->loop, &rt->ppoll, rt->ppipe[0]);
  rt->cpoll.data = rt->ppoll.data = rt;
  uv_poll_start(&rt->cpoll, UV_READABLE, consumer_readable);
  uv_poll_start(&rt->ppoll, UV_READABLE, producer_readable);
  return 0;
}

/* ---- Start and drain ------------------------------------------------------------- */

static void close_handle(uv_handle_t *h) {
  if (h->loop && !uv_is_closing(h))
    uv_close(h, NULL);
}

/* Stop fetching, let the batch in flight commit and publish, flush, leave the group. */
static void finish_shutdown(struct rt *rt) {
  if (rt->closing)
    return;
  rt->closing = 1;
  atomic_store(&rt->m.draining, 1);
  lmp_info(NULL, "stopping: leaving the consumer group, flushing the producer");
  if (rt->consumer)
    rd_kafka_consumer_close(rt->consumer);
  if (rt->producer) {
    rd_kafka_resp_err_t e = rd_kafka_flush(rt->producer, rt->cfg.shutdown_timeout_ms);
    if (e)
      lmp_warn(NULL, "flush: %s (unacknowledged events stay in the outbox)", rd_kafka_err2str(e));
  }
  uv_poll_stop(&rt->cpoll);
  uv_poll_stop(&rt->ppoll);
  close_handle((uv_handle_t *)&rt->cpoll);
  close_handle((uv_handle_t *)&rt->ppoll);
  close_handle((uv_handle_t *)&rt->tick);
  close_handle((uv_handle_t *)&rt->retry);
  close_handle((uv_handle_t *)&rt->sweep);
  close_handle((uv_handle_t *)&rt->svc_tick);
  close_handle((uv_handle_t *)&rt->deadline);
  close_handle((uv_handle_t *)&rt->sigterm);
  close_handle((uv_handle_t *)&rt->sigint);
}

static void deadline_cb(uv_timer_t *t) {
  struct rt *rt = t->data;
  lmp_warn(NULL, "drain took longer than %d ms; exiting with the batch uncommitted "
           "(it will be redelivered)", rt->cfg.shutdown_timeout_ms);
  if (rt->state == RT_WORKING)
    return; /* a worker owns the batch; let it finish, the loop exits after */
  finish_shutdown(rt);
}

static void signal_cb(uv_signal_t *s, int signum) {
  struct rt *rt = s->data;
  if (rt->draining) {
    lmp_warn(NULL, "second signal: exiting now");
    finish_shutdown(rt);
    return;
  }
  rt->draining = 1;
  atomic_store(&rt->m.draining, 1);
  lmp_info(NULL, "%s: draining", strsignal(signum));
  uv_timer_stop(&rt->sweep);
  uv_timer_stop(&rt->svc_tick);
  if (rt->state == RT_IDLE) {
    finish_shutdown(rt);
    return;
  }
  uv_timer_start(&rt->deadline, deadline_cb, (uint64_t)rt->cfg.shutdown_timeout_ms, 0);
}

/* Tells whoever started the daemon which port it took (http.port 0 lets the system
 * choose, so parallel tests never race for a port they picked and released). The file
 * appears whole or not at all: written beside, then renamed. */
static int write_port_file(struct rt *rt, char *err, size_t errlen) {
  const char *path = rt->cfg.http_port_file;
  if (*path == '\0')
    return 0;
  char tmp[1100];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  int ok = f && fprintf(f, "{\"http\":%d}\n", lmp_http_port(rt->http)) > 0;
  if (f && fclose(f) != 0)
    ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return LMP_EIO;
  }
  return 0;
}

static void usage(const char *prog, const struct lmp_service *svc) {
  fprintf(stderr,
          "usage: %s [-c FILE] [--print-config] [--check-config]\n"
          "  The %s daemon of the LMP onboarding backend.\n"
          "  -c, --config FILE   settings file (default: $LMP_CONFIG, else built-in defaults)\n"
          "  --print-config      print every setting with its default and exit\n"
          "  --check-config      validate the settings and exit (0 when valid)\n"
          "  Each setting may also be given as an environment variable LMP_<NAME>.\n",
          prog, svc->name);
}

int lmp_service_main(const struct lmp_service *svc, int argc, char **argv) {
  static struct rt rt0; /* one runtime per process */
  struct rt *rt = &rt0;
  memset(rt, 0, sizeof(*rt));
  rt->svc = svc;
  const char *path = getenv("LMP_CONFIG");
  int print = 0, check_only = 0;
  static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                       {"print-config", no_argument, NULL, 'p'},
                                       {"check-config", no_argument, NULL, 'k'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int o;
  while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
    switch (o) {
    case 'c': path = optarg; break;
    case 'p': print = 1; break;
    case 'k': check_only = 1; break;
    case 'h': usage(argv[0], svc); return 0;
    default: usage(argv[0], svc); return 2;
    }
  }
  if (path && *path == '\0')
    path = NULL;
  struct lmp_conf_table tables[3] = {{lmp_config_entries, lmp_config_entries_n, &rt->cfg},
                                     {svc->conf, svc->conf_n, svc->conf_base},
                                     {NULL, 0, NULL}};
  if (svc->conf == NULL)
    tables[1] = tables[2];
  if (print) {
    printf("# Settings of lmp-%s. Each may also be set as an environment variable.\n\n", svc->name);
    lmp_config_write_example(tables, stdout);
    return 0;
  }
  char err[600];
  int r = lmp_config_load(tables, path, environ, err, sizeof(err));
  if (r == 0 && svc->configured)
    r = svc->configured(svc->ctx, err, sizeof(err));
  if (r == 0 && lmp_log_init(svc->name, rt->cfg.log_level) < 0) {
    snprintf(err, sizeof(err), "log.level: '%s' is not debug, info, warn or error", rt->cfg.log_level);
    r = LMP_ECONFIG;
  }
  if (r < 0) {
    fprintf(stderr, "lmp-%s: configuration: %s\n", svc->name, err);
    lmp_config_free(tables);
    return 2;
  }
  if (check_only) {
    printf("lmp-%s: configuration is valid\n", svc->name);
    lmp_config_free(tables);
    return 0;
  }
  snprintf(rt->group, sizeof(rt->group), "%s", *rt->cfg.group_id ? rt->cfg.group_id : "");
  if (!*rt->group)
    snprintf(rt->group, sizeof(rt->group), "lmp-%s", svc->name);
  snprintf(rt->dbname, sizeof(rt->dbname), "%s", *rt->cfg.pg_database ? rt->cfg.pg_database : "");
  if (!*rt->dbname)
    snprintf(rt->dbname, sizeof(rt->dbname), "lmp_%s", svc->name);
  atomic_store(&rt->m.consumer_lag, -1);
  atomic_store(&rt->m.heartbeat_ms, mono_ms());

  if ((r = lmp_schemas_new(&rt->schemas, err, sizeof(err))) < 0 ||
      (*rt->cfg.schemas_extra_dir &&
       (r = lmp_schemas_add_writer_dir(rt->schemas, rt->cfg.schemas_extra_dir, err, sizeof(err))) < 0)) {
    fprintf(stderr, "lmp-%s: schemas: %s\n", svc->name, err);
    lmp_schemas_free(rt->schemas);
    lmp_config_free(tables);
    return 2;
  }
  char app[80];
  snprintf(app, sizeof(app), "lmp-%s", svc->name);
  lmp_db_init(&rt->db, rt->cfg.pg_host, rt->cfg.pg_port, rt->cfg.pg_user, rt->cfg.pg_password,
              rt->dbname, rt->cfg.pg_connect_timeout_s, app);

  rt->loop = uv_default_loop();
  uv_timer_init(rt->loop, &rt->tick);
  uv_timer_init(rt->loop, &rt->retry);
  uv_timer_init(rt->loop, &rt->sweep);
  uv_timer_init(rt->loop, &rt->deadline);
  uv_timer_init(rt->loop, &rt->svc_tick);
  uv_signal_init(rt->loop, &rt->sigterm);
  uv_signal_init(rt->loop, &rt->sigint);
  rt->tick.data = rt->retry.data = rt->sweep.data = rt->deadline.data = rt->svc_tick.data = rt;
  rt->sigterm.data = rt->sigint.data = rt;
  uv_signal_start(&rt->sigterm, signal_cb, SIGTERM);
  uv_signal_start(&rt->sigint, signal_cb, SIGINT);

  if ((r = kafka_start(rt, err, sizeof(err))) < 0) {
    lmp_error(NULL, "kafka: %s", err);
    rt->exit_code = 1;
    finish_shutdown(rt);
  } else {
    if (lmp_http_start(&rt->http, rt->cfg.http_bind, rt->cfg.http_port, svc->name, &rt->m,
                       rt->db.conninfo, svc->http, svc->ctx, err, sizeof(err)) < 0) {
      lmp_error(NULL, "http: %s", err);
      rt->exit_code = 1;
      finish_shutdown(rt);
    } else if (write_port_file(rt, err, sizeof(err)) < 0) {
      lmp_error(NULL, "http.port_file: %s", err);
      rt->exit_code = 1;
      finish_shutdown(rt);
    } else {
      lmp_info(NULL, "started: group %s, database %s on %s:%d, brokers %s, http %s:%d", rt->group,
               rt->dbname, rt->cfg.pg_host, rt->cfg.pg_port, rt->cfg.kafka_brokers,
               rt->cfg.http_bind, lmp_http_port(rt->http));
      uv_timer_start(&rt->tick, tick_cb, 1000, 1000);
      /* The first sweep migrates the database and republishes what a crash left. */
      uv_timer_start(&rt->sweep, sweep_cb, 0, (uint64_t)rt->cfg.outbox_sweep_ms);
      if (svc->tick)
        uv_timer_start(&rt->svc_tick, svc_tick_cb, (uint64_t)svc->tick_ms, (uint64_t)svc->tick_ms);
    }
  }
  uv_run(rt->loop, UV_RUN_DEFAULT);

  lmp_http_stop(rt->http);
  if (rt->cq)
    rd_kafka_queue_destroy(rt->cq);
  if (rt->pq)
    rd_kafka_queue_destroy(rt->pq);
  if (rt->consumer)
    rd_kafka_destroy(rt->consumer);
  if (rt->producer)
    rd_kafka_destroy(rt->producer);
  for (int i = 0; i < 2; i++) {
    if (rt->cpipe[i] > 0)
      close(rt->cpipe[i]);
    if (rt->ppipe[i] > 0)
      close(rt->ppipe[i]);
  }
  batch_free(rt->cur);
  for (size_t i = 0; i < rt->ncarry; i++)
    rd_kafka_message_destroy(rt->carry[i]);
  free(rt->carry);
  free(rt->published);
  lmp_db_close(&rt->db);
  lmp_schemas_free(rt->schemas);
  uv_loop_close(rt->loop);
  lmp_info(NULL, "stopped");
  lmp_config_free(tables);
  return rt->exit_code;
}
