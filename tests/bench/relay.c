/* bench-relay: the broker's own bound on the flow. Five hops, each a consumer and a
 * producer with the daemons' client settings and no database, pass messages from
 * <prefix>0 to <prefix>5; a driver times them, one at a time and in a burst.
 *
 *   bench-relay [-c CONFIG] PREFIX LATENCY_COUNT BURST_COUNT [PAYLOAD_BYTES]
 *
 * The topics <prefix>0 .. <prefix>5 must exist (tests/bench/bench.py makes them).
 * Settings are read as lmpctl reads them (LMP_CONFIG, or -c): the stack's brokers and
 * security. Prints one "latency_ms N" line per message sent alone (timestamp of its
 * copy on the last topic minus its own, as the system's figures are taken) and
 * "burst COUNT MS": the burst's first timestamp to its last on the last topic. */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmp/io/kafka.h"

#define HOPS 5

extern char **environ;

static struct lmp_config cfg;
static char *token_file; /* lmpctl's setting, read and ignored */
static const struct lmp_conf_entry ctl_conf[] = {
    {"ctl.admin_token_file", LMP_CONF_STR, 0, 0, 1024, "", "unused here"},
};
static const char *prefix;
static atomic_int stop;

struct kv {
  const char *k, *v;
};

/* What every daemon's consumer and producer set (common/src/runtime/kafka.c). */
static const struct kv common_props[] = {
    {"reconnect.backoff.max.ms", "2000"}, {"socket.nagle.disable", "true"}, {0, 0}};
static const struct kv consumer_props[] = {{"enable.auto.commit", "true"},
                                           {"auto.offset.reset", "earliest"},
                                           {"session.timeout.ms", "10000"},
                                           {"heartbeat.interval.ms", "1000"},
                                           {"queued.max.messages.kbytes", "2048"},
                                           {"fetch.max.bytes", "2097152"},
                                           {"fetch.message.max.bytes", "262144"},
                                           {0, 0}};
static const struct kv producer_props[] = {{"enable.idempotence", "true"},
                                           {"acks", "all"},
                                           {"linger.ms", "0"},
                                           {"message.timeout.ms", "60000"},
                                           {"message.max.bytes", "1000000"},
                                           {0, 0}};

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bench-relay: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  fprintf(stderr, "bench-relay: %s: %s\n", rd_kafka_name(rk), reason);
  if (err == RD_KAFKA_RESP_ERR__FATAL)
    exit(1);
}

static void set_all(rd_kafka_conf_t *c, const struct kv *kvs) {
  char err[512];
  for (const struct kv *p = kvs; p->k; p++)
    if (p->v && rd_kafka_conf_set(c, p->k, p->v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
      die("kafka: %s", err);
}

/* The stack's settings (brokers, security), then the daemons' own. */
static rd_kafka_t *client(rd_kafka_type_t type, const char *name, const char *group) {
  char err[512];
  rd_kafka_conf_t *c = lmp_kafka_conf(&cfg, err, sizeof(err));
  if (c == NULL)
    die("kafka: %s", err);
  set_all(c, common_props);
  set_all(c, type == RD_KAFKA_CONSUMER ? consumer_props : producer_props);
  set_all(c, (const struct kv[]){{"client.id", name}, {"group.id", group}, {0, 0}});
  rd_kafka_conf_set_error_cb(c, error_cb);
  rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof(err));
  if (rk == NULL)
    die("kafka: %s", err);
  return rk;
}

static rd_kafka_t *consumer(const char *name, int topic) {
  char group[300], t[300];
  snprintf(group, sizeof(group), "%s%s", prefix, name);
  snprintf(t, sizeof(t), "%s%d", prefix, topic);
  rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, name, group);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(subs, t, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, subs);
  rd_kafka_topic_partition_list_destroy(subs);
  if (e)
    die("subscribe: %s", rd_kafka_err2str(e));
  return rk;
}

/* Payload and key copied, headers taken over; timestamp 0 means now. Waits while
 * the producer's queue is full. */
static void produce(rd_kafka_t *p, int topic, void *payload, size_t len, void *key, size_t keylen,
                    rd_kafka_headers_t *headers, int64_t ts) {
  char t[300];
  snprintf(t, sizeof(t), "%s%d", prefix, topic);
  rd_kafka_resp_err_t e;
  while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(t), RD_KAFKA_V_VALUE(payload, len),
                                RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END)) ==
         RD_KAFKA_RESP_ERR__QUEUE_FULL)
    rd_kafka_poll(p, 10);
  if (e) {
    rd_kafka_headers_destroy(headers);
    die("produce: %s", rd_kafka_err2str(e));
  }
}

