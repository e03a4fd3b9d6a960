/* A dead letter's parts: a message of a daemon's dead-letter topic copied out of
 * librdkafka, its headers split into the original's and the ones the runtime added, and
 * lists of them in the order they were dead-lettered. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"

static char *dup_bytes(const void *p, size_t n) {
  char *d = malloc(n + 1);
  if (d == NULL)
    die("out of memory");
  if (n)
    memcpy(d, p, n);
  d[n] = '\0';
  return d;
}

void dlq_dl_free(struct dl *d) {
  if (d == NULL)
    return;
  for (size_t i = 0; i < d->nh; i++) {
    free(d->h[i].name);
    free(d->h[i].value);
  }
  free(d->h);
  free(d->key);
  free(d->value);
  free(d);
}

void dlq_dls_free(struct dls *l) {
  for (size_t i = 0; i < l->n; i++)
    dlq_dl_free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof(*l));
}

void dlq_dls_add(struct dls *l, struct dl *d) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    l->v = realloc(l->v, l->cap * sizeof(*l->v));
    if (l->v == NULL)
      die("out of memory");
  }
  l->v[l->n++] = d;
}

/* The runtime writes the original's headers, then its own from dlq_event_id on; an
 * original header never starts with dlq_ (the runtime drops those), so the first
 * dlq_event_id is where the original's end. */
struct dl *dlq_dl_from(const char *daemon, const rd_kafka_message_t *m, int keep_value) {
  struct dl *d = calloc(1, sizeof(*d));
  rd_kafka_headers_t *hs = NULL;
  if (d == NULL)
    die("out of memory");
  d->daemon = daemon;
  d->partition = m->partition;
  d->offset = m->offset;
  d->ts_ms = rd_kafka_message_timestamp(m, NULL);
  if (m->key) {
    d->key = dup_bytes(m->key, m->key_len);
    d->keylen = m->key_len;
  }
  if (keep_value) {
    d->value = dup_bytes(m->payload ? m->payload : "", m->payload ? m->len : 0);
    d->len = m->payload ? m->len : 0;
  }
  size_t n = rd_kafka_message_headers(m, &hs) == RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_header_cnt(hs) : 0;
  d->h = calloc(n ? n : 1, sizeof(*d->h));
  if (d->h == NULL)
    die("out of memory");
  d->norig = n;
  for (size_t i = 0; i < n; i++) {
    const char *name;
    const void *v;
    size_t len;
    if (rd_kafka_header_get_all(hs, i, &name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
      break;
    d->h[i] = (struct hdr){dup_bytes(name, strlen(name)), dup_bytes(v ? v : "", v ? len : 0), v ? len : 0};
    d->nh++;
    if (d->norig == n && strcmp(name, "dlq_event_id") == 0)
      d->norig = i;
  }
  return d;
}

/* A header the runtime added (NULL when absent). */
const char *dlq_meta(const struct dl *d, const char *name) {
  for (size_t i = d->norig; i < d->nh; i++)
    if (strcmp(d->h[i].name, name) == 0)
      return d->h[i].value;
  return NULL;
}

/* A header of the original message (NULL when absent). */
const char *dlq_orig(const struct dl *d, const char *name) {
  for (size_t i = 0; i < d->norig; i++)
    if (strcmp(d->h[i].name, name) == 0)
      return d->h[i].value;
  return NULL;
}

/* A whole non-negative decimal number, as the runtime writes positions; -1 if not one. */
int64_t dlq_decimal(const char *s) {
  if (s == NULL || !isdigit((unsigned char)*s))
    return -1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  return *end || errno ? -1 : v;
}

static int by_time(const void *a, const void *b) {
  const struct dl *x = *(const struct dl *const *)a, *y = *(const struct dl *const *)b;
  if (x->ts_ms != y->ts_ms)
    return x->ts_ms < y->ts_ms ? -1 : 1;
  if (strcmp(x->daemon, y->daemon) != 0)
    return strcmp(x->daemon, y->daemon);
  if (x->partition != y->partition)
    return x->partition < y->partition ? -1 : 1;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

void dlq_sort_by_time(struct dls *l) {
  if (l->n > 1)
    qsort(l->v, l->n, sizeof(*l->v), by_time);
}
