/* The pipeline on the loop thread. Batches form a FIFO: the youngest may run its
 * transaction on the worker while older ones wait for the broker to acknowledge what
 * they emitted; a batch's offsets are committed only when it and every older batch
 * are done, so offsets move in order and only past work that is safe on the broker.
 *
 *   consume -> WORKING -> PUBLISHING -> DONE -> offsets committed, batch freed
 *                 |  ^        |  ^
 *                 v  |        v  |
 *               BACKOFF     RESEND      (the environment failed; timers bring them back)
 *
 * Every event that may move work forward (a transaction done, a delivery report, a
 * timer, messages arriving) ends in settle(), the one place that retires batches and
 * starts the next one. */
#include <stdlib.h>
#include <string.h>

#include "lmp/error.h"
#include "lmp/log.h"
#include "rt.h"

static void settle(struct rt *rt);
static void publish(struct rt *rt, struct batch *b);
static void resend_cb(uv_timer_t *t);

static uint64_t age_ms(const struct batch *b) { return (uv_hrtime() - b->started_ns) / 1000000; }

/* The one place a batch changes state. */
static void set_state(struct batch *b, enum batch_state s) { b->state = s; }

static int backoff(int *cur, int initial, int max) {
  int ms = *cur ? *cur * 2 : initial;
  *cur = ms > max ? max : ms;
  return *cur;
}

static struct batch *batch_new(struct rt *rt, enum batch_kind kind, rd_kafka_message_t **msgs, size_t n) {
  struct batch *b = calloc(1, sizeof(*b));
  unsigned char *retried = calloc(n ? n : 1, 1);
  if (b == NULL || retried == NULL) {
    lmp_error(NULL, "out of memory for a batch");
    free(b);
    free(retried);
    for (size_t i = 0; i < n; i++)
      rd_kafka_message_destroy(msgs[i]);
    free(msgs);
    return NULL; /* offsets not committed: these messages come back after a restart */
  }
  b->kind = kind;
  b->msgs = msgs;
  b->n = n;
  b->retried = retried;
  b->started_ns = uv_hrtime();
  if (rt->tail)
    rt->tail->next = b;
  else
    rt->head = b;
  rt->tail = b;
  rt->nbatches++;
  return b;
}

static void unlink_head(struct rt *rt) {
  struct batch *b = rt->head;
  rt->head = b->next;
  if (rt->head == NULL)
    rt->tail = NULL;
  rt->nbatches--;
  lmp__batch_free(b);
}

/* Removes a batch that never committed (a failed sweep or tick): always the youngest. */
static void unlink_tail(struct rt *rt, struct batch *b) {
  struct batch **p = &rt->head;
  while (*p != b)
    p = &(*p)->next;
  *p = NULL;
  rt->tail = NULL;
  for (struct batch *x = rt->head; x; x = x->next)
    rt->tail = x;
  rt->nbatches--;
  lmp__batch_free(b);
}

/* ---- The transaction on the worker ------------------------------------------------ */

static void work_cb(uv_work_t *w) {
  struct rt *rt = w->data;
  lmp__txn_run(rt, rt->txn);
}

static void take_list(char ***dst, size_t *ndst, char ***src, size_t *nsrc, size_t *capsrc) {
  *dst = *src;
  *ndst = *nsrc;
  *src = NULL;
  *nsrc = *capsrc = 0;
}

static void after_work_cb(uv_work_t *w, int status);

static void start_work(struct rt *rt, struct batch *b) {
  /* The transaction deletes what the broker acknowledged and parks what it refused;
   * both come back to rt if it fails. */
  if (b->ndel == 0 && rt->npublished)
    take_list(&b->del_ids, &b->ndel, &rt->published, &rt->npublished, &rt->cappublished);
  if (b->npark == 0 && rt->npark) {
    b->park = rt->park;
    b->npark = rt->npark;
    rt->park = NULL;
    rt->npark = rt->cappark = 0;
  }
  set_state(b, BATCH_WORKING);
  rt->txn = b;
  rt->work.data = rt;
  b->attempts++;
  int r = uv_queue_work(rt->loop, &rt->work, work_cb, after_work_cb);
  if (r < 0) {
    lmp_error(NULL, "cannot queue database work: %s", uv_strerror(r));
    rt->exit_code = 1;
    lmp__daemon_finish(rt);
  }
}

