/* Configuration tables: defaults, file, environment, validation. */
#include "lmp/base/config.h"
#include "lmp/base/ids.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmp/base/error.h"
#include "lmp/base/text.h"

#define C(field) offsetof(struct lmp_config, field)

/* Kept alphabetical; every default runs the local stack as is. */
const struct lmp_conf_entry lmp_config_entries[] = {
    {"admin.bind", LMP_CONF_STR, C(admin_bind), 1, 255, "127.0.0.1", "address of the admin listener (reference data, operator routes)"},
    {"admin.port", LMP_CONF_INT, C(admin_port), 0, 65535, "0", "port of the admin listener; 0 takes any free port (see http.port_file)"},
    {"admin.tls_cert_file", LMP_CONF_STR, C(admin_tls_cert_file), 0, 1024, "", "certificate chain (PEM) the admin listener serves HTTPS with; empty: plain HTTP"},
    {"admin.tls_key_file", LMP_CONF_STR, C(admin_tls_key_file), 0, 1024, "", "the private key (PEM) of admin.tls_cert_file; readable by its owner (and group) only"},
    {"admin.tokens_file", LMP_CONF_STR, C(admin_tokens_file), 0, 1024, "", "file of bearer tokens, one 'name token [scopes]' per line: a token of 16 to 255 characters, scopes read or write, each for every daemon or as <daemon>:read, comma-separated (none: write on every daemon); a missing, empty or unreadable file refuses every admin request"},
    {"batch.max", LMP_CONF_INT, C(batch_max), 1, 10000, "100", "messages handled per database transaction"},
    {"http.bind", LMP_CONF_STR, C(http_bind), 1, 255, "127.0.0.1", "address of /healthz, /readyz and /metrics"},
    {"http.body_budget_bytes", LMP_CONF_INT, C(http_body_budget), 65536, 1073741824, "8388608", "request body bytes each listener holds at once; past it new uploads get 503"},
    {"http.body_budget_per_address_bytes", LMP_CONF_INT, C(http_body_budget_per_address), 4096, 1073741824, "2097152", "of them, what one client address may hold at once; past it its new uploads get 429 (behind a proxy every client has its address: raise it)"},
    {"http.max_connections", LMP_CONF_INT, C(http_max_connections), 4, 100000, "256", "open HTTP connections at most"},
    {"http.max_connections_per_ip", LMP_CONF_INT, C(http_max_connections_per_ip), 1, 100000, "32", "open HTTP connections from one address at most"},
    {"http.min_bytes_per_s", LMP_CONF_INT, C(http_min_bytes_per_s), 0, 1073741824, "1024", "a request body slower than this over a window drops its connection; 0: any rate"},
    {"http.min_rate_window_s", LMP_CONF_INT, C(http_min_rate_window_s), 1, 3600, "10", "the window http.min_bytes_per_s is measured over"},
    {"http.port", LMP_CONF_INT, C(http_port), 0, 65535, "0", "port of /healthz, /readyz and /metrics; 0 takes any free port (see http.port_file)"},
    {"http.port_file", LMP_CONF_STR, C(http_port_file), 0, 1024, "", "file the daemon writes its HTTP port to once it listens, as {\"http\":PORT}"},
    {"http.timeout_s", LMP_CONF_INT, C(http_timeout_s), 1, 3600, "10", "an HTTP connection idle this long is closed"},
    {"http.tls_cert_file", LMP_CONF_STR, C(http_tls_cert_file), 0, 1024, "", "certificate chain (PEM) the public listener (probes, metrics, public routes) serves HTTPS with; empty: plain HTTP"},
    {"http.tls_key_file", LMP_CONF_STR, C(http_tls_key_file), 0, 1024, "", "the private key (PEM) of http.tls_cert_file; readable by its owner (and group) only"},
    {"http.workers", LMP_CONF_INT, C(http_workers), 1, 64, "2", "threads (each with a database connection) that run the service's HTTP routes"},
    {"kafka.brokers", LMP_CONF_STR, C(kafka_brokers), 1, 1024, "127.0.0.1:19092", "bootstrap servers, host:port[,host:port]"},
    {"kafka.commit_interval_ms", LMP_CONF_INT, C(commit_interval_ms), 0, 60000, "1000", "handled batches' offsets are committed at most this often (0: after each batch); a crash redelivers what came after the last commit, and the inbox absorbs it"},
    {"kafka.group_id", LMP_CONF_STR, C(group_id), 0, 255, "", "consumer group; empty means lmp-<service>"},
    {"kafka.max_poll_interval_ms", LMP_CONF_INT, C(max_poll_interval_ms), 10000, 3600000, "300000", "consumer leaves the group when a batch takes longer"},
    {"kafka.partitions", LMP_CONF_INT, C(partitions), 1, 1000, "6", "partitions per topic when lmpctl creates them"},
    {"kafka.property", LMP_CONF_MAP, C(kafka_props), 0, 0, "", "any librdkafka property, e.g. kafka.property.security.protocol = SASL_SSL; <name>_file reads a secret from a file"},
    {"kafka.topic_prefix", LMP_CONF_STR, C(topic_prefix), 0, 200, "lmp.", "topic name = prefix + event type"},
    {"log.level", LMP_CONF_STR, C(log_level), 1, 5, "info", "debug, info, warn or error"},
    {"oidc.audience", LMP_CONF_STR, C(oidc_audience), 1, 255, "lmp-onboarding", "an access token's aud must name this"},
    {"oidc.ca_file", LMP_CONF_STR, C(oidc_ca_file), 0, 1024, "", "CA certificates (PEM) that verify the issuer's HTTPS; empty: the system's"},
    {"oidc.clock_skew_s", LMP_CONF_INT, C(oidc_clock_skew_s), 0, 300, "30", "clock difference allowed on a token's exp, nbf and iat"},
    {"oidc.issuer", LMP_CONF_STR, C(oidc_issuer), 0, 1024, "", "OpenID Connect issuer whose access tokens sign partners and operators in (its discovery document names the keys); empty: public routes that need a signed-in partner answer 401, admin routes take only admin.tokens_file"},
    {"oidc.jwks_max_age_s", LMP_CONF_INT, C(oidc_jwks_max_age_s), 10, 86400, "600", "the issuer's keys are fetched again when older than this"},
    {"oidc.jwks_refetch_s", LMP_CONF_INT, C(oidc_jwks_refetch_s), 1, 3600, "10", "a token signed with an unknown key fetches the issuer's keys at most this often"},
    {"oidc.operator_role", LMP_CONF_STR, C(oidc_operator_role), 1, 255, "operator", "realm role (realm_access.roles) that admin routes accept beside admin.tokens_file"},
    {"oidc.partner_claim", LMP_CONF_STR, C(oidc_partner_claim), 1, 255, "partner_id", "access-token claim naming the partner a user acts for"},
    {"oidc.timeout_ms", LMP_CONF_INT, C(oidc_timeout_ms), 100, 60000, "3000", "longest a call to the issuer may take"},
    {"outbox.sweep_ms", LMP_CONF_INT, C(outbox_sweep_ms), 100, 600000, "5000", "how often events left unpublished by a crash are sent"},
    {"pg.allow_insecure", LMP_CONF_BOOL, C(pg_allow_insecure), 0, 1, "false", "accept a pg.sslmode that does not verify the server (disable, allow, prefer, require, verify-ca): for a database reached over a trusted path only"},
    {"pg.connect_timeout_s", LMP_CONF_INT, C(pg_connect_timeout_s), 1, 600, "5", "PostgreSQL connection timeout"},
    {"pg.database", LMP_CONF_STR, C(pg_database), 0, 63, "", "database; empty means lmp_<service> (a hyphen written as _)"},
    {"pg.host", LMP_CONF_STR, C(pg_host), 1, 255, "127.0.0.1", "PostgreSQL host or socket directory"},
    {"pg.migrate_on_start", LMP_CONF_BOOL, C(pg_migrate_on_start), 0, 1, "true", "apply the daemon's pending migrations when it starts; false: only check that they are applied (run lmp-<service> --migrate before it) and stay unready until they are"},
    {"pg.migrate_password_file", LMP_CONF_STR, C(pg_migrate_password_file), 0, 1024, "", "file holding pg.migrate_user's password"},
    {"pg.migrate_user", LMP_CONF_STR, C(pg_migrate_user), 0, 63, "", "PostgreSQL role that owns the daemon's tables and applies its migrations over a connection of its own, then grants pg.user reading and writing their rows; empty: pg.user migrates (and so must own them)"},
    {"pg.password", LMP_CONF_STR, C(pg_password), 0, 255, "", "PostgreSQL password (prefer pg.password_file)"},
    {"pg.password_file", LMP_CONF_STR, C(pg_password_file), 0, 1024, "", "file holding the PostgreSQL password"},
    {"pg.port", LMP_CONF_INT, C(pg_port), 1, 65535, "15432", "PostgreSQL port"},
    {"pg.sslcert", LMP_CONF_STR, C(pg_sslcert), 0, 1024, "", "client certificate (PEM) for certificate authentication"},
    {"pg.sslkey", LMP_CONF_STR, C(pg_sslkey), 0, 1024, "", "the client certificate's key"},
    {"pg.sslmode", LMP_CONF_STR, C(pg_sslmode), 1, 16, "verify-full", "libpq sslmode: verify-full; disable, allow, prefer, require or verify-ca only with pg.allow_insecure = true"},
    {"pg.sslrootcert", LMP_CONF_STR, C(pg_sslrootcert), 0, 1024, "", "CA certificates (PEM) that verify the server, for verify-ca and verify-full"},
    {"pg.statement_timeout_ms", LMP_CONF_INT, C(pg_statement_timeout_ms), 100, 3600000, "30000", "longest a statement may run before it is cancelled and its batch retried"},
    {"pg.user", LMP_CONF_STR, C(pg_user), 1, 63, "lmp", "PostgreSQL role"},
    {"pipeline.depth", LMP_CONF_INT, C(pipeline_depth), 1, 64, "4", "batches in flight at once: one in its transaction, the others waiting for the broker"},
    {"probe.bind", LMP_CONF_STR, C(probe_bind), 0, 255, "", "address of a listener of /healthz, /readyz and /metrics only, which public traffic cannot fill (for kubelets and Prometheus); empty: none (they are always on http.port too)"},
    {"probe.port", LMP_CONF_INT, C(probe_port), 0, 65535, "0", "port of the probe listener; 0 takes any free port (logged as 'probes on ADDRESS:PORT')"},
    {"retention.days", LMP_CONF_INT, C(retention_days), 1, 3650, "30", "processed inbox rows, stored request bodies and mail bodies are purged after this many days"},
    {"retention.interval_s", LMP_CONF_INT, C(retention_interval_s), 1, 86400, "3600", "how often the purge runs"},
    {"retry.initial_ms", LMP_CONF_INT, C(retry_initial_ms), 1, 60000, "100", "first backoff after a transient fault"},
    {"retry.isolate_after", LMP_CONF_INT, C(retry_isolate_after), 1, 100, "3", "retries of a batch before its messages run one at a time, and of one message before it is dead-lettered"},
    {"retry.max_ms", LMP_CONF_INT, C(retry_max_ms), 10, 600000, "10000", "longest backoff between retries"},
    {"schema_registry.allow_http", LMP_CONF_BOOL, C(registry_allow_http), 0, 1, "false", "accept an http:// schema_registry.url: schemas then cross the network unauthenticated and in clear, so anyone on the path may change how events are read; local experiments only"},
    {"schema_registry.ca_file", LMP_CONF_STR, C(registry_ca_file), 0, 1024, "", "CA certificates (PEM) that verify the registry's; empty: the system's"},
    {"schema_registry.password_file", LMP_CONF_STR, C(registry_password_file), 0, 1024, "", "file holding the registry's basic-auth password"},
    {"schema_registry.register", LMP_CONF_BOOL, C(registry_register), 0, 1, "true", "register the schemas the daemon emits at start (a client that may write); false: only look up their ids, registered beforehand by lmp-<service> --register-schemas, so the daemon's registry client may only read"},
    {"schema_registry.timeout_ms", LMP_CONF_INT, C(registry_timeout_ms), 100, 60000, "5000", "longest a call to the registry may take"},
    {"schema_registry.url", LMP_CONF_STR, C(registry_url), 0, 1024, "", "Confluent-compatible schema registry (e.g. .../apis/ccompat/v7); set: events are framed with its ids, else single-object"},
    {"schema_registry.username", LMP_CONF_STR, C(registry_username), 0, 255, "", "the registry's basic-auth user; empty: none"},
    {"schemas.extra_dir", LMP_CONF_STR, C(schemas_extra_dir), 0, 1024, "", "folder of other versions of the event schemas (*.avsc) to read"},
    {"shutdown.timeout_ms", LMP_CONF_INT, C(shutdown_timeout_ms), 0, 600000, "10000", "how long SIGTERM waits for Kafka to acknowledge"},
    {"tracing.batch_spans", LMP_CONF_INT, C(tracing_batch_spans), 1, 10000, "512", "spans sent to the collector in one request, at most"},
    {"tracing.ca_file", LMP_CONF_STR, C(tracing_ca_file), 0, 1024, "", "CA certificates (PEM) that verify an https:// tracing.endpoint; empty: the system's"},
    {"tracing.endpoint", LMP_CONF_STR, C(tracing_endpoint), 0, 1024, "", "OTLP/HTTP collector (e.g. http://127.0.0.1:4318): spans go to <endpoint>/v1/traces as JSON; empty: no span leaves the daemon"},
    {"tracing.interval_ms", LMP_CONF_INT, C(tracing_interval_ms), 10, 60000, "1000", "queued spans are sent at least this often"},
    {"tracing.queue_spans", LMP_CONF_INT, C(tracing_queue_spans), 16, 1000000, "2048", "spans waiting to be sent, at most; more are dropped and counted (lmp_trace_spans_dropped_total)"},
    {"tracing.ratio", LMP_CONF_STR, C(tracing_ratio), 1, 32, "1.0", "share of new traces sampled by the traceidratio samplers, 0 to 1"},
    {"tracing.sampler", LMP_CONF_STR, C(tracing_sampler), 1, 64, "parentbased_always_on", "which traces are sampled, as OTEL_TRACES_SAMPLER names it: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio"},
    {"tracing.timeout_ms", LMP_CONF_INT, C(tracing_timeout_ms), 100, 60000, "2000", "longest one request to the collector may take; a batch it does not take is dropped and counted"},
};
const size_t lmp_config_entries_n = sizeof(lmp_config_entries) / sizeof(lmp_config_entries[0]);


