/* What a consumed message's bytes alone decide, before the database sees it: its key,
 * its headers, its framing and schema, whether it is the topic's event type, whether
 * its text is text. Pure: no I/O, so the fuzzer drives it with any bytes. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lmp/base/error.h"
#include "lmp/base/text.h"
#include "lmp/runtime/events.h"
#include "runtime/rt.h"

/* Copies a header that must be short text; 0 when absent or good, -1 when bad. */
static int text_header(const struct lmp_raw *raw, const char *name, char *out, size_t outlen, int ascii_id) {
  size_t n = 0;
  const char *v = raw->header ? raw->header(raw->hctx, name, &n) : NULL;
  *out = '\0';
  if (v == NULL)
    return 0;
  if (n == 0 || n >= outlen || lmp_text_check(v, n, 0, NULL) != LMP_TEXT_OK)
    return -1;
  for (size_t i = 0; ascii_id && i < n; i++)
    if (v[i] <= 0x20 || v[i] >= 0x7F)
      return -1;
  memcpy(out, v, n);
  out[n] = '\0';
  return 0;
}

/* The route of a topic, and for an event type several daemons write, which of them
 * may write that topic (*writer; else NULL). */
static const struct lmp_route *route_of(const struct lmp_config *cfg, const struct lmp_route *routes,
                                        const char *topic, const char **writer) {
  char t[8][LMP_TOPIC_NAME_MAX];
  *writer = NULL;
  for (const struct lmp_route *r = routes; r->event_type; r++) {
    size_t n = lmp_event_topics(cfg, r->event_type, t, 8);
    for (size_t i = 0; i < n && i < 8; i++)
      if (strcmp(t[i], topic) == 0) {
        const struct lmp_writers *w = lmp_event_writers(r->event_type);
        *writer = w ? w->writers[i] : NULL;
        return r;
      }
  }
  return NULL;
}

/* An event of a type several daemons write names its writer: the one whose topic
 * it is on, which only that daemon's principal may write. */
static int writer_named(avro_value_t *v, const char *event_type, const char *writer) {
  const struct lmp_writers *w = lmp_event_writers(event_type);
  avro_value_t f;
  const char *s;
  size_t n;
  return w == NULL || (avro_value_get_by_name(v, w->field, &f, NULL) == 0 && avro_value_get_type(&f) == AVRO_STRING &&
                       avro_value_get_string(&f, &s, &n) == 0 && strcmp(s, writer) == 0);
}

/* The ids an event is keyed and mailed by, each by its syntax, where the daemons read
 * them: the top-level fields of these names, when the event has them. */
static const struct {
  const char *field;
  int (*valid)(const char *);
  const char *what;
} ids[] = {
    {"onboarding_id", lmp_uuid_valid, "a UUID"},
    {"customer_id", lmp_uuid_valid, "a UUID"},
    {"shipment_id", lmp_uuid_valid, "a UUID"},
    {"partner_id", lmp_partner_id_valid, "1 to 64 of A-Z a-z 0-9 . _ : -"},
};

static int ids_check(avro_value_t *v, char *err, size_t errlen) {
  for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
    avro_value_t f;
    const char *s;
    size_t n;
    if (avro_value_get_by_name(v, ids[i].field, &f, NULL) != 0 || avro_value_get_type(&f) != AVRO_STRING)
      continue;
    if (avro_value_get_string(&f, &s, &n) != 0 || !ids[i].valid(s)) {
      snprintf(err, errlen, "%s must be %s", ids[i].field, ids[i].what);
      return -1;
    }
  }
  return 0;
}

__attribute__((format(printf, 3, 4))) static void poison(struct lmp_msg *x, const char *code, const char *fmt, ...) {
  x->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(x->why, sizeof(x->why), fmt, ap);
  va_end(ap);
}

