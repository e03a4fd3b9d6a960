/* lmpctl for consumer lag: each group's committed offsets against the end offsets. */
#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "daemons.h"

/* One partition of a group: where it committed (-1: never), where the partition ends. */
struct part {
  const char *topic;
  int32_t partition;
  int64_t committed, lo, hi;
};

/* What is left to read: from the committed offset, or from the start of what the
 * partition still holds when the group never committed (the daemons' consumers start
 * at the earliest offset then). */
static int64_t lag_of(const struct part *p) {
  int64_t from = p->committed >= 0 ? p->committed : p->lo;
  return p->hi > from ? p->hi - from : 0;
}

/* A group id as an operator types one: printable ASCII, no spaces. */
static int group_ok(const char *g) {
  size_t n = strlen(g);
  if (n == 0 || n > 255)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isgraph((unsigned char)g[i]))
      return 0;
  return 1;
}

/* A coordinator still loading or moving (after a broker's start or a failover): ask again. */
static int coordinator_busy(rd_kafka_resp_err_t e) {
  return e == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS || e == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
         e == RD_KAFKA_RESP_ERR_NOT_COORDINATOR;
}

/* One ask for every committed offset of a group: a new list, or NULL with the reason
 * (*busy when the coordinator is not ready yet). */
static rd_kafka_topic_partition_list_t *ask_committed(rd_kafka_t *rk, const char *group, int *busy, char *err,
                                                      size_t errlen) {
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
  rd_kafka_AdminOptions_set_request_timeout(opt, 30000, err, errlen);
  /* No partitions: all the group has committed. */
  rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
  rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, opt, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
  rd_kafka_topic_partition_list_t *out = NULL;
  *busy = 0;
  if (ev == NULL || rd_kafka_event_error(ev)) {
    snprintf(err, errlen, "%s", ev ? rd_kafka_event_error_string(ev) : "no answer in 60 s");
    *busy = ev && coordinator_busy(rd_kafka_event_error(ev));
  } else {
    size_t n;
    const rd_kafka_group_result_t **res =
        rd_kafka_ListConsumerGroupOffsets_result_groups(rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
    const rd_kafka_error_t *ge = n == 1 ? rd_kafka_group_result_error(res[0]) : NULL;
    if (n != 1 || ge) {
      snprintf(err, errlen, "%s", ge ? rd_kafka_error_string(ge) : "no result for the group");
      *busy = ge && coordinator_busy(rd_kafka_error_code(ge));
    }
    else
      out = rd_kafka_topic_partition_list_copy(rd_kafka_group_result_partitions(res[0]));
  }
  if (ev)
    rd_kafka_event_destroy(ev);
  rd_kafka_ListConsumerGroupOffsets_destroy(req);
  rd_kafka_AdminOptions_destroy(opt);
  rd_kafka_queue_destroy(q);
  return out;
}

/* Every committed offset of a group, asking again for up to 30 s while its
 * coordinator loads. */
static rd_kafka_topic_partition_list_t *committed(rd_kafka_t *rk, const char *group, char *err, size_t errlen) {
  int busy = 1;
  rd_kafka_topic_partition_list_t *out = NULL;
  for (int i = 0; out == NULL && busy && i < 30; i++) {
    if (i)
      sleep(1);
    out = ask_committed(rk, group, &busy, err, errlen);
  }
  return out;
}

static int partition_count(rd_kafka_t *rk, const char *topic) {
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
  const struct rd_kafka_metadata *md;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 15000);
  rd_kafka_topic_destroy(t);
  if (e)
    die("%s: metadata: %s", topic, rd_kafka_err2str(e));
  int n = md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : 0;
  rd_kafka_metadata_destroy(md);
  return n;
}

