/* A service's background work (svc->background): threads of their own, each with a
 * database connection of its own, for work that must not hold the consumer, such as
 * sending mail. They are woken when a transaction that asked for it (lmp_tx_wake)
 * commits, and otherwise call again when the work said to; they end when the daemon
 * drains, after their current call. lmp_service_wake lets them (any thread) ask the
 * loop for the service's tick. */
#include <stdlib.h>
#include <time.h>

#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/runtime/tx.h"
#include "runtime/rt.h"

struct lmp_background {
  struct rt *rt;
  pthread_t *threads;
  int n;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned long wakes; /* counts wake-ups, so a thread misses none between its calls */
  int stop;
};

/* The runtime of this process, for lmp_service_wake: one runtime per process. The
 * lock keeps a wake-up from reaching its async handle once the loop closes it. */
static struct rt *running;
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
/* Threads still in a call when the daemon ended: left to the process's exit. */
static struct lmp_background *abandoned;

static void tick_now(uv_async_t *a) {
  struct rt *rt = a->data;
  rt->tick_wanted = 1;
  rt->up.consume(rt);
}

void lmp_service_wake(void) {
  pthread_mutex_lock(&running_lock);
  if (running)
    uv_async_send(&running->wake);
  pthread_mutex_unlock(&running_lock);
}

void lmp__background_unwake(void) {
  pthread_mutex_lock(&running_lock);
  running = NULL;
  pthread_mutex_unlock(&running_lock);
}

/* Until woken after seen, or ms pass, or the stop; with the lock held. */
static void wait_for(struct lmp_background *g, unsigned long seen, int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  while (!g->stop && g->wakes == seen)
    if (pthread_cond_timedwait(&g->cond, &g->lock, &ts) != 0)
      break;
}

int lmp_tx_stopping(struct lmp_tx *tx) {
  struct lmp_background *g = tx->bg;
  if (g == NULL)
    return 0;
  pthread_mutex_lock(&g->lock);
  int stop = g->stop;
  pthread_mutex_unlock(&g->lock);
  return stop;
}

/* One call of the service's work, in a transaction of its own. */
static int work(struct lmp_background *g, struct lmp_db *db) {
  struct rt *rt = g->rt;
  struct lmp_tx tx = {.rt = rt, .db = db, .bg = g};
  int r = lmp__db_send(db, "BEGIN", 0, NULL, NULL, NULL, 1); /* goes with the first statement */
  int wait_ms = r < 0 ? r : rt->svc->background(&tx);
  if (wait_ms >= 0 && (r = lmp_tx_command(&tx, "COMMIT", 0, NULL)) < 0)
    wait_ms = r;
  if (wait_ms >= 0 && tx.wake)
    lmp_service_wake(); /* what it committed may let the tick act */
  if (wait_ms < 0) {
    lmp_warn(NULL, "background work failed (%s%s%s); trying again in a second", lmp_strerror(wait_ms),
             *tx.why ? ": " : "", *tx.why ? tx.why : db->err);
    lmp__db_rollback(db);
    wait_ms = 1000;
  }
  return wait_ms;
}

static void *thread(void *arg) {
  struct lmp_background *g = arg;
  struct rt *rt = g->rt;
  struct lmp_db db = {0};
  db.conninfo = rt->db.conninfo; /* shared, read-only; not freed here */
  pthread_mutex_lock(&g->lock);
  while (!g->stop) {
    unsigned long seen = g->wakes;
    pthread_mutex_unlock(&g->lock);
    int wait_ms = 1000; /* until the first sweep has made the tables, or the database is back */
    if (atomic_load(&rt->m.migrated)) {
      if (lmp__db_ensure(&db) == 0)
        wait_ms = work(g, &db);
      else
        lmp_warn(NULL, "background: database unavailable: %s", db.err);
    }
    pthread_mutex_lock(&g->lock);
    if (wait_ms > 0)
      wait_for(g, seen, wait_ms);
  }
  pthread_mutex_unlock(&g->lock);
  if (db.conn)
    PQfinish(db.conn);
  return NULL;
}

int lmp__background_start(struct rt *rt) {
  rt->wake.data = rt;
  if (uv_async_init(rt->loop, &rt->wake, tick_now) != 0)
    return LMP_EIO;
  pthread_mutex_lock(&running_lock);
  running = rt;
  pthread_mutex_unlock(&running_lock);
  if (rt->svc->background == NULL || rt->svc->background_threads <= 0)
    return 0;
  struct lmp_background *g = calloc(1, sizeof(*g));
  if (g == NULL || (g->threads = calloc((size_t)rt->svc->background_threads, sizeof(pthread_t))) == NULL) {
    free(g);
    return LMP_ENOMEM;
  }
  g->rt = rt;
  pthread_mutex_init(&g->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&g->cond, &ca);
  pthread_condattr_destroy(&ca);
  rt->background = g;
  for (int i = 0; i < rt->svc->background_threads; i++)
    if (pthread_create(&g->threads[g->n], NULL, thread, g) == 0)
      g->n++;
  return g->n ? 0 : LMP_EIO;
}

void lmp__background_wake(struct rt *rt) {
  struct lmp_background *g = rt->background;
  if (g == NULL)
    return;
  pthread_mutex_lock(&g->lock);
  g->wakes++;
  pthread_cond_broadcast(&g->cond);
  pthread_mutex_unlock(&g->lock);
}

void lmp__background_stop(struct rt *rt) {
  struct lmp_background *g = rt->background;
  if (g == NULL)
    return;
  pthread_mutex_lock(&g->lock);
  g->stop = 1;
  pthread_cond_broadcast(&g->cond);
  pthread_mutex_unlock(&g->lock);
}

void lmp__background_free(struct rt *rt) {
  struct lmp_background *g = rt->background;
  lmp__background_unwake();
  if (g == NULL)
    return;
  lmp__background_stop(rt);
  /* A thread ends after its current call: an SMTP exchange or a statement, each
   * bounded by its timeout. A daemon cut short (a second signal, the drain deadline)
   * waits for it only briefly: what it did not record is done again after a restart. */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += rt->exit_code ? 2 : 3600;
  for (int i = 0; i < g->n; i++)
    if (pthread_timedjoin_np(g->threads[i], NULL, &until) != 0) {
      lmp_warn(NULL, "a background thread is still in a call; exiting without it");
      abandoned = g;
      rt->background = NULL;
      return;
    }
  pthread_mutex_destroy(&g->lock);
  pthread_cond_destroy(&g->cond);
  free(g->threads);
  free(g);
  rt->background = NULL;
}
