/* librdkafka glue on the loop thread: the consumer and the idempotent producer, the
 * pipes through which their queues wake the loop, callbacks, offsets, pause. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/io/kafka.h"
#include "runtime/rt.h"

/* Whether an error means the broker turns this daemon away, and how. */
static enum lmp_kafka_refusal refusal(rd_kafka_resp_err_t err) {
  switch (err) {
  case RD_KAFKA_RESP_ERR__AUTHENTICATION:
  case RD_KAFKA_RESP_ERR__SSL:
  case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
  case RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM:
  case RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE:
    return LMP_KAFKA_UNAUTHENTICATED;
  case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
  case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
  case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
  case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    return LMP_KAFKA_DENIED;
  default:
    return LMP_KAFKA_ACCEPTED;
  }
}

/* ---- Callbacks (served on the loop thread, from the queues' pipes) ----------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  struct rt *rt = opaque;
  enum lmp_kafka_refusal r = refusal(m->err);
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR || r != LMP_KAFKA_ACCEPTED)
    atomic_store(&rt->m.producer_refused, r);
  struct outrow *row = m->_private;
  if (!rt->closing) { /* closing, the rows are freed: the flush still reports them */
    row->partition = m->partition;
    row->offset = m->offset;
  }
  rt->up.delivered(rt, row, m->err);
}

/* Whether some broker answers each client; the daemon counts as reaching Kafka when
 * no client finds none and one has found one. Called on the loop thread only (the
 * callbacks run in its polls). The log tells each change, so an operator reading it
 * sees when the daemon lost the cluster and when it found it again. */
static void reachable(struct rt *rt, rd_kafka_t *rk, int up, const char *how) {
  rt->reach[rk == rt->producer] = up;
  int all = rt->reach[0] != 0 && rt->reach[1] != 0 && (rt->reach[0] == 1 || rt->reach[1] == 1);
  if (atomic_exchange(&rt->m.kafka_up, all) != all)
    all ? lmp_info(NULL, "Kafka: a broker answers (%s)", how)
        : lmp_warn(NULL, "Kafka: no broker answers the %s (%s)", rk == rt->producer ? "producer" : "consumer", how);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  struct rt *rt = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_fatal_error(rk, why, sizeof(why));
    lmp_error(NULL, "Kafka fatal error: %s; exiting (the outbox keeps unsent events)", why);
    rt->exit_code = 70;
    /* No drain: the producer can deliver nothing more, so waiting would only resend
     * forever. What is committed stays in the outbox for the next start. Finished on
     * the loop's next turn: this runs inside a poll of the client it would close. */
    rt->up.finish_soon(rt);
    return;
  }
  /* One broker's transport error is not the cluster's: the statistics tell that. */
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
    reachable(rt, rk, 0, "all brokers down");
  enum lmp_kafka_refusal r = refusal(err);
  /* With TLS 1.3 a broker refuses a client certificate after the handshake, so the
   * client sees a transport error; librdkafka's text tells it apart: OpenSSL's reason
   * names the refusal. A broker that goes away mid-handshake ("SSL handshake failed:
   * Disconnected") is only unreachable. */
  if (r == LMP_KAFKA_ACCEPTED && (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__SSL) &&
      (strstr(reason, "SSL routines") || strstr(reason, "certificate") || strstr(reason, "SASL authentication")))
    r = LMP_KAFKA_UNAUTHENTICATED;
  if (r != LMP_KAFKA_ACCEPTED) {
    /* Not ready, and the log says why: the settings or the ACLs are wrong, which
     * no retry mends. */
    atomic_store(rk == rt->consumer ? &rt->m.consumer_refused : &rt->m.producer_refused, r);
    if (r == LMP_KAFKA_UNAUTHENTICATED)
      lmp_error(NULL, "no authenticated session with Kafka (%s): %s", rd_kafka_err2name(err), reason);
    else
      lmp_error(NULL, "Kafka denies this daemon (%s): %s", rd_kafka_err2name(err), reason);
    return;
  }
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
  reachable(rt, rk, up, "statistics");
  /* A session is up: whatever refused to authenticate us before no longer does. */
  atomic_int *refused = rk == rt->consumer ? &rt->m.consumer_refused : &rt->m.producer_refused;
  if (up && atomic_load(refused) == LMP_KAFKA_UNAUTHENTICATED)
    atomic_store(refused, LMP_KAFKA_ACCEPTED);
  if (rk == rt->consumer)
    lmp__metrics_lag(&rt->m, j);
  json_decref(j);
  return 0;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
  struct lmp_buf b = {0};
  for (int i = 0; i < parts->cnt; i++)
    lmp_buf_printf(&b, "%s%s[%d]", i ? " " : "", parts->elems[i].topic, parts->elems[i].partition);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    struct rt *rt = opaque;
    atomic_store(&rt->m.consumer_refused, LMP_KAFKA_ACCEPTED); /* the group took us */
    lmp_info(NULL, "assigned: %s", b.data ? b.data : "(none)");
    rd_kafka_assign(rk, parts);
  } else {
    lmp_info(NULL, "revoked: %s", b.data ? b.data : "(none)");
    rd_kafka_assign(rk, NULL);
  }
  lmp_buf_free(&b);
}

