/* The span exporter: a bounded queue of ended spans, and one thread that sends them in
 * batches to <tracing.endpoint>/v1/traces as OTLP/HTTP JSON. Whoever ends a span only
 * takes the queue's lock to copy a pointer in; the thread alone waits on the network. */
#include "lmp/io/trace.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmp/base/error.h"
#include "lmp/base/ids.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"

struct tracer {
  char *url;             /* <endpoint>/v1/traces */
  char *ca_file;
  char service[64];
  int timeout_ms, interval_ms, batch;
  pthread_mutex_t lock;
  pthread_cond_t wake;   /* a batch is full, or the end */
  struct lmp_span **q;   /* a ring of cap spans */
  size_t cap, head, n;
  int stopping;
  int64_t stop_by_ns;    /* the stop sends nothing after this (tracing.timeout_ms) */
  atomic_int stopped;    /* the exporter ended: spans are no longer taken */
  struct lmp_span **batchbuf; /* the thread's: the batch it sends */
  CURL *curl;            /* the thread's: one handle, so one kept-alive connection (and TLS session) */
  struct curl_slist *headers;
  pthread_t thread;
  atomic_uint_fast64_t exported, dropped;
  int failing;           /* the last send failed: logged once until one succeeds */
  int rejecting;         /* the collector rejected spans: logged once until it takes a whole batch */
};

/* Set at start, before other threads run, and kept after the stop (stopped then): a
 * thread that ends a span late (a background thread the stop could not wait for)
 * finds a tracer that counts the span as dropped, never freed memory. */
static struct tracer *tracer;

int64_t lmp_span_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int lmp_trace_enabled(void) { return tracer != NULL && !atomic_load(&tracer->stopped); }

void lmp_trace_counts(uint64_t *exported, uint64_t *dropped, uint64_t *queued) {
  *exported = tracer ? atomic_load(&tracer->exported) : 0;
  *dropped = tracer ? atomic_load(&tracer->dropped) : 0;
  if (queued) {
    *queued = 0;
    if (tracer) {
      pthread_mutex_lock(&tracer->lock);
      *queued = tracer->n;
      pthread_mutex_unlock(&tracer->lock);
    }
  }
}

/* ---- Spans ------------------------------------------------------------------------ */

/* Text a span carries is valid UTF-8, as OTLP's JSON must be: a value that is not (a
 * reason quoting bytes a hostile message held) has its faulty bytes replaced. */
static void put_text(char *out, size_t outlen, const char *s) {
  size_t n = strlen(s);
  if (lmp_utf8_valid(s, n)) {
    lmp_utf8_copy(out, outlen, s, outlen);
    return;
  }
  char *clean = lmp_utf8_sanitize(s, n, NULL);
  lmp_utf8_copy(out, outlen, clean ? clean : "", outlen);
  free(clean);
}

void lmp_span_begin(struct lmp_span *s, const char *name, enum lmp_span_kind kind, const char *traceparent,
                    const char *parent) {
  memset(s, 0, sizeof(*s));
  s->kind = kind;
  put_text(s->name, sizeof(s->name), name);
  if (lmp_traceparent_valid(traceparent)) {
    memcpy(s->trace_id, traceparent + 3, 32);
    memcpy(s->span_id, traceparent + 36, 16);
    s->sampled = lmp_traceparent_sampled(traceparent);
  }
  if (lmp_traceparent_valid(parent) && memcmp(parent + 3, s->trace_id, 32) == 0)
    memcpy(s->parent_id, parent + 36, 16);
  s->start_ns = tracer && s->sampled ? lmp_span_now() : 0;
}

static struct lmp_span_attr *attr(struct lmp_span *s, const char *key) {
  for (int i = 0; i < s->nattrs; i++)
    if (strcmp(s->attrs[i].key, key) == 0)
      return &s->attrs[i];
  return s->nattrs < LMP_SPAN_ATTRS ? &s->attrs[s->nattrs++] : NULL;
}

void lmp_span_str(struct lmp_span *s, const char *key, const char *value) {
  struct lmp_span_attr *a = tracer && s->sampled ? attr(s, key) : NULL;
  if (a) {
    *a = (struct lmp_span_attr){.key = key};
    put_text(a->s, sizeof(a->s), value ? value : "");
  }
}

