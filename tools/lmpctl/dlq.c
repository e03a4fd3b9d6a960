/* lmpctl for dead letters: list them, show one, replay them to the daemon that
 * dead-lettered them. Each daemon has its own dead-letter topic, which only its
 * principal may write, and its own replay topic, which only it reads: so the topic a
 * letter is on says whose it is, and a replay can make no daemon but that one act. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "daemons.h"
#include "dlq.h"
#include "lmp/kafka.h"
#include "lmp/service.h"
#include "lmp/text.h"

/* The longest event_id a daemon's inbox takes (common/src/message.c, LMP_ID_MAX). */
#define EVENT_ID_MAX 128
#define REPLAY_PREFIX "replay:"
/* How many dead letters list shows, and a replay by filters takes, without --limit. */
#define DEFAULT_LIMIT 100

/* ---- list ---------------------------------------------------------------------------- */

int cmd_dlq_list(char **args, int nargs, const struct ctl_opts *o) {
  struct filter f = dlq_filter_of(o);
  struct pick k = {.f = &f};
  dlq_scan(f.daemon, dlq_pick_visit, &k);
  dlq_sort_by_time(&k.out);
  size_t limit = o->limit ? (size_t)o->limit : DEFAULT_LIMIT, first = k.out.n > limit ? k.out.n - limit : 0;
  if (o->json) {
    json_t *a = json_array();
    for (size_t i = first; i < k.out.n; i++)
      json_array_append_new(a, dlq_list_json(k.out.v[i]));
    dlq_print_json(a);
  } else {
    printf("%-32s %-24s %-40s %-12s %-20s %s\n", "DEAD LETTER", "TIME", "SOURCE TOPIC", "SOURCE", "ERROR",
           "MESSAGE");
    for (size_t i = first; i < k.out.n; i++)
      dlq_list_line(k.out.v[i]);
  }
  fprintf(stderr, "%zu dead letter%s of %s%s", k.out.n, k.out.n == 1 ? "" : "s",
          f.daemon ? f.daemon : "every daemon", dlq_has_filter(o) ? " match" : "");
  if (first)
    fprintf(stderr, "; the newest %zu shown (--limit)", limit);
  fputc('\n', stderr);
  dlq_dls_free(&k.out);
  return 0;
}

/* ---- show ---------------------------------------------------------------------------- */

int cmd_dlq_show(char **args, int nargs, const struct ctl_opts *o) {
  struct selector sel;
  size_t missing;
  dlq_parse_selector(args[0], &sel);
  struct dls l = dlq_find(&sel, 1, &missing);
  if (l.n && o->json)
    dlq_show_json(l.v[0]);
  else if (l.n)
    dlq_show_text(l.v[0]);
  dlq_dls_free(&l);
  return missing ? 1 : 0;
}

/* ---- replay -------------------------------------------------------------------------- */

