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
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/base/error.h"
#include "lmp/base/ids.h"
#include "lmp/base/log.h"
#include "runtime/rt.h"

static void settle(struct rt *rt);
static void svc_tick_cb(uv_timer_t *t);
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

/* ---- The transaction on the worker ------------------------------------------------ */

static void work_cb(uv_work_t *w) {
  struct rt *rt = w->data;
  rt->ops->txn(rt, rt->txn);
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
    rt->up.finish(rt);
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
    lmp__batch_unlink_tail(rt, b);
    uv_close((uv_handle_t *)&rt->grace, NULL);
    return;
  }
  if (b->rc < 0) {
    atomic_fetch_add(&rt->m.failed_batches, 1);
    int connected = rt->db.conn && PQstatus(rt->db.conn) == CONNECTION_OK;
    if (b->rc == LMP_ERETRY && !connected) {
      atomic_store(&rt->m.db_up, 0);
      atomic_store(&rt->m.db_refused, rt->db.refused);
    } else if (connected) {
      atomic_store(&rt->m.db_up, 1); /* reached, and refused a statement (or not migrated yet) */
    }
    give_back(rt, b);
    if (b->purge)
      rt->purged_ns = 0; /* the purge did not happen: the next sweep tries it */
    if (b->kind != BATCH_MESSAGES) {
      /* A sweep or a tick: its timer brings it back. Holding on to it would keep the
       * consumer from the messages that are waiting. */
      lmp_warn(NULL, "%s failed: %s", b->kind == BATCH_SWEEP ? "outbox sweep" : "tick", b->err);
      rt->txn = NULL;
      lmp__batch_unlink_tail(rt, b);
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
  atomic_store(&rt->m.db_refused, 0);
  if (b->parked_waiting >= 0)
    atomic_store(&rt->m.parked_waiting, b->parked_waiting);
  lmp_http_wake(rt->http); /* long polls may have their answer now */
  rt->backoff_ms = 0;
  rt->txn = NULL;
  for (size_t i = 0; i < b->ndel; i++)
    free(b->del_ids[i]);
  b->ndel = 0;
  if (b->wake) {
    rt->tick_wanted = 1;
    if (b->kind == BATCH_TICK)
      rt->tick_now = 1; /* the tick found more due than it took */
    lmp__background_wake(rt);
  } else if (b->kind == BATCH_SWEEP) {
    lmp__background_wake(rt); /* the first one made the tables they wait for */
  }
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
  set_state(b, BATCH_DONE);
  int waiting = 0;
  for (struct batch *x = rt->head; x; x = x->next)
    waiting |= x->state == BATCH_RESEND;
  if (!waiting)
    rt->resend_ms = 0; /* the broker took everything: the next failure starts short */
}

static const char *row_header(const struct outrow *row, const char *name, char *out, size_t outlen) {
  for (size_t i = 0; i < row->nhdrs; i++)
    if (strcmp(row->hdrs[i].name, name) == 0) {
      snprintf(out, outlen, "%.*s", (int)row->hdrs[i].len, (const char *)row->hdrs[i].value);
      return out;
    }
  return NULL;
}

/* A row's publish span, from its emit (or first produce, when swept) to the broker's
 * answer; its id is the one the event's traceparent carries, so the consumer's span
 * hangs under it. */
static void publish_span(const struct rt *rt, const struct outrow *row, rd_kafka_resp_err_t err) {
  char tp[64], type[128];
  /* A dead letter carries its original's headers, traceparent among them: its span
   * would repeat the original publish's id. The handling's span says it was sent. */
  if (!lmp_trace_enabled() || strcmp(row->topic, rt->dead_letter) == 0 ||
      !row_header(row, "traceparent", tp, sizeof(tp)) || !lmp_traceparent_sampled(tp))
    return;
  if (!row_header(row, "event_type", type, sizeof(type)))
    snprintf(type, sizeof(type), "event");
  struct lmp_span s;
  char name[160];
  snprintf(name, sizeof(name), "send %s", type);
  lmp_span_begin(&s, name, LMP_SPAN_PRODUCER, tp, *row->parent ? row->parent : NULL);
  if (row->emitted_ns)
    s.start_ns = row->emitted_ns;
  lmp_span_str(&s, "messaging.system", "kafka");
  lmp_span_str(&s, "messaging.operation.type", "send");
  lmp_span_str(&s, "messaging.destination.name", row->topic);
  lmp_span_str(&s, "messaging.message.id", row->event_id);
  lmp_span_str(&s, "lmp.event_type", type);
  if (err) {
    lmp_span_fail(&s, "the broker refused it: %s", rd_kafka_err2str(err));
  } else {
    lmp_span_int(&s, "messaging.destination.partition.id", row->partition);
    lmp_span_int(&s, "messaging.kafka.offset", row->offset);
  }
  lmp_span_end(&s);
}

static void publish(struct rt *rt, struct batch *b) {
  for (size_t i = 0; i < b->nrows; i++) {
    struct outrow *row = &b->rows[i];
    if (row->state != ROW_NEW && row->state != ROW_FAILED)
      continue;
    row->b = b;
    if (row->emitted_ns == 0 && lmp_trace_enabled())
      row->emitted_ns = lmp_span_now(); /* swept: published again after a crash */
    int err = rt->ops->produce(rt, row);
    if (err) {
      if (lmp__kafka_permanent(err)) {
        publish_span(rt, row, err);
        refused(rt, row, err);
      } else {
        row->state = ROW_FAILED;
        atomic_fetch_add(&rt->m.publish_failures, 1);
        lmp_warn(NULL, "cannot queue event for %s: %s", row->topic, rd_kafka_err2str(err));
      }
      continue;
    }
    row->state = ROW_SENT;
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
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR || lmp__kafka_permanent(err))
    publish_span(rt, row, err);
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

/* Up to batch.max messages: those fetched while paused first (they are older). */
static void start_messages(struct rt *rt) {
  size_t max = (size_t)rt->cfg.batch_max;
  if (max < rt->ncarry)
    max = rt->ncarry;
  struct lmp_raw *raws = malloc(max * sizeof(*raws));
  void **msgs = malloc(max * sizeof(*msgs));
  if (raws == NULL || msgs == NULL) {
    free(raws);
    free(msgs);
    return;
  }
  size_t n = rt->ncarry;
  if (n) {
    memcpy(raws, rt->carry, n * sizeof(*raws));
    memcpy(msgs, rt->carry_msgs, n * sizeof(*msgs));
  }
  rt->ncarry = 0;
  if (rt->paused) {
    rt->ops->pause(rt, 0);
    rt->paused = 0;
  }
  if (n < max)
    n += rt->ops->fetch(rt, raws + n, msgs + n, max - n);
  rt->last_consume_ns = uv_hrtime();
  if (n == 0) {
    free(raws);
    free(msgs);
    return;
  }
  atomic_fetch_add(&rt->m.consumed, n);
  struct batch *b = lmp__batch_new(rt, BATCH_MESSAGES, raws, msgs, n);
  if (b)
    start_work(rt, b);
}

/* Whether the service's tick starts now: asked for, and not a wake-up within
 * tick_gap_ms of the last tick, which a tick at the gap's end takes up instead. */
static int tick_due(struct rt *rt) {
  if (!rt->tick_wanted || !rt->svc->tick || !atomic_load(&rt->m.migrated))
    return 0;
  uint64_t gap = (uint64_t)rt->svc->tick_gap_ms * 1000000u, now = uv_hrtime();
  if (rt->tick_now || gap == 0 || rt->ticked_ns == 0 || now - rt->ticked_ns >= gap || rt->draining)
    return 1;
  /* Coalesced: the periodic timer fires when the gap is over (then every tick_ms). */
  rt->tick_wanted = 0;
  uint64_t left_ms = (gap - (now - rt->ticked_ns)) / 1000000u + 1;
  if (uv_timer_get_due_in(&rt->svc_tick) > left_ms)
    uv_timer_start(&rt->svc_tick, svc_tick_cb, left_ms, (uint64_t)rt->svc->tick_ms);
  return 0;
}

/* The worker is free: a sweep first (the first one migrates), then the service's
 * tick when it is due, then messages, while the FIFO has room. */
static void start_next(struct rt *rt) {
  if (rt->txn || rt->closing || rt->draining || rt->nbatches >= (size_t)rt->cfg.pipeline_depth)
    return;
  struct batch *b = NULL;
  if (rt->sweep_wanted) {
    rt->sweep_wanted = 0;
    if ((b = lmp__batch_new(rt, BATCH_SWEEP, NULL, NULL, 0)) != NULL) {
      /* At start-up every row is a leftover; later, only rows older than a sweep
       * period, so rows another instance is publishing right now are left to it. */
      b->sweep_age_ms = rt->first_sweep_done ? rt->cfg.outbox_sweep_ms : 0;
      b->in_flight = rt->first_sweep_done ? lmp__batches_in_flight(rt) : NULL;
      rt->first_sweep_done = 1;
      /* Now and then a sweep also purges what is past retention. */
      if (rt->purged_ns == 0 || uv_hrtime() - rt->purged_ns >= (uint64_t)rt->cfg.retention_interval_s * 1000000000ull) {
        b->purge = 1;
        rt->purged_ns = uv_hrtime();
      }
      start_work(rt, b);
    }
  } else if (tick_due(rt)) {
    rt->tick_wanted = rt->tick_now = 0;
    rt->ticked_ns = uv_hrtime();
    if ((b = lmp__batch_new(rt, BATCH_TICK, NULL, NULL, 0)) != NULL)
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
      rt->ops->commit(rt, b);
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
    lmp__batch_unlink_head(rt);
  }
  if (rt->draining) {
    if (!lmp__pipeline_idle(rt))
      return;
    /* One last transaction deletes what the broker acknowledged since the last one,
     * so the next start does not send it again. */
    if (rt->npublished && !rt->final_sweep) {
      rt->final_sweep = 1;
      struct batch *b = lmp__batch_new(rt, BATCH_SWEEP, NULL, NULL, 0);
      if (b) {
        b->sweep_age_ms = INT32_MAX; /* delete only: republish nothing */
        start_work(rt, b);
        return;
      }
    }
    rt->up.finish(rt);
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
  rt->tick_wanted = rt->tick_now = 1;
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
  lmp__background_stop(rt);
  atomic_store(&rt->m.draining, 1);
  uv_timer_stop(&rt->sweep);
  uv_timer_stop(&rt->svc_tick);
  settle(rt);
}

/* Frees every batch the worker does not hold, and the carried messages. */
void lmp__pipeline_free(struct rt *rt) {
  while (rt->head && rt->head != rt->txn)
    lmp__batch_unlink_head(rt);
  if (rt->head == NULL || rt->txn->state != BATCH_WORKING) {
    while (rt->head)
      lmp__batch_unlink_head(rt);
    rt->txn = NULL;
  }
  for (size_t i = 0; i < rt->ncarry; i++)
    rt->ops->release(rt->carry_msgs[i]);
  rt->ncarry = 0;
}

/* A burst leaves its buffers freed in every thread's arena, and glibc keeps those
 * pages: the daemon's private memory would stay at the burst's peak for good. Once
 * nothing was consumed or published for two seconds (the notifier's senders publish
 * what they settle) and nothing is in flight, they go back to the system, once per
 * quiet spell. */
static void give_back_memory(struct rt *rt) {
  uint64_t moved = atomic_load(&rt->m.consumed) + atomic_load(&rt->m.produced), now = uv_hrtime();
  if (moved != rt->trim_moved || rt->trim_quiet_ns == 0) {
    rt->trim_moved = moved;
    rt->trim_quiet_ns = now;
  } else if (rt->trim_quiet_ns != UINT64_MAX && rt->head == NULL && now - rt->trim_quiet_ns >= 2000000000ull) {
    malloc_trim(0);
    rt->trim_quiet_ns = UINT64_MAX; /* until the count moves again */
  }
}

/* Once a second: the heartbeat, memory given back after a burst; and when nothing was
 * consumed for a third of max.poll.interval.ms (a stuck transaction, a broker that
 * does not acknowledge), pause fetching and poll, so the group keeps this member. */
void lmp__pipeline_housekeeping(struct rt *rt) {
  atomic_store(&rt->m.heartbeat_ms, (int64_t)(uv_hrtime() / 1000000));
  if (rt->closing)
    return;
  give_back_memory(rt);
  /* Delivery reports arrive through the producer's pipe; serving the queue here as
   * well means a lost wake-up can only delay a report by a second, never stall. */
  rt->ops->serve(rt);
  if (rt->head && rt->head->state == BATCH_PUBLISHING && age_ms(rt->head) > 10000 &&
      age_ms(rt->head) % 10000 < 1000)
    lmp_warn(NULL, "%d events still wait for the broker's acknowledgement", rt->head->pending);
  settle(rt);
  uint64_t quiet = (uv_hrtime() - rt->last_consume_ns) / 1000000;
  if (rt->closing || rt->head == NULL || quiet <= (uint64_t)rt->cfg.max_poll_interval_ms / 3)
    return;
  if (!rt->paused) {
    rt->ops->pause(rt, 1);
    rt->paused = 1;
    lmp_warn(NULL, "nothing consumed for %llu ms while work is in flight: fetching paused",
             (unsigned long long)quiet);
  }
  /* Polling keeps us in the group. A message fetched before the pause took effect
   * is kept for the next batch: the consumer's position has moved past it, so
   * dropping it would skip it for good. */
  if (rt->ncarry == rt->capcarry) {
    size_t cap = rt->capcarry ? rt->capcarry * 2 : 64;
    struct lmp_raw *c = realloc(rt->carry, cap * sizeof(*c));
    if (c)
      rt->carry = c;
    void **cm = c ? realloc(rt->carry_msgs, cap * sizeof(*cm)) : NULL;
    if (cm == NULL) {
      lmp_error(NULL, "out of memory keeping fetched messages; exiting so they are redelivered");
      rt->exit_code = 1;
      rt->up.finish(rt);
      return;
    }
    rt->carry_msgs = cm;
    rt->capcarry = cap;
  }
  rt->ncarry += rt->ops->poll_one(rt, &rt->carry[rt->ncarry], &rt->carry_msgs[rt->ncarry]);
  settle(rt);
}
