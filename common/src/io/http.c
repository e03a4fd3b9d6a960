/* HTTP over libmicrohttpd: the server's listeners (public, admin, probes), plain
 * or HTTPS, started and stopped. Probes and metrics are answered on each listener's
 * thread, the service's routes on a pool of workers (http_route.c). */
#include "io/http_internal.h"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/base/error.h"
#include "lmp/base/log.h"

/* What libmicrohttpd says, kept: its reason is the one a failed start reports. */
__attribute__((format(printf, 2, 0))) static void mhd_said(void *cls, const char *fmt, va_list ap) {
  struct listener *l = cls;
  vsnprintf(l->mhd_err, sizeof(l->mhd_err), fmt, ap);
  l->mhd_err[strcspn(l->mhd_err, "\n")] = '\0';
}

/* The certificate chain and key a listener serves HTTPS with, read once at start. A
 * key that others may read is refused: anyone on the host could speak as the daemon. */
static int read_tls(struct listener *l, const char *prefix, const char *cert_file, const char *key_file, char *err,
                    size_t errlen) {
  char why[400];
  struct stat st;
  if (stat(key_file, &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH))) {
    snprintf(err, errlen, "%s.tls_key_file: %s may be read or written by others (mode %04o); chmod o-rwx it", prefix,
             key_file, (unsigned)(st.st_mode & 07777));
    return LMP_ECONFIG;
  }
  if (lmp_config_read_secret(cert_file, &l->tls_cert, why, sizeof(why)) < 0) {
    snprintf(err, errlen, "%s.tls_cert_file: %s", prefix, why);
    return LMP_ECONFIG;
  }
  if (lmp_config_read_secret(key_file, &l->tls_key, why, sizeof(why)) < 0) {
    snprintf(err, errlen, "%s.tls_key_file: %s", prefix, why);
    return LMP_ECONFIG;
  }
  if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
    snprintf(err, errlen, "%s.tls_cert_file: this libmicrohttpd has no TLS", prefix);
    return LMP_ECONFIG;
  }
  /* GnuTLS, as libmicrohttpd will, reads the pair now: its reason (not PEM, a key
   * that is not the certificate's) is clearer than the listener's "cannot start". */
  gnutls_certificate_credentials_t creds;
  if (gnutls_certificate_allocate_credentials(&creds) < 0)
    return LMP_ENOMEM;
  const gnutls_datum_t c = {(unsigned char *)l->tls_cert, (unsigned)strlen(l->tls_cert)},
                       k = {(unsigned char *)l->tls_key, (unsigned)strlen(l->tls_key)};
  int r = gnutls_certificate_set_x509_key_mem2(creds, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
  gnutls_certificate_free_credentials(creds);
  if (r < 0) {
    snprintf(err, errlen, "%s.tls_cert_file %s and %s.tls_key_file %s: %s", prefix, cert_file, prefix, key_file,
             gnutls_strerror(r));
    return LMP_ECONFIG;
  }
  return 0;
}

/* Where a listener listens and how: its settings' prefix ("http", "admin"). */
struct listen_spec {
  const char *prefix, *bind;
  int port;
  const char *cert_file, *key_file; /* both empty: plain HTTP */
  int probe;                        /* probes and metrics only, no body */
};

