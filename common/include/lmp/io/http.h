/* HTTP routes as a daemon's code sees them: who calls (a verified caller), the request
 * and its answer, asynchronous answers, publishing an event from a route, the route
 * table. The server is the runtime's (lmp_service_main serves service->http). */
#ifndef LMP_HTTP_PUBLIC_H
#define LMP_HTTP_PUBLIC_H

#include <avro.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "lmp/base/buf.h"

/* Who sends an HTTP request, from a verified OpenID Connect access token or, on the
 * admin listener, a token of admin.tokens_file. Never from the request's body. */
struct lmp_caller {
  char name[128];        /* preferred_username (or sub); "token:<name>" for a token file's */
  char subject[256];     /* sub, when the token has one */
  char partner_id[68];   /* the partner the user acts for (oidc.partner_claim); empty: none */
  char email[256];       /* the user's email; empty: none */
  int operator_role;     /* holds oidc.operator_role, or a token of admin.tokens_file */
  int email_verified;    /* the identity provider says the email is the user's */
  int64_t expires_at;    /* the access token's exp with the clock skew; 0: a token file's */
};

/* One HTTP request as a route sees it, and its answer. A route runs on an HTTP worker
 * thread with a database connection of its own; while the database is away the
 * runtime answers 503 itself. */
struct lmp_http_call {
  PGconn *db;
  const char *method, *path;
  const char *query;          /* the query string, or NULL */
  const char *body;
  size_t body_len;
  int64_t waited_ms;          /* since the route first ran for this request (a long poll) */
  int last;                   /* the daemon stops: answer now, do not ask to run again */
  /* The answer: */
  int status;                 /* 500 unless the route sets it */
  struct lmp_buf *out;        /* the body: JSON unless type says otherwise */
  const char *type;           /* Content-Type (a literal); NULL: application/json */
  char location[256];         /* a Location header when not empty (201, 202) */
  int again_ms;               /* > 0: no answer yet; run the route again after this long, or
                               * sooner when the daemon commits something (lmp_http_wake) */
  int retry_after_s;          /* with 429 or 503: the Retry-After header; 0: 1 second */
  const struct lmp_caller *caller; /* a route with .signed_in: who, verified; else NULL */
  const char *peer;           /* the client's address, as text */
  /* Kept for the route from one run of this request to the next (again_ms), and
   * freed with state_free once the request is over, answered or not: */
  void *state;
  void (*state_free)(void *state);
  void *runtime, *priv;       /* the runtime's, for the functions below */
};

/* The route: fills the answer in call, returns 0 or LMP_ENOMEM. */
typedef int (*lmp_http_fn)(void *ctx, struct lmp_http_call *call);

/* A request header (traceparent, content-type, accept), or NULL. */
const char *lmp_http_header(const struct lmp_http_call *call, const char *name);
/* A route waiting for something other than the database (the broker's acknowledgement
 * of a publish) answers asynchronously, holding no worker meanwhile: it starts the
 * work with lmp_http_ticket(call) for whoever finishes it, keeps what it needs in
 * call->state and returns with call->again_ms (the longest it will wait). Whoever
 * finishes calls lmp_http_resume(runtime, ticket), from any thread, and the route runs
 * again at once with the same call->state to answer. A ticket is never reused; one
 * whose request is over (answered, its client gone) is ignored, so the finisher need
 * not know. The route also runs again when again_ms passes (call->waited_ms says how
 * long it has waited) or the daemon commits something, and must answer when call->last
 * is set. */
uint64_t lmp_http_ticket(struct lmp_http_call *call);
void lmp_http_resume(void *runtime, uint64_t ticket);
/* The OpenID Connect issuer whose tokens sign callers in (oidc.issuer), or NULL. */
const char *lmp_http_issuer(const struct lmp_http_call *call);
/* A new value of the current schema of event_type, for lmp_http_publish; decref it. */
int lmp_http_value(struct lmp_http_call *call, const char *event_type, avro_value_t *out);
/* A publish from a route, under way. */
struct lmp_http_pending;
/* Starts publishing an event from a route, as a frontend would: to
 * <prefix><event_type>, keyed, with fresh event_id, the key as correlation_id and a
 * span under the request's traceparent (or a new trace). It returns at once, holding
 * no worker while the broker answers: 0 with *pending, whose answer resumes the route
 * (lmp_http_ticket) to read it with lmp_http_published; or, with err saying why,
 * LMP_ERETRY (the producer did not take it), LMP_EINVAL (an event type the service
 * does not declare it emits), LMP_ETOOBIG (over the event size limit). */
int lmp_http_publish(struct lmp_http_call *call, const char *event_type, const char *key, avro_value_t *value,
                     struct lmp_http_pending **pending, char *err, size_t errlen);
/* 0 while the broker has not answered; 1 once it has, *result then 0 (the event is on
 * the broker), LMP_ERETRY (it was not taken; err says why) or LMP_ETOOBIG (refused for
 * good as too large). */
int lmp_http_published(struct lmp_http_pending *p, int *result, char *err, size_t errlen);
/* The trace id (32 hex digits) of the published event's trace. */
const char *lmp_http_pending_trace(const struct lmp_http_pending *p);
/* Lets go of a publish, answered or not (the broker's answer may still come). */
void lmp_http_pending_free(struct lmp_http_pending *p);

struct lmp_http_route {
  const char *method;      /* "GET" (HEAD is served too) or "POST"; NULL ends the table */
  const char *pattern;     /* "/v1/pools/{}": {} matches one path segment */
  lmp_http_fn fn;
  size_t max_body;         /* bytes a request body may have; 0: none */
  int admin;               /* on the admin listener, behind its bearer tokens; else public */
  int signed_in;           /* public, for callers with a verified access token only (401
                            * before anything else when there is none) */
};

#endif
