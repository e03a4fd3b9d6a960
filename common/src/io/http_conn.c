/* A connection on its listener's thread: the request's headers checked and its
 * caller authenticated before any body is read, the body kept within the listener's
 * budget and a minimum rate, probes and metrics answered here, routes handed to the
 * workers while the connection waits suspended. */
#include "io/http_internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"

/* The query's arguments as libmicrohttpd decoded them, joined again as "a=1&b=2" for
 * the routes. A decoded NUL would cut its value short (an empty cursor reads as none),
 * and a decoded '&', or '=' in a name, would read as an argument of its own: a query
 * holding one is refused, never passed on changed. */
struct args {
  struct lmp_buf b;
  int forged, oom;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                   const char *value, size_t value_size) {
  struct args *a = cls;
  if (memchr(key, '\0', key_size) || memchr(key, '&', key_size) || memchr(key, '=', key_size) ||
      (value && (memchr(value, '\0', value_size) || memchr(value, '&', value_size)))) {
    a->forged = 1;
    return MHD_NO;
  }
  if (lmp_buf_printf(&a->b, "%s%s=%s", a->b.len ? "&" : "", key, value ? value : "") < 0) {
    a->oom = 1;
    return MHD_NO;
  }
  return MHD_YES;
}

static int reserve(struct lmp_http *h, struct req *q, size_t n);

/* A header a route may read, kept while the connection is ours; text only. */
static void keep_header(struct req *q, const char *name, char *out, size_t outlen) {
  const char *v = MHD_lookup_connection_value(q->c, MHD_HEADER_KIND, name);
  if (v && strlen(v) < outlen && lmp_text_check(v, strlen(v), 0, NULL) == LMP_TEXT_OK)
    snprintf(out, outlen, "%s", v);
}

/* The first call for a request: everything decided before any body is read. */
static void begin(struct lmp_http *h, struct req *q, const char *url, const char *method) {
  snprintf(q->method, sizeof(q->method), "%s", method);
  keep_header(q, "traceparent", q->traceparent, sizeof(q->traceparent));
  keep_header(q, MHD_HTTP_HEADER_CONTENT_TYPE, q->ctype, sizeof(q->ctype));
  keep_header(q, MHD_HTTP_HEADER_ACCEPT, q->accept, sizeof(q->accept));
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(q->c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, q->peer, sizeof(q->peer));
  else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, q->peer, sizeof(q->peer));
  if (q->l->admin && lmp__http_authenticate_admin(h, q, url) < 0) {
    if (q->status)
      return; /* answered: 401, 403 or 503 */
    char p[256];
    lmp_warn(NULL, "admin: %s %s from %s refused: no valid bearer token", method, lmp__http_shown(url, p), q->peer);
    return lmp__http_fail(q, 401, "a valid bearer token is required");
  }
  size_t n = strlen(url);
  if (n > MAX_PATH || lmp_text_check(url, n, 0, NULL) != LMP_TEXT_OK)
    return lmp__http_fail(q, 400, "the path must be UTF-8 text without control characters, at most 1024 bytes");
  q->path = strdup(url);
  struct args args = {0};
  MHD_get_connection_values_n(q->c, MHD_GET_ARGUMENT_KIND, collect_arg, &args);
  if (args.oom) {
    lmp_buf_free(&args.b);
    return lmp__http_fail(q, 503, "out of memory");
  }
  if (args.forged || (args.b.len && lmp_text_check(args.b.data, args.b.len, 0, NULL) != LMP_TEXT_OK)) {
    lmp_buf_free(&args.b);
    return lmp__http_fail(q, 400, args.forged ? "a query argument holds an encoded NUL, '&' or, in its name, '='"
                                              : "the query must be UTF-8 text without control characters");
  }
  q->query = lmp_buf_steal(&args.b);
  if (q->path == NULL)
    return lmp__http_fail(q, 503, "out of memory");
  lmp__http_route(h, q);
  if (q->status)
    return;
  /* A route for signed-in callers: no token, or one that is not a JWT, is refused
   * before any body is read; a worker verifies the rest before the route runs (the
   * issuer's keys may have to be fetched, which this thread, the probes', must not
   * wait for). */
  if (q->route && q->route->signed_in && !q->l->admin) {
    const char *token = lmp__http_bearer(q);
    if (token == NULL)
      return lmp__http_fail(q, 401, "sign in: this route needs an access token (Authorization: Bearer)");
    if (!lmp__http_looks_like_jwt(token)) {
      q->challenge = "invalid_token";
      return lmp__http_fail(q, 401, "the bearer token is not an access token (a signed JWT)");
    }
    q->verify = 1;
  }
  size_t max = q->route ? q->route->max_body : 0;
  const char *cl = MHD_lookup_connection_value(q->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  unsigned long long announced = cl ? strtoull(cl, NULL, 10) : 0;
  if (announced > max) {
    char msg[80];
    snprintf(msg, sizeof(msg), "the body may have at most %zu bytes", max);
    return lmp__http_fail(q, 413, msg);
  }
  /* The announced body takes its share of the budget now, and its buffer once. */
  q->announced = announced;
  if (announced && reserve(h, q, (size_t)announced) == 0 && lmp_buf_reserve(&q->body, (size_t)announced) < 0)
    lmp__http_fail(q, 503, "out of memory");
}