static void *field_ptr(const struct lmp_conf_table *t, const struct lmp_conf_entry *e) {
  return (char *)t->base + e->offset;
}

static void free_list(char **l) {
  for (char **p = l; p && *p; p++)
    free(*p);
  free(l);
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s))
    s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1]))
    *--e = '\0';
  return s;
}

static int parse_list(const char *text, char ***out) {
  size_t n = 1;
  for (const char *p = text; *p; p++)
    n += *p == ',';
  char **l = calloc(n + 1, sizeof(*l));
  char *copy = strdup(text);
  if (l == NULL || copy == NULL) {
    free(l);
    free(copy);
    return LMP_ENOMEM;
  }
  size_t i = 0;
  char *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *t = trim(tok);
    if (*t && (l[i++] = strdup(t)) == NULL) {
      free(copy);
      free_list(l);
      return LMP_ENOMEM;
    }
  }
  free(copy);
  *out = l;
  return 0;
}

int lmp_config_secret(const char *name) {
  return strstr(name, "password") || strstr(name, "secret") || strstr(name, "token") || strstr(name, "jaas") ||
         (strstr(name, ".key") && strstr(name, "pem"));
}

int lmp_config_read_secret(const char *path, char **out, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return LMP_ECONFIG;
  }
  char buf[65536];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  int big = !feof(f);
  fclose(f);
  int r = 0;
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    n--;
  buf[n] = '\0';
  if (big) {
    snprintf(err, errlen, "%s: over %zu bytes", path, sizeof(buf) - 1);
    r = LMP_ECONFIG;
  } else if (memchr(buf, '\0', n)) {
    snprintf(err, errlen, "%s: holds a NUL byte", path);
    r = LMP_ECONFIG;
  } else if ((*out = strdup(buf)) == NULL) {
    r = LMP_ENOMEM;
  }
  explicit_bzero(buf, sizeof(buf)); /* no copy of the secret stays on the stack */
  return r;
}

