/* The runtime's batch pipeline (common/src/runtime/pipeline.c) on a real libuv loop, with fake
 * Kafka and database operations: overlapping batches, the depth bound, backoff, resends,
 * refusals, drain, the end while the worker holds a batch, the ids handed to the next
 * transaction, fetching paused and resumed, and the first sweep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "runtime/rt.h"

#define WAIT_MS 5000     /* the longest any condition may take to come true */
#define MAX_MSGS 64
#define MAX_TXNS 64
#define MAX_PRODUCED 128
#define MAX_COMMITS 64
#define MAX_IDS 16
#define ID_LEN 32

/* What one call of the fake transaction saw. */
struct txn_rec {
  enum batch_kind kind;
  int attempt;           /* b->attempts: start_work counts the attempt before queueing it */
  int64_t first;         /* offset of the batch's first message; -1 without messages */
  size_t n;
  int sweep_age_ms;
  int purge;
  size_t ndel, npark;
  char del[MAX_IDS][ID_LEN];
  char park[MAX_IDS][ID_LEN];
  char park_reason[256]; /* of the first parked row */
  uint64_t ns;           /* when it ran (uv_hrtime) */
};

/* One call of the fake produce. */
struct produce_rec {
  struct outrow *row;    /* valid while the row's batch lives: until it is retired */
  char id[ID_LEN];
  int err;               /* what produce returned */
  int txns;              /* transactions run by then */
  uint64_t ns;
  int delivered;         /* the test reported it */
};

struct commit_rec {
  int64_t first, last;
  size_t n;
  size_t refused;        /* rows refused for good */
};

/* The fakes' state. The worker thread runs the transaction, so what it touches is
 * guarded by mu; everything else is only touched on the loop thread (the test's own
 * code runs between uv_run calls, on that same thread). */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int gate_closed;       /* transactions wait while it is set */
  int tick_wake_left;       /* ticks that find more due (b->wake) */
  int fail_left;         /* transactions still to fail with LMP_ERETRY */
  struct txn_rec txns[MAX_TXNS];
  int ntxns;

  int64_t queue[MAX_MSGS]; /* offsets of the messages the consumer will hand out */
  size_t nqueue, qnext;
  size_t handed, released;
  int fetches, polls, serves;
  int txns_at_first_fetch;
  int pauses[8];
  int npauses;
  char produce_fail_id[ID_LEN]; /* produce fails for this event id... */
  int produce_fail_err;         /* ...with this rd_kafka_resp_err_t... */
  int produce_fail_left;        /* ...this many times */
  struct produce_rec produced[MAX_PRODUCED];
  size_t nproduced;
  struct commit_rec commits[MAX_COMMITS];
  size_t ncommits;
  int bad_commits;
  char bad_why[256];
} F;

static uv_loop_t loop;
static struct rt R;
static uv_timer_t pulse;
static int loop_open;
static char topic_prefix[] = "t.";
static char dead_letter_topic[] = "t.dead-letter";

static const struct lmp_route no_routes[] = {{NULL, NULL, NULL, 0}};
static const struct lmp_service svc = {.name = "pipetest", .routes = no_routes};
static int no_tick(struct lmp_tx *tx) { return 0; }
/* A service whose tick wake-ups coalesce: a period far beyond the test, a short gap. */
static const struct lmp_service ticking = {.name = "pipetest", .routes = no_routes, .tick = no_tick,
                                           .tick_ms = 60000, .tick_gap_ms = 150};

static int txn_count(void) {
  pthread_mutex_lock(&F.mu);
  int n = F.ntxns;
  pthread_mutex_unlock(&F.mu);
  return n;
}

/* A copy, so the test reads it without racing the worker. */
static struct txn_rec txn_at(int i) {
  struct txn_rec t;
  memset(&t, 0, sizeof(t));
  pthread_mutex_lock(&F.mu);
  if (i >= 0 && i < F.ntxns && i < MAX_TXNS)
    t = F.txns[i];
  pthread_mutex_unlock(&F.mu);
  return t;
}

static void fail_transactions(int n) {
  pthread_mutex_lock(&F.mu);
  F.fail_left = n;
  pthread_mutex_unlock(&F.mu);
}

static void open_gate(void) {
  pthread_mutex_lock(&F.mu);
  F.gate_closed = 0;
  pthread_cond_broadcast(&F.cv);
  pthread_mutex_unlock(&F.mu);
}

static void queue_messages(int64_t from, int64_t to) {
  for (int64_t o = from; o <= to && F.nqueue < MAX_MSGS; o++)
    F.queue[F.nqueue++] = o;
}

/* ---- The fake operations -------------------------------------------------------------- */

static int hand_out(struct lmp_raw *raw, void **msg) {
  int64_t *m = malloc(sizeof(*m)); /* what release frees: a leak or a double free shows */
  if (m == NULL)
    return 0;
  *m = F.queue[F.qnext++];
  memset(raw, 0, sizeof(*raw));
  raw->topic = "t.in";
  raw->partition = 0;
  raw->offset = *m;
  *msg = m;
  F.handed++;
  return 1;
}

static size_t fake_fetch(struct rt *rt, struct lmp_raw *raws, void **msgs, size_t max) {
  (void)rt;
  if (F.fetches++ == 0)
    F.txns_at_first_fetch = txn_count();
  size_t n = 0;
  while (n < max && F.qnext < F.nqueue && hand_out(&raws[n], &msgs[n]))
    n++;
  return n;
}