/* The slot of the address of q on its listener: its own, else a free one; NULL when
 * every slot is taken (cannot be: one per connection). Called with the lock held. */
static struct holder *holder_of(struct listener *l, const char *peer) {
  struct holder *free_slot = NULL;
  for (size_t i = 0; i < l->nholders; i++) {
    if (strcmp(l->holders[i].peer, peer) == 0)
      return &l->holders[i];
    if (l->holders[i].bytes == 0 && free_slot == NULL)
      free_slot = &l->holders[i];
  }
  if (free_slot == NULL && l->nholders < l->maxholders)
    free_slot = &l->holders[l->nholders++];
  if (free_slot)
    snprintf(free_slot->peer, sizeof(free_slot->peer), "%s", peer);
  return free_slot;
}

/* Takes n more bytes of its listener's body budget for q: within the listener's
 * budget, and within the share one address may hold, so that one client stalling
 * uploads cannot refuse everyone else's. 0, or -1 with q answered (503: the listener
 * is full; 429: this address holds its share). */
static int reserve(struct lmp_http *h, struct req *q, size_t n) {
  struct listener *l = q->l;
  pthread_mutex_lock(&h->lock);
  struct holder *who = holder_of(l, q->peer);
  int full = l->buffered + n > l->budget, greedy = who == NULL || who->bytes + n > l->per_address;
  if (!full && !greedy) {
    l->buffered += n;
    who->bytes += n;
    q->budgeted += n;
  }
  pthread_mutex_unlock(&h->lock);
  if (greedy) {
    q->retry_after = 5;
    lmp__http_fail(q, 429, "too many uploads from your address at once; try again");
  } else if (full) {
    lmp__http_fail(q, 503, "too many uploads at once; try again");
  }
  return full || greedy ? -1 : 0;
}

/* Gives back what q holds of its listener's body budget. */
static void release(struct lmp_http *h, struct req *q) {
  struct listener *l = q->l;
  if (q->budgeted == 0)
    return;
  pthread_mutex_lock(&h->lock);
  l->buffered -= q->budgeted;
  struct holder *who = holder_of(l, q->peer);
  if (who)
    who->bytes -= q->budgeted;
  pthread_mutex_unlock(&h->lock);
  q->budgeted = 0;
}

/* Whether the body comes slower than http.min_bytes_per_s: counted over windows of
 * http.min_rate_window_s, each of which must bring the rate's bytes or the rest of the
 * body. The idle timeout alone would keep a client that sends a byte now and then;
 * this runs as each piece arrives, so such a client is dropped within two windows. */
static int too_slow(const struct lmp_http *h, struct req *q, size_t n) {
  q->received += n;
  int64_t now = lmp__http_now_ms(), took = now - q->window_ms;
  if (h->min_rate == 0 || took < h->rate_window_ms)
    return 0;
  unsigned long long due = (unsigned long long)h->min_rate * (unsigned long long)took / 1000;
  if (q->announced && q->announced - q->window_from < due)
    due = q->announced - q->window_from; /* all the body lacked */
  if (q->received - q->window_from < due)
    return 1;
  q->window_ms = now;
  q->window_from = q->received;
  return 0;
}

/* A piece of the body: kept while within the route's limit and its listener's budget. */
static void take_body(struct lmp_http *h, struct req *q, const char *data, size_t n) {
  if (q->status)
    return; /* answered already; the rest is read and dropped */
  size_t max = q->route ? q->route->max_body : 0;
  if (q->body.len + n > max) {
    char msg[80];
    snprintf(msg, sizeof(msg), "the body may have at most %zu bytes", max);
    return lmp__http_fail(q, 413, msg);
  }
  if (q->body.len + n > q->budgeted && reserve(h, q, q->body.len + n - q->budgeted) < 0)
    return;
  if (lmp_buf_append(&q->body, data, n) < 0)
    lmp__http_fail(q, 503, "out of memory");
}

