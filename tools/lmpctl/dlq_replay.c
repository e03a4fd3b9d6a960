/* Replaying dead letters: which may be replayed, the message a replay is (the original,
 * with an event_id of its own and where it comes from), and producing the replays to
 * the replay topic of the daemon that dead-lettered them. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "dlq.h"
#include "lmp/io/kafka.h"
#include "lmp/runtime/service.h"

static int our_topic(const char *topic) {
  for (size_t i = 0; i < lmp_schemas_count(schemas()); i++) {
    const struct lmp_schema *s = lmp_schemas_at(schemas(), i);
    if (strchr(s->name, '.') != NULL && dlq_topic_of(topic, s->name)) /* not a shared type: an event */
      return 1;
  }
  return 0;
}

/* Why a dead letter must not be replayed, or NULL. Replaying is handing the original
 * to the daemon that dead-lettered it once more; a dead letter that does not hold the
 * original, or whose source is not a topic of the flow, cannot be. Whose it is comes
 * from the topic it is on, never from its headers: a source_service that names
 * another daemon was not written by the runtime. */
const char *dlq_refusal(const struct dl *d, char *why, size_t len) {
  const char *code = dlq_meta(d, "error_code"), *src = dlq_meta(d, "source_topic"), *id = dlq_meta(d, "dlq_event_id");
  if (id == NULL || !*id || strlen(id) > EVENT_ID_MAX - strlen(REPLAY_PREFIX))
    return "it has no usable dlq_event_id header, from which a replay takes its event_id";
  for (const char *c = id; *c; c++)
    if (*c <= 0x20 || *c >= 0x7F)
      return "its dlq_event_id is not printable ASCII, as an event_id must be";
  if (dlq_meta(d, "source_service") == NULL || strcmp(dlq_meta(d, "source_service"), d->daemon) != 0) {
    snprintf(why, len, "it is on %s's dead-letter topic but names %s as its source_service: the runtime never "
             "writes that", d->daemon, dlq_or_dash(dlq_meta(d, "source_service")));
    return why;
  }
  if (code && strcmp(code, "PUBLISH_REFUSED") == 0) {
    snprintf(why, len, "it is a parked event (PUBLISH_REFUSED): the broker refused it for good when %s published "
             "it from its outbox; the event is in that daemon's lmp_outbox_parked", d->daemon);
    return why;
  }
  if (dlq_meta(d, "dlq_truncated_from")) {
    snprintf(why, len, "its value was cut from %s to %zu bytes (dlq_truncated_from): the original is not there "
             "to replay", dlq_meta(d, "dlq_truncated_from"), d->len);
    return why;
  }
  if (dlq_meta(d, "dlq_key_truncated_from"))
    return "its key was cut (dlq_key_truncated_from): the original is not there to replay";
  if (dlq_meta(d, "dlq_headers_cut") || dlq_meta(d, "dlq_headers_dropped"))
    return "headers of the original were cut or dropped (dlq_headers_cut, dlq_headers_dropped): the original is "
           "not there to replay";
  /* The sender's bugs: the same bytes would be refused again, and a message that had
   * no usable event_id would get one from the replay. Tell the sender's owner. */
  static const char *const senders_bugs[] = {"BAD_FRAMING", "UNDECODABLE", "BAD_TEXT", "BAD_ID", "BAD_KEY", "BAD_HEADER",
                                             "WRONG_TOPIC", "EVENT_TYPE_MISMATCH", "TOO_LARGE", NULL};
  for (const char *const *c = senders_bugs; code && *c; c++)
    if (strcmp(code, *c) == 0) {
      snprintf(why, len, "%s is the sender's bug: the same message would be refused again", code);
      return why;
    }
  if (src == NULL || !our_topic(src)) {
    snprintf(why, len, "its source topic %s is not an event topic of this flow (prefix '%s')", dlq_or_dash(src),
             cfg.topic_prefix);
    return why;
  }
  return NULL;
}

static int add_header(rd_kafka_headers_t *hs, const char *name, const char *value, size_t len) {
  return rd_kafka_header_add(hs, name, -1, value, (ssize_t)len) ? -1 : 0;
}

/* Headers a replay sets itself, never copied from the original. */
static int replay_owns(const char *name) {
  return strcmp(name, "event_id") == 0 || strcmp(name, "source_topic") == 0 || strncmp(name, "replay_", 7) == 0;
}

/* The original headers, but event_id, which becomes one of the dead letter's own so
 * that replaying it twice is one event to the inbox (the original event_id is in the
 * inbox already when its handler refused it), and earlier replay_* headers; then
 * the topic whose route the daemon applies (source_topic) and where this replay comes
 * from. */