/* One hop: consumes topic n-1, produces each message to topic n as it comes. */
static void *hop(void *arg) {
  int n = (int)(intptr_t)arg;
  char name[32];
  snprintf(name, sizeof(name), "hop%d", n);
  rd_kafka_t *c = consumer(name, n - 1), *p = client(RD_KAFKA_PRODUCER, name, NULL);
  while (!atomic_load(&stop)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (m && !m->err) {
      rd_kafka_headers_t *h = NULL;
      rd_kafka_message_detach_headers(m, &h);
      produce(p, n, m->payload, m->len, m->key, m->key_len, h, 0);
    }
    if (m)
      rd_kafka_message_destroy(m);
    rd_kafka_poll(p, 0); /* delivery reports */
  }
  rd_kafka_flush(p, 10000);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(p);
  rd_kafka_destroy(c);
  return NULL;
}

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Message seq on the first topic, stamped ts; its payload starts "seq ts". */
static void send_one(rd_kafka_t *p, long seq, int64_t ts, char *payload, size_t len) {
  char key[32];
  int n = snprintf(payload, len, "%ld %" PRId64 " ", seq, ts);
  memset(payload + n, 'x', len - (size_t)n);
  snprintf(key, sizeof(key), "%ld", seq);
  rd_kafka_headers_t *h = rd_kafka_headers_new(2);
  rd_kafka_header_add(h, "event_type", -1, "bench.relay", -1);
  rd_kafka_header_add(h, "event_id", -1, key, -1);
  produce(p, 0, payload, len, key, strlen(key), h, ts);
}

/* The next message on the last topic, within timeout: its seq, sent stamp, own stamp. */
static int receive(rd_kafka_t *sink, int timeout_ms, long *seq, int64_t *sent, int64_t *ts) {
  int64_t deadline = now_ms() + timeout_ms;
  while (now_ms() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(sink, 100);
    if (m == NULL)
      continue;
    int ok = !m->err && m->len < 4096;
    if (ok) {
      char text[4096];
      memcpy(text, m->payload, m->len);
      text[m->len] = '\0';
      ok = sscanf(text, "%ld %" SCNd64, seq, sent) == 2;
      *ts = rd_kafka_message_timestamp(m, NULL);
    }
    rd_kafka_message_destroy(m);
    if (ok)
      return 0;
  }
  return -1;
}

int main(int argc, char **argv) {
  const char *path = getenv("LMP_CONFIG");
  if (argc > 2 && strcmp(argv[1], "-c") == 0) {
    path = argv[2];
    argv += 2;
    argc -= 2;
  }
  if (argc < 4) {
    fprintf(stderr, "usage: bench-relay [-c CONFIG] PREFIX LATENCY_COUNT BURST_COUNT [PAYLOAD_BYTES]\n");
    return 2;
  }
  prefix = argv[1];
  long nlat = atol(argv[2]), nburst = atol(argv[3]);
  size_t size = argc > 4 ? (size_t)atol(argv[4]) : 400;
  if (size < 64 || size > 4000)
    die("payload of %s bytes: 64 to 4000", argv[4]);
  struct lmp_conf_table tables[] = {
      {lmp_config_entries, lmp_config_entries_n, &cfg}, {ctl_conf, 1, &token_file}, {NULL, 0, NULL}};
  char err[600];
  if (lmp_config_load(tables, path && *path ? path : NULL, environ, err, sizeof(err)) < 0)
    die("configuration: %s", err);

  pthread_t hops[HOPS];
  for (int i = 0; i < HOPS; i++)
    pthread_create(&hops[i], NULL, hop, (void *)(intptr_t)(i + 1));
  rd_kafka_t *p = client(RD_KAFKA_PRODUCER, "driver", NULL), *sink = consumer("sink", HOPS);
  char *payload = malloc(size + 1);
  if (payload == NULL)
    die("out of memory");
  long seq;
  int64_t sent, ts;
  int rc = 0;

  /* Warm-up: until one message gets through, every group has its partitions. */
  send_one(p, -1, now_ms(), payload, size);
  if (receive(sink, 60000, &seq, &sent, &ts) < 0)
    die("%s: nothing came through the hops in 60 s", prefix);
  for (long i = 0; i < nlat && rc == 0; i++) {
    send_one(p, i, now_ms(), payload, size);
    do
      rc = receive(sink, 10000, &seq, &sent, &ts);
    while (rc == 0 && seq != i);
    if (rc == 0)
      printf("latency_ms %" PRId64 "\n", ts - sent);
  }

  /* Burst: everything at once; the last topic's timestamps say when each got through. */
  int64_t first = now_ms(), last = first;
  for (long i = 0; i < nburst && rc == 0; i++)
    send_one(p, nlat + i, now_ms(), payload, size);
  for (long got = 0; got < nburst && rc == 0;)
    if ((rc = receive(sink, 60000, &seq, &sent, &ts)) == 0 && seq >= nlat) {
      got++;
      last = ts > last ? ts : last;
    }
  if (rc == 0)
    printf("burst %ld %" PRId64 "\n", nburst, last - first);
  else
    fprintf(stderr, "bench-relay: a message did not come through in time\n");

  atomic_store(&stop, 1);
  for (int i = 0; i < HOPS; i++)
    pthread_join(hops[i], NULL);
  free(payload);
  rd_kafka_flush(p, 10000);
  rd_kafka_consumer_close(sink);
  rd_kafka_destroy(p);
  rd_kafka_destroy(sink);
  lmp_config_free(tables);
  return rc ? 1 : 0;
}
