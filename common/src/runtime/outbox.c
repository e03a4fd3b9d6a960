/* Outbox rows on the worker thread: emitted events, dead-letter copies, the outbox
 * table's inserts, deletes, parking and sweeps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"
#include "lmp/runtime/events.h"
#include "runtime/rt.h"

/* Rows per INSERT: 6 parameters each, well under the protocol's 65,535. */
#define FLUSH_ROWS 1000

static void new_uuid(char out[37]) {
  uuid_t u;
  uuid_generate(u);
  uuid_unparse_lower(u, out);
}

static void row_clear(struct outrow *r) {
  free(r->event_id);
  free(r->topic);
  free(r->key);
  free(r->value);
  for (size_t i = 0; i < r->nhdrs; i++) {
    free(r->hdrs[i].name);
    free(r->hdrs[i].value);
  }
  free(r->hdrs);
  memset(r, 0, sizeof(*r));
}

struct outrow *lmp__row_add(struct batch *b) {
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
  r->b = b;
  return r;
}

void lmp__rows_truncate(struct batch *b, size_t n) {
  while (b->nrows > n)
    row_clear(&b->rows[--b->nrows]);
  if (b->flushed > n)
    b->flushed = n;
}

int lmp__row_header(struct outrow *r, const char *name, const void *value, size_t len) {
  struct lmp_hdr *h = realloc(r->hdrs, (r->nhdrs + 1) * sizeof(*h));
  if (h == NULL)
    return LMP_ENOMEM;
  r->hdrs = h;
  h = &r->hdrs[r->nhdrs];
  h->name = strdup(name);
  h->value = malloc(len ? len : 1);
  h->len = len;
  if (h->name == NULL || h->value == NULL) {
    free(h->name);
    free(h->value);
    return LMP_ENOMEM;
  }
  if (len)
    memcpy(h->value, value, len);
  r->nhdrs++;
  return 0;
}

static int row_text_header(struct outrow *r, const char *name, const char *value) {
  return lmp__row_header(r, name, value, strlen(value));
}

static unsigned char *dup_bytes(const void *p, size_t n) {
  unsigned char *d = malloc(n ? n : 1);
  if (d && n)
    memcpy(d, p, n);
  return d;
}

int lmp__frame_event(const struct rt *rt, const struct lmp_schema *s, avro_value_t *value, struct lmp_buf *out) {
  if (rt->registry == NULL)
    return lmp_avro_encode(s, value, out);
  for (size_t i = 0; rt->svc->emits && rt->svc->emits[i]; i++)
    if (strcmp(rt->svc->emits[i], s->name) == 0)
      return lmp_avro_encode_id(rt->emit_ids[i], value, out);
  return LMP_EINVAL; /* not declared: refused before this */
}

const char *lmp__content_type(const struct rt *rt) {
  return rt->registry ? "application/vnd.apache.avro+registry" : "application/vnd.apache.avro+single-object";
}

int lmp__row_emit(struct lmp_tx *tx, const char *event_type, const char *key, avro_value_t *value) {
  struct rt *rt = tx->rt;
  const struct lmp_schema *s = lmp_schemas_get(rt->schemas, event_type);
  if (s == NULL)
    return LMP_ESCHEMA;
  int declared = rt->svc->emits == NULL;
  for (const char *const *e = rt->svc->emits; e && *e && !declared; e++)
    declared = strcmp(*e, event_type) == 0;
  if (!declared) {
    /* A daemon writes only the topics it declares: its ACLs are made from them. */
    snprintf(tx->why, sizeof(tx->why), "%s does not declare that it emits %s", rt->svc->name, event_type);
    return LMP_EINVAL;
  }
  struct lmp_buf enc = {0};
  int r = lmp__frame_event(rt, s, value, &enc);
  if (r == 0 && enc.len > LMP_MAX_EVENT_BYTES) {
    snprintf(tx->why, sizeof(tx->why), "%s of %zu bytes is over the %d bytes an event may have",
             event_type, enc.len, LMP_MAX_EVENT_BYTES);
    r = LMP_ETOOBIG;
  }
  if (r < 0) {
    lmp_buf_free(&enc);
    return r;
  }
  struct outrow *row = lmp__row_add(tx->b);
  if (row == NULL) {
    lmp_buf_free(&enc);
    return LMP_ENOMEM;
  }
  char id[37], topic[300], span[64];
  new_uuid(id);
  lmp_emit_topic(&rt->cfg, event_type, rt->svc->name, topic, sizeof(topic));
  /* Each emitted event is a span of its own under the span that caused it. */
  lmp_traceparent(tx->traceparent, span);
  row->len = enc.len;
  row->value = (unsigned char *)lmp_buf_steal(&enc);
  row->event_id = strdup(id);
  row->topic = strdup(topic);
  row->keylen = key ? strlen(key) : 0;
  row->key = key ? dup_bytes(key, row->keylen) : NULL;
  const char *corr = *tx->correlation ? tx->correlation : (key ? key : "");
  r = (row->value && row->event_id && row->topic && (key == NULL || row->key)) ? 0 : LMP_ENOMEM;
  if (r == 0) r = row_text_header(row, "event_id", id);
  if (r == 0) r = row_text_header(row, "event_type", event_type);
  if (r == 0) r = row_text_header(row, "correlation_id", corr);
  if (r == 0) r = row_text_header(row, "traceparent", span);
  if (r == 0) r = row_text_header(row, "content_type", lmp__content_type(rt));
  if (r == 0 && lmp_trace_enabled()) { /* its publish span: under the handling's, from now */
    snprintf(row->parent, sizeof(row->parent), "%s", tx->traceparent);
    row->emitted_ns = lmp_span_now();
  }
  if (r < 0)
    lmp__rows_truncate(tx->b, tx->b->nrows - 1);
  return r;
}