static int listen_on(struct lmp_http *h, struct listener *l, int admin, const struct lmp_config *cfg,
                     const struct listen_spec *sp, char *err, size_t errlen) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sp->port)};
  if (inet_pton(AF_INET, sp->bind, &addr.sin_addr) != 1) {
    snprintf(err, errlen, "%s.bind: '%s' is not an IPv4 address", sp->prefix, sp->bind);
    return LMP_ECONFIG;
  }
  l->h = h;
  l->admin = admin;
  l->probe = sp->probe;
  l->budget = sp->probe ? 0 : (size_t)cfg->http_body_budget;
  l->per_address = (size_t)cfg->http_body_budget_per_address;
  l->maxholders = sp->probe ? 0 : (size_t)cfg->http_max_connections;
  if (!sp->probe && (l->holders = calloc(l->maxholders, sizeof(*l->holders))) == NULL)
    return LMP_ENOMEM;
  int tls = *sp->cert_file || *sp->key_file, r;
  if (tls && (r = read_tls(l, sp->prefix, sp->cert_file, sp->key_file, err, errlen)) < 0)
    return r;
  /* TLS 1.2 and 1.3 only, GnuTLS's choice of ciphers among them. */
  struct MHD_OptionItem opts[] = {
      {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_said, l},
      {MHD_OPTION_SOCK_ADDR, 0, &addr},
      {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)lmp__http_completed, l},
      {MHD_OPTION_CONNECTION_TIMEOUT, cfg->http_timeout_s, NULL},
      {MHD_OPTION_CONNECTION_LIMIT, cfg->http_max_connections, NULL},
      {MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->http_max_connections_per_ip, NULL},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 32768, NULL},
      {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, l->tls_cert},
      {MHD_OPTION_HTTPS_MEM_KEY, 0, l->tls_key},
      {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
      {MHD_OPTION_END, 0, NULL}};
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  l->d = MHD_start_daemon(flags | (tls ? MHD_USE_TLS : 0), (uint16_t)sp->port, NULL, NULL, lmp__http_handle, l,
                          MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
  if (l->d == NULL) {
    if (tls)
      snprintf(err, errlen, "cannot serve HTTPS on %s:%d with %s.tls_cert_file and %s.tls_key_file: %s", sp->bind,
               sp->port, sp->prefix, sp->prefix, l->mhd_err[0] ? l->mhd_err : "refused");
    else
      snprintf(err, errlen, "cannot listen on %s:%d: %s", sp->bind, sp->port,
               l->mhd_err[0] ? l->mhd_err : "port taken?");
    return LMP_EIO;
  }
  return 0;
}

/* A listener stopped, its key wiped. */
static void listener_stop(struct listener *l) {
  if (l->d)
    MHD_stop_daemon(l->d);
  if (l->tls_key)
    explicit_bzero(l->tls_key, strlen(l->tls_key));
  free(l->tls_key);
  free(l->tls_cert);
  free(l->holders);
}