/* A denial is over once the broker does what it denied: a denial reported late (a
 * coordinator lookup that failed before the ACLs took effect, its error queued behind
 * the assignment that followed) would otherwise keep the daemon unready for good.
 * One still in force comes again with the next fetch or commit. */
static void accepted_again(struct rt *rt) {
  if (atomic_load(&rt->m.consumer_refused) == LMP_KAFKA_DENIED) {
    atomic_store(&rt->m.consumer_refused, LMP_KAFKA_ACCEPTED);
    lmp_info(NULL, "Kafka: the consumer is taken again");
  }
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                      void *opaque) {
  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
    lmp_warn(NULL, "offset commit failed: %s (events will be redelivered and deduplicated)",
             rd_kafka_err2str(err));
  else if (!err)
    accepted_again(opaque);
}

/* librdkafka's own log lines, as structured lines (called from its threads). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  enum lmp_log_level l = level <= 3 ? LMP_LOG_ERROR : level <= 5 ? LMP_LOG_WARN
                       : level == 6 ? LMP_LOG_INFO : LMP_LOG_DEBUG;
  lmp_log(l, NULL, "librdkafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

/* ---- Clients ----------------------------------------------------------------------- */

struct kv {
  const char *k, *v;
};

static int kset_all(rd_kafka_conf_t *c, const struct kv *kvs, char *err, size_t errlen) {
  for (const struct kv *p = kvs; p->k; p++)
    if (rd_kafka_conf_set(c, p->k, p->v, err, errlen) != RD_KAFKA_CONF_OK)
      return LMP_ECONFIG;
  return 0;
}

/* What the consumer and the producer share: brokers, name, statistics (broker
 * reachability and lag), reconnect pace, and the callbacks that log; then the
 * role's own settings; then the operator's kafka.property.* (security, tuning). */