void lmp__message_check(const struct lmp_schemas *schemas, const struct lmp_config *cfg,
                        const struct lmp_route *routes, const struct lmp_raw *raw, struct lmp_msg *x) {
  memset(x, 0, sizeof(*x));
  snprintf(x->id, sizeof(x->id), "%.90s/%d/%lld", raw->topic, (int)raw->partition, (long long)raw->offset);
  snprintf(x->source, sizeof(x->source), "%s", raw->topic);
  /* Only the replay principal writes the replay topic; what it names is still checked:
   * a topic this daemon has no route for is WRONG_TOPIC below. */
  if (cfg->replay_topic && strcmp(raw->topic, cfg->replay_topic) == 0 &&
      (text_header(raw, "source_topic", x->source, sizeof(x->source), 1) < 0 || !*x->source)) {
    snprintf(x->source, sizeof(x->source), "%s", raw->topic);
    return poison(x, "BAD_HEADER", "a replay's header source_topic must name the topic its dead letter came "
                  "from (1 to %d printable ASCII characters)", LMP_TOPIC_MAX);
  }
  if (raw->key) {
    if (raw->keylen > LMP_KEY_MAX || lmp_text_check(raw->key, raw->keylen, 0, NULL) != LMP_TEXT_OK)
      return poison(x, "BAD_KEY", "the key must be text of at most %d bytes without control characters "
                    "(%zu bytes)", LMP_KEY_MAX, raw->keylen);
    memcpy(x->key, raw->key, raw->keylen);
    x->key[raw->keylen] = '\0';
  }
  char evid[LMP_ID_MAX + 1], etype[LMP_ID_MAX + 1], tp[64];
  if (text_header(raw, "event_id", evid, sizeof(evid), 1) < 0)
    return poison(x, "BAD_HEADER", "header event_id must be 1 to %d printable ASCII characters", LMP_ID_MAX);
  if (text_header(raw, "correlation_id", x->corr, sizeof(x->corr), 0) < 0)
    return poison(x, "BAD_HEADER", "header correlation_id must be text of at most %d bytes", LMP_ID_MAX);
  if (text_header(raw, "event_type", etype, sizeof(etype), 0) < 0)
    return poison(x, "BAD_HEADER", "header event_type must be text of at most %d bytes", LMP_ID_MAX);
  /* A trace context that is not one is ignored, as W3C Trace Context says. */
  if (text_header(raw, "traceparent", tp, sizeof(tp), 1) == 0 && lmp_traceparent_valid(tp))
    snprintf(x->parent, sizeof(x->parent), "%s", tp);

  char err[500];
  int dr = lmp_avro_decode(schemas, raw->payload, raw->len, &x->schema, &x->value, err, sizeof(err));
  if (dr == LMP_ERETRY) {
    /* The registry that knows its schema did not answer: no fault of the message. */
    x->retry = 1;
    snprintf(x->why, sizeof(x->why), "%s", err);
    return;
  }
  if (dr < 0)
    return poison(x, dr == LMP_EFRAME ? "BAD_FRAMING" : dr == LMP_ESCHEMA ? "UNKNOWN_SCHEMA"
                     : dr == LMP_ETOOBIG ? "TOO_LARGE" : "UNDECODABLE", "%s", err);
  x->decoded = 1;
  const char *writer;
  x->route = route_of(cfg, routes, x->source, &writer);
  if (x->route == NULL || strcmp(x->route->event_type, x->schema->name) != 0)
    return poison(x, "WRONG_TOPIC", "%s carries %s only, not %s", x->source,
                  x->route ? x->route->event_type : "nothing this daemon reads", x->schema->name);
  if (writer && !writer_named(&x->value, x->schema->name, writer))
    return poison(x, "WRONG_TOPIC", "%s carries %s's %s only, not another daemon's", x->source, writer,
                  x->schema->name);
  if (*etype && strcmp(etype, x->schema->name) != 0)
    return poison(x, "EVENT_TYPE_MISMATCH", "header says %s, the schema is %s", etype, x->schema->name);
  if (!x->route->checks_text && lmp_avro_check_text(&x->value, err, sizeof(err)) < 0)
    return poison(x, "BAD_TEXT", "%s", err);
  if (!x->route->checks_text && ids_check(&x->value, err, sizeof(err)) < 0)
    return poison(x, "BAD_ID", "%s", err);
  if (*evid)
    snprintf(x->id, sizeof(x->id), "%s", evid);
}

void lmp__message_clear(struct lmp_msg *x) {
  if (x->decoded)
    avro_value_decref(&x->value);
  x->decoded = 0;
}