int lmp_http_start(struct lmp_http **out, const struct lmp_config *cfg, const struct lmp_http_app *app,
                   struct lmp_metrics *metrics, const char *conninfo, const struct lmp_http_host *host, char *err,
                   size_t errlen) {
  const struct lmp_http_route *routes = app->routes;
  struct lmp_http *h = calloc(1, sizeof(*h));
  if (h == NULL || (h->conninfo = strdup(conninfo)) == NULL ||
      (h->workers = calloc((size_t)cfg->http_workers, sizeof(pthread_t))) == NULL) {
    if (h)
      free(h->conninfo);
    free(h);
    return LMP_ENOMEM;
  }
  snprintf(h->service, sizeof(h->service), "%s", app->name);
  h->m = metrics;
  h->routes = routes;
  h->route_ctx = app->ctx;
  h->host = host;
  h->svc_metrics = app->metrics;
  h->min_rate = (size_t)cfg->http_min_bytes_per_s;
  h->rate_window_ms = (int64_t)cfg->http_min_rate_window_s * 1000;
  /* Long polls hold connections: at most half of them, so probes and new requests
   * always find one. */
  h->max_waiting = cfg->http_max_connections / 2;
  pthread_mutex_init(&h->lock, NULL);
  /* Long polls wait on the monotonic clock: a change of the wall clock moves no deadline. */
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&h->cond, &ca);
  pthread_condattr_destroy(&ca);
  for (int i = 0; routes && i < cfg->http_workers; i++)
    if (pthread_create(&h->workers[h->nworkers], NULL, lmp__http_worker, h) == 0)
      h->nworkers++;
  h->tokens_file = strdup(cfg->admin_tokens_file);
  if (h->tokens_file == NULL) {
    lmp_http_stop(h);
    return LMP_ENOMEM;
  }
  lmp__http_load_tokens(h);
  const struct lmp_oidc_conf oc = {cfg->oidc_issuer,        cfg->oidc_audience,       cfg->oidc_partner_claim,
                                   cfg->oidc_operator_role, cfg->oidc_ca_file,        cfg->oidc_clock_skew_s,
                                   cfg->oidc_jwks_refetch_s, cfg->oidc_jwks_max_age_s, cfg->oidc_timeout_ms};
  snprintf(h->issuer, sizeof(h->issuer), "%s", cfg->oidc_issuer);
  /* The origin is the issuer up to the first '/' after "scheme://"; a character
   * that could end the header's directive keeps it out. */
  const char *authority = strstr(h->issuer, "://");
  if (authority && strcspn(h->issuer, " ;,'\"") == strlen(h->issuer)) {
    size_t n = (size_t)(authority + 3 - h->issuer) + strcspn(authority + 3, "/");
    snprintf(h->issuer_origin, sizeof(h->issuer_origin), "%.*s", (int)n, h->issuer);
  }
  int r = lmp_oidc_new(&h->oidc, &oc);
  const struct listen_spec pub = {"http", cfg->http_bind, cfg->http_port, cfg->http_tls_cert_file,
                                   cfg->http_tls_key_file, 0},
                           adm = {"admin", cfg->admin_bind, cfg->admin_port, cfg->admin_tls_cert_file,
                                  cfg->admin_tls_key_file, 0},
                           prb = {"probe", cfg->probe_bind, cfg->probe_port, "", "", 1};
  if (r == 0)
    r = listen_on(h, &h->pub, 0, cfg, &pub, err, errlen);
  if (r == 0)
    r = listen_on(h, &h->adm, 1, cfg, &adm, err, errlen);
  /* Probes on a listener of their own, which public traffic cannot fill: kubelets and
   * Prometheus go there (they are still served on http.port too, for what points
   * there). */
  if (r == 0 && *cfg->probe_bind && (r = listen_on(h, &h->prb, 0, cfg, &prb, err, errlen)) == 0)
    lmp_info(NULL, "probes on %s:%d", cfg->probe_bind, lmp_http_port(h, 2));
  if (r == 0 && routes && h->nworkers == 0) {
    snprintf(err, errlen, "cannot start the HTTP workers");
    r = LMP_EIO;
  }
  if (r < 0) {
    lmp_http_stop(h);
    return r;
  }
  *out = h;
  return 0;
}

void lmp_http_stop(struct lmp_http *h) {
  if (h == NULL)
    return;
  /* No new connections; queued requests are answered 503 and resumed by the workers,
   * so none is left suspended when the daemon stops. */
  if (h->pub.d)
    MHD_quiesce_daemon(h->pub.d);
  if (h->adm.d)
    MHD_quiesce_daemon(h->adm.d);
  if (h->prb.d)
    MHD_quiesce_daemon(h->prb.d);
  pthread_mutex_lock(&h->lock);
  h->quit = 1;
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
  for (int i = 0; i < h->nworkers; i++)
    pthread_join(h->workers[i], NULL);
  listener_stop(&h->pub);
  listener_stop(&h->adm);
  listener_stop(&h->prb);
  lmp__http_free_tokens(h->tokens, h->ntokens);
  free(h->tokens_file);
  lmp_oidc_free(h->oidc);
  pthread_mutex_destroy(&h->lock);
  pthread_cond_destroy(&h->cond);
  free(h->workers);
  free(h->conninfo);
  free(h);
}

int lmp_http_port(const struct lmp_http *h, int which) {
  struct MHD_Daemon *d = which == 2 ? h->prb.d : which ? h->adm.d : h->pub.d;
  const union MHD_DaemonInfo *i = d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
  return i ? (int)i->port : -1;
}