static int push_id(struct rt *rt, char *id) {
  if (rt->npublished == rt->cappublished) {
    size_t cap = rt->cappublished ? rt->cappublished * 2 : 256;
    char **p = realloc(rt->published, cap * sizeof(*p));
    if (p == NULL)
      return LMP_ENOMEM;
    rt->published = p;
    rt->cappublished = cap;
  }
  rt->published[rt->npublished++] = id;
  return 0;
}

static void push_park(struct rt *rt, char *id, const char *reason) {
  if (rt->npark == rt->cappark) {
    size_t cap = rt->cappark ? rt->cappark * 2 : 8;
    struct parked *p = realloc(rt->park, cap * sizeof(*p));
    if (p == NULL) {
      free(id); /* the sweeper finds the row again and the broker refuses it again */
      return;
    }
    rt->park = p;
    rt->cappark = cap;
  }
  rt->park[rt->npark].event_id = id;
  snprintf(rt->park[rt->npark].reason, sizeof(rt->park[rt->npark].reason), "%s", reason);
  rt->npark++;
}

/* A failed transaction hands back what it was to delete and to park. */
static void give_back(struct rt *rt, struct batch *b) {
  for (size_t i = 0; i < b->ndel; i++)
    if (push_id(rt, b->del_ids[i]) < 0)
      free(b->del_ids[i]); /* the sweeper republishes it; consumers deduplicate */
  free(b->del_ids);
  b->del_ids = NULL;
  b->ndel = 0;
  for (size_t i = 0; i < b->npark; i++)
    push_park(rt, b->park[i].event_id, b->park[i].reason);
  free(b->park);
  b->park = NULL;
  b->npark = 0;
}

static void retry_cb(uv_timer_t *t) {
  struct rt *rt = t->data;
  if (rt->txn && rt->txn->state == BATCH_BACKOFF && !rt->closing)
    start_work(rt, rt->txn);
}

static void after_work_cb(uv_work_t *w, int status) {
  struct rt *rt = w->data;
  struct batch *b = rt->txn;
  if (rt->closing) {
    /* The drain ended while the worker held this batch; it is the last to go. */
    rt->txn = NULL;
    unlink_tail(rt, b);
    uv_close((uv_handle_t *)&rt->grace, NULL);
    return;
  }
  if (b->rc < 0) {
    atomic_fetch_add(&rt->m.failed_batches, 1);
    if (b->rc == LMP_ERETRY && (rt->db.conn == NULL || PQstatus(rt->db.conn) != CONNECTION_OK))
      atomic_store(&rt->m.db_up, 0);
    give_back(rt, b);
    if (b->kind != BATCH_MESSAGES) {
      /* A sweep or a tick: its timer brings it back. Holding on to it would keep the
       * consumer from the messages that are waiting. */
      lmp_warn(NULL, "%s failed: %s", b->kind == BATCH_SWEEP ? "outbox sweep" : "tick", b->err);
      rt->txn = NULL;
      unlink_tail(rt, b);
      settle(rt);
      return;
    }
    int ms = backoff(&rt->backoff_ms, rt->cfg.retry_initial_ms, rt->cfg.retry_max_ms);
    lmp_warn(NULL, "batch of %zu rolled back (attempt %d): %s; retrying in %d ms%s", b->n, b->attempts,
             b->err, ms, b->isolate ? ", one message at a time" : "");
    set_state(b, BATCH_BACKOFF);
    uv_timer_start(&rt->retry, retry_cb, (uint64_t)ms, 0);
    return;
  }
  atomic_store(&rt->m.db_up, 1);
  rt->backoff_ms = 0;
  rt->txn = NULL;
  for (size_t i = 0; i < b->ndel; i++)
    free(b->del_ids[i]);
  b->ndel = 0;
  if (b->wake)
    rt->tick_wanted = 1;
  atomic_fetch_add(&rt->m.outbox_backlog, (int64_t)b->nrows);
  set_state(b, BATCH_PUBLISHING);
  publish(rt, b);
  settle(rt);
}

