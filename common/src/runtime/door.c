/* Events published from HTTP routes (a front door): an answer that says "taken" means
 * the event is on the broker, yet no HTTP worker waits for the broker meanwhile. The
 * route starts the publish and returns; the delivery report, served by a thread of
 * the door's own, resumes the route (lmp_http_resume) to answer. The door has an
 * idempotent producer of its own, made on first use: nothing of the event loop's is
 * touched from these threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "lmp/base/error.h"
#include "lmp/base/ids.h"
#include "lmp/base/log.h"
#include "lmp/io/kafka.h"
#include "lmp/runtime/events.h"
#include "runtime/rt.h"

/* How long the end waits for events still on their way. */
#define FLUSH_MS 10000
/* How long the poller sleeps in librdkafka when nothing is reported. */
#define POLL_MS 100

/* Held by the route (its state) and by the delivery report: freed by the last. */
struct lmp_http_pending {
  atomic_int refs;
  atomic_int done;
  rd_kafka_resp_err_t err;
  void *runtime; /* lmp_http's, for the resume */
  uint64_t ticket;
  struct lmp_span *span; /* the publish's, when sampled: ended by the report */
  char trace_id[33];
};

const char *lmp_http_pending_trace(const struct lmp_http_pending *p) { return p->trace_id; }

static void pending_unref(struct lmp_http_pending *p) {
  if (atomic_fetch_sub(&p->refs, 1) == 1)
    free(p);
}

/* The broker's answer: kept for the route, which is resumed to read it. */
static void door_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  struct lmp_http_pending *p = m->_private;
  if (p->span) {
    if (m->err) {
      lmp_span_fail(p->span, "the broker did not take it: %s", rd_kafka_err2str(m->err));
    } else {
      lmp_span_int(p->span, "messaging.destination.partition.id", m->partition);
      lmp_span_int(p->span, "messaging.kafka.offset", m->offset);
    }
    lmp_span_end(p->span);
    free(p->span);
    p->span = NULL;
  }
  p->err = m->err;
  atomic_store(&p->done, 1);
  lmp_http_resume(p->runtime, p->ticket);
  pending_unref(p);
}

int lmp_http_published(struct lmp_http_pending *p, int *result, char *err, size_t errlen) {
  if (!atomic_load(&p->done))
    return 0;
  *result = 0;
  if (p->err) {
    snprintf(err, errlen, "the broker did not take it: %s", rd_kafka_err2str(p->err));
    *result = lmp__kafka_permanent(p->err) ? LMP_ETOOBIG : LMP_ERETRY;
  }
  return 1;
}

void lmp_http_pending_free(struct lmp_http_pending *p) {
  if (p)
    pending_unref(p);
}

static void door_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  lmp_warn(NULL, "Kafka (HTTP publishing): %s", reason);
}

static void door_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  if (level <= 4)
    lmp_warn(NULL, "librdkafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static void *door_poll(void *arg) {
  struct rt *rt = arg;
  while (!atomic_load(&rt->door_closed))
    rd_kafka_poll(rt->door, POLL_MS);
  return NULL;
}

/* The producer, made on first use; NULL once the daemon stops. Called with door_lock
 * held, which the caller keeps until its message is handed over: lmp__door_free
 * takes the lock to close the door, so no publish is between this and producev when
 * the producer is destroyed. */
static rd_kafka_t *door(struct rt *rt, char *err, size_t errlen) {
  if (atomic_load(&rt->door_closed))
    snprintf(err, errlen, "the daemon is stopping");
  else if (rt->door == NULL) {
    char client_id[128];
    snprintf(client_id, sizeof(client_id), "lmp-%s-http", rt->svc->name);
    rd_kafka_conf_t *c = lmp_kafka_conf(&rt->cfg, err, errlen);
    /* Latency first: a person waits for the answer. */
    const char *own[][2] = {{"client.id", client_id}, {"enable.idempotence", "true"}, {"acks", "all"},
                            {"linger.ms", "0"}, {"socket.nagle.disable", "true"}, {"message.timeout.ms", "8000"},
                            {"message.max.bytes", "1000000"}};
    for (size_t i = 0; c && i < sizeof(own) / sizeof(own[0]); i++)
      if (rd_kafka_conf_set(c, own[i][0], own[i][1], err, errlen) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(c);
        c = NULL;
      }
    if (c) {
      rd_kafka_conf_set_dr_msg_cb(c, door_report);
      rd_kafka_conf_set_error_cb(c, door_error);
      rd_kafka_conf_set_log_cb(c, door_log);
      if ((rt->door = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, errlen)) == NULL)
        rd_kafka_conf_destroy(c);
      else if (pthread_create(&rt->door_poller, NULL, door_poll, rt) != 0) {
        snprintf(err, errlen, "no thread for the door's reports");
        rd_kafka_destroy(rt->door);
        rt->door = NULL;
      }
    }
  }
  return atomic_load(&rt->door_closed) ? NULL : rt->door;
}

int lmp__door_value(void *opaque, const char *event_type, avro_value_t *out) {
  struct rt *rt = opaque;
  const struct lmp_schema *s = lmp_schemas_get(rt->schemas, event_type);
  return s && avro_generic_value_new(s->iface, out) == 0 ? 0 : LMP_ESCHEMA;
}