/* One "<prefix>.<key> = value" of a map; a key ending in _file reads its value. */
static int set_map(struct lmp_kvs *m, const struct lmp_conf_entry *e, const char *key, const char *value,
                   const char *source, char *err, size_t errlen) {
  size_t klen = strlen(key);
  if (klen == 0 || klen > 128 || strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789._-") != klen) {
    snprintf(err, errlen, "%s: %s.%s: a key is 1 to 128 of a-z, 0-9, '.', '_' and '-'", source, e->name, key);
    return LMP_ECONFIG;
  }
  char *k = strdup(key), *v = NULL;
  int secret = lmp_config_secret(key), r = 0;
  if (k == NULL)
    return LMP_ENOMEM;
  if (klen > 5 && strcmp(k + klen - 5, "_file") == 0) {
    k[klen - 5] = '\0';
    secret = 1;
    char why[400];
    if ((r = lmp_config_read_secret(value, &v, why, sizeof(why))) < 0)
      snprintf(err, errlen, "%s: %s.%s: %s", source, e->name, key, why);
  } else if (strlen(value) > 4096) {
    snprintf(err, errlen, "%s: %s.%s: over 4096 characters (use %s_file)", source, e->name, key, key);
    r = LMP_ECONFIG;
  } else if ((v = strdup(value)) == NULL) {
    r = LMP_ENOMEM;
  }
  if (r < 0) {
    free(k);
    return r;
  }
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->v[i].key, k) == 0) { /* a later source overrides */
      free(m->v[i].value);
      free(k);
      m->v[i].value = v;
      m->v[i].secret = secret;
      return 0;
    }
  struct lmp_kv *nv = realloc(m->v, (m->n + 1) * sizeof(*nv));
  if (nv == NULL) {
    free(k);
    free(v);
    return LMP_ENOMEM;
  }
  m->v = nv;
  m->v[m->n++] = (struct lmp_kv){k, v, secret};
  return 0;
}