/* ---- Publishing ---------------------------------------------------------------------- */

static void refused(struct rt *rt, struct outrow *row, rd_kafka_resp_err_t err) {
  row->state = ROW_REFUSED;
  char *id = strdup(row->event_id);
  char reason[256];
  snprintf(reason, sizeof(reason), "%s: %s", row->topic, rd_kafka_err2str(err));
  if (id)
    push_park(rt, id, reason);
  atomic_fetch_sub(&rt->m.outbox_backlog, 1);
  atomic_fetch_add(&rt->m.publish_failures, 1);
  lmp_error(NULL, "the broker refuses event %s for good (%s); it will be parked", row->event_id, reason);
}

/* Every row reported: done, or some to send again after a wait. */
static void reported(struct rt *rt, struct batch *b) {
  for (size_t i = 0; i < b->nrows; i++)
    if (b->rows[i].state == ROW_FAILED) {
      set_state(b, BATCH_RESEND);
      if (!uv_is_active((uv_handle_t *)&rt->resend)) {
        int ms = backoff(&rt->resend_ms, rt->cfg.retry_initial_ms, rt->cfg.retry_max_ms);
        lmp_warn(NULL, "events of a batch not acknowledged; sending them again in %d ms", ms);
        uv_timer_start(&rt->resend, resend_cb, (uint64_t)ms, 0);
      }
      return;
    }
  rt->resend_ms = 0;
  set_state(b, BATCH_DONE);
}

static void publish(struct rt *rt, struct batch *b) {
  for (size_t i = 0; i < b->nrows; i++) {
    struct outrow *row = &b->rows[i];
    if (row->state != ROW_NEW && row->state != ROW_FAILED)
      continue;
    rd_kafka_headers_t *h = rd_kafka_headers_new(row->nhdrs);
    for (size_t k = 0; k < row->nhdrs; k++)
      rd_kafka_header_add(h, row->hdrs[k].name, -1, row->hdrs[k].value, (ssize_t)row->hdrs[k].len);
    row->b = b;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rt->producer, RD_KAFKA_V_TOPIC(row->topic), RD_KAFKA_V_KEY(row->key, row->keylen),
        RD_KAFKA_V_VALUE(row->value, row->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(row), RD_KAFKA_V_END);
    if (err) {
      rd_kafka_headers_destroy(h); /* not owned by librdkafka on failure */
      if (lmp__kafka_permanent(err)) {
        refused(rt, row, err);
      } else {
        row->state = ROW_FAILED;
        atomic_fetch_add(&rt->m.publish_failures, 1);
        lmp_warn(NULL, "cannot queue event for %s: %s", row->topic, rd_kafka_err2str(err));
      }
      continue;
    }
    row->state = ROW_SENT; /* h is owned by librdkafka now */
    b->pending++;
  }
  if (b->pending == 0)
    reported(rt, b);
}

void lmp__pipeline_delivered(struct rt *rt, struct outrow *row, rd_kafka_resp_err_t err) {
  if (rt->closing)
    return; /* the batches are gone; what was not acknowledged stays in the outbox */
  struct batch *b = row->b;
  b->pending--;
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    row->state = ROW_ACKED;
    atomic_fetch_add(&rt->m.produced, 1);
    atomic_fetch_sub(&rt->m.outbox_backlog, 1);
    char *id = strdup(row->event_id);
    if (id && push_id(rt, id) < 0)
      free(id); /* the sweeper republishes it; consumers deduplicate */
  } else if (lmp__kafka_permanent(err)) {
    refused(rt, row, err);
  } else {
    row->state = ROW_FAILED;
    atomic_fetch_add(&rt->m.publish_failures, 1);
    lmp_warn(NULL, "delivery to %s failed: %s", row->topic, rd_kafka_err2str(err));
  }
  if (b->pending == 0) {
    reported(rt, b);
    settle(rt);
  }
}

