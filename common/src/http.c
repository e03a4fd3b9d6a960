/* /healthz, /readyz, /metrics and service routes over libmicrohttpd. */
#include "lmp/http.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmp/error.h"

#define MAX_BODY (1024 * 1024)

struct lmp_http {
  struct MHD_Daemon *d;
  char service[64];
  struct lmp_metrics *m;
  struct lmp_db db;        /* used by routes only, on the HTTP thread */
  lmp_http_fn route;
  void *route_ctx;
};

struct upload {
  struct lmp_buf body;
  int too_big;
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result reply(struct MHD_Connection *c, int status, const char *type,
                             const char *body, size_t len) {
  struct MHD_Response *res = MHD_create_response_from_buffer(len, (char *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
  if (res == NULL)
    return MHD_NO;
  MHD_add_response_header(res, "Content-Type", type);
  enum MHD_Result r = MHD_queue_response(c, (unsigned)status, res);
  MHD_destroy_response(res);
  return r;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *data_size, void **con_cls) {
  struct lmp_http *h = cls;
  struct upload *up = *con_cls;
  if (up == NULL) {
    if ((up = calloc(1, sizeof(*up))) == NULL)
      return MHD_NO;
    *con_cls = up;
    return MHD_YES;
  }
  if (*data_size) {
    if (up->body.len + *data_size > MAX_BODY)
      up->too_big = 1;
    else if (lmp_buf_append(&up->body, data, *data_size) < 0)
      return MHD_NO;
    *data_size = 0;
    return MHD_YES;
  }
  if (up->too_big)
    return reply(c, 413, "application/json", "{\"error\":\"body over 1 MiB\"}", 26);

  struct lmp_buf out = {0};
  enum MHD_Result r;
  int get = strcmp(method, "GET") == 0;
  if (get && strcmp(url, "/healthz") == 0) {
    /* Alive means the event loop still ticks. */
    int ok = now_ms() - atomic_load(&h->m->heartbeat_ms) < 5000;
    r = reply(c, ok ? 200 : 503, "text/plain", ok ? "ok\n" : "event loop stalled\n", ok ? 3 : 19);
  } else if (get && strcmp(url, "/readyz") == 0) {
    int db = atomic_load(&h->m->db_up), kafka = atomic_load(&h->m->kafka_up);
    int draining = atomic_load(&h->m->draining), mig = atomic_load(&h->m->migrated);
    int ok = db && kafka && !draining && mig;
    lmp_buf_printf(&out, "{\"ready\":%s,\"database\":\"%s\",\"kafka\":\"%s\",\"draining\":%s}\n",
                   ok ? "true" : "false", db ? (mig ? "up" : "migrating") : "unreachable",
                   kafka ? "up" : "unreachable", draining ? "true" : "false");
    r = reply(c, ok ? 200 : 503, "application/json", out.data, out.len);
  } else if (get && strcmp(url, "/metrics") == 0) {
    lmp_metrics_render(h->m, h->service, &out);
    r = reply(c, 200, "text/plain; version=0.0.4", out.data ? out.data : "", out.len);
  } else if (h->route && lmp_db_ensure(&h->db) < 0) {
    r = reply(c, 503, "application/json", "{\"error\":\"database unavailable\"}", 33);
  } else if (h->route) {
    int status = 404;
    h->route(h->route_ctx, h->db.conn, method, url, up->body.data, up->body.len, &status, &out);
    r = reply(c, status, "application/json", out.data ? out.data : "", out.len);
  } else {
    r = reply(c, 404, "application/json", "{\"error\":\"not found\"}", 21);
  }
  lmp_buf_free(&out);
  return r;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  struct upload *up = *con_cls;
  if (up) {
    lmp_buf_free(&up->body);
    free(up);
  }
  *con_cls = NULL;
}

int lmp_http_start(struct lmp_http **out, const char *bind, int port, const char *service,
                   struct lmp_metrics *metrics, const char *db_conninfo, lmp_http_fn route,
                   void *route_ctx, char *err, size_t errlen) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, bind, &addr.sin_addr) != 1) {
    snprintf(err, errlen, "http.bind: '%s' is not an IPv4 address", bind);
    return LMP_ECONFIG;
  }
  struct lmp_http *h = calloc(1, sizeof(*h));
  if (h == NULL)
    return LMP_ENOMEM;
  snprintf(h->service, sizeof(h->service), "%s", service);
  h->m = metrics;
  h->route = route;
  h->route_ctx = route_ctx;
  h->db.conninfo = strdup(db_conninfo);
  h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)port, NULL,
                          NULL, handle, h, MHD_OPTION_SOCK_ADDR, &addr,
                          MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                          MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
  if (h->d == NULL) {
    snprintf(err, errlen, "cannot listen on %s:%d (port taken?)", bind, port);
    lmp_db_close(&h->db);
    free(h);
    return LMP_EIO;
  }
  *out = h;
  return 0;
}

int lmp_http_port(const struct lmp_http *h) {
  const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  return i ? (int)i->port : -1;
}

void lmp_http_stop(struct lmp_http *h) {
  if (h == NULL)
    return;
  MHD_stop_daemon(h->d);
  lmp_db_close(&h->db);
  free(h);
}