/* What a dead letter copies: a consumed message, or an outbox row the broker refused. */
struct dl_source {
  const char *topic;
  int32_t partition;
  int64_t offset;
  const void *value, *key;  /* key NULL: none */
  size_t len, keylen;
  const struct lmp_raw *raw;   /* headers from the message, or */
  const struct outrow *row;    /* from the row */
};

/* One original header, if it can be copied safely: a name that is short UTF-8 text
 * (and not one of the copy's own), a value cut at LMP_DLQ_HEADER_VALUE_MAX bytes. */
static int copy_header(struct outrow *row, const char *name, const void *v, size_t n, size_t *dropped,
                       size_t *cut) {
  size_t nlen = strlen(name);
  if (row->nhdrs >= LMP_DLQ_HEADERS_MAX || nlen == 0 || nlen > 128 ||
      lmp_text_check(name, nlen, 0, NULL) != LMP_TEXT_OK || strncmp(name, "dlq_", 4) == 0) {
    (*dropped)++;
    return 0;
  }
  if (n > LMP_DLQ_HEADER_VALUE_MAX) {
    n = LMP_DLQ_HEADER_VALUE_MAX;
    (*cut)++;
  }
  return lmp__row_header(row, name, v ? v : "", v ? n : 0);
}

static int copy_headers(struct outrow *row, const struct dl_source *src, size_t *dropped, size_t *cut) {
  int r = 0;
  if (src->row) {
    for (size_t i = 0; r == 0 && i < src->row->nhdrs; i++)
      r = copy_header(row, src->row->hdrs[i].name, src->row->hdrs[i].value, src->row->hdrs[i].len, dropped, cut);
    return r;
  }
  const char *name;
  const void *v;
  size_t n;
  for (size_t i = 0; r == 0 && src->raw->header_at && src->raw->header_at(src->raw->hctx, i, &name, &v, &n) == 0; i++)
    r = copy_header(row, name, v, n, dropped, cut);
  return r;
}

/* A dead letter keeps the original bytes, what headers it safely can, and the reason;
 * an oversized original is cut and says so. Nothing here can make the copy fail to
 * be stored or published. */