static void free_map(struct lmp_kvs *m) {
  for (size_t i = 0; i < m->n; i++) {
    free(m->v[i].key);
    free(m->v[i].value);
  }
  free(m->v);
  m->v = NULL;
  m->n = 0;
}

static int set_entry(const struct lmp_conf_table *t, const struct lmp_conf_entry *e,
                     const char *value, const char *source, char *err, size_t errlen) {
  void *p = field_ptr(t, e);
  switch (e->type) {
  case LMP_CONF_MAP:
    return 0; /* a map has no value of its own: set_map fills it */
  case LMP_CONF_STR: {
    if ((long long)strlen(value) < e->min || (long long)strlen(value) > e->max) {
      snprintf(err, errlen, "%s: %s: length must be %lld..%lld", source, e->name, e->min, e->max);
      return LMP_ECONFIG;
    }
    char *s = strdup(value);
    if (s == NULL)
      return LMP_ENOMEM;
    free(*(char **)p);
    *(char **)p = s;
    return 0;
  }
  case LMP_CONF_INT: {
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end != '\0') {
      snprintf(err, errlen, "%s: %s: '%s' is not an integer", source, e->name, LMP_SHOWN(value));
      return LMP_ECONFIG;
    }
    if (v < e->min || v > e->max) {
      snprintf(err, errlen, "%s: %s: %lld is not in %lld..%lld", source, e->name, v, e->min, e->max);
      return LMP_ECONFIG;
    }
    *(int *)p = (int)v;
    return 0;
  }
  case LMP_CONF_BOOL: {
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
      if (strcasecmp(value, yes[i]) == 0) { *(int *)p = 1; return 0; }
      if (strcasecmp(value, no[i]) == 0) { *(int *)p = 0; return 0; }
    }
    snprintf(err, errlen, "%s: %s: '%s' is not true or false", source, e->name, LMP_SHOWN(value));
    return LMP_ECONFIG;
  }
  case LMP_CONF_LIST: {
    char **l;
    int r = parse_list(value, &l);
    if (r < 0)
      return r;
    size_t n = 0;
    while (l[n])
      n++;
    if ((long long)n < e->min || (long long)n > e->max) {
      snprintf(err, errlen, "%s: %s: needs %lld..%lld comma-separated items, got %zu", source,
               e->name, e->min, e->max, n);
      free_list(l);
      return LMP_ECONFIG;
    }
    free_list(*(char ***)p);
    *(char ***)p = l;
    return 0;
  }
  }
  return LMP_EINVAL;
}