void lmp_span_int(struct lmp_span *s, const char *key, int64_t value) {
  struct lmp_span_attr *a = tracer && s->sampled ? attr(s, key) : NULL;
  if (a)
    *a = (struct lmp_span_attr){.key = key, .is_int = 1, .i = value};
}

void lmp_span_fail(struct lmp_span *s, const char *fmt, ...) {
  char why[LMP_SPAN_TEXT * 2];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  s->error = 1;
  put_text(s->status, sizeof(s->status), why);
}

void lmp_span_end(struct lmp_span *s) {
  struct tracer *t = tracer;
  if (t == NULL || !s->sampled || !*s->trace_id)
    return;
  if (s->end_ns == 0)
    s->end_ns = lmp_span_now();
  struct lmp_span *copy = malloc(sizeof(*copy));
  pthread_mutex_lock(&t->lock);
  int room = copy && t->n < t->cap && !t->stopping;
  if (room) {
    *copy = *s;
    t->q[(t->head + t->n) % t->cap] = copy;
    if (++t->n == (size_t)t->batch)
      pthread_cond_signal(&t->wake);
  }
  pthread_mutex_unlock(&t->lock);
  if (!room) {
    free(copy);
    atomic_fetch_add(&t->dropped, 1);
  }
}

/* ---- OTLP/JSON ---------------------------------------------------------------------- */

static json_t *kv_str(const char *key, const char *value) {
  return json_pack("{s:s, s:{s:s}}", "key", key, "value", "stringValue", value);
}

static json_t *span_json(const struct lmp_span *s) {
  char start[24], end[24];
  snprintf(start, sizeof(start), "%lld", (long long)s->start_ns);
  snprintf(end, sizeof(end), "%lld", (long long)s->end_ns);
  json_t *attrs = json_array();
  for (int i = 0; i < s->nattrs; i++) {
    const struct lmp_span_attr *a = &s->attrs[i];
    if (a->is_int) {
      char n[24];
      snprintf(n, sizeof(n), "%lld", (long long)a->i);
      json_array_append_new(attrs, json_pack("{s:s, s:{s:s}}", "key", a->key, "value", "intValue", n));
    } else {
      json_array_append_new(attrs, kv_str(a->key, a->s));
    }
  }
  json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:o}", "traceId", s->trace_id, "spanId", s->span_id,
                        "name", s->name, "kind", (int)s->kind, "startTimeUnixNano", start, "endTimeUnixNano", end,
                        "attributes", attrs);
  if (j && *s->parent_id)
    json_object_set_new(j, "parentSpanId", json_string(s->parent_id));
  if (j && s->error)
    json_object_set_new(j, "status", json_pack("{s:i, s:s}", "code", 2, "message", s->status));
  return j;
}

static char *batch_json(const struct tracer *t, struct lmp_span **spans, size_t n) {
  json_t *list = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(list, span_json(spans[i]));
  json_t *doc = json_pack("{s:[{s:{s:[o]}, s:[{s:{s:s}, s:o}]}]}", "resourceSpans", "resource", "attributes",
                          kv_str("service.name", t->service), "scopeSpans", "scope", "name", "lmp", "spans", list);
  char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  return body;
}

/* The collector's answer, its first bytes: all an OTLP answer needs (the rest is
 * read and dropped). */
struct answer {
  char text[4096];
  size_t len;
};

static size_t keep(char *p, size_t size, size_t n, void *ctx) {
  struct answer *a = ctx;
  size_t k = size * n, room = sizeof(a->text) - 1 - a->len;
  memcpy(a->text + a->len, p, k < room ? k : room);
  a->len += k < room ? k : room;
  a->text[a->len] = '\0';
  return size * n;
}

/* The spans an OTLP answer says the collector rejected though it answered 2xx
 * (partialSuccess.rejectedSpans, a number or, as proto3's JSON writes an int64, a
 * string), with its reason in err; 0 when it took them all. */