static int dead_letter(struct rt *rt, struct batch *b, const struct dl_source *src, const char *code,
                       const char *why, const char *corr) {
  struct outrow *row = lmp__row_add(b);
  if (row == NULL)
    return LMP_ENOMEM;
  char id[37], part[16], off[24], size[24], msg[1024];
  new_uuid(id);
  row->event_id = strdup(id);
  row->topic = strdup(rt->cfg.dead_letter_topic);
  row->len = src->len > LMP_DLQ_VALUE_MAX ? LMP_DLQ_VALUE_MAX : src->len;
  row->value = dup_bytes(src->value, row->len);
  if (src->key) {
    row->keylen = src->keylen > LMP_DLQ_KEY_MAX ? LMP_DLQ_KEY_MAX : src->keylen;
    row->key = dup_bytes(src->key, row->keylen);
  }
  size_t dropped = 0, cut = 0;
  int r = (row->event_id && row->topic && row->value && (src->key == NULL || row->key)) ? 0 : LMP_ENOMEM;
  if (r == 0)
    r = copy_headers(row, src, &dropped, &cut);
  /* The error text comes from decoders, handlers and the database: kept valid and short. */
  size_t wl = lmp_utf8_cut(why, strlen(why), sizeof(msg) - 1);
  memcpy(msg, why, wl);
  msg[wl] = '\0';
  snprintf(part, sizeof(part), "%d", (int)src->partition);
  snprintf(off, sizeof(off), "%lld", (long long)src->offset);
  if (r == 0) r = row_text_header(row, "dlq_event_id", id);
  if (r == 0) r = row_text_header(row, "error_code", code);
  if (r == 0) r = row_text_header(row, "error_message", wl || !*why ? msg : "(not UTF-8)");
  if (r == 0) r = row_text_header(row, "source_topic", src->topic);
  if (r == 0) r = row_text_header(row, "source_partition", part);
  if (r == 0) r = row_text_header(row, "source_offset", off);
  if (r == 0) r = row_text_header(row, "source_service", rt->svc->name);
  if (r == 0 && row->len < src->len) {
    snprintf(size, sizeof(size), "%zu", src->len);
    r = row_text_header(row, "dlq_truncated_from", size);
  }
  if (r == 0 && src->key && row->keylen < src->keylen) {
    snprintf(size, sizeof(size), "%zu", src->keylen);
    r = row_text_header(row, "dlq_key_truncated_from", size);
  }
  if (r == 0 && dropped) {
    snprintf(size, sizeof(size), "%zu", dropped);
    r = row_text_header(row, "dlq_headers_dropped", size);
  }
  if (r == 0 && cut) {
    snprintf(size, sizeof(size), "%zu", cut);
    r = row_text_header(row, "dlq_headers_cut", size);
  }
  if (r < 0) {
    lmp__rows_truncate(b, b->nrows - 1);
    return r;
  }
  b->dead++;
  lmp_warn(corr, "dead-letter %s[%d]@%lld: %s: %s", src->topic, (int)src->partition, (long long)src->offset,
           code, msg);
  return 0;
}

/* A replay that fails again names its letter's source topic, as the first letter did,
 * so that it can be replayed again; its position is the one on the replay topic. */
int lmp__row_dead_letter(struct rt *rt, struct batch *b, const struct lmp_msg *x, const char *code,
                         const char *why, const char *corr) {
  const struct lmp_raw *m = x->raw;
  struct dl_source src = {*x->source ? x->source : m->topic, m->partition, m->offset, m->payload, m->key, m->len,
                          m->keylen, m, NULL};
  return dead_letter(rt, b, &src, code, why, corr);
}

/* ---- Array literals for the outbox's statements ----------------------------------- */

static int put_quoted(struct lmp_buf *b, const char *s, size_t n) {
  int r = lmp_buf_puts(b, "\"");
  for (size_t i = 0; r == 0 && i < n; i++)
    r = (s[i] == '"' || s[i] == '\\') ? lmp_buf_printf(b, "\\%c", s[i]) : lmp_buf_append(b, s + i, 1);
  return r ? r : lmp_buf_puts(b, "\"");
}

