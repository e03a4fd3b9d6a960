/* /healthz, /readyz, /metrics and the service's routes over libmicrohttpd. */
#ifndef LMP_HTTP_H
#define LMP_HTTP_H

#include "io/db.h"
#include "io/metrics.h"
#include "lmp/base/config.h"
#include "lmp/io/http.h"

struct lmp_http;

/* What the server serves: the service's name (for logs and metrics), its routes with
 * their context, and its own metrics, appended to /metrics (any thread; may be NULL). */
struct lmp_http_app {
  const char *name;
  const struct lmp_http_route *routes;
  void *ctx;
  int (*metrics)(void *ctx, const char *service, struct lmp_buf *out);
};

/* What the runtime lends HTTP routes (lmp_http_value, lmp_http_publish). */
struct lmp_http_host {
  void *rt;
  int (*value)(void *rt, const char *event_type, avro_value_t *out);
  /* Starts a publish whose answer calls lmp_http_resume(runtime, ticket). */
  int (*publish)(void *rt, const char *event_type, const char *key, avro_value_t *value, const char *traceparent,
                 void *runtime, uint64_t ticket, struct lmp_http_pending **pending, char *err, size_t errlen);
};

/* Listens on cfg->http_bind:cfg->http_port (probes, metrics, the service's public
 * routes), on cfg->admin_bind:cfg->admin_port (its admin routes, each request
 * authenticated by a bearer token of cfg->admin_tokens_file or an operator's access
 * token, every one audited in the log) and, with cfg->probe_bind set, on
 * cfg->probe_bind:cfg->probe_port (probes and metrics only); the first two serve HTTPS
 * with their tls_cert_file and tls_key_file. On each listener one thread does every
 * connection's I/O and answers /healthz, /readyz and /metrics itself, from the
 * metrics' atomics; the service's routes run on cfg->http_workers threads, each with
 * its own database connection (conninfo), while their connections wait suspended. So
 * a slow client or a slow query never delays a probe, and neither ever touches the
 * event loop. Each listener holds at most cfg->http_body_budget body bytes, one
 * address at most cfg->http_body_budget_per_address of them, and a body slower than
 * cfg->http_min_bytes_per_s drops its connection. */
int lmp_http_start(struct lmp_http **out, const struct lmp_config *cfg, const struct lmp_http_app *app,
                   struct lmp_metrics *metrics, const char *conninfo, const struct lmp_http_host *host, char *err,
                   size_t errlen);
void lmp_http_stop(struct lmp_http *h);
/* Runs every waiting long poll again soon (each at most every 200 ms): something was
 * committed that may answer it. */
void lmp_http_wake(struct lmp_http *h);
/* The port a listener listens on (which: 0 the public one, 1 the admin one, 2 the
 * probe one): the configured one, or the one the system chose for 0; -1 for a
 * listener that is not there. */
int lmp_http_port(const struct lmp_http *h, int which);
/* How many admin tokens are in effect (0: every admin request is refused). */
size_t lmp_http_tokens(struct lmp_http *h);

#endif
