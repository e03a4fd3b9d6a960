/* lmpctl for operators of the broker: topics, permissions, consumer groups. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "daemons.h"
#include "lmp/runtime/service.h"

static int is_event(const struct lmp_schema *s) { return strchr(s->name, '.') != NULL; }

#define MAX_TOPICS 64

/* Every topic of the flow: one per event type, and each daemon's dead letters and
 * replays. The number of names. */
static size_t flow_topics(char names[][LMP_TOPIC_NAME_MAX]) {
  size_t n = 0;
  for (size_t i = 0; i < lmp_schemas_count(schemas()) && n < MAX_TOPICS; i++)
    if (is_event(lmp_schemas_at(schemas(), i)))
      n += lmp_event_topics(&cfg, lmp_schemas_at(schemas(), i)->name, names + n, MAX_TOPICS - n);
  if (n > MAX_TOPICS - 10)
    die("more topics than lmpctl makes room for (%d)", MAX_TOPICS);
  for (const struct lmp_daemon *d = lmp_daemons; d->name && n + 2 <= MAX_TOPICS; d++) {
    lmp_dead_letter_topic(&cfg, d->name, names[n++], 300);
    lmp_replay_topic(&cfg, d->name, names[n++], 300);
  }
  return n;
}

/* ---- topics ------------------------------------------------------------------------ */

/* Every topic of the flow (flow_topics). */
int cmd_topics_create(char **args, int nargs, const struct ctl_opts *o) {
  int partitions = o->partitions > 0 ? o->partitions : cfg.partitions, wait_s = o->wait_s > 0 ? o->wait_s : 30;
  rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, NULL);
  rd_kafka_NewTopic_t *topics[MAX_TOPICS];
  char names[MAX_TOPICS][300];
  char err[256];
  size_t n = flow_topics(names);
  for (size_t i = 0; i < n; i++)
    topics[i] = rd_kafka_NewTopic_new(names[i], partitions, -1, err, sizeof(err));
  int rc = 1;
  time_t deadline = time(NULL) + wait_s;
  do {
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opt, 10000, err, sizeof(err));
    rd_kafka_AdminOptions_set_request_timeout(opt, 10000, err, sizeof(err));
    rd_kafka_CreateTopics(rk, topics, n, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    int retry = 0;
    if (ev == NULL || rd_kafka_event_error(ev)) {
      fprintf(stderr, "lmpctl: create topics: %s\n", ev ? rd_kafka_event_error_string(ev) : "timed out");
      retry = 1;
    } else {
      size_t cnt;
      const rd_kafka_topic_result_t **res =
          rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
      rc = 0;
      for (size_t i = 0; i < cnt; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
          printf("created %s (%d partitions)\n", rd_kafka_topic_result_name(res[i]), partitions);
        else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
          printf("exists  %s\n", rd_kafka_topic_result_name(res[i]));
        else {
          fprintf(stderr, "lmpctl: %s: %s\n", rd_kafka_topic_result_name(res[i]),
                  rd_kafka_topic_result_error_string(res[i]));
          rc = 1;
          retry = 1;
        }
      }
    }
    if (ev)
      rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    if (!retry)
      break;
    sleep(1);
  } while (time(NULL) < deadline);
  for (size_t i = 0; i < n; i++)
    rd_kafka_NewTopic_destroy(topics[i]);
  rd_kafka_destroy(rk);
  return rc;
}


/* Every partition of the topics under the prefix (the event topics and the dead
 * letters), for a group's committed offsets. */
static rd_kafka_topic_partition_list_t *prefix_partitions(rd_kafka_t *rk) {
  const struct rd_kafka_metadata *md;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, 15000);
  if (e)
    die("metadata: %s", rd_kafka_err2str(e));
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(64);
  for (int i = 0; i < md->topic_cnt; i++)
    if (strncmp(md->topics[i].topic, cfg.topic_prefix, strlen(cfg.topic_prefix)) == 0)
      for (int p = 0; p < md->topics[i].partition_cnt; p++)
        rd_kafka_topic_partition_list_add(l, md->topics[i].topic, md->topics[i].partitions[p].id);
  rd_kafka_metadata_destroy(md);
  return l;
}

/* Gives group `to` the committed offsets of group `from`, so a daemon renamed (or
 * given a new group) resumes where the old one stopped instead of from the start.
 * Run it with both groups stopped. */