static size_t fake_poll_one(struct rt *rt, struct lmp_raw *raw, void **msg) {
  (void)rt;
  F.polls++;
  return F.qnext < F.nqueue && hand_out(raw, msg) ? 1 : 0;
}

static void fake_release(void *msg) {
  free(msg);
  F.released++;
}

static int fake_produce(struct rt *rt, struct outrow *row) {
  (void)rt;
  int err = 0;
  if (F.produce_fail_left > 0 && strcmp(row->event_id, F.produce_fail_id) == 0) {
    F.produce_fail_left--;
    err = F.produce_fail_err;
  }
  if (F.nproduced < MAX_PRODUCED) {
    struct produce_rec *p = &F.produced[F.nproduced++];
    p->row = row;
    snprintf(p->id, sizeof(p->id), "%s", row->event_id);
    p->err = err;
    p->txns = txn_count();
    p->ns = uv_hrtime();
    p->delivered = 0;
  }
  return err; /* the delivery report comes later, when the test sends it */
}

static void fake_serve(struct rt *rt) {
  (void)rt;
  F.serves++;
}

/* Records the commit, and what must hold of it: the batch is finished, every row of it
 * acknowledged or refused, it is the oldest in the FIFO, and offsets only move forward.
 * No cmocka assertion here: a failure must not jump out of the pipeline's code. */
static void bad_commit(const char *why, int64_t first) {
  if (F.bad_commits++ == 0)
    snprintf(F.bad_why, sizeof(F.bad_why), "commit of the batch at offset %lld: %s", (long long)first, why);
}

static void fake_commit(struct rt *rt, struct batch *b) {
  if (b->n == 0 || b->raws == NULL) {
    bad_commit("a batch without messages", -1);
    return;
  }
  int64_t first = b->raws[0].offset, last = b->raws[b->n - 1].offset;
  if (b->state != BATCH_DONE)
    bad_commit("the batch is not done", first);
  if (rt->head != b)
    bad_commit("an older batch is still in the FIFO", first);
  size_t refused = 0;
  for (size_t i = 0; i < b->nrows; i++) {
    if (b->rows[i].state != ROW_ACKED && b->rows[i].state != ROW_REFUSED)
      bad_commit("a row is neither acknowledged nor refused", first);
    refused += b->rows[i].state == ROW_REFUSED;
  }
  if (F.ncommits && first <= F.commits[F.ncommits - 1].last)
    bad_commit("offsets moved backwards", first);
  if (F.ncommits < MAX_COMMITS)
    F.commits[F.ncommits++] = (struct commit_rec){first, last, b->n, refused};
}

static void fake_pause(struct rt *rt, int pause) {
  (void)rt;
  if (F.npauses < (int)(sizeof(F.pauses) / sizeof(F.pauses[0])))
    F.pauses[F.npauses++] = pause;
}

/* One row per message, its fields malloc'd as lmp__batch_free expects. */
static int add_row(struct batch *b, int64_t offset) {
  struct outrow *r = lmp__row_add(b);
  if (r == NULL)
    return LMP_ENOMEM;
  char id[ID_LEN];
  snprintf(id, sizeof(id), "e%lld", (long long)offset);
  r->event_id = strdup(id);
  r->topic = strdup("t.out");
  r->value = malloc(8);
  if (r->event_id == NULL || r->topic == NULL || r->value == NULL)
    return LMP_ENOMEM;
  r->len = (size_t)snprintf((char *)r->value, 8, "v%lld", (long long)(offset % 1000));
  return 0;
}

/* The transaction, on the worker thread: records what it was given, waits at the gate,
 * fails while told to, else emits one row per message. Like the real one it starts
 * each attempt without rows and leaves none when it fails. */
static void fake_txn(struct rt *rt, struct batch *b) {
  pthread_mutex_lock(&F.mu);
  int fail = 0;
  if (F.ntxns < MAX_TXNS) {
    struct txn_rec *t = &F.txns[F.ntxns];
    memset(t, 0, sizeof(*t));
    t->kind = b->kind;
    t->attempt = b->attempts;
    t->first = b->n ? b->raws[0].offset : -1;
    t->n = b->n;
    t->sweep_age_ms = b->sweep_age_ms;
    t->purge = b->purge;
    t->ndel = b->ndel;
    t->npark = b->npark;
    for (size_t i = 0; i < b->ndel && i < MAX_IDS; i++)
      snprintf(t->del[i], ID_LEN, "%s", b->del_ids[i]);
    for (size_t i = 0; i < b->npark && i < MAX_IDS; i++)
      snprintf(t->park[i], ID_LEN, "%s", b->park[i].event_id);
    if (b->npark)
      snprintf(t->park_reason, sizeof(t->park_reason), "%s", b->park[0].reason);
    t->ns = uv_hrtime();
  }
  F.ntxns++;
  while (F.gate_closed)
    pthread_cond_wait(&F.cv, &F.mu);
  if (F.fail_left > 0) {
    F.fail_left--;
    fail = 1;
  }
  pthread_mutex_unlock(&F.mu);

  b->err[0] = '\0';
  lmp__rows_truncate(b, 0);
  int r = 0;
  if (fail) {
    snprintf(b->err, sizeof(b->err), "fake: the database is away");
    r = LMP_ERETRY;
  }
  for (size_t i = 0; r == 0 && b->kind == BATCH_MESSAGES && i < b->n; i++)
    r = add_row(b, b->raws[i].offset);
  pthread_mutex_lock(&F.mu);
  if (r == 0 && b->kind == BATCH_TICK && F.tick_wake_left > 0) {
    F.tick_wake_left--;
    b->wake = 1;
  }
  pthread_mutex_unlock(&F.mu);
  if (r < 0)
    lmp__rows_truncate(b, 0);
  else if (!atomic_load(&rt->m.migrated))
    atomic_store(&rt->m.migrated, 1); /* the real transaction migrates in the first one */
  b->rc = r;
}