static int by_topic(const void *a, const void *b) {
  const struct part *x = a, *y = b;
  int c = strcmp(x->topic, y->topic);
  return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* Every partition of every topic the group committed to, those it has not committed
 * to included, each with its offsets. *n is their count. */
static struct part *group_parts(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *c, size_t *n) {
  size_t cap = 0;
  struct part *ps = NULL;
  *n = 0;
  for (int i = 0; i < c->cnt; i++) {
    const char *topic = c->elems[i].topic;
    int seen = 0;
    for (int k = 0; k < i && !seen; k++)
      seen = strcmp(c->elems[k].topic, topic) == 0;
    int parts = seen ? 0 : partition_count(rk, topic);
    for (int32_t p = 0; p < parts; p++) {
      if (*n == cap && (ps = realloc(ps, (cap = cap ? 2 * cap : 64) * sizeof(*ps))) == NULL)
        die("out of memory");
      struct part *x = &ps[(*n)++];
      *x = (struct part){topic, p, -1, 0, 0};
      for (int k = 0; k < c->cnt; k++)
        if (c->elems[k].partition == p && strcmp(c->elems[k].topic, topic) == 0 && !c->elems[k].err)
          x->committed = c->elems[k].offset;
      rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, &x->lo, &x->hi, 15000);
      if (e)
        die("%s[%d]: end offsets: %s", topic, (int)p, rd_kafka_err2str(e));
    }
  }
  if (*n > 1)
    qsort(ps, *n, sizeof(*ps), by_topic);
  return ps;
}

static void print_table(const char *group, const struct part *ps, size_t n, int64_t total) {
  printf("group %s\n", group);
  if (n == 0) {
    printf("  no committed offsets\n");
    return;
  }
  printf("  %-48s %9s %12s %12s %10s\n", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG");
  for (size_t i = 0; i < n; i++) {
    char c[24] = "-";
    if (ps[i].committed >= 0)
      snprintf(c, sizeof(c), "%" PRId64, ps[i].committed);
    printf("  %-48s %9d %12s %12" PRId64 " %10" PRId64 "\n", ps[i].topic, (int)ps[i].partition, c, ps[i].hi,
           lag_of(&ps[i]));
  }
  printf("  %-48s %9s %12s %12s %10" PRId64 "\n", "total", "", "", "", total);
}

static json_t *group_json(const char *group, const struct part *ps, size_t n, int64_t total) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, json_pack("{s:s, s:i, s:o, s:I, s:I}", "topic", ps[i].topic, "partition",
                                       (int)ps[i].partition, "committed",
                                       ps[i].committed >= 0 ? json_integer(ps[i].committed) : json_null(), "end",
                                       (json_int_t)ps[i].hi, "lag", (json_int_t)lag_of(&ps[i])));
  return json_pack("{s:s, s:o, s:I}", "group", group, "partitions", a, "lag", (json_int_t)total);
}

/* Prints one group; 0, or 1 when the broker would not say. */
static int report(rd_kafka_t *rk, const char *group, json_t *all) {
  char err[512];
  rd_kafka_topic_partition_list_t *c = committed(rk, group, err, sizeof(err));
  if (c == NULL) {
    fprintf(stderr, "lmpctl: group %s: %s\n", group, err);
    return 1;
  }
  size_t n;
  struct part *ps = group_parts(rk, c, &n);
  int64_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += lag_of(&ps[i]);
  if (all)
    json_array_append_new(all, group_json(group, ps, n, total));
  else
    print_table(group, ps, n, total);
  free(ps);
  rd_kafka_topic_partition_list_destroy(c);
  return 0;
}

int cmd_lag(char **args, int nargs, const struct ctl_opts *o) {
  for (int i = 0; i < o->ngroups; i++)
    if (!group_ok(o->groups[i]))
      die_usage("--group '%s' is not a group id (1 to 255 printable characters without spaces)", o->groups[i]);
  rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, NULL);
  json_t *all = o->json ? json_array() : NULL;
  int rc = 0;
  if (o->ngroups)
    for (int i = 0; i < o->ngroups; i++)
      rc |= report(rk, o->groups[i], all);
  else
    for (const struct lmp_daemon *d = lmp_daemons; d->name; d++) {
      char group[300];
      snprintf(group, sizeof(group), "lmp-%s", d->name);
      rc |= report(rk, group, all);
    }
  if (all) {
    json_dumpf(all, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(all);
  }
  rd_kafka_destroy(rk);
  return rc;
}