static int find(const struct lmp_conf_table *tables, const char *name,
                const struct lmp_conf_table **t, const struct lmp_conf_entry **e) {
  for (const struct lmp_conf_table *tb = tables; tb->entries; tb++)
    for (size_t i = 0; i < tb->n; i++)
      if (strcmp(tb->entries[i].name, name) == 0 ||
          (tb->entries[i].type == LMP_CONF_MAP && strncmp(name, tb->entries[i].name, strlen(tb->entries[i].name)) == 0 &&
           name[strlen(tb->entries[i].name)] == '.')) {
        *t = tb;
        *e = &tb->entries[i];
        return 0;
      }
  return LMP_ECONFIG;
}

static void env_name(const char *name, char *out, size_t outlen) {
  size_t j = (size_t)snprintf(out, outlen, "LMP_");
  for (const char *p = name; *p && j + 1 < outlen; p++)
    out[j++] = (*p == '.' || *p == '-') ? '_' : (char)toupper((unsigned char)*p);
  out[j] = '\0';
}

static int load_file(const struct lmp_conf_table *tables, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return LMP_ECONFIG;
  }
  char line[4096], source[512];
  int lineno = 0, r = 0;
  while (r == 0 && fgets(line, sizeof(line), f)) {
    lineno++;
    snprintf(source, sizeof(source), "%s:%d", path, lineno);
    if (strchr(line, '\n') == NULL && !feof(f)) {
      snprintf(err, errlen, "%s: line longer than %zu bytes", source, sizeof(line) - 1);
      r = LMP_ECONFIG;
      break;
    }
    char *s = trim(line);
    if (*s == '\0' || *s == '#')
      continue;
    char *eq = strchr(s, '=');
    if (eq == NULL) {
      snprintf(err, errlen, "%s: expected 'name = value'", source);
      r = LMP_ECONFIG;
      break;
    }
    *eq = '\0';
    char *name = trim(s), *value = trim(eq + 1);
    const struct lmp_conf_table *t;
    const struct lmp_conf_entry *e;
    if (find(tables, name, &t, &e) < 0) {
      snprintf(err, errlen, "%s: unknown setting '%s'", source, LMP_SHOWN(name));
      r = LMP_ECONFIG;
      break;
    }
    if (e->type == LMP_CONF_MAP && name[strlen(e->name)] == '\0') {
      snprintf(err, errlen, "%s: '%s' needs a name after it, e.g. %s.<name>", source, name, name);
      r = LMP_ECONFIG;
    } else if (e->type == LMP_CONF_MAP)
      r = set_map(field_ptr(t, e), e, name + strlen(e->name) + 1, value, source, err, errlen);
    else
      r = set_entry(t, e, value, source, err, errlen);
  }
  fclose(f);
  return r;
}