static int put_hex(struct lmp_buf *b, const unsigned char *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  int r = lmp_buf_reserve(b, 2 * n);
  for (size_t i = 0; r == 0 && i < n; i++) {
    char two[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
    r = lmp_buf_append(b, two, 2);
  }
  return r;
}

/* {"name",...} and {"\\x6869",...}: the headers as text[] and bytea[]. */
static int header_arrays(const struct outrow *row, struct lmp_buf *names, struct lmp_buf *values) {
  int r = lmp_buf_puts(names, "{");
  if (r == 0) r = lmp_buf_puts(values, "{");
  for (size_t i = 0; r == 0 && i < row->nhdrs; i++) {
    if (i && (r = lmp_buf_puts(names, ",")) == 0)
      r = lmp_buf_puts(values, ",");
    if (r == 0) r = put_quoted(names, row->hdrs[i].name, strlen(row->hdrs[i].name));
    if (r == 0) r = lmp_buf_puts(values, "\"\\\\x");
    if (r == 0) r = put_hex(values, row->hdrs[i].value, row->hdrs[i].len);
    if (r == 0) r = lmp_buf_puts(values, "\"");
  }
  if (r == 0) r = lmp_buf_puts(names, "}");
  if (r == 0) r = lmp_buf_puts(values, "}");
  return r;
}

/* Inserts the rows not yet in lmp_outbox, many per statement; sent ahead of their
 * answer (lmp__db_send) when ahead, as before a COMMIT. */
int lmp__outbox_flush(struct rt *rt, struct batch *b, int ahead) {
  while (b->flushed < b->nrows) {
    size_t n = b->nrows - b->flushed;
    if (n > FLUSH_ROWS)
      n = FLUSH_ROWS;
    struct lmp_buf sql = {0}, *arrays = calloc(2 * n, sizeof(*arrays));
    const char **params = calloc(6 * n, sizeof(*params));
    int *lengths = calloc(6 * n, sizeof(*lengths)), *formats = calloc(6 * n, sizeof(*formats));
    int r = (arrays && params && lengths && formats) ? 0 : LMP_ENOMEM;
    if (r == 0)
      r = lmp_buf_puts(&sql, "INSERT INTO lmp_outbox(event_id, topic, key, value, header_names, header_values) VALUES ");
    for (size_t i = 0; r == 0 && i < n; i++) {
      const struct outrow *row = &b->rows[b->flushed + i];
      size_t p = 6 * i;
      r = lmp_buf_printf(&sql, "%s($%zu, $%zu, $%zu, $%zu, $%zu::text[], $%zu::bytea[])", i ? ", " : "",
                         p + 1, p + 2, p + 3, p + 4, p + 5, p + 6);
      if (r == 0)
        r = header_arrays(row, &arrays[2 * i], &arrays[2 * i + 1]);
      params[p] = row->event_id;
      params[p + 1] = row->topic;
      params[p + 2] = (const char *)row->key; /* NULL: SQL null */
      lengths[p + 2] = (int)row->keylen;
      formats[p + 2] = 1;
      params[p + 3] = (const char *)row->value;
      lengths[p + 3] = (int)row->len;
      formats[p + 3] = 1;
      params[p + 4] = arrays[2 * i].data;
      params[p + 5] = arrays[2 * i + 1].data;
    }
    if (r == 0)
      r = ahead ? lmp__db_send(&rt->db, sql.data, (int)(6 * n), params, lengths, formats, 0)
                : lmp__db_query(&rt->db, sql.data, (int)(6 * n), params, lengths, formats, 0, NULL);
    for (size_t i = 0; arrays && i < 2 * n; i++)
      lmp_buf_free(&arrays[i]);
    free(arrays);
    free(params);
    free(lengths);
    free(formats);
    lmp_buf_free(&sql);
    if (r < 0)
      return r;
    b->flushed += n;
  }
  return 0;
}

int lmp__outbox_delete(struct rt *rt, char **ids, size_t n) {
  struct lmp_buf arr = {0};
  int r = lmp_buf_puts(&arr, "{");
  for (size_t i = 0; r == 0 && i < n; i++) {
    if (i)
      r = lmp_buf_puts(&arr, ",");
    if (r == 0)
      r = put_quoted(&arr, ids[i], strlen(ids[i]));
  }
  if (r == 0)
    r = lmp_buf_puts(&arr, "}");
  const char *params[] = {arr.data};
  if (r == 0)
    r = lmp__db_send(&rt->db, "DELETE FROM lmp_outbox WHERE event_id = ANY($1::text[])", 1, params, NULL, NULL,
                     1);
  lmp_buf_free(&arr);
  return r;
}

static int hex_value(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A row as the outbox holds it, read back: the headers come as a JSON array of
 * [name, hex value] pairs, the rest in libpq's text form. */
static int row_from_result(struct outrow *row, PGresult *res, int i) {
  size_t n = 0;
  unsigned char *v = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 3), &n);
  row->event_id = strdup(PQgetvalue(res, i, 0));
  row->topic = strdup(PQgetvalue(res, i, 1));
  row->value = v ? dup_bytes(v, n) : NULL;
  row->len = n;
  PQfreemem(v);
  if (!PQgetisnull(res, i, 2)) {
    v = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &n);
    row->key = v ? dup_bytes(v, n) : NULL;
    row->keylen = n;
    PQfreemem(v);
    if (row->key == NULL)
      return LMP_ENOMEM;
  }
  if (row->event_id == NULL || row->topic == NULL || row->value == NULL)
    return LMP_ENOMEM;
  json_t *hs = json_loads(PQgetvalue(res, i, 4), 0, NULL);
  size_t k;
  json_t *pair;
  int r = hs ? 0 : LMP_ENOMEM;
  json_array_foreach(hs, k, pair) {
    const char *name = json_string_value(json_array_get(pair, 0));
    const char *hex = json_string_value(json_array_get(pair, 1));
    size_t hl = hex ? strlen(hex) : 0;
    unsigned char *val = malloc(hl / 2 + 1);
    if (name == NULL || val == NULL) {
      free(val);
      r = LMP_ENOMEM;
      break;
    }
    for (size_t j = 0; j + 1 < hl; j += 2)
      val[j / 2] = (unsigned char)(hex_value(hex[j]) << 4 | hex_value(hex[j + 1]));
    r = lmp__row_header(row, name, val, hl / 2);
    free(val);
    if (r < 0)
      break;
  }
  json_decref(hs);
  return r;
}