/* One dead letter to produce again, and what became of it. */
struct replay {
  const struct dl *d;
  char event_id[EVENT_ID_MAX + 1];
  char topic[300];         /* the replay topic of the letter's daemon */
  rd_kafka_resp_err_t err; /* RD_KAFKA_RESP_ERR__IN_PROGRESS until its delivery report */
  int32_t partition;
  int64_t offset;
};

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
static const char *refusal(const struct dl *d, char *why, size_t len) {
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

static void print_plan(const struct replay *r) {
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
static size_t send_all(struct replay *rs, size_t n) {
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

/* The dead letters to replay, oldest first: those the selectors name, or every one
 * the filters match (the newest --limit of them, as dlq list shows), each once. */
static struct dls chosen(char **args, int nargs, const struct ctl_opts *o, size_t *missing) {
  *missing = 0;
  if (nargs <= 0) {
    struct filter f = dlq_filter_of(o);
    struct pick k = {.f = &f, .keep_value = 1};
    dlq_scan(f.daemon, dlq_pick_visit, &k);
    dlq_sort_by_time(&k.out);
    size_t limit = o->limit ? (size_t)o->limit : DEFAULT_LIMIT;
    size_t first = k.out.n > limit ? k.out.n - limit : 0;
    for (size_t i = 0; i < first; i++)
      dlq_dl_free(k.out.v[i]);
    if (first)
      memmove(k.out.v, k.out.v + first, (k.out.n - first) * sizeof(*k.out.v));
    k.out.n -= first;
    return k.out;
  }
  struct selector *sel = calloc((size_t)nargs, sizeof(*sel));
  if (sel == NULL)
    die("out of memory");
  for (int i = 0; i < nargs; i++)
    dlq_parse_selector(args[i], &sel[i]);
  struct dls l = dlq_find(sel, (size_t)nargs, missing);
  free(sel);
  dlq_sort_by_time(&l);
  size_t kept = 0;
  for (size_t i = 0; i < l.n; i++) {
    int dup = kept && l.v[kept - 1]->daemon == l.v[i]->daemon && l.v[kept - 1]->partition == l.v[i]->partition &&
              l.v[kept - 1]->offset == l.v[i]->offset;
    if (dup)
      dlq_dl_free(l.v[i]);
    else
      l.v[kept++] = l.v[i];
  }
  l.n = kept;
  return l;
}

/* A replay by filters takes what matches, which the operator has not seen one by one:
 * it shows its plan first and sends only with --yes, or when the operator answers yes
 * at a terminal. */
static int confirmed(const struct ctl_opts *o, size_t n) {
  if (o->yes)
    return 1;
  if (!isatty(STDIN_FILENO)) {
    fprintf(stderr, "lmpctl: nothing sent: a replay by filters sends only what its plan above shows; run it "
            "again with --yes to send these %zu\n", n);
    return 0;
  }
  fprintf(stderr, "replay these %zu dead letter%s? [y/N] ", n, n == 1 ? "" : "s");
  char answer[8] = "";
  return fgets(answer, sizeof(answer), stdin) && (answer[0] == 'y' || answer[0] == 'Y');
}

int cmd_dlq_replay(char **args, int nargs, const struct ctl_opts *o) {
  if (nargs == 0 && !dlq_has_filter(o))
    die_usage("dlq replay needs dead letters: DAEMON/PARTITION:OFFSET or dlq_event_id selectors, or --daemon, "
              "--topic, --code or --since to take every match");
  if (nargs > 0 && (dlq_has_filter(o) || o->limit))
    die_usage("dlq replay takes selectors or filters (--daemon, --topic, --code, --since, --limit), not both");
  size_t missing;
  struct dls l = chosen(args, nargs, o, &missing);
  struct replay *rs = calloc(l.n ? l.n : 1, sizeof(*rs));
  if (rs == NULL)
    die("out of memory");
  size_t n = 0, refused = 0;
  for (size_t i = 0; i < l.n; i++) {
    char why[400], where[80];
    const char *no = refusal(l.v[i], why, sizeof(why));
    if (no) {
      dlq_position(l.v[i], where, sizeof(where));
      fprintf(stderr, "lmpctl: refused %s: ", where);
      dlq_print_text(stderr, no, strlen(no)); /* it may quote the dead letter's headers */
      fputc('\n', stderr);
      refused++;
      continue;
    }
    rs[n] = (struct replay){.d = l.v[i], .err = RD_KAFKA_RESP_ERR__IN_PROGRESS};
    snprintf(rs[n].event_id, sizeof(rs[n].event_id), REPLAY_PREFIX "%s", dlq_meta(l.v[i], "dlq_event_id"));
    lmp_replay_topic(&cfg, l.v[i]->daemon, rs[n].topic, sizeof(rs[n].topic));
    n++;
  }
  int bulk = nargs == 0, send = n && !o->dry_run;
  if (o->dry_run || (bulk && n))
    for (size_t i = 0; i < n; i++)
      print_plan(&rs[i]);
  if (send && bulk && !confirmed(o, n))
    send = 0;
  size_t failed = send ? send_all(rs, n) : 0;
  size_t done = send ? n - failed : 0;
  fprintf(stderr, "%zu dead letter%s %s, %zu refused, %zu not found, %zu not delivered\n",
          o->dry_run || !send ? n : done, (o->dry_run || !send ? n : done) == 1 ? "" : "s",
          o->dry_run ? "would be replayed (dry run: nothing sent)" : send ? "replayed" : "not sent", refused, missing,
          failed);
  if (l.n + missing == 0)
    fprintf(stderr, "lmpctl: no dead letter matches\n");
  int rc = refused || missing || failed || l.n + missing == 0 || (n && !send && !o->dry_run) ? 1 : 0;
  free(rs);
  dlq_dls_free(&l);
  return rc;
}

/* What the replay principal needs, and nothing more: read every daemon's dead letters,
 * write every daemon's replays. For lmpctl acls apply. */
int cmd_dlq_acls(char **args, int nargs, const struct ctl_opts *o) {
  char topic[300];
  for (const struct lmp_daemon *d = lmp_daemons; d->name; d++) {
    lmp_dead_letter_topic(&cfg, d->name, topic, sizeof(topic));
    printf("topic %s read\n", topic);
    lmp_replay_topic(&cfg, d->name, topic, sizeof(topic));
    printf("topic %s write\n", topic);
  }
  printf("group %s read\n", READER_GROUP);
  return 0;
}
