/* The service's routes: the one a request takes, the workers that run them on
 * database connections of their own, long polls that run again, and what a route may
 * ask of the server (headers, a publish whose answer resumes it). */
#include "io/http_internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "io/db.h"
#include "lmp/base/error.h"
#include "lmp/base/log.h"

/* "/v1/pools/{}" against a path: {} takes one non-empty segment. */
static int match(const char *pattern, const char *path) {
  while (*pattern && *path) {
    if (pattern[0] == '{' && pattern[1] == '}') {
      const char *end = strchr(path, '/');
      if (end == path)
        return 0;
      path = end ? end : path + strlen(path);
      pattern += 2;
    } else if (*pattern++ != *path++) {
      return 0;
    }
  }
  return *pattern == '\0' && *path == '\0';
}

static const char *const builtin[] = {"/healthz", "/readyz", "/metrics", NULL};

/* Finds the route; fills 404 or 405 (with Allow) when there is none for the method. */
void lmp__http_route(struct lmp_http *h, struct req *q) {
  int path_known = 0;
  for (const char *const *b = builtin; !q->l->admin && *b; b++)
    if (strcmp(q->path, *b) == 0) {
      if (strcmp(q->method, "GET") == 0 || strcmp(q->method, "HEAD") == 0)
        return;
      snprintf(q->allow, sizeof(q->allow), "GET, HEAD");
      return lmp__http_fail(q, 405, "method not allowed");
    }
  if (q->l->probe)
    return lmp__http_fail(q, 404, "not found");
  for (const struct lmp_http_route *r = h->routes; r && r->method; r++) {
    if (!r->admin != !q->l->admin || !match(r->pattern, q->path))
      continue;
    size_t n = strlen(q->allow);
    snprintf(q->allow + n, sizeof(q->allow) - n, "%s%s%s", n ? ", " : "", r->method,
             strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
    path_known = 1;
    if (strcmp(r->method, q->method) == 0 || (strcmp(q->method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
      q->route = r;
      return;
    }
  }
  if (path_known)
    return lmp__http_fail(q, 405, "method not allowed");
  lmp__http_fail(q, 404, "not found");
}

/* A request that is over no longer takes lmp_http_resume. */
void lmp__http_forget_ticket(struct lmp_http *h, struct req *q) {
  if (q->ticket == 0)
    return;
  pthread_mutex_lock(&h->lock);
  for (struct req **p = &h->ticketed; *p; p = &(*p)->next_ticketed)
    if (*p == q) {
      *p = q->next_ticketed;
      break;
    }
  pthread_mutex_unlock(&h->lock);
}

/* The next request for a worker: a new one first, else a long poll that is due; NULL
 * when the workers stop. Called with the lock held; *wait_ms says how long to sleep
 * when there is nothing (-1: until signalled). */
static struct req *next_request(struct lmp_http *h, int64_t *wait_ms) {
  *wait_ms = -1;
  struct req *q = h->head;
  if (q) {
    h->head = q->next;
    if (h->head == NULL)
      h->tail = NULL;
    return q;
  }
  int64_t now = lmp__http_now_ms();
  for (struct req **p = &h->sleepers; *p; p = &(*p)->next) {
    if (h->quit || (*p)->resumed || (*p)->due_ms <= now) {
      q = *p;
      *p = q->next;
      q->resumed = 0;
      return q;
    }
    if (*wait_ms < 0 || (*p)->due_ms - now < *wait_ms)
      *wait_ms = (*p)->due_ms - now;
  }
  return NULL;
}

static void sleep_until(struct lmp_http *h, int64_t wait_ms) {
  if (wait_ms < 0) {
    pthread_cond_wait(&h->cond, &h->lock);
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += wait_ms / 1000;
  ts.tv_nsec += (wait_ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  pthread_cond_timedwait(&h->cond, &h->lock, &ts);
}

/* Runs the route; 1 when it asked to run again later (a long poll). */
static int run_route(struct lmp_http *h, struct req *q, PGconn *db, int last) {
  int64_t now = lmp__http_now_ms();
  if (q->first_ms == 0)
    q->first_ms = now;
  q->ran_ms = now;
  lmp_buf_reset(&q->out);
  if (q->verify && !q->authenticated && lmp__http_authenticate_token(h, q, q->path) < 0)
    return 0;
  /* A long poll runs its route again and again: the token must still be valid. */
  if (q->authenticated && q->caller.expires_at && time(NULL) > q->caller.expires_at) {
    q->challenge = "invalid_token";
    lmp__http_fail(q, 401, "the token has expired");
    return 0;
  }
  struct lmp_http_call call = {.db = db, .method = q->route->method, .path = q->path, .query = q->query,
                               .body = q->body.data, .body_len = q->body.len, .waited_ms = now - q->first_ms,
                               .last = last, .status = 500, .out = &q->out, .runtime = h,
                               .caller = q->authenticated ? &q->caller : NULL, .peer = q->peer,
                               .state = q->state, .state_free = q->state_free};
  call.priv = q;
  int r = q->route->fn(h->route_ctx, &call);
  q->state = call.state; /* the route's, whatever it answered: freed when the request is over */
  q->state_free = call.state_free;
  if (r < 0) {
    lmp__http_fail(q, 503, "out of memory");
    return 0;
  }
  if (call.again_ms > 0 && !last) {
    q->due_ms = now + call.again_ms;
    return 1;
  }
  q->status = call.status;
  q->type = call.type;
  q->retry_after = call.retry_after_s;
  snprintf(q->location, sizeof(q->location), "%s", call.location);
  if (q->out.len == 0 && strcmp(q->method, "HEAD") != 0 && q->status != 204)
    lmp__http_fail(q, 500, "no answer");
  return 0;
}

/* A worker: runs routes one at a time on its own database connection. */
void *lmp__http_worker(void *arg) {
  struct lmp_http *h = arg;
  struct lmp_db db = {0};
  db.conninfo = h->conninfo; /* shared, read-only; not freed here */
  pthread_mutex_lock(&h->lock);
  for (;;) {
    int64_t wait_ms;
    struct req *q = next_request(h, &wait_ms);
    if (q == NULL) {
      if (h->quit)
        break;
      sleep_until(h, wait_ms);
      continue;
    }
    int quit = h->quit, full = !q->waiting && h->nwaiting >= h->max_waiting;
    pthread_mutex_unlock(&h->lock);
    int again = 0;
    if (quit && q->first_ms == 0) {
      lmp__http_fail(q, 503, "shutting down");
    } else if (lmp__db_ensure(&db) < 0) {
      lmp_warn(NULL, "http: database unavailable: %s", db.err);
      lmp__http_fail(q, 503, "database unavailable");
    } else {
      again = run_route(h, q, db.conn, quit || full);
    }
    pthread_mutex_lock(&h->lock);
    if (again) {
      h->nwaiting += !q->waiting;
      q->waiting = 1;
      atomic_store(&h->m->long_polls, h->nwaiting);
      q->next = h->sleepers;
      h->sleepers = q;
    } else {
      h->nwaiting -= q->waiting;
      q->waiting = 0;
      atomic_store(&h->m->long_polls, h->nwaiting);
      MHD_resume_connection(q->c);
    }
  }
  pthread_mutex_unlock(&h->lock);
  if (db.conn)
    PQfinish(db.conn);
  return NULL;
}

void lmp_http_wake(struct lmp_http *h) {
  if (h == NULL)
    return;
  pthread_mutex_lock(&h->lock);
  if (h->sleepers) {
    /* Every long poll's query runs again, but not on every commit: at most every
     * WAKE_EVERY_MS, so a busy daemon's commits do not multiply its queries. */
    int64_t now = lmp__http_now_ms();
    for (struct req *q = h->sleepers; q; q = q->next) {
      int64_t soonest = q->ran_ms + WAKE_EVERY_MS > now ? q->ran_ms + WAKE_EVERY_MS : now;
      if (soonest < q->due_ms)
        q->due_ms = soonest;
    }
    pthread_cond_broadcast(&h->cond);
  }
  pthread_mutex_unlock(&h->lock);
}

uint64_t lmp_http_ticket(struct lmp_http_call *call) {
  struct lmp_http *h = call->runtime;
  struct req *q = call->priv;
  pthread_mutex_lock(&h->lock);
  if (q->ticket == 0) {
    q->ticket = ++h->last_ticket;
    q->next_ticketed = h->ticketed;
    h->ticketed = q;
  }
  uint64_t t = q->ticket;
  pthread_mutex_unlock(&h->lock);
  return t;
}

void lmp_http_resume(void *runtime, uint64_t ticket) {
  struct lmp_http *h = runtime;
  pthread_mutex_lock(&h->lock);
  for (struct req *q = h->ticketed; q; q = q->next_ticketed)
    if (q->ticket == ticket) {
      q->resumed = 1; /* due at once, even if its route still runs and then sleeps */
      pthread_cond_broadcast(&h->cond);
      break;
    }
  pthread_mutex_unlock(&h->lock);
}

const char *lmp_http_header(const struct lmp_http_call *call, const char *name) {
  const struct req *q = call->priv;
  const char *v = strcasecmp(name, "traceparent") == 0    ? q->traceparent
                  : strcasecmp(name, "content-type") == 0 ? q->ctype
                  : strcasecmp(name, "accept") == 0       ? q->accept
                                                          : "";
  return *v ? v : NULL;
}

const char *lmp_http_issuer(const struct lmp_http_call *call) {
  const struct lmp_http *h = call->runtime;
  return h->issuer[0] ? h->issuer : NULL;
}

int lmp_http_value(struct lmp_http_call *call, const char *event_type, avro_value_t *out) {
  struct lmp_http *h = call->runtime;
  return h->host && h->host->value ? h->host->value(h->host->rt, event_type, out) : LMP_EINVAL;
}

int lmp_http_publish(struct lmp_http_call *call, const char *event_type, const char *key, avro_value_t *value,
                     struct lmp_http_pending **pending, char *err, size_t errlen) {
  struct lmp_http *h = call->runtime;
  *pending = NULL;
  if (h->host == NULL || h->host->publish == NULL) {
    snprintf(err, errlen, "this daemon publishes nothing from HTTP");
    return LMP_EINVAL;
  }
  return h->host->publish(h->host->rt, event_type, key, value, lmp_http_header(call, "traceparent"), h,
                          lmp_http_ticket(call), pending, err, errlen);
}