/* A connection that does not verify the server can be read and changed by anyone on
 * the path, and libpq 15 even hands such a server the password in clear: only an
 * operator who says so (pg.allow_insecure) gets one. */
static int check_pg_tls(const struct lmp_config *cfg, char *err, size_t errlen) {
  static const char *const weak[] = {"disable", "allow", "prefer", "require", "verify-ca", NULL};
  for (const char *const *m = weak; *m && !cfg->pg_allow_insecure; m++)
    if (strcmp(*m, cfg->pg_sslmode) == 0) {
      snprintf(err, errlen,
               "pg.sslmode = %s does not verify the database server's certificate and name (verify-full "
               "does); set pg.allow_insecure = true to accept it",
               cfg->pg_sslmode);
      return LMP_ECONFIG;
    }
  return 0;
}

/* A listener's certificate and key come together, and are files the daemon can read
 * (the listener checks that they match when it starts). */
static int check_listener_tls(const char *prefix, const char *cert, const char *key, char *err, size_t errlen) {
  if (!*cert != !*key) {
    snprintf(err, errlen, "%s.tls_cert_file and %s.tls_key_file: set both for HTTPS, or neither", prefix, prefix);
    return LMP_ECONFIG;
  }
  const char *files[][2] = {{"tls_cert_file", cert}, {"tls_key_file", key}};
  for (size_t i = 0; i < 2 && *cert; i++)
    if (access(files[i][1], R_OK) != 0) {
      snprintf(err, errlen, "%s.%s: cannot read %s: %s", prefix, files[i][0], files[i][1], strerror(errno));
      return LMP_ECONFIG;
    }
  return 0;
}