static const struct lmp_ops fake_ops = {fake_fetch, fake_poll_one, fake_release, fake_produce,
                                        fake_serve, fake_commit, fake_pause, fake_txn};

/* ---- The loop ------------------------------------------------------------------------ */

/* Runs the loop until cond holds, WAIT_MS at most. The pulse timer bounds each wait. */
#define WAIT_FOR(cond)                                                                  \
  do {                                                                                  \
    uint64_t deadline_ = uv_hrtime() + (uint64_t)WAIT_MS * 1000000;                     \
    while (!(cond) && uv_hrtime() < deadline_)                                          \
      uv_run(&loop, UV_RUN_ONCE);                                                       \
    if (!(cond))                                                                        \
      fail_msg("%s", "timed out waiting for " #cond);                                   \
  } while (0)

/* Runs the loop for a while: only to show that something does not happen. */
static void run_for(int ms) {
  uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000;
  while (uv_hrtime() < end)
    uv_run(&loop, UV_RUN_ONCE);
}

/* Keeps each UV_RUN_ONCE short; unreferenced, so it never keeps the loop alive. */
static void pulse_cb(uv_timer_t *t) { (void)t; }

/* daemon.c's callbacks are private to it: these do what they do. */
static void tick_cb(uv_timer_t *t) { lmp__pipeline_housekeeping(t->data); }

static void signal_cb(uv_signal_t *s, int signum) {
  struct rt *rt = s->data;
  (void)signum;
  if (rt->draining)
    lmp__daemon_finish(rt);
  else
    lmp__pipeline_drain(rt);
}

static int setup(void **state) {
  (void)state;
  memset(&F, 0, sizeof(F));
  pthread_mutex_init(&F.mu, NULL);
  pthread_cond_init(&F.cv, NULL);
  F.txns_at_first_fetch = -1;

  memset(&R, 0, sizeof(R));
  R.svc = &svc;
  lmp__daemon_wire(&R);
  R.ops = &fake_ops;
  snprintf(R.group, sizeof(R.group), "lmp-pipetest");
  R.cfg.topic_prefix = topic_prefix;
  R.cfg.dead_letter_topic = dead_letter_topic;
  R.cfg.batch_max = 2;
  R.cfg.pipeline_depth = 4;
  R.cfg.retry_initial_ms = 5;
  R.cfg.retry_max_ms = 50;
  R.cfg.retry_isolate_after = 3;
  R.cfg.max_poll_interval_ms = 300000;
  R.cfg.outbox_sweep_ms = 600000;
  R.cfg.shutdown_timeout_ms = 5000;
  R.cfg.retention_interval_s = 3600;
  lmp_metrics_init(&R.m);
  atomic_store(&R.m.migrated, 1); /* as after the first sweep: messages are consumed */

  if (uv_loop_init(&loop) != 0)
    return -1;
  loop_open = 1;
  R.loop = &loop;
  /* The handles daemon.c's start() makes, made the same way. */
  uv_timer_t *timers[] = {&R.tick, &R.retry, &R.resend, &R.sweep, &R.svc_tick, &R.deadline, &R.grace};
  for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
    uv_timer_init(&loop, timers[i]);
    timers[i]->data = &R;
  }
  uv_signal_init(&loop, &R.sigterm);
  uv_signal_init(&loop, &R.sigint);
  R.sigterm.data = R.sigint.data = &R;
  uv_signal_start(&R.sigterm, signal_cb, SIGTERM);
  uv_signal_start(&R.sigint, signal_cb, SIGINT);
  R.last_consume_ns = uv_hrtime();
  uv_timer_start(&R.tick, tick_cb, 1000, 1000);

  uv_timer_init(&loop, &pulse);
  uv_timer_start(&pulse, pulse_cb, 2, 2);
  uv_unref((uv_handle_t *)&pulse);
  return 0;
}

/* What lmp_service_main frees after its loop. */
static void free_leftovers(void) {
  free(R.carry);
  free(R.carry_msgs);
  for (size_t i = 0; i < R.npublished; i++)
    free(R.published[i]);
  free(R.published);
  for (size_t i = 0; i < R.npark; i++)
    free(R.park[i].event_id);
  free(R.park);
  R.carry = NULL;
  R.carry_msgs = NULL;
  R.published = NULL;
  R.park = NULL;
  R.ncarry = R.npublished = R.npark = 0;
}

/* The end of every test: the daemon finishes (unless the pipeline already made it),
 * the loop ends by itself, every handle is closed, every message released once, and
 * no commit broke the rules fake_commit checks. */
static void end_test(void) {
  if (!R.closing)
    lmp__daemon_finish(&R);
  WAIT_FOR(!uv_loop_alive(&loop));
  assert_null(R.head);
  assert_null(R.txn);
  uv_close((uv_handle_t *)&pulse, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(&loop), 0);
  loop_open = 0;
  assert_int_equal(F.released, F.handed);
  if (F.bad_commits)
    fail_msg("%s", F.bad_why);
}

