/* lmpctl dlq's private header: a dead letter as lmpctl holds one, the filters and
 * selectors that pick dead letters, and the functions the dlq files share, each group
 * under the name of the file it is in. The commands themselves are in dlq.c. */
#ifndef DLQ_H
#define DLQ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ctl.h"

/* The longest event_id a daemon's inbox takes (common/src/message.c, LMP_ID_MAX). */
#define EVENT_ID_MAX 128
#define REPLAY_PREFIX "replay:"

struct hdr {
  char *name;
  char *value; /* NUL-terminated copy; len bytes before the NUL */
  size_t len;
};

/* One dead letter as read from a daemon's dead-letter topic. */
struct dl {
  const char *daemon;     /* whose topic it is on (lmp_daemons) */
  int32_t partition;
  int64_t offset, ts_ms;  /* ts_ms -1: no timestamp */
  char *key;              /* NULL: no key */
  size_t keylen;
  char *value;            /* NULL unless kept */
  size_t len;
  struct hdr *h;
  size_t nh, norig;       /* the original's headers come first, norig of them */
};

struct dls {
  struct dl **v;
  size_t n, cap;
};

/* --daemon, --topic, --code and --since as read from the command line. */
struct filter {
  const char *daemon; /* NULL: every daemon's dead letters */
  const char *topic, *code;
  int64_t since_ms; /* 0: any time */
};

/* A dead letter named on the command line: its position, or its dlq_event_id. */
struct selector {
  const char *daemon; /* the position's; NULL for an id */
  int32_t partition;
  int64_t offset;
  char id[37]; /* "" for a position */
  const char *text;
  int seen; /* found on the topic already */
};

/* Collecting the dead letters a filter, or a set of ids, picks. */
struct pick {
  const struct filter *f;
  struct selector *sel; /* by dlq_event_id when not NULL */
  size_t nsel, found;
  int keep_value;
  struct dls out;
};

/* One dead letter to produce again, and what became of it. */
struct replay {
  const struct dl *d;
  char event_id[EVENT_ID_MAX + 1];
  char topic[300];         /* the replay topic of the letter's daemon */
  rd_kafka_resp_err_t err; /* RD_KAFKA_RESP_ERR__IN_PROGRESS until its delivery report */
  int32_t partition;
  int64_t offset;
};

/* A consumer that only assigns partitions: the group id is a name librdkafka wants
 * for that, never joined and never committed to. */
#define READER_GROUP "lmpctl-dlq-reader"

/* Given each message read; non-zero stops the reading. */
typedef int (*visitor)(const char *daemon, const rd_kafka_message_t *m, void *ctx);

/* A dead letter's parts (dlq_letter.c). */
void dlq_dl_free(struct dl *d);
void dlq_dls_free(struct dls *l);
void dlq_dls_add(struct dls *l, struct dl *d);
/* A copy of a message of a daemon's dead-letter topic; its value only if keep_value. */
struct dl *dlq_dl_from(const char *daemon, const rd_kafka_message_t *m, int keep_value);
const char *dlq_meta(const struct dl *d, const char *name);
const char *dlq_orig(const struct dl *d, const char *name);
int64_t dlq_decimal(const char *s);
/* Oldest first. */
void dlq_sort_by_time(struct dls *l);

/* The command line (dlq_args.c): filters and selectors, and which dead letters a filter takes. */
struct filter dlq_filter_of(const struct ctl_opts *o);
int dlq_has_filter(const struct ctl_opts *o);
void dlq_parse_selector(const char *s, struct selector *sel);
int dlq_topic_of(const char *topic, const char *event_type);
int dlq_matches(const struct dl *d, const struct filter *f);

/* Reading the dead-letter topics (dlq_read.c). */
void dlq_scan(const char *daemon, visitor visit, void *ctx);
/* A visitor that collects into a struct pick (ctx). */
int dlq_pick_visit(const char *daemon, const rd_kafka_message_t *m, void *ctx);
struct dls dlq_find(const struct selector *sel, size_t n, size_t *missing);

/* Text for a terminal, and JSON (dlq_format.c). */
void dlq_print_text(FILE *f, const char *s, size_t n);
const char *dlq_or_dash(const char *s);
void dlq_put(const char *s);
void dlq_print_key(const struct dl *d);
/* Prints j on stdout and drops the reference. */
void dlq_print_json(json_t *j);
void dlq_position(const struct dl *d, char *out, size_t n);
json_t *dlq_list_json(const struct dl *d);
void dlq_list_line(const struct dl *d);
void dlq_show_json(const struct dl *d);
void dlq_show_text(const struct dl *d);

/* Replaying (dlq_replay.c). */
const char *dlq_refusal(const struct dl *d, char *why, size_t len);
void dlq_print_plan(const struct replay *r);
size_t dlq_send_all(struct replay *rs, size_t n);

#endif