/* The tracing settings whose values a bound cannot check. */
static int check_tracing(const struct lmp_config *cfg, char *err, size_t errlen) {
  char *end = NULL;
  double ratio = strtod(cfg->tracing_ratio, &end);
  if (lmp_sampler_parse(cfg->tracing_sampler) < 0) {
    snprintf(err, errlen, "tracing.sampler '%s' is none of always_on, always_off, traceidratio, "
             "parentbased_always_on, parentbased_always_off, parentbased_traceidratio", LMP_SHOWN(cfg->tracing_sampler));
    return LMP_ECONFIG;
  }
  if (end == cfg->tracing_ratio || *end || !(ratio >= 0 && ratio <= 1)) {
    snprintf(err, errlen, "tracing.ratio '%s' is not a number from 0 to 1", cfg->tracing_ratio);
    return LMP_ECONFIG;
  }
  const char *ep = cfg->tracing_endpoint;
  if (*ep && strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) {
    snprintf(err, errlen, "tracing.endpoint '%.200s' is not an http:// or https:// URL", ep);
    return LMP_ECONFIG;
  }
  return 0;
}

/* What the settings every daemon has say together, once every source is read. */
static int check_common(const struct lmp_config *cfg, char *err, size_t errlen) {
  int r = check_pg_tls(cfg, err, errlen);
  if (r == 0 && *cfg->pg_migrate_password_file && !*cfg->pg_migrate_user) {
    snprintf(err, errlen, "pg.migrate_password_file is set but pg.migrate_user is not: whose password is it?");
    r = LMP_ECONFIG;
  }
  if (r == 0 && *cfg->pg_migrate_user && strcmp(cfg->pg_migrate_user, cfg->pg_user) == 0) {
    snprintf(err, errlen, "pg.migrate_user is pg.user (%s): leave it empty, or name the role that owns the tables",
             cfg->pg_user);
    r = LMP_ECONFIG;
  }
  if (r == 0)
    r = check_tracing(cfg, err, errlen);
  if (r == 0)
    r = check_listener_tls("http", cfg->http_tls_cert_file, cfg->http_tls_key_file, err, errlen);
  if (r == 0)
    r = check_listener_tls("admin", cfg->admin_tls_cert_file, cfg->admin_tls_key_file, err, errlen);
  return r;
}

