/* lmpctl for dead letters: list them, show one, replay them to the daemon that
 * dead-lettered them. Each daemon has its own dead-letter topic, which only its
 * principal may write, and its own replay topic, which only it reads: so the topic a
 * letter is on says whose it is, and a replay can make no daemon but that one act. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "daemons.h"
#include "dlq.h"
#include "lmp/runtime/service.h"

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
    const char *no = dlq_refusal(l.v[i], why, sizeof(why));
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
      dlq_print_plan(&rs[i]);
  if (send && bulk && !confirmed(o, n))
    send = 0;
  size_t failed = send ? dlq_send_all(rs, n) : 0;
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
