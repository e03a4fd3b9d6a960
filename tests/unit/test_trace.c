/* The span exporter against a collector of the test's own (a socket that reads one
 * OTLP/HTTP request and answers it): what it sends is OTLP JSON with the ids, parent,
 * kind, times, attributes and status of each sampled span, and nothing of an
 * unsampled one; text that is not UTF-8 arrives mended; spans a collector rejects in
 * a 200 answer are counted dropped; batches share one connection; a collector that is
 * away costs dropped spans, counted, and a stop that does not wait; a slow one, a stop
 * bounded by tracing.timeout_ms. */
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lmp/base/config.h"
#include "lmp/base/ids.h"
#include "lmp/io/trace.h"

static const char *const PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

struct collector {
  int fd, port;
  pthread_t thread;
  char *body; /* the first request's body */
  char path[128];
  const char *answer; /* its answer's body; NULL: {} */
};

static void *serve(void *arg) {
  struct collector *c = arg;
  int conn = accept(c->fd, NULL, NULL);
  if (conn < 0)
    return NULL;
  char buf[1 << 16];
  size_t have = 0;
  char *end = NULL;
  ssize_t n;
  while (!end && (n = read(conn, buf + have, sizeof(buf) - 1 - have)) > 0) {
    have += (size_t)n;
    buf[have] = '\0';
    end = strstr(buf, "\r\n\r\n");
  }
  if (end) {
    sscanf(buf, "POST %127s", c->path);
    const char *cl = strcasestr(buf, "content-length:");
    size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0, head = (size_t)(end + 4 - buf);
    while (have - head < want && (n = read(conn, buf + have, sizeof(buf) - 1 - have)) > 0)
      have += (size_t)n;
    c->body = strndup(end + 4, want);
    const char *answer = c->answer ? c->answer : "{}";
    char ok[512];
    snprintf(ok, sizeof(ok), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(answer), answer);
    if (write(conn, ok, strlen(ok)) < 0)
      c->body[0] = '\0';
  }
  close(conn);
  return NULL;
}