static long rejected(const char *answer, char *err, size_t errlen) {
  json_t *doc = json_loads(answer, 0, NULL);
  json_t *ps = json_object_get(doc, "partialSuccess"), *n = json_object_get(ps, "rejectedSpans");
  long k = json_is_integer(n)  ? (long)json_integer_value(n)
           : json_is_string(n) ? strtol(json_string_value(n), NULL, 10)
                               : 0;
  const char *why = json_string_value(json_object_get(ps, "errorMessage"));
  if (k > 0)
    snprintf(err, errlen, "the collector rejected %ld of them: %s", k, why && *why ? why : "no reason given");
  json_decref(doc);
  return k > 0 ? k : 0;
}

/* The spans of the batch the collector took none of (LMP_ERETRY, the reason in err),
 * or how many it rejected of a batch it answered (0: all taken). */
static long send_batch(struct tracer *t, const char *body, long timeout_ms, char *err, size_t errlen) {
  if (t->curl == NULL) { /* the first batch: the handle the thread keeps, once whole */
    CURL *c = curl_easy_init();
    struct curl_slist *h = c ? curl_slist_append(NULL, "Content-Type: application/json") : NULL;
    if (h == NULL) {
      curl_easy_cleanup(c);
      snprintf(err, errlen, "no HTTP client");
      return LMP_ENOMEM;
    }
    curl_easy_setopt(c, CURLOPT_URL, t->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (t->ca_file)
      curl_easy_setopt(c, CURLOPT_CAINFO, t->ca_file);
    t->curl = c;
    t->headers = h;
  }
  CURL *c = t->curl;
  char cerr[CURL_ERROR_SIZE] = "";
  struct answer a = {.len = 0};
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  CURLcode cr = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  /* What they point at ends with this call. */
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
  if (cr != CURLE_OK) {
    snprintf(err, errlen, "%s", *cerr ? cerr : curl_easy_strerror(cr));
    return LMP_ERETRY;
  }
  if (status / 100 != 2) {
    snprintf(err, errlen, "the collector answered HTTP %ld", status);
    return LMP_ERETRY;
  }
  return rejected(a.text, err, errlen);
}

/* Takes up to t->batch spans off the queue; called with the lock held. */
static size_t take(struct tracer *t, struct lmp_span **out) {
  size_t k = t->n < (size_t)t->batch ? t->n : (size_t)t->batch;
  for (size_t i = 0; i < k; i++)
    out[i] = t->q[(t->head + i) % t->cap];
  t->head = (t->head + k) % t->cap;
  t->n -= k;
  return k;
}

static void export(struct tracer *t, struct lmp_span **spans, size_t k, long timeout_ms) {
  char err[CURL_ERROR_SIZE + 64] = "out of memory";
  char *body = batch_json(t, spans, k);
  long r = body ? send_batch(t, body, timeout_ms, err, sizeof(err)) : LMP_ENOMEM;
  free(body);
  for (size_t i = 0; i < k; i++)
    free(spans[i]);
  if (r >= 0 && t->failing)
    lmp_info(NULL, "tracing: %s takes spans again", t->url);
  if (r == 0) {
    atomic_fetch_add(&t->exported, k);
    t->failing = t->rejecting = 0;
    return;
  }
  /* Spans of a batch the collector answered but rejected are dropped and counted too;
   * the collector is there, so the stop still sends to it (failing is for one that
   * took nothing). */
  size_t lost = r < 0 || (size_t)r > k ? k : (size_t)r;
  atomic_fetch_add(&t->exported, k - lost);
  atomic_fetch_add(&t->dropped, lost);
  int *once = r < 0 ? &t->failing : &t->rejecting;
  if (r > 0)
    t->failing = 0;
  if (!*once)
    lmp_warn(NULL, "tracing: %zu spans dropped, %s did not take them: %s (dropped spans are counted in "
             "lmp_trace_spans_dropped_total)", lost, t->url, err);
  *once = 1;
}

static void *run(void *arg) {
  struct tracer *t = arg;
  struct lmp_span **spans = t->batchbuf;
  pthread_mutex_lock(&t->lock);
  for (;;) {
    if (!t->stopping && t->n < (size_t)t->batch) {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += t->interval_ms / 1000;
      until.tv_nsec += (long)(t->interval_ms % 1000) * 1000000;
      if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
      }
      pthread_cond_timedwait(&t->wake, &t->lock, &until);
    }
    /* The stop sends what is queued for at most tracing.timeout_ms in all, and not at
     * all to a collector that just failed: the rest is counted, not waited for. */
    long budget = t->timeout_ms;
    if (t->stopping) {
      budget = (long)((t->stop_by_ns - lmp_span_now()) / 1000000);
      if (t->n == 0 || t->failing || budget <= 0)
        break;
    }
    size_t k = take(t, spans);
    pthread_mutex_unlock(&t->lock);
    if (k)
      export(t, spans, k, budget);
    pthread_mutex_lock(&t->lock);
  }
  for (; t->n; t->n--, t->head = (t->head + 1) % t->cap) {
    free(t->q[t->head]);
    atomic_fetch_add(&t->dropped, 1);
  }
  pthread_mutex_unlock(&t->lock);
  curl_easy_cleanup(t->curl);
  curl_slist_free_all(t->headers);
  t->curl = NULL;
  t->headers = NULL;
  return NULL;
}