static rd_kafka_t *client(struct rt *rt, rd_kafka_type_t type, const struct kv *own, char *err, size_t errlen) {
  char client_id[128];
  snprintf(client_id, sizeof(client_id), "lmp-%s", rt->svc->name);
  const struct kv common[] = {{"client.id", client_id},
                              {"statistics.interval.ms", "1000"},
                              {"reconnect.backoff.max.ms", "2000"},
                              /* Small requests go out at once: with Nagle on, a produce
                               * or fetch could wait ~40 ms for the peer's delayed ACK. */
                              {"socket.nagle.disable", "true"},
                              {NULL, NULL}};
  rd_kafka_conf_t *c = lmp_kafka_conf(&rt->cfg, err, errlen);
  if (c == NULL)
    return NULL;
  if (kset_all(c, common, err, errlen) < 0 || kset_all(c, own, err, errlen) < 0) {
    rd_kafka_conf_destroy(c);
    return NULL;
  }
  rd_kafka_conf_set_opaque(c, rt);
  rd_kafka_conf_set_error_cb(c, error_cb);
  rd_kafka_conf_set_log_cb(c, log_cb);
  rd_kafka_conf_set_stats_cb(c, stats_cb);
  if (type == RD_KAFKA_CONSUMER) {
    rd_kafka_conf_set_rebalance_cb(c, rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(c, commit_cb);
  } else {
    rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
  }
  rd_kafka_t *rk = rd_kafka_new(type, c, err, errlen);
  if (rk == NULL)
    rd_kafka_conf_destroy(c);
  return rk; /* on success c is owned by rk now */
}

static void drain_pipe(int fd) {
  char buf[256];
  while (read(fd, buf, sizeof(buf)) > 0)
    ;
}

static void consumer_readable(uv_poll_t *p, int status, int events) {
  struct rt *rt = p->data;
  drain_pipe(rt->cpipe[0]);
  rt->up.consume(rt);
}

static void producer_readable(uv_poll_t *p, int status, int events) {
  struct rt *rt = p->data;
  drain_pipe(rt->ppipe[0]);
  rd_kafka_poll(rt->producer, 0); /* serves delivery reports: dr_cb */
}

/* Readiness need not wait for the first statistics (a second): one metadata request
 * at start, off the loop, tells at once whether the brokers take this daemon. */
static void probe_work(uv_work_t *w) {
  struct rt *rt = w->data;
  const struct rd_kafka_metadata *md;
  rt->probe_err = rd_kafka_metadata(rt->producer, 0, NULL, &md, 5000);
  if (rt->probe_err == RD_KAFKA_RESP_ERR_NO_ERROR)
    rd_kafka_metadata_destroy(md);
}

static void probe_done(uv_work_t *w, int status) {
  struct rt *rt = w->data;
  if (status == 0 && rt->probe_err == RD_KAFKA_RESP_ERR_NO_ERROR)
    reachable(rt, rt->producer, 1, "metadata");
}

int lmp__kafka_start(struct rt *rt, char *err, size_t errlen) {
  rt->reach[0] = rt->reach[1] = -1;
  char poll_ms[32], commit_ms[32];
  snprintf(poll_ms, sizeof(poll_ms), "%d", rt->cfg.max_poll_interval_ms);
  snprintf(commit_ms, sizeof(commit_ms), "%d", rt->cfg.commit_interval_ms);
  const struct kv consumer[] = {{"group.id", rt->group},
                                /* Offsets are stored once a batch's events are all on the
                                 * broker (commit below); librdkafka commits what is stored
                                 * every commit_interval_ms, on a rebalance and at close. */
                                {"enable.auto.commit", rt->cfg.commit_interval_ms ? "true" : "false"},
                                {"auto.commit.interval.ms", rt->cfg.commit_interval_ms ? commit_ms : "5000"},
                                {"enable.auto.offset.store", "false"},
                                {"auto.offset.reset", "earliest"},
                                {"max.poll.interval.ms", poll_ms},
                                {"session.timeout.ms", "10000"},
                                {"heartbeat.interval.ms", "1000"},
                                /* What is fetched ahead is bounded: a backlog stays on the
                                 * broker, not in the daemon's memory (librdkafka's default
                                 * prefetches up to 64 MiB). */
                                {"queued.max.messages.kbytes", "2048"},
                                {"fetch.max.bytes", "2097152"},
                                {"fetch.message.max.bytes", "262144"},
                                {NULL, NULL}};
  /* message.max.bytes matches the largest event (LMP_MAX_EVENT_BYTES) and dead letter
   * the runtime makes, so a size refusal is always a fault of one event. No linger: a
   * batch's events are produced together after its commit, and under load those
   * produced while a request is in flight go in the next one anyway. */
  const struct kv producer[] = {{"enable.idempotence", "true"},
                                {"acks", "all"},
                                {"linger.ms", "0"},
                                {"message.timeout.ms", "60000"},
                                {"message.max.bytes", "1000000"},
                                {NULL, NULL}};
  if ((rt->consumer = client(rt, RD_KAFKA_CONSUMER, consumer, err, errlen)) == NULL ||
      (rt->producer = client(rt, RD_KAFKA_PRODUCER, producer, err, errlen)) == NULL)
    return LMP_ECONFIG;
  rd_kafka_poll_set_consumer(rt->consumer);

  /* The topics of each route, <prefix><event type> (one per writer of a type several
   * daemons write), and the daemon's replays. */
  rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(16);
  for (const struct lmp_route *r = rt->svc->routes; r->event_type; r++) {
    char topics[8][LMP_TOPIC_NAME_MAX];
    size_t n = lmp_event_topics(&rt->cfg, r->event_type, topics, 8);
    for (size_t i = 0; i < n && i < 8; i++)
      rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
  }
  rd_kafka_topic_partition_list_add(subs, rt->cfg.replay_topic, RD_KAFKA_PARTITION_UA);
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
  if (pipe2(rt->cpipe, O_NONBLOCK | O_CLOEXEC) < 0 || pipe2(rt->ppipe, O_NONBLOCK | O_CLOEXEC) < 0) {
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
  rt->probe.data = rt;
  uv_queue_work(rt->loop, &rt->probe, probe_work, probe_done);
  return 0;
}

/* ---- The pipeline's operations ---------------------------------------------------- */

static const void *header(const void *ctx, const char *name, size_t *n) {
  rd_kafka_headers_t *h = NULL;
  const void *v;
  if (rd_kafka_message_headers(ctx, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(h, name, &v, n) != RD_KAFKA_RESP_ERR_NO_ERROR || v == NULL)
    return NULL;
  return v;
}

static int header_at(const void *ctx, size_t i, const char **name, const void **value, size_t *n) {
  rd_kafka_headers_t *h = NULL;
  if (rd_kafka_message_headers(ctx, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_all(h, i, name, value, n) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return -1;
  return 0;
}

/* A message as the transaction reads it; views into m, which lives as long. */
static void view(const rd_kafka_message_t *m, struct lmp_raw *raw) {
  *raw = (struct lmp_raw){rd_kafka_topic_name(m->rkt), m->partition, m->offset, m->key, m->key_len, m->payload,
                          m->len, header, header_at, m};
}

/* Error events are logged and dropped; messages are kept. */
static int keep(struct rt *rt, rd_kafka_message_t *m) {
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    accepted_again(rt);
    return 1;
  }
  enum lmp_kafka_refusal r = refusal(m->err);
  if (r != LMP_KAFKA_ACCEPTED) {
    atomic_store(&rt->m.consumer_refused, r);
    lmp_error(NULL, "Kafka denies this daemon's consumer (%s): %s", rd_kafka_err2name(m->err),
              rd_kafka_message_errstr(m));
  } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
    lmp_warn(NULL, "consumer: %s", rd_kafka_message_errstr(m));
  rd_kafka_message_destroy(m);
  return 0;
}

static size_t fetch(struct rt *rt, struct lmp_raw *raws, void **msgs, size_t max) {
  rd_kafka_message_t **got = (rd_kafka_message_t **)msgs;
  ssize_t n = rd_kafka_consume_batch_queue(rt->cq, 0, got, max);
  size_t kept = 0;
  for (ssize_t i = 0; i < n; i++)
    if (keep(rt, got[i])) {
      got[kept] = got[i]; /* kept <= i: compacts in place */
      view(got[kept], &raws[kept]);
      kept++;
    }
  return kept;
}

static size_t poll_one(struct rt *rt, struct lmp_raw *raw, void **msg) {
  rd_kafka_message_t *m = rd_kafka_consumer_poll(rt->consumer, 0);
  if (m == NULL || !keep(rt, m))
    return 0;
  view(m, raw);
  *msg = m;
  return 1;
}

static void release(void *msg) { rd_kafka_message_destroy(msg); }

static int produce(struct rt *rt, struct outrow *row) {
  rd_kafka_headers_t *h = rd_kafka_headers_new(row->nhdrs);
  for (size_t k = 0; k < row->nhdrs; k++)
    rd_kafka_header_add(h, row->hdrs[k].name, -1, row->hdrs[k].value, (ssize_t)row->hdrs[k].len);
  rd_kafka_resp_err_t err = rd_kafka_producev(
      rt->producer, RD_KAFKA_V_TOPIC(row->topic), RD_KAFKA_V_KEY(row->key, row->keylen),
      RD_KAFKA_V_VALUE(row->value, row->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
      RD_KAFKA_V_OPAQUE(row), RD_KAFKA_V_END);
  if (err)
    rd_kafka_headers_destroy(h); /* not owned by librdkafka on failure; on success it is */
  return (int)err;
}

static void serve(struct rt *rt) { rd_kafka_poll(rt->producer, 0); }

/* The batch's position on each partition it read, after its last message. */
static void commit(struct rt *rt, struct batch *b) {
  if (b->n == 0)
    return;
  rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new((int)b->n);
  for (size_t i = 0; i < b->n; i++) {
    const struct lmp_raw *m = &b->raws[i];
    rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(offs, m->topic, m->partition);
    if (p == NULL)
      p = rd_kafka_topic_partition_list_add(offs, m->topic, m->partition);
    if (m->offset + 1 > p->offset)
      p->offset = m->offset + 1;
  }
  /* Stored, the offsets are committed with others a moment later: a commit per batch
   * cost the broker a request and a write to its offsets topic per event at low rates. */
  rd_kafka_resp_err_t err = rt->cfg.commit_interval_ms ? rd_kafka_offsets_store(rt->consumer, offs)
                                                       : rd_kafka_commit(rt->consumer, offs, 1 /* async */);
  for (int i = 0; err == 0 && rt->cfg.commit_interval_ms && i < offs->cnt; i++)
    err = offs->elems[i].err; /* a partition revoked meanwhile is refused alone */
  if (err)
    lmp_warn(NULL, "offsets not %s: %s (events will be redelivered and deduplicated)",
             rt->cfg.commit_interval_ms ? "stored" : "committed", rd_kafka_err2str(err));
  rd_kafka_topic_partition_list_destroy(offs);
}

static void pause_all(struct rt *rt, int pause) {
  rd_kafka_topic_partition_list_t *parts = NULL;
  if (rd_kafka_assignment(rt->consumer, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR && parts) {
    if (pause)
      rd_kafka_pause_partitions(rt->consumer, parts);
    else
      rd_kafka_resume_partitions(rt->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
  }
}

/* The transaction (txn) is not Kafka's: lmp__daemon_wire puts it beside these. */
const struct lmp_ops lmp__kafka_ops = {fetch, poll_one, release, produce, serve, commit, pause_all, NULL};

static void close_handle(uv_handle_t *h) {
  if (h->loop && !uv_is_closing(h))
    uv_close(h, NULL);
}

/* Leave the group and flush; every consumed message must be destroyed by now, or
 * librdkafka waits for it forever. */
void lmp__kafka_stop(struct rt *rt) {
  if (rt->consumer)
    rd_kafka_consumer_close(rt->consumer);
  if (rt->producer) {
    rd_kafka_resp_err_t e = rd_kafka_flush(rt->producer, rt->cfg.shutdown_timeout_ms);
    if (e)
      lmp_warn(NULL, "flush: %s (unacknowledged events stay in the outbox)", rd_kafka_err2str(e));
  }
  if (rt->cpoll.loop)
    uv_poll_stop(&rt->cpoll);
  if (rt->ppoll.loop)
    uv_poll_stop(&rt->ppoll);
  close_handle((uv_handle_t *)&rt->cpoll);
  close_handle((uv_handle_t *)&rt->ppoll);
}

void lmp__kafka_free(struct rt *rt) {
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
}