static void collector_start(struct collector *c, int listen_too) {
  memset(c, 0, sizeof(*c));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(bind(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(getsockname(c->fd, (struct sockaddr *)&a, &len), 0);
  c->port = ntohs(a.sin_port);
  if (listen_too) {
    assert_int_equal(listen(c->fd, 4), 0);
    assert_int_equal(pthread_create(&c->thread, NULL, serve, c), 0);
  }
}

static void settings(struct lmp_config *cfg, int port, char *endpoint, size_t len) {
  snprintf(endpoint, len, "http://127.0.0.1:%d/", port);
  *cfg = (struct lmp_config){.tracing_endpoint = endpoint, .tracing_ca_file = "", .tracing_sampler =
                             "parentbased_always_on", .tracing_ratio = "1.0", .tracing_queue_spans = 16,
                             .tracing_batch_spans = 8, .tracing_interval_ms = 20, .tracing_timeout_ms = 2000};
}

static json_t *attr(json_t *span, const char *key) {
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(span, "attributes"), i, a) if (strcmp(json_string_value(json_object_get(a, "key")),
                                                                            key) == 0) return json_object_get(a, "value");
  return NULL;
}

/* Ends n sampled spans of one trace, each a publish under PARENT. */
static void end_spans(int n) {
  char own[64];
  for (int i = 0; i < n; i++) {
    struct lmp_span s;
    lmp_traceparent(PARENT, own);
    lmp_span_begin(&s, "send onboarding.accepted", LMP_SPAN_PRODUCER, own, PARENT);
    lmp_span_end(&s);
  }
}

static void exports_otlp_json(void **state) {
  struct collector c;
  struct lmp_config cfg;
  char endpoint[64], err[256];
  collector_start(&c, 1);
  settings(&cfg, c.port, endpoint, sizeof(endpoint));
  assert_int_equal(lmp_trace_start(&cfg, "lmp-test", err, sizeof(err)), 0);
  assert_true(lmp_trace_enabled());

  char own[64], unsampled[64];
  lmp_traceparent(PARENT, own);
  struct lmp_span s;
  lmp_span_begin(&s, "process onboarding.accepted", LMP_SPAN_CONSUMER, own, PARENT);
  lmp_span_str(&s, "lmp.onboarding_id", "4ab713c8-c6b1-5a88-9b38-939d18b19d38");
  lmp_span_int(&s, "messaging.kafka.offset", 42);
  lmp_span_fail(&s, "allocation failed: \xff\xfe not text");
  lmp_span_end(&s);
  /* A span of a trace not sampled is never sent. */
  lmp_traceparent_sampler(LMP_SAMPLE_PARENT_ALWAYS_OFF, 1);
  lmp_traceparent(NULL, unsampled);
  lmp_traceparent_sampler(LMP_SAMPLE_PARENT_ALWAYS_ON, 1);
  assert_false(lmp_traceparent_sampled(unsampled));
  lmp_span_begin(&s, "send partner.balance", LMP_SPAN_PRODUCER, unsampled, NULL);
  lmp_span_end(&s);

  pthread_join(c.thread, NULL);
  lmp_trace_stop();
  assert_false(lmp_trace_enabled());
  assert_string_equal(c.path, "/v1/traces");
  json_error_t je;
  json_t *doc = json_loads(c.body, 0, &je);
  if (doc == NULL)
    fail_msg("not JSON (%s): %s", je.text, c.body);
  json_t *rs = json_array_get(json_object_get(doc, "resourceSpans"), 0);
  json_t *svc = json_array_get(json_object_get(json_object_get(rs, "resource"), "attributes"), 0);
  assert_string_equal(json_string_value(json_object_get(svc, "key")), "service.name");
  assert_string_equal(json_string_value(json_object_get(json_object_get(svc, "value"), "stringValue")), "lmp-test");
  json_t *spans = json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans");
  assert_int_equal(json_array_size(spans), 1);
  json_t *sp = json_array_get(spans, 0);
  assert_string_equal(json_string_value(json_object_get(sp, "traceId")), "0af7651916cd43dd8448eb211c80319c");
  assert_memory_equal(json_string_value(json_object_get(sp, "spanId")), own + 36, 16);
  assert_string_equal(json_string_value(json_object_get(sp, "parentSpanId")), "b7ad6b7169203331");
  assert_string_equal(json_string_value(json_object_get(sp, "name")), "process onboarding.accepted");
  assert_int_equal(json_integer_value(json_object_get(sp, "kind")), LMP_SPAN_CONSUMER);
  long long t0 = strtoll(json_string_value(json_object_get(sp, "startTimeUnixNano")), NULL, 10);
  long long t1 = strtoll(json_string_value(json_object_get(sp, "endTimeUnixNano")), NULL, 10);
  assert_true(t0 > 1700000000LL * 1000000000LL && t1 >= t0);
  assert_string_equal(json_string_value(json_object_get(attr(sp, "lmp.onboarding_id"), "stringValue")),
                      "4ab713c8-c6b1-5a88-9b38-939d18b19d38");
  assert_string_equal(json_string_value(json_object_get(attr(sp, "messaging.kafka.offset"), "intValue")), "42");
  json_t *st = json_object_get(sp, "status");
  assert_int_equal(json_integer_value(json_object_get(st, "code")), 2);
  const char *msg = json_string_value(json_object_get(st, "message"));
  assert_non_null(msg);
  assert_non_null(strstr(msg, "allocation failed: "));
  assert_non_null(strstr(msg, "\xef\xbf\xbd")); /* the bytes that were not text, as U+FFFD */
  json_decref(doc);
  free(c.body);
  close(c.fd);
}

/* A collector that answers 200 but rejects part of the batch (OTLP's partialSuccess):
 * the rejected spans are counted as dropped, not exported. */
static void partial_success(void **state) {
  struct collector c;
  struct lmp_config cfg;
  char endpoint[64], err[256];
  collector_start(&c, 0);
  c.answer = "{\"partialSuccess\":{\"rejectedSpans\":\"2\",\"errorMessage\":\"spans too old\"}}";
  assert_int_equal(listen(c.fd, 4), 0);
  assert_int_equal(pthread_create(&c.thread, NULL, serve, &c), 0);
  settings(&cfg, c.port, endpoint, sizeof(endpoint));
  cfg.tracing_interval_ms = 60000; /* one batch, sent by the stop */
  assert_int_equal(lmp_trace_start(&cfg, "lmp-test", err, sizeof(err)), 0);
  end_spans(3);
  lmp_trace_stop();
  pthread_join(c.thread, NULL);
  uint64_t exported, dropped;
  lmp_trace_counts(&exported, &dropped, NULL);
  json_t *doc = json_loads(c.body, 0, NULL);
  assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(json_array_get(
                       json_object_get(doc, "resourceSpans"), 0), "scopeSpans"), 0), "spans")),
                   3);
  json_decref(doc);
  free(c.body);
  close(c.fd);
  assert_int_equal(exported, 1);
  assert_int_equal(dropped, 2);
}

static void collector_away(void **state) {
  struct collector c;
  struct lmp_config cfg;
  char endpoint[64], err[256];
  collector_start(&c, 0); /* bound, not listening: each connection is refused */
  settings(&cfg, c.port, endpoint, sizeof(endpoint));
  assert_int_equal(lmp_trace_start(&cfg, "lmp-test", err, sizeof(err)), 0);
  char own[64];
  end_spans(100);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint64_t exported, dropped;
  lmp_trace_stop();
  clock_gettime(CLOCK_MONOTONIC, &t1);
  /* None sent, every one counted: the queue (16) dropped most at once, the failed
   * batches and the stop the rest. A span ended after the stop is counted too. */
  struct lmp_span late;
  lmp_traceparent(PARENT, own);
  lmp_span_begin(&late, "send late", LMP_SPAN_PRODUCER, own, PARENT);
  lmp_span_end(&late);
  lmp_trace_counts(&exported, &dropped, NULL);
  close(c.fd);
  assert_int_equal(exported, 0);
  assert_int_equal(dropped, 101); /* the late one too */
  double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  /* Waiting out every batch would take a request per batch: the stop gives up. */
  if (took > 10)
    fail_msg("the stop took %.1f s with the collector away", took);
}