/* After a failed test too: nothing of this one may reach the next. */
static int teardown(void **state) {
  (void)state;
  open_gate();
  if (loop_open) {
    if (!R.closing)
      lmp__daemon_finish(&R);
    uint64_t deadline = uv_hrtime() + (uint64_t)WAIT_MS * 1000000;
    while (uv_loop_alive(&loop) && uv_hrtime() < deadline)
      uv_run(&loop, UV_RUN_ONCE);
    if (!uv_is_closing((uv_handle_t *)&pulse))
      uv_close((uv_handle_t *)&pulse, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&loop) == 0)
      loop_open = 0;
  }
  lmp__pipeline_free(&R);
  free_leftovers();
  pthread_cond_destroy(&F.cv);
  pthread_mutex_destroy(&F.mu);
  return loop_open ? -1 : 0;
}

/* ---- Helpers for the scenarios -------------------------------------------------------- */

/* The newest produce of an event. */
static struct produce_rec *produced(const char *id) {
  for (size_t i = F.nproduced; i-- > 0;)
    if (strcmp(F.produced[i].id, id) == 0)
      return &F.produced[i];
  return NULL;
}

/* The broker's delivery report for the newest produce of an event, as librdkafka's
 * dr_cb gives it: on the loop thread. */
static void deliver(const char *id, rd_kafka_resp_err_t err) {
  struct produce_rec *p = produced(id);
  if (p == NULL)
    fail_msg("%s was never produced", id);
  else if (p->err != 0 || p->delivered)
    fail_msg("%s is not with the producer", id);
  else if (p->row->state != ROW_SENT)
    fail_msg("%s: row in state %d, not ROW_SENT", id, (int)p->row->state);
  else {
    p->delivered = 1;
    lmp__pipeline_delivered(&R, p->row, err);
  }
}

static int has_id(char ids[][ID_LEN], size_t n, const char *id) {
  for (size_t i = 0; i < n && i < MAX_IDS; i++)
    if (strcmp(ids[i], id) == 0)
      return 1;
  return 0;
}

static void assert_commit(size_t i, int64_t first, int64_t last) {
  assert_true(i < F.ncommits);
  assert_int_equal(F.commits[i].first, first);
  assert_int_equal(F.commits[i].last, last);
}

/* ---- Scenarios ------------------------------------------------------------------------- */

/* Batch 2 runs its transaction while batch 1 waits for the broker; acknowledgements that
 * arrive out of order still commit offsets in order, and only once both are done. */
