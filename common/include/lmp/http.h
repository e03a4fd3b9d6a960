/* /healthz, /readyz, /metrics and service routes over libmicrohttpd. */
#ifndef LMP_HTTP_H
#define LMP_HTTP_H

#include "lmp/db.h"
#include "lmp/metrics.h"
#include "lmp/runtime.h"

struct lmp_http;

/* Serves on its own thread, so a slow client or query never stalls the event loop;
 * it reads the metrics' atomics and owns the database connection routes use. */
int lmp_http_start(struct lmp_http **out, const char *bind, int port, const char *service,
                   struct lmp_metrics *metrics, const char *db_conninfo, lmp_http_fn route,
                   void *route_ctx, char *err, size_t errlen);
void lmp_http_stop(struct lmp_http *h);
/* The port it listens on: the configured one, or the one the system chose for 0. */
int lmp_http_port(const struct lmp_http *h);

#endif