int cmd_group_copy(char **args, int nargs, const struct ctl_opts *o) {
  const char *from = args[0], *to = args[1];
  rd_kafka_t *src = kafka_client(RD_KAFKA_CONSUMER, from), *dst = kafka_client(RD_KAFKA_CONSUMER, to);
  rd_kafka_topic_partition_list_t *l = prefix_partitions(src);
  rd_kafka_resp_err_t e = rd_kafka_committed(src, l, 15000);
  if (e)
    die("committed offsets of %s: %s", from, rd_kafka_err2str(e));
  rd_kafka_topic_partition_list_t *set = rd_kafka_topic_partition_list_new(l->cnt);
  for (int i = 0; i < l->cnt; i++)
    if (l->elems[i].offset >= 0)
      rd_kafka_topic_partition_list_add(set, l->elems[i].topic, l->elems[i].partition)->offset = l->elems[i].offset;
  int rc = 0;
  if (set->cnt == 0) {
    fprintf(stderr, "lmpctl: group %s has no committed offsets under prefix '%s'\n", from, cfg.topic_prefix);
    rc = 1;
  } else if ((e = rd_kafka_commit(dst, set, 0)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    fprintf(stderr, "lmpctl: committing for %s: %s (is the group stopped?)\n", to, rd_kafka_err2str(e));
    rc = 1;
  } else {
    for (int i = 0; i < set->cnt; i++)
      printf("%s[%d] %lld\n", set->elems[i].topic, set->elems[i].partition, (long long)set->elems[i].offset);
    printf("copied %d committed offsets from %s to %s\n", set->cnt, from, to);
  }
  rd_kafka_topic_partition_list_destroy(set);
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_destroy(src);
  rd_kafka_destroy(dst);
  return rc;
}


int cmd_topics_list(char **args, int nargs, const struct ctl_opts *o) {
  char names[MAX_TOPICS][300];
  size_t n = flow_topics(names);
  for (size_t i = 0; i < n; i++)
    printf("%s\n", names[i]);
  return 0;
}

/* Allows a principal what a file lists, one permission a line:
 *   topic NAME read|write      group NAME read
 *   topic-prefix NAME read|write   group-prefix NAME read
 * (`lmp-<daemon> --print-acls` writes a daemon's). Already present ACLs stay. */
int cmd_acls_apply(char **args, int nargs, const struct ctl_opts *o) {
  if (nargs < 1 || nargs > 2)
    die("acls apply PRINCIPAL [FILE]");
  const char *principal = args[0];
  FILE *f = nargs == 2 ? fopen(args[1], "r") : stdin;
  if (f == NULL)
    die("%s: cannot open", args[1]);
  rd_kafka_AclBinding_t *acls[256];
  size_t n = 0;
  char line[512], err[512];
  int lineno = 0;
  while (fgets(line, sizeof(line), f)) {
    char kind[32], name[300], op[16];
    lineno++;
    if (line[0] == '#' || line[0] == '\n')
      continue;
    if (n == sizeof(acls) / sizeof(acls[0]))
      die("line %d: more than %zu permissions in one file", lineno, n);
    if (sscanf(line, "%31s %299s %15s", kind, name, op) != 3)
      die("line %d: expected 'topic|group[-prefix] NAME read|write'", lineno);
    int prefix = strstr(kind, "-prefix") != NULL;
    rd_kafka_ResourceType_t type = strncmp(kind, "topic", 5) == 0 ? RD_KAFKA_RESOURCE_TOPIC
                                   : strncmp(kind, "group", 5) == 0 ? RD_KAFKA_RESOURCE_GROUP
                                                                     : RD_KAFKA_RESOURCE_UNKNOWN;
    rd_kafka_AclOperation_t operation = strcmp(op, "read") == 0 ? RD_KAFKA_ACL_OPERATION_READ
                                        : strcmp(op, "write") == 0 ? RD_KAFKA_ACL_OPERATION_WRITE
                                                                   : RD_KAFKA_ACL_OPERATION_UNKNOWN;
    if (type == RD_KAFKA_RESOURCE_UNKNOWN || operation == RD_KAFKA_ACL_OPERATION_UNKNOWN ||
        (type == RD_KAFKA_RESOURCE_GROUP && operation != RD_KAFKA_ACL_OPERATION_READ))
      die("line %d: '%s %s %s' is not a permission lmpctl grants", lineno, kind, name, op);
    acls[n] = rd_kafka_AclBinding_new(type, name,
                                      prefix ? RD_KAFKA_RESOURCE_PATTERN_PREFIXED : RD_KAFKA_RESOURCE_PATTERN_LITERAL,
                                      principal, "*", operation, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, err, sizeof(err));
    if (acls[n] == NULL)
      die("line %d: %s", lineno, err);
    n++;
  }
  if (f != stdin)
    fclose(f);
  rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, NULL);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATEACLS);
  rd_kafka_AdminOptions_set_request_timeout(opt, 30000, err, sizeof(err));
  rd_kafka_CreateAcls(rk, acls, n, opt, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
  int rc = 0;
  if (ev == NULL || rd_kafka_event_error(ev)) {
    fprintf(stderr, "lmpctl: create ACLs: %s\n", ev ? rd_kafka_event_error_string(ev) : "timed out");
    rc = 1;
  } else {
    size_t cnt;
    const rd_kafka_acl_result_t **res = rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &cnt);
    for (size_t i = 0; i < cnt; i++) {
      const rd_kafka_error_t *e = rd_kafka_acl_result_error(res[i]);
      if (e) {
        fprintf(stderr, "lmpctl: ACL %zu for %s: %s\n", i + 1, principal, rd_kafka_error_string(e));
        rc = 1;
      }
    }
    if (rc == 0)
      printf("%zu permissions for %s\n", n, principal);
  }
  if (ev)
    rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(opt);
  rd_kafka_queue_destroy(q);
  rd_kafka_AclBinding_destroy_array(acls, n);
  rd_kafka_destroy(rk);
  return rc;
}