/* The span of a front door's publish, the first of an onboarding's trace (or under the
 * caller's traceparent): from the request's hand-over to the broker's answer. */
static struct lmp_span *door_span(const char *event_type, const char *key, const char *topic, const char *id,
                                  const char *own, const char *parent) {
  if (!lmp_trace_enabled() || !lmp_traceparent_sampled(own))
    return NULL;
  struct lmp_span *s = malloc(sizeof(*s));
  if (s == NULL)
    return NULL;
  char name[160];
  snprintf(name, sizeof(name), "send %s", event_type);
  lmp_span_begin(s, name, LMP_SPAN_PRODUCER, own, parent);
  lmp_span_str(s, "messaging.system", "kafka");
  lmp_span_str(s, "messaging.operation.type", "send");
  lmp_span_str(s, "messaging.destination.name", topic);
  lmp_span_str(s, "messaging.message.id", id);
  lmp_span_str(s, "lmp.event_type", event_type);
  lmp_span_str(s, strncmp(event_type, "onboarding.", 11) == 0 ? "lmp.onboarding_id" : "lmp.correlation_id", key);
  return s;
}

int lmp__door_publish(void *opaque, const char *event_type, const char *key, avro_value_t *value,
                      const char *traceparent, void *runtime, uint64_t ticket, struct lmp_http_pending **pending,
                      char *err, size_t errlen) {
  struct rt *rt = opaque;
  *pending = NULL;
  int declared = 0;
  for (const char *const *e = rt->svc->emits; e && *e; e++)
    declared |= strcmp(*e, event_type) == 0;
  const struct lmp_schema *s = lmp_schemas_get(rt->schemas, event_type);
  if (!declared || s == NULL) {
    snprintf(err, errlen, "%s does not declare that it emits %s", rt->svc->name, event_type);
    return LMP_EINVAL;
  }
  struct lmp_buf enc = {0};
  int r = lmp__frame_event(rt, s, value, &enc);
  if (r == 0 && enc.len > LMP_MAX_EVENT_BYTES) {
    snprintf(err, errlen, "the event has %zu bytes, over the %d an event may have", enc.len, LMP_MAX_EVENT_BYTES);
    r = LMP_ETOOBIG;
  }
  if (r < 0) {
    lmp_buf_free(&enc);
    return r;
  }
  char topic[300], id[37], span[64];
  uuid_t u;
  uuid_generate(u);
  uuid_unparse_lower(u, id);
  lmp_emit_topic(&rt->cfg, event_type, rt->svc->name, topic, sizeof(topic));
  lmp_traceparent(traceparent && lmp_traceparent_valid(traceparent) ? traceparent : "", span);
  const char *ctype = lmp__content_type(rt);
  struct lmp_http_pending *p = calloc(1, sizeof(*p));
  char *k = strdup(key); /* librdkafka's macro takes it as not const; it copies it */
  if (p == NULL || k == NULL) {
    free(p);
    free(k);
    lmp_buf_free(&enc);
    return LMP_ENOMEM;
  }
  *p = (struct lmp_http_pending){.runtime = runtime, .ticket = ticket};
  p->span = door_span(event_type, key, topic, id, span, traceparent);
  memcpy(p->trace_id, span + 3, 32);
  atomic_init(&p->refs, 2); /* the route's and the report's */
  pthread_mutex_lock(&rt->door_lock);
  rd_kafka_t *rk = door(rt, err, errlen);
  if (rk == NULL) {
    pthread_mutex_unlock(&rt->door_lock);
    free(p->span); /* never sent: no span */
    free(p);
    free(k);
    lmp_buf_free(&enc);
    return LMP_EKAFKA;
  }
  rd_kafka_resp_err_t kerr = rd_kafka_producev(
      rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(k, strlen(k)), RD_KAFKA_V_VALUE(enc.data, enc.len),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(p), RD_KAFKA_V_HEADER("event_id", id, -1),
      RD_KAFKA_V_HEADER("event_type", event_type, -1), RD_KAFKA_V_HEADER("correlation_id", key, -1),
      RD_KAFKA_V_HEADER("traceparent", span, -1), RD_KAFKA_V_HEADER("content_type", ctype, -1), RD_KAFKA_V_END);
  pthread_mutex_unlock(&rt->door_lock);
  lmp_buf_free(&enc);
  free(k);
  if (kerr) {
    if (p->span) {
      lmp_span_fail(p->span, "the producer did not take it: %s", rd_kafka_err2str(kerr));
      lmp_span_end(p->span);
      free(p->span);
    }
    free(p); /* no report will come */
    snprintf(err, errlen, "the producer did not take it: %s", rd_kafka_err2str(kerr));
    return LMP_ERETRY;
  }
  /* message.timeout.ms ends every message with a report: the route's wait is bounded. */
  *pending = p;
  return 0;
}

/* Before the HTTP runtime stops: the reports still due resume their routes, which
 * are answered as the runtime stops. */
void lmp__door_free(struct rt *rt) {
  pthread_mutex_lock(&rt->door_lock);
  atomic_store(&rt->door_closed, 1);
  pthread_mutex_unlock(&rt->door_lock);
  if (rt->door) {
    pthread_join(rt->door_poller, NULL);
    rd_kafka_flush(rt->door, FLUSH_MS);
    rd_kafka_destroy(rt->door);
    rt->door = NULL;
  }
}
