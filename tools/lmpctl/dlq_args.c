/* lmpctl dlq's command line: the filters (--daemon, --topic, --code, --since) and which
 * dead letters they take, and the selectors that name one dead letter by its position
 * or its dlq_event_id. What it cannot take ends lmpctl with exit status 2. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemons.h"
#include "dlq.h"
#include "lmp/runtime/service.h"

/* --since: RFC 3339 (2026-11-28T09:30:00Z, fractions and offsets allowed) or an age
 * made of whole numbers of s, m, h, d and w (90s, 2h, 1h30m). */
static int parse_age(const char *s, int64_t *ms) {
  int64_t total = 0;
  if (*s == '\0')
    return -1;
  while (*s) {
    if (!isdigit((unsigned char)*s))
      return -1;
    int64_t n = 0;
    while (isdigit((unsigned char)*s) && n < 100000000)
      n = n * 10 + (*s++ - '0');
    const char *units = "smhdw";
    const int64_t unit_s[] = {1, 60, 3600, 86400, 604800};
    const char *u = *s ? strchr(units, *s) : NULL;
    if (u == NULL || n >= 100000000)
      return -1;
    total += n * unit_s[u - units];
    s++;
    if (total > 100LL * 366 * 86400)
      return -1;
  }
  *ms = total * 1000;
  return 0;
}

static int digits(const char *s, int n, int *out) {
  *out = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i]))
      return -1;
    *out = *out * 10 + (s[i] - '0');
  }
  return 0;
}

static int parse_rfc3339(const char *s, int64_t *ms) {
  int y, mo, d, h, mi, sec, frac_ms = 0, off = 0;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
      digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) ||
      s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
    return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
    return -1;
  const char *p = s + 19;
  if (*p == '.') {
    int scale = 100, n = 0;
    for (p++; isdigit((unsigned char)*p); p++, n++) {
      frac_ms += (*p - '0') * scale;
      scale /= 10;
    }
    if (n == 0)
      return -1;
  }
  if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
    off = 0;
  } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
    int oh, om;
    if (digits(p + 1, 2, &oh) || digits(p + 4, 2, &om) || oh > 23 || om > 59)
      return -1;
    off = (*p == '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    return -1;
  }
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi,
                  .tm_sec = sec > 59 ? 59 : sec};
  time_t t = timegm(&tm);
  struct tm back;
  gmtime_r(&t, &back);
  if (back.tm_mday != d) /* 29 February of a year that has none */
    return -1;
  *ms = ((int64_t)t - off * 60) * 1000 + frac_ms;
  return 0;
}

/* A topic name as Kafka allows one. */
static int topic_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 249)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
      return 0;
  return 1;
}

/* An error code as the runtime writes them: HANDLER_REJECTED. */
static int code_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isupper((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
      return 0;
  return 1;
}

/* A daemon of the flow by name, as lmp_daemons spells it; dies otherwise. */
static const char *daemon_named(const char *s, size_t n) {
  for (const struct lmp_daemon *d = lmp_daemons; d->name; d++)
    if (strlen(d->name) == n && strncmp(d->name, s, n) == 0)
      return d->name;
  char *t = ctl_printable(s, n);
  fprintf(stderr, "lmpctl: '%s' is not a daemon of the flow (", t);
  for (const struct lmp_daemon *d = lmp_daemons; d->name; d++)
    fprintf(stderr, "%s%s", d == lmp_daemons ? "" : ", ", d->name);
  fprintf(stderr, ")\n");
  free(t);
  exit(2);
}

struct filter dlq_filter_of(const struct ctl_opts *o) {
  struct filter f = {o->daemon ? daemon_named(o->daemon, strlen(o->daemon)) : NULL, o->topic, o->code, 0};
  if (o->topic && !topic_name_ok(o->topic))
    die_usage("--topic '%s' is not a topic name (1 to 249 of a-z A-Z 0-9 . _ -)", o->topic);
  if (o->code && !code_ok(o->code))
    die_usage("--code '%s' is not an error code such as HANDLER_REJECTED", o->code);
  if (o->since) {
    int64_t age;
    if (parse_age(o->since, &age) == 0)
      f.since_ms = (int64_t)time(NULL) * 1000 - age;
    else if (parse_rfc3339(o->since, &f.since_ms) < 0)
      die_usage("--since '%s' is neither an RFC 3339 time (2026-11-28T09:30:00Z) nor an age (90s, 15m, 2h, 7d)",
                o->since);
  }
  return f;
}

int dlq_has_filter(const struct ctl_opts *o) { return o->daemon || o->topic || o->code || o->since; }

/* DAEMON/PARTITION:OFFSET (as list shows a position), or a dlq_event_id (a UUID, as
 * the runtime makes them). */
void dlq_parse_selector(const char *s, struct selector *sel) {
  memset(sel, 0, sizeof(*sel));
  sel->text = s;
  const char *colon = strchr(s, ':'), *slash = strchr(s, '/');
  if (colon && (slash == NULL || slash > colon))
    die_usage("'%s' names no daemon: DAEMON/PARTITION:OFFSET, as dlq list shows it", s);
  if (slash) {
    sel->daemon = daemon_named(s, (size_t)(slash - s));
    s = slash + 1;
    colon = strchr(s, ':');
    if (colon == NULL)
      die_usage("'%s' is not DAEMON/PARTITION:OFFSET (two whole numbers after the daemon)", sel->text);
  }
  if (colon) {
    char part[16];
    size_t pl = (size_t)(colon - s);
    int64_t p = -1, off = dlq_decimal(colon + 1);
    if (pl > 0 && pl < sizeof(part)) {
      memcpy(part, s, pl);
      part[pl] = '\0';
      p = dlq_decimal(part);
    }
    if (p < 0 || p > INT32_MAX || off < 0)
      die_usage("'%s' is not DAEMON/PARTITION:OFFSET (two whole numbers) nor a dlq_event_id", sel->text);
    sel->partition = (int32_t)p;
    sel->offset = off;
    return;
  }
  size_t n = strlen(s);
  for (size_t i = 0; i < n; i++)
    if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
      n = 0;
  if (n != 36)
    die_usage("'%s' is not DAEMON/PARTITION:OFFSET nor a dlq_event_id (a UUID)", s);
  for (size_t i = 0; i < n; i++)
    sel->id[i] = (char)tolower((unsigned char)s[i]);
}

/* Whether a topic is one an event type is on (one per writer of a type several
 * daemons write). */
int dlq_topic_of(const char *topic, const char *event_type) {
  char t[8][LMP_TOPIC_NAME_MAX];
  size_t n = lmp_event_topics(&cfg, event_type, t, 8);
  for (size_t i = 0; i < n && i < 8; i++)
    if (strcmp(t[i], topic) == 0)
      return 1;
  return 0;
}

int dlq_matches(const struct dl *d, const struct filter *f) {
  const char *src = dlq_meta(d, "source_topic"), *code = dlq_meta(d, "error_code");
  if (f->daemon && strcmp(f->daemon, d->daemon) != 0)
    return 0;
  if (f->topic) {
    /* The full topic name, or the event type under this prefix. */
    if (src == NULL || (strcmp(src, f->topic) != 0 && !dlq_topic_of(src, f->topic)))
      return 0;
  }
  if (f->code && (code == NULL || strcmp(code, f->code) != 0))
    return 0;
  return f->since_ms == 0 || d->ts_ms >= f->since_ms;
}