/* ---- Start and stop ------------------------------------------------------------------ */

static void tracer_free(struct tracer *t) {
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->n; i++)
    free(t->q[(t->head + i) % t->cap]);
  free(t->q);
  free(t->batchbuf);
  free(t->url);
  free(t->ca_file);
  pthread_mutex_destroy(&t->lock);
  pthread_cond_destroy(&t->wake);
  free(t);
}

int lmp_trace_start(const struct lmp_config *cfg, const char *service, char *err, size_t errlen) {
  /* The settings were checked as they were read (config.c): here they are only used. */
  int s = lmp_sampler_parse(cfg->tracing_sampler);
  double ratio = strtod(cfg->tracing_ratio, NULL);
  lmp_traceparent_sampler(s < 0 ? LMP_SAMPLE_PARENT_ALWAYS_ON : (enum lmp_sampler)s, ratio);
  const char *ep = cfg->tracing_endpoint;
  if (ep == NULL || *ep == '\0')
    return 0;
  struct tracer *t = calloc(1, sizeof(*t));
  size_t n = strlen(ep);
  while (n && ep[n - 1] == '/')
    n--;
  if (t == NULL || (t->url = malloc(n + sizeof("/v1/traces"))) == NULL ||
      (t->q = calloc((size_t)cfg->tracing_queue_spans, sizeof(*t->q))) == NULL ||
      (t->batchbuf = calloc((size_t)cfg->tracing_batch_spans, sizeof(*t->batchbuf))) == NULL ||
      (*cfg->tracing_ca_file && (t->ca_file = strdup(cfg->tracing_ca_file)) == NULL)) {
    free(t ? t->url : NULL);
    free(t ? t->q : NULL);
    free(t ? t->batchbuf : NULL);
    free(t);
    snprintf(err, errlen, "out of memory for the span queue");
    return LMP_ENOMEM;
  }
  memcpy(t->url, ep, n);
  strcpy(t->url + n, "/v1/traces");
  snprintf(t->service, sizeof(t->service), "%s", service);
  t->cap = (size_t)cfg->tracing_queue_spans;
  t->batch = cfg->tracing_batch_spans;
  t->interval_ms = cfg->tracing_interval_ms;
  t->timeout_ms = cfg->tracing_timeout_ms;
  pthread_mutex_init(&t->lock, NULL);
  pthread_cond_init(&t->wake, NULL);
  if (pthread_create(&t->thread, NULL, run, t) != 0) {
    tracer_free(t);
    snprintf(err, errlen, "no thread for the span exporter");
    return LMP_ENOMEM;
  }
  if (tracer) { /* started before (a test does): stopped, and no thread uses it now */
    lmp_trace_stop();
    tracer_free(tracer);
  }
  tracer = t;
  lmp_info(NULL, "tracing: spans go to %s (sampler %s, ratio %g)", t->url, cfg->tracing_sampler, ratio);
  return 0;
}

void lmp_trace_stop(void) {
  struct tracer *t = tracer;
  if (t == NULL)
    return;
  pthread_mutex_lock(&t->lock);
  if (t->stopping) {
    pthread_mutex_unlock(&t->lock);
    return;
  }
  t->stopping = 1;
  t->stop_by_ns = lmp_span_now() + (int64_t)t->timeout_ms * 1000000;
  pthread_cond_signal(&t->wake);
  pthread_mutex_unlock(&t->lock);
  pthread_join(t->thread, NULL);
  atomic_store(&t->stopped, 1); /* kept: see tracer above */
}