static rd_kafka_headers_t *replay_headers(const struct replay *r) {
  const struct dl *d = r->d;
  char pos[400];
  rd_kafka_headers_t *hs = rd_kafka_headers_new(d->norig + 5);
  int e = 0;
  for (size_t i = 0; i < d->norig && !e; i++)
    if (!replay_owns(d->h[i].name))
      e = add_header(hs, d->h[i].name, d->h[i].value, d->h[i].len);
  char topic[300];
  lmp_dead_letter_topic(&cfg, d->daemon, topic, sizeof(topic));
  snprintf(pos, sizeof(pos), "%s/%d/%" PRId64, topic, (int)d->partition, d->offset);
  const char *was = dlq_orig(d, "event_id"), *src = dlq_meta(d, "source_topic");
  if (!e) e = add_header(hs, "event_id", r->event_id, strlen(r->event_id));
  if (!e) e = add_header(hs, "source_topic", src, strlen(src));
  if (!e) e = add_header(hs, "replay_dlq_event_id", dlq_meta(d, "dlq_event_id"), strlen(dlq_meta(d, "dlq_event_id")));
  if (!e) e = add_header(hs, "replay_dlq_position", pos, strlen(pos));
  if (!e && was) e = add_header(hs, "replay_of_event_id", was, strlen(was));
  if (e)
    die("out of memory");
  return hs;
}

static void delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  struct replay *r = m->_private;
  r->err = m->err;
  r->partition = m->partition;
  r->offset = m->offset;
}

static rd_kafka_t *replay_producer(void) {
  char err[512];
  rd_kafka_conf_t *c = lmp_kafka_conf(&cfg, err, sizeof(err));
  if (c == NULL)
    die("kafka: %s", err);
  if (rd_kafka_conf_set(c, "enable.idempotence", "true", err, sizeof(err)) ||
      rd_kafka_conf_set(c, "message.timeout.ms", "60000", err, sizeof(err)))
    die("kafka: %s", err);
  rd_kafka_conf_set_dr_msg_cb(c, delivered);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
  if (rk == NULL)
    die("kafka: %s", err);
  return rk; /* c is owned by rk now */
}

static void produce(rd_kafka_t *rk, struct replay *r) {
  const struct dl *d = r->d;
  rd_kafka_headers_t *hs = replay_headers(r);
  /* Partitioned by the key, as the daemon's own topics are: the key's replays stay in
   * the order they are sent. */
  rd_kafka_resp_err_t e = rd_kafka_producev(
      rk, RD_KAFKA_V_TOPIC(r->topic), RD_KAFKA_V_KEY(d->key, d->keylen), RD_KAFKA_V_VALUE(d->value, d->len),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_OPAQUE(r), RD_KAFKA_V_END);
  if (e) {
    rd_kafka_headers_destroy(hs); /* not taken when producev fails */
    r->err = e;
  }
}

void dlq_print_plan(const struct replay *r) {
  const struct dl *d = r->d;
  char where[80];
  dlq_position(d, where, sizeof(where));
  printf("would replay %s to %s for ", where, r->topic);
  dlq_put(dlq_meta(d, "source_topic"));
  printf(" as event_id %s, key ", r->event_id);
  dlq_print_key(d);
  printf(", %zu bytes, headers:", d->len);
  rd_kafka_headers_t *hs = replay_headers(r);
  const char *name;
  const void *v;
  size_t n;
  for (size_t i = 0; rd_kafka_header_get_all(hs, i, &name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
    putchar(' ');
    dlq_put(name);
    putchar('=');
    dlq_print_text(stdout, v, v ? n : 0);
  }
  rd_kafka_headers_destroy(hs);
  putchar('\n');
}

/* Produces the accepted replays and waits for every delivery report; the number
 * not delivered. */
size_t dlq_send_all(struct replay *rs, size_t n) {
  rd_kafka_t *rk = replay_producer();
  for (size_t i = 0; i < n; i++)
    produce(rk, &rs[i]);
  rd_kafka_flush(rk, 90000);
  size_t failed = 0;
  for (size_t i = 0; i < n; i++) {
    char where[80];
    dlq_position(rs[i].d, where, sizeof(where));
    if (rs[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      printf("replayed %s to %s[%d]@%" PRId64 " as event_id %s\n", where, rs[i].topic, (int)rs[i].partition,
             rs[i].offset, rs[i].event_id);
    } else {
      fprintf(stderr, "lmpctl: %s not delivered to %s: %s\n", where, rs[i].topic,
              rd_kafka_err2str(rs[i].err == RD_KAFKA_RESP_ERR__IN_PROGRESS ? RD_KAFKA_RESP_ERR__TIMED_OUT : rs[i].err));
      failed++;
    }
  }
  rd_kafka_destroy(rk);
  return failed;
}
