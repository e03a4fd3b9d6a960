/* Reading the daemons' dead-letter topics: every partition from its start to the end it
 * had when lmpctl looked, or the one message at a position; and collecting the dead
 * letters a filter or a set of dlq_event_ids picks. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemons.h"
#include "dlq.h"
#include "lmp/runtime/service.h"

/* How long reading the topic may go without a message before lmpctl gives up. */
#define STALL_MS 30000

/* A consumer that only assigns partitions (READER_GROUP). */
static rd_kafka_t *reader(void) { return kafka_client(RD_KAFKA_CONSUMER, READER_GROUP); }

/* A dead-letter topic's partitions and their offsets now: [lo, hi) each. */
struct ends {
  int n;
  int64_t *lo, *hi;
};

static struct ends topic_ends(rd_kafka_t *rk, const char *topic) {
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
  const struct rd_kafka_metadata *md;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 15000);
  rd_kafka_topic_destroy(t);
  if (e)
    die("%s: metadata: %s", topic, rd_kafka_err2str(e));
  if (md->topic_cnt != 1 || md->topics[0].err)
    die("%s: %s", topic, md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "no such topic");
  struct ends x = {md->topics[0].partition_cnt, NULL, NULL};
  rd_kafka_metadata_destroy(md);
  x.lo = calloc((size_t)x.n + 1, sizeof(int64_t));
  x.hi = calloc((size_t)x.n + 1, sizeof(int64_t));
  if (x.lo == NULL || x.hi == NULL)
    die("out of memory");
  for (int p = 0; p < x.n; p++)
    if ((e = rd_kafka_query_watermark_offsets(rk, topic, p, &x.lo[p], &x.hi[p], 15000)))
      die("%s[%d]: end offsets: %s", topic, p, rd_kafka_err2str(e));
  return x;
}

static void ends_free(struct ends *x) {
  free(x->lo);
  free(x->hi);
}

/* Reads every partition of a daemon's dead-letter topic from its start to the end it
 * had when called (never "for a while": what arrives later is not waited for), giving
 * each message to visit until it returns non-zero; that value. */