static void resend_cb(uv_timer_t *t) {
  struct rt *rt = t->data;
  for (struct batch *b = rt->head; b; b = b->next)
    if (b->state == BATCH_RESEND) {
      set_state(b, BATCH_PUBLISHING);
      publish(rt, b);
    }
  settle(rt);
}

/* ---- Starting batches ---------------------------------------------------------------- */

static void keep(struct rt *rt, rd_kafka_message_t *m, rd_kafka_message_t **msgs, size_t *n) {
  if (m->err) {
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      lmp_warn(NULL, "consumer: %s", rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
    return;
  }
  msgs[(*n)++] = m;
}

/* Up to batch.max messages: those fetched while paused first (they are older). */
static void start_messages(struct rt *rt) {
  size_t max = (size_t)rt->cfg.batch_max;
  if (max < rt->ncarry)
    max = rt->ncarry;
  rd_kafka_message_t **msgs = malloc(max * sizeof(*msgs));
  if (msgs == NULL)
    return;
  size_t n = rt->ncarry;
  if (n)
    memcpy(msgs, rt->carry, n * sizeof(*msgs));
  rt->ncarry = 0;
  if (rt->paused)
    lmp__kafka_pause(rt, 0);
  if (n < max) {
    size_t first = n;
    ssize_t got = rd_kafka_consume_batch_queue(rt->cq, 0, msgs + first, max - first);
    for (ssize_t i = 0; i < got; i++)
      keep(rt, msgs[first + (size_t)i], msgs, &n); /* n <= first + i: compacts in place */
  }
  rt->last_consume_ns = uv_hrtime();
  if (n == 0) {
    free(msgs);
    return;
  }
  atomic_fetch_add(&rt->m.consumed, n);
  atomic_store(&rt->m.kafka_up, 1);
  struct batch *b = batch_new(rt, BATCH_MESSAGES, msgs, n);
  if (b)
    start_work(rt, b);
}

/* The worker is free: a sweep first (the first one migrates), then the service's
 * tick when it is due, then messages, while the FIFO has room. */
static void start_next(struct rt *rt) {
  if (rt->txn || rt->closing || rt->draining || rt->nbatches >= (size_t)rt->cfg.pipeline_depth)
    return;
  struct batch *b = NULL;
  if (rt->sweep_wanted) {
    rt->sweep_wanted = 0;
    if ((b = batch_new(rt, BATCH_SWEEP, NULL, 0)) != NULL) {
      /* At start-up every row is a leftover; later, only rows older than a sweep
       * period, so rows another instance is publishing right now are left to it. */
      b->sweep_age_ms = rt->first_sweep_done ? rt->cfg.outbox_sweep_ms : 0;
      rt->first_sweep_done = 1;
      start_work(rt, b);
    }
  } else if (rt->tick_wanted && rt->svc->tick && atomic_load(&rt->m.migrated)) {
    rt->tick_wanted = 0;
    if ((b = batch_new(rt, BATCH_TICK, NULL, 0)) != NULL)
      start_work(rt, b);
  } else if (atomic_load(&rt->m.migrated)) {
    start_messages(rt);
  }
}

/* Retires finished batches in order, then starts what can start. */
static void settle(struct rt *rt) {
  while (rt->head && rt->head->state == BATCH_DONE) {
    struct batch *b = rt->head;
    if (b->kind == BATCH_MESSAGES) {
      lmp__kafka_commit(rt, b);
      lmp_metrics_observe_batch(&rt->m, (uv_hrtime() - b->started_ns) / 1000);
    }
    atomic_fetch_add(&rt->m.applied, b->applied);
    atomic_fetch_add(&rt->m.duplicates, b->dups);
    atomic_fetch_add(&rt->m.dead_lettered, b->dead);
    atomic_fetch_add(&rt->m.parked, b->parked);
    if (b->n || b->nrows)
      lmp_debug(NULL, "batch of %zu: %llu applied, %llu duplicate, %llu dead-lettered, %zu published",
                b->n, (unsigned long long)b->applied, (unsigned long long)b->dups,
                (unsigned long long)b->dead, b->nrows);
    unlink_head(rt);
  }
  if (rt->draining) {
    if (lmp__pipeline_idle(rt))
      lmp__daemon_finish(rt);
    return;
  }
  start_next(rt);
}

int lmp__pipeline_idle(const struct rt *rt) { return rt->head == NULL; }

void lmp__pipeline_consume(struct rt *rt) { settle(rt); }

static void sweep_cb(uv_timer_t *t) {
  struct rt *rt = t->data;
  rt->sweep_wanted = 1;
  settle(rt);
}

static void svc_tick_cb(uv_timer_t *t) {
  struct rt *rt = t->data;
  rt->tick_wanted = 1;
  settle(rt);
}

void lmp__pipeline_start(struct rt *rt) {
  /* The first sweep migrates the database and republishes what a crash left. */
  uv_timer_start(&rt->sweep, sweep_cb, 0, (uint64_t)rt->cfg.outbox_sweep_ms);
  if (rt->svc->tick)
    uv_timer_start(&rt->svc_tick, svc_tick_cb, (uint64_t)rt->svc->tick_ms, (uint64_t)rt->svc->tick_ms);
}

void lmp__pipeline_drain(struct rt *rt) {
  rt->draining = 1;
  atomic_store(&rt->m.draining, 1);
  uv_timer_stop(&rt->sweep);
  uv_timer_stop(&rt->svc_tick);
  settle(rt);
}

/* Frees every batch the worker does not hold, and the carried messages. */
void lmp__pipeline_free(struct rt *rt) {
  while (rt->head && rt->head != rt->txn)
    unlink_head(rt);
  if (rt->head == NULL || rt->txn->state != BATCH_WORKING) {
    while (rt->head)
      unlink_head(rt);
    rt->txn = NULL;
  }
  for (size_t i = 0; i < rt->ncarry; i++)
    rd_kafka_message_destroy(rt->carry[i]);
  rt->ncarry = 0;
}

/* Once a second: the heartbeat; and when nothing was consumed for a third of
 * max.poll.interval.ms (a stuck transaction, a broker that does not acknowledge),
 * pause fetching and poll, so the group keeps this member. */
void lmp__pipeline_housekeeping(struct rt *rt) {
  atomic_store(&rt->m.heartbeat_ms, (int64_t)(uv_hrtime() / 1000000));
  if (rt->closing)
    return;
  /* Delivery reports arrive through the producer's pipe; serving the queue here as
   * well means a lost wake-up can only delay a report by a second, never stall. */
  rd_kafka_poll(rt->producer, 0);
  if (rt->head && rt->head->state == BATCH_PUBLISHING && age_ms(rt->head) > 10000 &&
      age_ms(rt->head) % 10000 < 1000)
    lmp_warn(NULL, "%d events still wait for the broker's acknowledgement", rt->head->pending);
  settle(rt);
  uint64_t quiet = (uv_hrtime() - rt->last_consume_ns) / 1000000;
  if (rt->closing || rt->head == NULL || quiet <= (uint64_t)rt->cfg.max_poll_interval_ms / 3)
    return;
  if (!rt->paused) {
    lmp__kafka_pause(rt, 1);
    lmp_warn(NULL, "nothing consumed for %llu ms while work is in flight: fetching paused",
             (unsigned long long)quiet);
  }
  /* Polling keeps us in the group. A message fetched before the pause took effect
   * is kept for the next batch: the consumer's position has moved past it, so
   * dropping it would skip it for good. */
  rd_kafka_message_t *m = rd_kafka_consumer_poll(rt->consumer, 0);
  if (m && m->err) {
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      lmp_warn(NULL, "consumer: %s", rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
  } else if (m) {
    if (rt->ncarry == rt->capcarry) {
      size_t cap = rt->capcarry ? rt->capcarry * 2 : 64;
      rd_kafka_message_t **p = realloc(rt->carry, cap * sizeof(*p));
      if (p == NULL) {
        lmp_error(NULL, "out of memory keeping a fetched message; exiting so it is redelivered");
        rd_kafka_message_destroy(m);
        rt->exit_code = 1;
        lmp__daemon_finish(rt);
        return;
      }
      rt->carry = p;
      rt->capcarry = cap;
    }
    rt->carry[rt->ncarry++] = m;
  }
  settle(rt);
}