#define ROW_COLUMNS "event_id, topic, key, value, COALESCE((SELECT json_agg(json_build_array(n, " \
                    "encode(v, 'hex'))) FROM unnest(header_names, header_values) AS h(n, v)), '[]')::text"

/* Rows the broker refused for good leave the outbox for lmp_outbox_parked, with the
 * reason; each gets a copy, cut to size, on the dead-letter topic (a refused dead
 * letter is only parked: no copy of a copy). */
int lmp__outbox_park(struct rt *rt, struct batch *b) {
  for (size_t i = 0; i < b->npark; i++) {
    const char *p[] = {b->park[i].event_id, b->park[i].reason};
    PGresult *res;
    int r = lmp__db_query(&rt->db,
                          "WITH moved AS (DELETE FROM lmp_outbox WHERE event_id = $1 RETURNING *), "
                          "parked AS (INSERT INTO lmp_outbox_parked(event_id, topic, key, value, header_names, "
                          "header_values, reason) SELECT event_id, topic, key, value, header_names, header_values, $2 "
                          "FROM moved RETURNING *) SELECT " ROW_COLUMNS " FROM parked",
                          2, p, NULL, NULL, 1, &res);
    if (r < 0)
      return r;
    for (int k = 0; r == 0 && k < PQntuples(res); k++) {
      struct batch tmp = {0};
      struct outrow *orig = lmp__row_add(&tmp);
      if (orig == NULL || (r = row_from_result(orig, res, k)) < 0) {
        r = r ? r : LMP_ENOMEM;
      } else if (strcmp(orig->topic, rt->cfg.dead_letter_topic) != 0) {
        struct dl_source src = {orig->topic, -1, -1, orig->value, orig->key, orig->len, orig->keylen, NULL, orig};
        r = dead_letter(rt, b, &src, "PUBLISH_REFUSED", b->park[i].reason, NULL);
      }
      lmp__rows_truncate(&tmp, 0);
      free(tmp.rows);
    }
    PQclear(res);
    if (r < 0)
      return r;
    b->parked++;
    lmp_error(NULL, "event %s parked: the broker refuses it for good: %s", b->park[i].event_id,
              b->park[i].reason);
  }
  return 0;
}

/* What a crash left: rows older than age_ms, republished by this batch; not those
 * this daemon is publishing right now (their acknowledgement is only late). */
int lmp__outbox_sweep(struct rt *rt, struct batch *b, int age_ms) {
  char age[24];
  snprintf(age, sizeof(age), "%d", age_ms);
  const char *params[] = {age, b->in_flight ? b->in_flight : "{}"};
  PGresult *res;
  int r = lmp__db_query(&rt->db, "SELECT " ROW_COLUMNS " FROM lmp_outbox "
                                 "WHERE created_at <= now() - $1 * interval '1 ms' "
                                 "AND NOT event_id = ANY($2::text[]) ORDER BY id LIMIT 2000",
                        2, params, NULL, NULL, 1, &res);
  if (r < 0)
    return r;
  for (int i = 0; r == 0 && i < PQntuples(res); i++) {
    struct outrow *row = lmp__row_add(b);
    r = row ? row_from_result(row, res, i) : LMP_ENOMEM;
  }
  PQclear(res);
  b->flushed = b->nrows; /* they are in the table already */
  /* How many events wait in lmp_outbox_parked for an operator (a gauge). */
  if (r == 0 && (r = lmp__db_query(&rt->db, "SELECT count(*) FROM lmp_outbox_parked", 0, NULL, NULL, NULL, 1,
                                   &res)) == 0) {
    b->parked_waiting = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
  }
  return r;
}
