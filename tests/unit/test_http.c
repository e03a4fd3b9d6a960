/* Routes that answer asynchronously (lmp_http_ticket, lmp_http_resume) on the real
 * HTTP runtime, its worker on the test stack's PostgreSQL: a resumed request is
 * answered at once, not when its wait runs out, even when the resume comes while its
 * route still runs; waiting requests hold no worker; a route's state lives until its
 * request is over; a ticket whose request is over is ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "io/http.h"
#include "lmp/base/error.h"
#include "txh.h"

#define WAIT_MS 10000 /* how long a route waits at most: far longer than any test takes */

/* Something done elsewhere (as the broker acknowledges a publish): after delay_ms, on
 * a thread of its own, it is done and resumes its request. */
struct job {
  pthread_t thread;
  int delay_ms;
  void *runtime;
  uint64_t ticket;
  atomic_int done;
};

static atomic_int jobs_started, jobs_freed;
static uint64_t last_ticket;
static void *last_runtime;

static void *run_job(void *arg) {
  struct job *j = arg;
  usleep((useconds_t)j->delay_ms * 1000);
  atomic_store(&j->done, 1);
  lmp_http_resume(j->runtime, j->ticket);
  return NULL;
}

static void free_job(void *state) {
  struct job *j = state;
  if (j->delay_ms >= 0)
    pthread_join(j->thread, NULL);
  free(j);
  atomic_fetch_add(&jobs_freed, 1);
}

/* GET /later?ms=N: starts a job that ends after N ms (-1: never), and answers when it
 * has: 200 with how long it waited, or 504 when the wait runs out. */
static int later(void *ctx, struct lmp_http_call *call) {
  struct job *j = call->state;
  if (j == NULL) {
    if ((j = calloc(1, sizeof(*j))) == NULL)
      return LMP_ENOMEM;
    j->delay_ms = call->query ? atoi(call->query + 3) : 0;
    j->runtime = call->runtime;
    j->ticket = lmp_http_ticket(call);
    last_ticket = j->ticket;
    last_runtime = call->runtime;
    call->state = j;
    call->state_free = free_job;
    atomic_fetch_add(&jobs_started, 1);
    assert_int_equal(j->delay_ms < 0 || pthread_create(&j->thread, NULL, run_job, j) == 0, 1);
  }
  if (!atomic_load(&j->done) && !call->last && call->waited_ms < (j->delay_ms < 0 ? 300 : WAIT_MS)) {
    call->again_ms = j->delay_ms < 0 ? 300 : WAIT_MS;
    return 0;
  }
  call->status = atomic_load(&j->done) ? 200 : 504;
  return lmp_buf_printf(call->out, "{\"waited_ms\":%lld}", (long long)call->waited_ms);
}

static const struct lmp_http_route routes[] = {{"GET", "/later", later, 0, 0, 0}, {0}};
static const struct lmp_embedded no_migrations[] = {{0}};
static const struct lmp_service svc = {.name = "http-test", .migrations = no_migrations, .http = routes};

static struct txh db;
static struct lmp_config cfg;
static struct lmp_conf_table tables[] = {{lmp_config_entries, 0, &cfg}, {NULL, 0, NULL}};
static struct lmp_http *http;

static int setup(void **state) {
  txh_open(&db, &svc);
  tables[0].n = lmp_config_entries_n;
  char err[600];
  assert_int_equal(lmp_config_load(tables, NULL, NULL, err, sizeof(err)), 0);
  cfg.http_workers = 1; /* so that a route holding its worker would show */
  cfg.http_port = cfg.admin_port = 0;
  const struct lmp_http_app app = {svc.name, svc.http, NULL, NULL};
  assert_int_equal(lmp_http_start(&http, &cfg, &app, &db.rt.m, db.rt.db.conninfo, NULL, err, sizeof(err)), 0);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  return 0;
}

static int teardown(void **state) {
  lmp_http_stop(http);
  lmp_config_free(tables);
  txh_close(&db);
  curl_global_cleanup();
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t discard(char *p, size_t size, size_t n, void *arg) { return size * n; }

/* GET /later?ms=delay_ms: its status, and in *took_ms how long the answer took. */
static long get_later(int delay_ms, int64_t *took_ms) {
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/later?ms=%d", lmp_http_port(http, 0), delay_ms);
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  int64_t t0 = now_ms();
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  *took_ms = now_ms() - t0;
  curl_easy_cleanup(c);
  return status;
}

static void resumed_answers_at_once(void **state) {
  int64_t took;
  assert_int_equal(get_later(200, &took), 200);
  assert_true(took >= 200 && took < 2000);
  /* Resumed while its route still runs its first time: not lost. */
  for (int i = 0; i < 20; i++) {
    assert_int_equal(get_later(0, &took), 200);
    assert_true(took < 2000);
  }
}

/* Until every job started so far is freed (a request's state goes when its connection
 * ends, after its answer), for at most 5 s: whether they all were. */
static int all_jobs_freed(void) {
  for (int i = 0; i < 500 && atomic_load(&jobs_freed) != atomic_load(&jobs_started); i++)
    usleep(10 * 1000);
  return atomic_load(&jobs_freed) == atomic_load(&jobs_started);
}

static void never_resumed_waits_it_out(void **state) {
  assert_true(all_jobs_freed()); /* the earlier tests' states too */
  int freed = atomic_load(&jobs_freed);
  int64_t took;
  assert_int_equal(get_later(-1, &took), 504);
  assert_true(took >= 300 && took < 3000);
  assert_true(all_jobs_freed());
  assert_int_equal(atomic_load(&jobs_freed), freed + 1);
  /* Its ticket, now that its request is over, is ignored. */
  lmp_http_resume(last_runtime, last_ticket);
}

struct client {
  pthread_t thread;
  long status;
  int64_t took;
};

static void *client(void *arg) {
  struct client *c = arg;
  c->status = get_later(1000, &c->took);
  return NULL;
}

/* Eight requests, each waiting a second, on one worker: all answered in about a
 * second, since none holds the worker while it waits. */
static void waiting_holds_no_worker(void **state) {
  struct client c[8];
  int64_t t0 = now_ms();
  for (int i = 0; i < 8; i++)
    assert_int_equal(pthread_create(&c[i].thread, NULL, client, &c[i]), 0);
  for (int i = 0; i < 8; i++) {
    pthread_join(c[i].thread, NULL);
    assert_int_equal(c[i].status, 200);
  }
  assert_true(now_ms() - t0 < 3000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(resumed_answers_at_once),
      cmocka_unit_test(never_resumed_waits_it_out),
      cmocka_unit_test(waiting_holds_no_worker),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