int lmp_config_load(const struct lmp_conf_table *tables, const char *path, char **env, char *err,
                    size_t errlen) {
  int r;
  for (const struct lmp_conf_table *t = tables; t->entries; t++)
    for (size_t i = 0; i < t->n; i++)
      if ((r = set_entry(t, &t->entries[i], t->entries[i].def, "default", err, errlen)) < 0)
        return r;
  if (path && (r = load_file(tables, path, err, errlen)) < 0)
    return r;
  for (char **ev = env; ev && *ev; ev++) {
    if (strncmp(*ev, "LMP_", 4) != 0)
      continue;
    const char *eq = strchr(*ev, '=');
    if (eq == NULL)
      continue;
    for (const struct lmp_conf_table *t = tables; t->entries; t++)
      for (size_t i = 0; i < t->n; i++) {
        char name[128];
        env_name(t->entries[i].name, name, sizeof(name));
        size_t nl = strlen(name), vl = (size_t)(eq - *ev);
        if (t->entries[i].type == LMP_CONF_MAP) {
          /* LMP_KAFKA_PROPERTY_SASL_PASSWORD_FILE: key sasl.password_file. */
          if (vl <= nl + 1 || strncmp(*ev, name, nl) != 0 || (*ev)[nl] != '_')
            continue;
          char key[160], var[200];
          size_t kl = vl - nl - 1;
          if (kl >= sizeof(key))
            kl = sizeof(key) - 1;
          for (size_t k = 0; k < kl; k++) {
            char c = (*ev)[nl + 1 + k];
            key[k] = c == '_' ? '.' : (char)tolower((unsigned char)c);
          }
          key[kl] = '\0';
          if (kl > 5 && strcmp(key + kl - 5, ".file") == 0)
            key[kl - 5] = '_';
          snprintf(var, sizeof(var), "%.*s", (int)vl, *ev);
          if ((r = set_map(field_ptr(t, &t->entries[i]), &t->entries[i], key, eq + 1, var, err, errlen)) < 0)
            return r;
        } else if (nl == vl && strncmp(name, *ev, vl) == 0 &&
                   (r = set_entry(t, &t->entries[i], eq + 1, name, err, errlen)) < 0) {
          return r;
        }
      }
  }
  for (const struct lmp_conf_table *t = tables; t->entries; t++)
    if (t->entries == lmp_config_entries && (r = check_common(t->base, err, errlen)) < 0)
      return r;
  return 0;
}

void lmp_config_free(const struct lmp_conf_table *tables) {
  for (const struct lmp_conf_table *t = tables; t->entries; t++)
    for (size_t i = 0; i < t->n; i++) {
      void *p = field_ptr(t, &t->entries[i]);
      if (t->entries[i].type == LMP_CONF_STR) {
        free(*(char **)p);
        *(char **)p = NULL;
      } else if (t->entries[i].type == LMP_CONF_LIST) {
        free_list(*(char ***)p);
        *(char ***)p = NULL;
      } else if (t->entries[i].type == LMP_CONF_MAP) {
        free_map(p);
      }
    }
}

void lmp_config_write_example(const struct lmp_conf_table *tables, FILE *f) {
  for (const struct lmp_conf_table *t = tables; t->entries; t++)
    for (size_t i = 0; i < t->n; i++) {
      const struct lmp_conf_entry *e = &t->entries[i];
      char env[128];
      env_name(e->name, env, sizeof(env));
      if (e->type == LMP_CONF_MAP) {
        fprintf(f, "# %s (environment: %s_<NAME>, '_' for '.')\n# %s.<name> = <value>\n\n", e->help, env, e->name);
        continue;
      }
      fprintf(f, "# %s (environment: %s", e->help, env);
      if (e->type == LMP_CONF_INT)
        fprintf(f, "; %lld..%lld", e->min, e->max);
      fprintf(f, ")\n# %s = %s\n\n", e->name, e->def);
    }
}

void lmp_config_write_effective(const struct lmp_conf_table *tables, FILE *f) {
  for (const struct lmp_conf_table *t = tables; t->entries; t++)
    for (size_t i = 0; i < t->n; i++) {
      const struct lmp_conf_entry *e = &t->entries[i];
      void *p = field_ptr(t, e);
      int secret = lmp_config_secret(e->name) && !strstr(e->name, "_file");
      switch (e->type) {
      case LMP_CONF_STR:
        fprintf(f, "%s = %s\n", e->name, secret && **(char **)p ? "********" : *(char **)p);
        break;
      case LMP_CONF_INT:
      case LMP_CONF_BOOL:
        fprintf(f, "%s = %d\n", e->name, *(int *)p);
        break;
      case LMP_CONF_LIST:
        fprintf(f, "%s = ", e->name);
        for (char **l = *(char ***)p; l && *l; l++)
          fprintf(f, "%s%s", l == *(char ***)p ? "" : ",", *l);
        fputc('\n', f);
        break;
      case LMP_CONF_MAP: {
        const struct lmp_kvs *m = p;
        for (size_t k = 0; k < m->n; k++)
          fprintf(f, "%s.%s = %s\n", e->name, m->v[k].key, m->v[k].secret ? "********" : m->v[k].value);
        break;
      }
      }
    }
}