static void overlap(void **state) {
  (void)state;
  R.cfg.pipeline_depth = 4;
  R.cfg.batch_max = 2;
  queue_messages(0, 3);
  lmp__pipeline_consume(&R);
  WAIT_FOR(F.nproduced == 4);

  assert_int_equal(txn_count(), 2);
  assert_int_equal(R.nbatches, 2);
  assert_non_null(R.head);
  assert_int_equal(R.head->raws[0].offset, 0);
  assert_int_equal(R.head->state, BATCH_PUBLISHING);
  assert_int_equal(R.head->next->state, BATCH_PUBLISHING);
  /* Batch 2's rows went to the producer after its transaction, while batch 1's were
   * still unacknowledged. */
  assert_string_equal(F.produced[2].id, "e2");
  assert_int_equal(F.produced[2].txns, 2);
  assert_null(R.txn);

  deliver("e3", RD_KAFKA_RESP_ERR_NO_ERROR);
  deliver("e2", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(R.head->next->state, BATCH_DONE);
  assert_int_equal(R.head->state, BATCH_PUBLISHING);
  assert_int_equal(F.ncommits, 0); /* batch 2 is done, but batch 1 is older */

  deliver("e0", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(F.ncommits, 0); /* e1 is still with the producer */
  deliver("e1", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(F.ncommits, 2);
  assert_commit(0, 0, 1);
  assert_commit(1, 2, 3);
  assert_null(R.head);
  assert_int_equal(R.nbatches, 0);
  assert_int_equal(atomic_load(&R.m.produced), 4);
  assert_int_equal(atomic_load(&R.m.outbox_backlog), 0);
  assert_int_equal(txn_count(), 2);
  end_test();
}

/* pipeline.depth bounds the batches in flight: a done batch that is not the head still
 * counts, and the next transaction starts only when the head is retired. */
static void depth_bound(void **state) {
  (void)state;
  R.cfg.pipeline_depth = 2;
  R.cfg.batch_max = 1;
  queue_messages(0, 3);
  lmp__pipeline_consume(&R);
  WAIT_FOR(F.nproduced == 2);
  assert_int_equal(R.nbatches, 2);
  assert_null(R.txn); /* settle decided, synchronously, not to start a third */
  run_for(30);
  assert_int_equal(txn_count(), 2);
  assert_int_equal(F.qnext, 2); /* the third message was not even fetched */

  deliver("e1", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(R.head->next->state, BATCH_DONE);
  assert_null(R.txn);
  run_for(30);
  assert_int_equal(txn_count(), 2);
  assert_int_equal(F.ncommits, 0);

  deliver("e0", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(F.ncommits, 2);
  assert_non_null(R.txn); /* the third transaction started at once */
  WAIT_FOR(F.nproduced == 4);
  assert_int_equal(txn_count(), 4);
  assert_int_equal(R.nbatches, 2);
  deliver("e2", RD_KAFKA_RESP_ERR_NO_ERROR);
  deliver("e3", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(F.ncommits, 4);
  for (size_t i = 0; i < 4; i++)
    assert_commit(i, (int64_t)i, (int64_t)i);
  end_test();
}

/* A transaction the environment fails is run again after a growing wait; nothing is
 * published or committed until it succeeds. */
static void backoff(void **state) {
  (void)state;
  fail_transactions(2);
  queue_messages(0, 1);
  lmp__pipeline_consume(&R);
  WAIT_FOR(txn_count() >= 1 && R.head && R.head->state == BATCH_BACKOFF);
  assert_int_equal(atomic_load(&R.m.db_up), 0);
  assert_int_equal(F.ncommits, 0);
  assert_int_equal(F.nproduced, 0);
  WAIT_FOR(F.nproduced == 2);

  assert_int_equal(txn_count(), 3);
  assert_int_equal(R.head->attempts, 3);
  for (int i = 0; i < 3; i++) {
    struct txn_rec t = txn_at(i);
    assert_int_equal(t.attempt, i + 1);
    assert_int_equal(t.first, 0);
    assert_int_equal(t.n, 2);
  }
  /* The waits: retry.initial_ms, then twice that (libuv timers have millisecond ticks). */
  struct txn_rec t0 = txn_at(0), t1 = txn_at(1), t2 = txn_at(2);
  assert_true(t1.ns - t0.ns >= 4 * 1000000ULL);
  assert_true(t2.ns - t1.ns >= 9 * 1000000ULL);
  assert_int_equal(atomic_load(&R.m.failed_batches), 2);
  assert_int_equal(atomic_load(&R.m.db_up), 1);
  assert_int_equal(R.backoff_ms, 0);
  assert_int_equal(F.produced[0].txns, 3); /* published only after the third attempt */
  assert_int_equal(F.ncommits, 0);

  deliver("e0", RD_KAFKA_RESP_ERR_NO_ERROR);
  deliver("e1", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(F.ncommits, 1);
  assert_commit(0, 0, 1);
  end_test();
}

/* A delivery that fails for a reason that may pass is produced again after a wait; the
 * batch commits once, when it is acknowledged. */
static void resend_after_failed_delivery(void **state) {
  (void)state;
  queue_messages(0, 1);
  lmp__pipeline_consume(&R);
  WAIT_FOR(F.nproduced == 2);
  struct outrow *row0 = F.produced[0].row;

  deliver("e0", RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
  assert_int_equal(row0->state, ROW_FAILED);
  assert_int_equal(R.head->state, BATCH_PUBLISHING); /* e1 is still out */
  uint64_t reported_ns = uv_hrtime();
  deliver("e1", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(R.head->state, BATCH_RESEND);
  assert_true(uv_is_active((uv_handle_t *)&R.resend));
  assert_int_equal(atomic_load(&R.m.publish_failures), 1);
  assert_int_equal(F.ncommits, 0);

  WAIT_FOR(F.nproduced == 3);
  assert_string_equal(F.produced[2].id, "e0");
  assert_ptr_equal(F.produced[2].row, row0); /* the same row, not a copy */
  assert_true(F.produced[2].ns - reported_ns >= 4 * 1000000ULL);
  assert_int_equal(row0->state, ROW_SENT);
  assert_int_equal(R.head->state, BATCH_PUBLISHING);
  assert_int_equal(F.ncommits, 0);

  deliver("e0", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(F.ncommits, 1);
  assert_commit(0, 0, 1);
  assert_int_equal(R.resend_ms, 0);
  run_for(30);
  assert_int_equal(F.ncommits, 1);
  assert_int_equal(F.nproduced, 3);
  assert_int_equal(atomic_load(&R.m.produced), 2);
  assert_int_equal(atomic_load(&R.m.outbox_backlog), 0);
  assert_int_equal(R.npublished, 2); /* for the next transaction to delete */
  end_test();
}

/* produce itself may fail for a reason that may pass (a full queue): the row is sent
 * again on the resend timer, with a growing wait while it keeps failing. */
static void resend_after_failed_produce(void **state) {
  (void)state;
  snprintf(F.produce_fail_id, sizeof(F.produce_fail_id), "e1");
  F.produce_fail_err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
  F.produce_fail_left = 2;
  queue_messages(0, 1);
  lmp__pipeline_consume(&R);
  WAIT_FOR(F.nproduced == 2);
  assert_int_equal(F.produced[1].err, RD_KAFKA_RESP_ERR__QUEUE_FULL);
  assert_int_equal(F.produced[1].row->state, ROW_FAILED);
  assert_int_equal(R.head->state, BATCH_PUBLISHING); /* e0 is with the producer */
  assert_false(uv_is_active((uv_handle_t *)&R.resend));

  deliver("e0", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(R.head->state, BATCH_RESEND);
  WAIT_FOR(F.nproduced == 4);
  assert_string_equal(F.produced[2].id, "e1");
  assert_int_equal(F.produced[2].err, RD_KAFKA_RESP_ERR__QUEUE_FULL);
  assert_string_equal(F.produced[3].id, "e1");
  assert_int_equal(F.produced[3].err, 0);
  assert_true(F.produced[3].ns - F.produced[2].ns >= 9 * 1000000ULL); /* 5 ms, then 10 */
  assert_int_equal(R.resend_ms, 10);
  assert_int_equal(F.ncommits, 0);

  deliver("e1", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(F.ncommits, 1);
  assert_int_equal(R.resend_ms, 0);
  assert_int_equal(atomic_load(&R.m.publish_failures), 2);
  assert_int_equal(atomic_load(&R.m.outbox_backlog), 0);
  end_test();
}

/* A row produce refuses for good does not hold the batch: its offsets are committed and
 * the next transaction is given the event to park. */
static void refused_by_produce(void **state) {
  (void)state;
  R.cfg.batch_max = 1;
  snprintf(F.produce_fail_id, sizeof(F.produce_fail_id), "e0");
  F.produce_fail_err = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
  F.produce_fail_left = 1;
  queue_messages(0, 1);
  lmp__pipeline_consume(&R);
  WAIT_FOR(F.nproduced == 2);

  assert_int_equal(F.produced[0].err, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  assert_int_equal(F.ncommits, 1);
  assert_commit(0, 0, 0);
  assert_int_equal(F.commits[0].refused, 1);
  struct txn_rec t0 = txn_at(0), t1 = txn_at(1);
  assert_int_equal(t0.npark, 0);
  assert_int_equal(t1.first, 1);
  assert_int_equal(t1.npark, 1);
  assert_string_equal(t1.park[0], "e0");
  assert_non_null(strstr(t1.park_reason, "t.out"));
  assert_int_equal(R.npark, 0); /* handed over, not kept */
  assert_int_equal(atomic_load(&R.m.publish_failures), 1);

  deliver("e1", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(F.ncommits, 2);
  assert_commit(1, 1, 1);
  assert_int_equal(atomic_load(&R.m.outbox_backlog), 0);
  assert_int_equal(atomic_load(&R.m.produced), 1);
  end_test();
}

/* The broker refuses a row for good in its delivery report: the batch completes, and
 * the transaction after the refusal (not one already running) parks it. */
static void refused_by_broker(void **state) {
  (void)state;
  R.cfg.batch_max = 1;
  queue_messages(0, 1);
  lmp__pipeline_consume(&R);
  WAIT_FOR(F.nproduced == 2);
  assert_int_equal(txn_at(1).npark, 0);

  deliver("e0", RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  assert_int_equal(F.ncommits, 1);
  assert_commit(0, 0, 0);
  assert_int_equal(F.commits[0].refused, 1);
  assert_int_equal(R.npark, 1); /* waiting for the next transaction */
  assert_int_equal(R.npublished, 0);
  assert_int_equal(atomic_load(&R.m.publish_failures), 1);

  queue_messages(2, 2);
  lmp__pipeline_consume(&R); /* as the consumer's pipe does when a message arrives */
  WAIT_FOR(F.nproduced == 3);
  struct txn_rec t2 = txn_at(2);
  assert_int_equal(t2.first, 2);
  assert_int_equal(t2.npark, 1);
  assert_string_equal(t2.park[0], "e0");
  assert_non_null(strstr(t2.park_reason, "t.out"));
  assert_int_equal(R.npark, 0);

  deliver("e1", RD_KAFKA_RESP_ERR_NO_ERROR);
  deliver("e2", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(F.ncommits, 3);
  assert_int_equal(atomic_load(&R.m.outbox_backlog), 0);
  end_test();
}

/* Drain finishes what is in flight and takes nothing new; the daemon ends when the last
 * row is acknowledged, and the loop ends with it. */
static void drain_waits_for_acknowledgements(void **state) {
  (void)state;
  queue_messages(0, 1);
  lmp__pipeline_consume(&R);
  WAIT_FOR(F.nproduced == 2);
  queue_messages(2, 3); /* arrived after the batch was fetched */
  int fetches = F.fetches;

  lmp__pipeline_drain(&R);
  assert_true(R.draining);
  assert_false(R.closing);
  assert_int_equal(atomic_load(&R.m.draining), 1);
  lmp__pipeline_consume(&R);
  assert_int_equal(F.fetches, fetches);
  run_for(30);
  assert_false(R.closing);
  assert_true(uv_loop_alive(&loop));
  assert_int_equal(txn_count(), 1);

  deliver("e0", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_false(R.closing);
  deliver("e1", RD_KAFKA_RESP_ERR_NO_ERROR);
  /* The last transaction deletes the acknowledged rows and republishes nothing; then
   * the pipeline finishes the daemon itself. */
  WAIT_FOR(R.closing);
  assert_int_equal(txn_count(), 2);
  assert_int_equal(txn_at(1).kind, BATCH_SWEEP);
  assert_int_equal(txn_at(1).ndel, 2);
  assert_int_equal(txn_at(1).sweep_age_ms, INT32_MAX);
  assert_int_equal(F.ncommits, 1);
  assert_commit(0, 0, 1);
  WAIT_FOR(!uv_loop_alive(&loop));
  assert_int_equal(F.qnext, 2); /* messages 2 and 3 were never taken */
  assert_int_equal(F.nproduced, 2);
  end_test();
}

/* A drain does not abandon a batch waiting to retry its transaction. */
static void drain_waits_for_a_retry(void **state) {
  (void)state;
  fail_transactions(1);
  queue_messages(0, 1);
  lmp__pipeline_consume(&R);
  WAIT_FOR(R.head && R.head->state == BATCH_BACKOFF);
  lmp__pipeline_drain(&R);
  assert_false(R.closing);
  WAIT_FOR(F.nproduced == 2);
  assert_int_equal(txn_at(1).attempt, 2);
  deliver("e0", RD_KAFKA_RESP_ERR_NO_ERROR);
  deliver("e1", RD_KAFKA_RESP_ERR_NO_ERROR);
  WAIT_FOR(R.closing);
  assert_int_equal(F.ncommits, 1);
  WAIT_FOR(!uv_loop_alive(&loop));
  end_test();
}

/* The end while the worker holds a batch: the loop waits for the worker (under the grace
 * timer), then frees the batch without publishing or committing it. */
static void finish_while_the_worker_holds_a_batch(void **state) {
  (void)state;
  F.gate_closed = 1;
  queue_messages(0, 1);
  lmp__pipeline_consume(&R);
  WAIT_FOR(txn_count() == 1);

  lmp__daemon_finish(&R);
  assert_true(R.closing);
  assert_non_null(R.txn);
  assert_ptr_equal(R.head, R.txn); /* the worker's batch is not freed under it */
  assert_true(uv_is_active((uv_handle_t *)&R.grace));
  assert_true(uv_is_closing((uv_handle_t *)&R.tick));
  assert_true(uv_is_closing((uv_handle_t *)&R.sigterm));

  open_gate();
  WAIT_FOR(!uv_loop_alive(&loop));
  assert_null(R.head);
  assert_null(R.txn);
  assert_int_equal(F.nproduced, 0); /* its rows stay in the outbox for the sweep */
  assert_int_equal(F.ncommits, 0);  /* its messages come back after a restart */
  assert_int_equal(F.released, 2);
  end_test();
}

/* What the broker acknowledged is handed to the next transaction to delete; a
 * transaction that fails hands the ids back, and its retry takes them again. */
static void acknowledged_ids_are_deleted_next(void **state) {
  (void)state;
  R.cfg.pipeline_depth = 2;
  R.cfg.batch_max = 2;
  queue_messages(0, 5);
  lmp__pipeline_consume(&R);
  WAIT_FOR(F.nproduced == 4);
  assert_int_equal(txn_at(0).ndel, 0);
  assert_int_equal(txn_at(1).ndel, 0);

  deliver("e0", RD_KAFKA_RESP_ERR_NO_ERROR);
  deliver("e2", RD_KAFKA_RESP_ERR_NO_ERROR);
  deliver("e3", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(R.npublished, 3);
  assert_int_equal(txn_count(), 2);
  deliver("e1", RD_KAFKA_RESP_ERR_NO_ERROR);
  WAIT_FOR(F.nproduced == 6);
  struct txn_rec t2 = txn_at(2);
  assert_int_equal(t2.first, 4);
  assert_int_equal(t2.ndel, 4);
  assert_true(has_id(t2.del, t2.ndel, "e0") && has_id(t2.del, t2.ndel, "e1") &&
              has_id(t2.del, t2.ndel, "e2") && has_id(t2.del, t2.ndel, "e3"));
  assert_int_equal(R.npublished, 0);

  queue_messages(6, 6);
  fail_transactions(1);
  deliver("e4", RD_KAFKA_RESP_ERR_NO_ERROR);
  deliver("e5", RD_KAFKA_RESP_ERR_NO_ERROR);
  WAIT_FOR(F.nproduced == 7);
  struct txn_rec t3 = txn_at(3), t4 = txn_at(4);
  assert_int_equal(t3.first, 6);
  assert_int_equal(t3.attempt, 1);
  assert_int_equal(t3.ndel, 2);
  assert_int_equal(t4.first, 6);
  assert_int_equal(t4.attempt, 2);
  assert_int_equal(t4.ndel, 2);
  assert_true(has_id(t4.del, t4.ndel, "e4") && has_id(t4.del, t4.ndel, "e5"));
  assert_int_equal(R.npublished, 0);

  deliver("e6", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(F.ncommits, 4);
  assert_commit(3, 6, 6);
  end_test();
}

/* When nothing is consumed for a third of max.poll.interval.ms while work is in flight,
 * housekeeping pauses fetching and polls; what the poll returns is kept, and is the head
 * of the next batch, before anything fetched after the resume. */
static void pause_poll_and_carry(void **state) {
  (void)state;
  uv_timer_stop(&R.tick); /* housekeeping only when the test calls it */
  R.cfg.pipeline_depth = 1;
  R.cfg.batch_max = 2;
  R.cfg.max_poll_interval_ms = 1500; /* quiet for more than 500 ms is too long */
  queue_messages(0, 4);
  lmp__pipeline_consume(&R);
  WAIT_FOR(F.nproduced == 2);

  lmp__pipeline_housekeeping(&R);
  assert_int_equal(F.serves, 1);
  assert_int_equal(F.npauses, 0); /* consumed a moment ago */
  WAIT_FOR((uv_hrtime() - R.last_consume_ns) / 1000000 > 500);
  lmp__pipeline_housekeeping(&R);
  assert_int_equal(F.npauses, 1);
  assert_int_equal(F.pauses[0], 1);
  assert_true(R.paused);
  assert_int_equal(R.ncarry, 1);
  lmp__pipeline_housekeeping(&R);
  assert_int_equal(F.npauses, 1);
  assert_int_equal(R.ncarry, 2);
  assert_int_equal(R.carry[0].offset, 2);
  assert_int_equal(R.carry[1].offset, 3);

  deliver("e0", RD_KAFKA_RESP_ERR_NO_ERROR);
  deliver("e1", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(R.ncarry, 0);
  assert_false(R.paused);
  assert_int_equal(F.npauses, 2);
  assert_int_equal(F.pauses[1], 0);
  WAIT_FOR(F.nproduced == 4);
  struct txn_rec t1 = txn_at(1);
  assert_int_equal(t1.first, 2);
  assert_int_equal(t1.n, 2);

  deliver("e2", RD_KAFKA_RESP_ERR_NO_ERROR);
  deliver("e3", RD_KAFKA_RESP_ERR_NO_ERROR);
  WAIT_FOR(F.nproduced == 5);
  deliver("e4", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(F.ncommits, 3);
  assert_commit(0, 0, 1);
  assert_commit(1, 2, 3);
  assert_commit(2, 4, 4);
  end_test();
}

/* The index of the n-th (from 1) sweep transaction, or -1. */
static int nth_sweep(int n) {
  for (int i = 0; i < txn_count(); i++)
    if (txn_at(i).kind == BATCH_SWEEP && --n == 0)
      return i;
  return -1;
}

/* At start the first sweep runs before any message is read (it migrates), takes every
 * row left in the outbox (age 0), purges, and commits no offsets; later sweeps take
 * only rows older than a sweep period, and purge once per retention.interval_s. */
static void first_sweep_before_messages(void **state) {
  (void)state;
  R.cfg.outbox_sweep_ms = 200; /* long beside the first sweep: it ends before the second */
  atomic_store(&R.m.migrated, 0);
  queue_messages(0, 1);
  lmp__pipeline_start(&R);
  WAIT_FOR(F.nproduced == 2);
  struct txn_rec t0 = txn_at(0), t1 = txn_at(1);
  assert_int_equal(t0.kind, BATCH_SWEEP);
  assert_int_equal(t0.sweep_age_ms, 0);
  assert_int_equal(t0.purge, 1);
  assert_int_equal(t1.kind, BATCH_MESSAGES);
  assert_int_equal(F.txns_at_first_fetch, 1);
  assert_true(R.first_sweep_done);
  deliver("e0", RD_KAFKA_RESP_ERR_NO_ERROR);
  deliver("e1", RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(F.ncommits, 1);
  assert_commit(0, 0, 1);

  WAIT_FOR(nth_sweep(2) >= 0 && R.head == NULL);
  struct txn_rec t2 = txn_at(nth_sweep(2));
  assert_int_equal(t2.sweep_age_ms, 200);
  assert_int_equal(t2.purge, 0);
  assert_int_equal(t2.ndel, 2); /* the sweep deletes what the broker acknowledged */
  assert_int_equal(F.ncommits, 1);
  end_test();
}

static int ticks(void) {
  int k = 0;
  for (int i = 0; i < txn_count(); i++)
    k += txn_at(i).kind == BATCH_TICK;
  return k;
}

static void wake(void) {
  R.tick_wanted = 1;
  R.up.consume(&R);
}

/* Wake-ups within tick_gap_ms of the last tick make one tick when the gap is over, not
 * one each; a tick that finds more due runs again at once. */
static void wakeups_within_the_gap_coalesce(void **state) {
  (void)state;
  R.svc = &ticking;
  lmp__pipeline_start(&R);
  WAIT_FOR(nth_sweep(1) >= 0 && R.head == NULL);
  wake();
  WAIT_FOR(ticks() == 1 && R.head == NULL);
  uint64_t first = txn_at(txn_count() - 1).ns;
  for (int i = 0; i < 5; i++)
    wake();
  assert_int_equal(ticks(), 1); /* none started at once */
  WAIT_FOR(ticks() == 2 && R.head == NULL);
  uint64_t second = txn_at(txn_count() - 1).ns;
  if (second - first < 140u * 1000000u)
    fail_msg("the coalesced tick ran %llu ms after the first", (unsigned long long)((second - first) / 1000000));
  run_for(400);
  assert_int_equal(ticks(), 2); /* five wake-ups, one tick */
  pthread_mutex_lock(&F.mu);
  F.tick_wake_left = 1;
  pthread_mutex_unlock(&F.mu);
  wake();
  WAIT_FOR(ticks() == 4 && R.head == NULL);
  uint64_t third = txn_at(txn_count() - 2).ns, fourth = txn_at(txn_count() - 1).ns;
  if (fourth - third >= 140u * 1000000u) /* it asked for itself: no gap */
    fail_msg("the tick that asked for itself waited %llu ms", (unsigned long long)((fourth - third) / 1000000));
  end_test();
}

int main(void) {
  lmp_log_init("pipetest", "error");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(overlap, setup, teardown),
      cmocka_unit_test_setup_teardown(depth_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(backoff, setup, teardown),
      cmocka_unit_test_setup_teardown(resend_after_failed_delivery, setup, teardown),
      cmocka_unit_test_setup_teardown(resend_after_failed_produce, setup, teardown),
      cmocka_unit_test_setup_teardown(refused_by_produce, setup, teardown),
      cmocka_unit_test_setup_teardown(refused_by_broker, setup, teardown),
      cmocka_unit_test_setup_teardown(drain_waits_for_acknowledgements, setup, teardown),
      cmocka_unit_test_setup_teardown(drain_waits_for_a_retry, setup, teardown),
      cmocka_unit_test_setup_teardown(finish_while_the_worker_holds_a_batch, setup, teardown),
      cmocka_unit_test_setup_teardown(acknowledged_ids_are_deleted_next, setup, teardown),
      cmocka_unit_test_setup_teardown(pause_poll_and_carry, setup, teardown),
      cmocka_unit_test_setup_teardown(first_sweep_before_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(wakeups_within_the_gap_coalesce, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