static int scan_daemon(const char *daemon, visitor visit, void *ctx) {
  char topic[300];
  lmp_dead_letter_topic(&cfg, daemon, topic, sizeof(topic));
  rd_kafka_t *rk = reader();
  struct ends x = topic_ends(rk, topic);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(x.n ? x.n : 1);
  int pending = 0;
  for (int p = 0; p < x.n; p++)
    if (x.hi[p] > x.lo[p]) {
      rd_kafka_topic_partition_list_add(l, topic, p)->offset = x.lo[p];
      pending++;
    }
  rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
  if (e)
    die("%s: assign: %s", topic, rd_kafka_err2str(e));
  int64_t idle_ms = 0;
  int stop = 0;
  while (pending > 0 && !stop) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
    if (m == NULL || m->err) {
      if (m && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        fprintf(stderr, "lmpctl: %s: %s\n", topic, rd_kafka_message_errstr(m));
      if (m)
        rd_kafka_message_destroy(m);
      if ((idle_ms += 500) >= STALL_MS)
        die("%s: no progress in %d s with %d partitions not read to their end", topic, STALL_MS / 1000, pending);
      continue;
    }
    idle_ms = 0;
    int32_t p = m->partition;
    if (p >= 0 && p < x.n && m->offset < x.hi[p]) {
      stop = visit(daemon, m, ctx);
      if (m->offset + 1 >= x.hi[p])
        pending--;
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_topic_partition_list_destroy(l);
  ends_free(&x);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return stop;
}

/* scan_daemon over the daemon named, or over every daemon's until visit says stop. */
void dlq_scan(const char *daemon, visitor visit, void *ctx) {
  if (daemon) {
    scan_daemon(daemon, visit, ctx);
    return;
  }
  for (const struct lmp_daemon *d = lmp_daemons; d->name; d++)
    if (scan_daemon(d->name, visit, ctx))
      return;
}

/* The dead letter at a position, with its value; NULL (and why) when there is none. */
static struct dl *fetch_at(const char *daemon, int32_t partition, int64_t offset, char *why, size_t whylen) {
  char topic[300];
  lmp_dead_letter_topic(&cfg, daemon, topic, sizeof(topic));
  rd_kafka_t *rk = reader();
  struct ends x = topic_ends(rk, topic);
  struct dl *d = NULL;
  if (partition >= x.n) {
    snprintf(why, whylen, "%s has partitions 0 to %d", topic, x.n - 1);
  } else if (x.lo[partition] == x.hi[partition]) {
    snprintf(why, whylen, "partition %d of %s is empty", (int)partition, topic);
  } else if (offset < x.lo[partition] || offset >= x.hi[partition]) {
    snprintf(why, whylen, "partition %d of %s holds offsets %" PRId64 " to %" PRId64, (int)partition, topic,
             x.lo[partition], x.hi[partition] - 1);
  } else {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
      die("%s: assign: %s", topic, rd_kafka_err2str(e));
    snprintf(why, whylen, "no message at offset %" PRId64 " of partition %d", offset, (int)partition);
    int gap = 0; /* the partition goes on past the offset without it */
    for (int64_t waited = 0; d == NULL && !gap && waited < STALL_MS; waited += 500) {
      rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
      if (m && !m->err && m->partition == partition) {
        if (m->offset == offset)
          d = dlq_dl_from(daemon, m, 1);
        gap = m->offset > offset;
      }
      if (m)
        rd_kafka_message_destroy(m);
    }
  }
  ends_free(&x);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return d;
}

int dlq_pick_visit(const char *daemon, const rd_kafka_message_t *m, void *ctx) {
  struct pick *k = ctx;
  struct dl *d = dlq_dl_from(daemon, m, 0);
  const char *id = dlq_meta(d, "dlq_event_id");
  int want = k->sel == NULL && dlq_matches(d, k->f);
  for (size_t i = 0; k->sel && id && i < k->nsel && !want; i++)
    if (strcasecmp(k->sel[i].id, id) == 0) {
      want = 1;
      /* The outbox delivers at least once: one dead letter may be there twice. */
      if (!k->sel[i].seen) {
        k->sel[i].seen = 1;
        k->found++;
      }
    }
  dlq_dl_free(d);
  if (!want)
    return 0;
  dlq_dls_add(&k->out, dlq_dl_from(daemon, m, k->keep_value));
  return k->sel && k->found == k->nsel; /* every id found: stop reading */
}

/* Finds the dead letters the selectors name, each with its value; a selector that
 * names none is reported and counted in *missing. */
struct dls dlq_find(const struct selector *sel, size_t n, size_t *missing) {
  struct dls out = {0};
  size_t nids = 0;
  struct selector *ids = calloc(n ? n : 1, sizeof(*ids));
  if (ids == NULL)
    die("out of memory");
  *missing = 0;
  for (size_t i = 0; i < n; i++) {
    char why[400]; /* a topic name is up to 299 bytes */
    if (*sel[i].id) {
      ids[nids++] = sel[i];
      continue;
    }
    struct dl *d = fetch_at(sel[i].daemon, sel[i].partition, sel[i].offset, why, sizeof(why));
    if (d)
      dlq_dls_add(&out, d);
    else {
      fprintf(stderr, "lmpctl: no dead letter at %s: %s\n", sel[i].text, why);
      ++*missing;
    }
  }
  if (nids) {
    struct pick k = {.sel = ids, .nsel = nids, .keep_value = 1, .out = out};
    dlq_scan(NULL, dlq_pick_visit, &k);
    out = k.out;
    for (size_t i = 0; i < nids; i++) {
      int seen = 0;
      for (size_t j = 0; j < out.n && !seen; j++)
        seen = dlq_meta(out.v[j], "dlq_event_id") && strcasecmp(dlq_meta(out.v[j], "dlq_event_id"), ids[i].id) == 0;
      if (!seen) {
        fprintf(stderr, "lmpctl: no dead letter with dlq_event_id %s\n", ids[i].id);
        ++*missing;
      }
    }
  }
  free(ids);
  return out;
}
