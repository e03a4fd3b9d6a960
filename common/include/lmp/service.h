/* What a daemon is: its name, the events it consumes and the handler of each, its
 * tables, settings and HTTP routes. The runtime (lmp_service_main) does the rest:
 * consume, apply in one transaction with inbox and outbox, publish, commit offsets.
 *
 * The failure rule. A message either applies, or is a duplicate (skipped), or is
 * dead-lettered with the reason; only a fault of the environment retries.
 *  - Faults of the message dead-letter it and the partition moves on: a key or
 *    header that is not short UTF-8 text, a body that does not decode, a schema
 *    that is not the topic's event type, text that is not UTF-8 (unless the route
 *    checks text itself), a handler that refuses it (LMP_EREJECT), a statement the
 *    database refuses for its content (LMP_EDB), an event it emits that is too
 *    large (LMP_ETOOBIG).
 *  - Faults of the environment (LMP_ERETRY, LMP_ENOMEM: database away, deadlock,
 *    serialization failure, statement timeout) roll the batch back and retry it
 *    with backoff, for as long as it takes.
 *  - A batch runs without savepoints. When one of its messages fails for its own
 *    sake, the batch is rolled back and run again one message at a time, each in a
 *    savepoint, so that message alone is dead-lettered. A message that fails with
 *    LMP_ERETRY while the database is reachable, retry.isolate_after times in a
 *    row, is dead-lettered too (RETRIES_EXHAUSTED): no content can hold a partition.
 *  - An event the broker refuses for good (too large, invalid) is parked: moved to
 *    lmp_outbox_parked, counted, and a copy sent to the dead-letter topic. */
#ifndef LMP_SERVICE_H
#define LMP_SERVICE_H

#include <avro.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "lmp/buf.h"
#include "lmp/codec.h"
#include "lmp/config.h"
#include "lmp/embed.h"

struct lmp_tx;
struct lmp_route;

/* One consumed and decoded event, as a handler sees it. Every pointer is valid for
 * the handler's call only. */
struct lmp_event {
  const struct lmp_schema *schema;  /* the current schema; schema->name is the event type */
  avro_value_t *value;              /* decoded body */
  const char *event_id;             /* header event_id, or topic/partition/offset */
  const char *correlation_id;       /* header correlation_id (the request id), or NULL */
  const char *traceparent;          /* the W3C trace context of the event's own span */
  const char *key;                  /* message key (the onboarding id), or NULL */
  const char *topic;
  int32_t partition;
  int64_t offset;
  const struct lmp_route *route;    /* the route that matched */
};

/* Applies one event in the batch transaction (on the worker thread). Returns 0, or an
 * error code by the failure rule above; on failure its writes are undone. */
typedef int (*lmp_handle_fn)(struct lmp_tx *tx, const struct lmp_event *ev);

/* An event type the daemon consumes, from the topic <prefix><event_type>, and its
 * handler. A topic carries exactly its event type: any other is dead-lettered. */
struct lmp_route {
  const char *event_type;  /* NULL ends the table */
  lmp_handle_fn handle;
  const void *data;        /* for the handler, as ev->route->data */
  int checks_text;         /* the handler checks its strings itself (the runtime then does
                            * not refuse text that is not UTF-8) */
};

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

struct lmp_service {
  const char *name;                          /* "intake": log name, group and database */
  const struct lmp_route *routes;            /* the events it consumes */
  const char *const *emits;                  /* the event types it may emit, NULL-terminated:
                                              * its write permissions (--print-acls) */
  const struct lmp_embedded *migrations;     /* the service's tables */
  const struct lmp_conf_entry *conf;         /* the service's own settings */
  size_t conf_n;
  void *conf_base;
  int (*configured)(void *ctx, char *err, size_t errlen); /* validates its settings */
  const struct lmp_http_route *http;         /* its HTTP routes, or NULL */
  /* Optional periodic work in its own transaction, every tick_ms, and at once after a
   * transaction that called lmp_tx_wake. Returns like a handler; what it emits is
   * published. */
  int (*tick)(struct lmp_tx *tx);
  int tick_ms;
  /* Optional: purges what the service stores of personal data beyond its facts (request
   * and mail bodies) once older than days; runs in its own transaction every
   * retention.interval_s, beside the runtime's purge of processed inbox rows. */
  int (*purge)(struct lmp_tx *tx, int days);
  /* Optional: work that must not hold the consumer (sending mail), on
   * background_threads threads, each with a database connection of its own. Each call
   * runs in a transaction of its own, committed when it returns >= 0: 0 to be called
   * again at once, or how many ms to wait before the next call unless woken sooner (a
   * transaction that called lmp_tx_wake committed). < 0 rolls back and tries again
   * after a second. It may not emit events; lmp_tx_wake from it runs the tick, which
   * may. The threads end when the daemon drains, after their current call. */
  int (*background)(struct lmp_tx *tx);
  int background_threads;
  /* Optional: the service's own Prometheus metrics, appended to /metrics (any thread). */
  int (*metrics)(void *ctx, const char *service, struct lmp_buf *out);
  void *ctx;
};

/* The whole daemon: options (-c FILE, --print-config, --check-config, --print-routes,
 * --print-acls),
 * configuration, loop, drain. Returns the process exit status. */
int lmp_service_main(const struct lmp_service *svc, int argc, char **argv);

/* Runs the service's tick soon; from any thread (background work calls it through
 * lmp_tx_wake). */
void lmp_service_wake(void);

/* Topic of an event type under the configured prefix. */
void lmp_topic_name(const struct lmp_config *cfg, const char *event_type, char *out, size_t outlen);

/* An event type that several daemons write goes to a topic per writer,
 * <prefix><event type>.<writer>, so that the broker's ACLs say who wrote an event,
 * and the event's field naming its writer must name that one. */
struct lmp_writers {
  const char *event_type;
  const char *field;          /* the event's field that names its writer */
  const char *const *writers; /* the daemons that write it, NULL-ended */
};
/* The writers of an event type several daemons write, or NULL (one topic). */
const struct lmp_writers *lmp_event_writers(const char *event_type);

/* The longest topic name the runtime makes, with its NUL. */
#define LMP_TOPIC_NAME_MAX 300
/* The topics an event type is read from: its one topic, or one per writer. At most
 * max are written to out; returns how many there are. */
size_t lmp_event_topics(const struct lmp_config *cfg, const char *event_type, char (*out)[LMP_TOPIC_NAME_MAX],
                        size_t max);
/* The topic a daemon writes an event type to. */
void lmp_emit_topic(const struct lmp_config *cfg, const char *event_type, const char *service, char *out,
                    size_t outlen);

/* A daemon's own dead-letter topic, <prefix>dead-letter.<service>. Only that daemon's
 * principal may write it, so the topic a dead letter is on says which daemon wrote
 * it: no header does. */
void lmp_dead_letter_topic(const struct lmp_config *cfg, const char *service, char *out, size_t outlen);

/* Where lmpctl dlq replay sends a daemon's dead letters back, <prefix>replay.<service>:
 * read by that daemon alone, written by the replay principal alone. A message there
 * is handled by the route of its source_topic header, among the daemon's own. */
void lmp_replay_topic(const struct lmp_config *cfg, const char *service, char *out, size_t outlen);

#endif