/* A collector that keeps each connection open for the requests that follow (HTTP/1.1
 * keep-alive), counting connections and requests. */
struct keepalive {
  int fd;
  atomic_int accepts, requests;
};

static void *serve_kept(void *arg) {
  struct keepalive *k = arg;
  int conn;
  while ((conn = accept(k->fd, NULL, NULL)) >= 0) {
    atomic_fetch_add(&k->accepts, 1);
    char buf[1 << 16];
    size_t have = 0;
    ssize_t n;
    while ((n = read(conn, buf + have, sizeof(buf) - 1 - have)) > 0) {
      have += (size_t)n;
      buf[have] = '\0';
      char *end = strstr(buf, "\r\n\r\n");
      const char *cl = end ? strcasestr(buf, "content-length:") : NULL;
      size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0, head = end ? (size_t)(end + 4 - buf) : 0;
      if (end == NULL || have - head < want)
        continue; /* the rest of this request */
      atomic_fetch_add(&k->requests, 1);
      memmove(buf, buf + head + want, have - head - want);
      have -= head + want;
      const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
      if (write(conn, ok, strlen(ok)) < 0)
        break;
    }
    close(conn);
  }
  return NULL;
}

static int wait_requests(struct keepalive *k, int n) {
  for (int i = 0; i < 400 && atomic_load(&k->requests) < n; i++)
    nanosleep(&(struct timespec){0, 5 * 1000000L}, NULL);
  return atomic_load(&k->requests);
}

/* Batch after batch goes over one connection: no connection (and, to a collector
 * behind TLS, no handshake) per batch. */
static void one_connection(void **state) {
  struct collector c;
  struct lmp_config cfg;
  char endpoint[64], err[256];
  collector_start(&c, 0);
  assert_int_equal(listen(c.fd, 4), 0);
  struct keepalive k = {.fd = c.fd};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, serve_kept, &k), 0);
  settings(&cfg, c.port, endpoint, sizeof(endpoint));
  cfg.tracing_batch_spans = 1;
  assert_int_equal(lmp_trace_start(&cfg, "lmp-test", err, sizeof(err)), 0);
  for (int i = 1; i <= 3; i++) {
    end_spans(1);
    assert_int_equal(wait_requests(&k, i), i);
  }
  lmp_trace_stop();
  shutdown(c.fd, SHUT_RDWR);
  pthread_join(th, NULL);
  close(c.fd);
  assert_int_equal(atomic_load(&k.accepts), 1);
}

/* A collector that answers every request, slowly. */
static void *serve_slowly(void *arg) {
  struct collector *c = arg;
  int conn;
  while ((conn = accept(c->fd, NULL, NULL)) >= 0) {
    char buf[1 << 16];
    while (read(conn, buf, sizeof(buf)) == (ssize_t)sizeof(buf))
      ;
    struct timespec pause = {0, 300 * 1000000L};
    nanosleep(&pause, NULL);
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    if (write(conn, ok, strlen(ok)) < 0)
      break;
    close(conn);
  }
  return NULL;
}

/* A collector that takes every batch, slowly: the stop sends for tracing.timeout_ms
 * and counts the rest, rather than waiting out a request per batch. */
static void slow_collector_bounds_the_stop(void **state) {
  struct collector c;
  struct lmp_config cfg;
  char endpoint[64], err[256];
  collector_start(&c, 0);
  assert_int_equal(listen(c.fd, 64), 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, serve_slowly, &c), 0);
  settings(&cfg, c.port, endpoint, sizeof(endpoint));
  cfg.tracing_queue_spans = 1000;
  cfg.tracing_batch_spans = 1;
  cfg.tracing_timeout_ms = 1000;
  assert_int_equal(lmp_trace_start(&cfg, "lmp-test", err, sizeof(err)), 0);
  end_spans(100);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  lmp_trace_stop();
  clock_gettime(CLOCK_MONOTONIC, &t1);
  uint64_t exported, dropped;
  lmp_trace_counts(&exported, &dropped, NULL);
  shutdown(c.fd, SHUT_RDWR);
  close(c.fd);
  pthread_join(th, NULL);
  /* A request per batch would take 30 s: the stop ends with the timeout, after the
   * request under way (at most two timeouts), and every span is accounted for. */
  double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  if (took > 5)
    fail_msg("the stop took %.1f s with a slow collector", took);
  assert_int_equal(exported + dropped, 100);
  assert_true(dropped > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(exports_otlp_json),
      cmocka_unit_test(partial_success),
      cmocka_unit_test(one_connection),
      cmocka_unit_test(collector_away),
      cmocka_unit_test(slow_collector_bounds_the_stop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