static void probe(struct lmp_http *h, struct req *q, const char **type) {
  struct lmp_metrics *m = h->m;
  if (strcmp(q->path, "/healthz") == 0) {
    /* Alive means the event loop still ticks. */
    int ok = lmp__http_now_ms() - atomic_load(&m->heartbeat_ms) < 5000;
    q->status = ok ? 200 : 503;
    lmp_buf_puts(&q->out, ok ? "ok\n" : "event loop stalled\n");
    *type = "text/plain";
  } else if (strcmp(q->path, "/readyz") == 0) {
    int db = atomic_load(&m->db_up), kafka = atomic_load(&m->kafka_up);
    int draining = atomic_load(&m->draining), mig = atomic_load(&m->migrated);
    int refused = atomic_load(&m->consumer_refused), r = atomic_load(&m->producer_refused);
    if (r > refused)
      refused = r;
    int ok = lmp_metrics_ready(m);
    q->status = ok ? 200 : 503;
    /* Why not, in a word: the log has the details. */
    const char *ks = refused == LMP_KAFKA_UNAUTHENTICATED ? "unauthenticated"
                     : refused == LMP_KAFKA_DENIED        ? "denied"
                     : kafka                              ? "up"
                                                          : "unreachable";
    lmp_buf_printf(&q->out, "{\"ready\":%s,\"database\":\"%s\",\"kafka\":\"%s\",\"draining\":%s}\n",
                   ok ? "true" : "false",
                   db ? (mig ? "up" : "migrating") : atomic_load(&m->db_refused) ? "refused" : "unreachable", ks,
                   draining ? "true" : "false");
  } else {
    q->status = 200;
    lmp_metrics_render(m, h->service, &q->out);
    if (h->svc_metrics)
      h->svc_metrics(h->route_ctx, h->service, &q->out);
    *type = "text/plain; version=0.0.4";
  }
}

enum MHD_Result lmp__http_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *data_size, void **con_cls) {
  struct listener *l = cls;
  struct lmp_http *h = l->h;
  struct req *q = *con_cls;
  if (q == NULL) {
    if ((q = calloc(1, sizeof(*q))) == NULL)
      return MHD_NO;
    q->c = c;
    q->l = l;
    q->window_ms = lmp__http_now_ms(); /* the body's rate is measured from the end of the headers */
    *con_cls = q;
    begin(h, q, url, method);
    return MHD_YES;
  }
  if (*data_size) {
    if (too_slow(h, q, *data_size)) {
      char p[256];
      lmp_warn(NULL, "%s: %s %s from %s dropped: its body came slower than %zu bytes/s", l->admin ? "admin" : "http",
               q->method, lmp__http_shown(q->path, p), q->peer, h->min_rate);
      return MHD_NO;
    }
    take_body(h, q, data, *data_size);
    *data_size = 0;
    return MHD_YES;
  }
  const char *type = q->type ? q->type : "application/json";
  if (q->status)
    return lmp__http_answer(q, type); /* an error, or a route's answer after the workers */
  if (q->route == NULL) {
    probe(h, q, &type);
    return lmp__http_answer(q, type);
  }
  /* A route: to the workers, and the connection waits suspended. */
  pthread_mutex_lock(&h->lock);
  if (h->quit) {
    pthread_mutex_unlock(&h->lock);
    lmp__http_fail(q, 503, "shutting down");
    return lmp__http_answer(q, type);
  }
  q->queued = 1;
  if (h->tail)
    h->tail->next = q;
  else
    h->head = q;
  h->tail = q;
  MHD_suspend_connection(c);
  pthread_cond_signal(&h->cond);
  pthread_mutex_unlock(&h->lock);
  return MHD_YES;
}

void lmp__http_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
  struct lmp_http *h = ((const struct listener *)cls)->h;
  struct req *q = *con_cls;
  if (q) {
    release(h, q);
    lmp__http_forget_ticket(h, q);
    if (q->state_free)
      q->state_free(q->state);
    lmp_buf_free(&q->body);
    lmp_buf_free(&q->out);
    free(q->path);
    free(q->query);
    free(q->bearer);
    free(q);
  }
  *con_cls = NULL;
}
