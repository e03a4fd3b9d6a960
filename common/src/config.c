/* Configuration tables: defaults, file, environment, validation. */
#include "lmp/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/error.h"

#define C(field) offsetof(struct lmp_config, field)

/* Kept alphabetical; every default runs the local stack as is. */
const struct lmp_conf_entry lmp_config_entries[] = {
    {"batch.max", LMP_CONF_INT, C(batch_max), 1, 10000, "500", "messages handled per database transaction"},
    {"dead_letter.topic", LMP_CONF_STR, C(dead_letter_topic), 1, 249, "lmp.onboarding.dead-letter", "topic for messages that cannot be processed"},
    {"http.bind", LMP_CONF_STR, C(http_bind), 1, 255, "127.0.0.1", "address of /healthz, /readyz and /metrics"},
    {"http.body_budget_bytes", LMP_CONF_INT, C(http_body_budget), 65536, 1073741824, "8388608", "request bodies held at once over all connections; past it new uploads get 503"},
    {"http.max_connections", LMP_CONF_INT, C(http_max_connections), 4, 100000, "256", "open HTTP connections at most"},
    {"http.max_connections_per_ip", LMP_CONF_INT, C(http_max_connections_per_ip), 1, 100000, "32", "open HTTP connections from one address at most"},
    {"http.port", LMP_CONF_INT, C(http_port), 0, 65535, "0", "port of /healthz, /readyz and /metrics; 0 takes any free port (see http.port_file)"},
    {"http.port_file", LMP_CONF_STR, C(http_port_file), 0, 1024, "", "file the daemon writes its HTTP port to once it listens, as {\"http\":PORT}"},
    {"http.timeout_s", LMP_CONF_INT, C(http_timeout_s), 1, 3600, "10", "an HTTP connection idle this long is closed"},
    {"http.workers", LMP_CONF_INT, C(http_workers), 1, 64, "2", "threads (each with a database connection) that run the service's HTTP routes"},
    {"kafka.brokers", LMP_CONF_STR, C(kafka_brokers), 1, 1024, "127.0.0.1:19092", "bootstrap servers, host:port[,host:port]"},
    {"kafka.group_id", LMP_CONF_STR, C(group_id), 0, 255, "", "consumer group; empty means lmp-<service>"},
    {"kafka.max_poll_interval_ms", LMP_CONF_INT, C(max_poll_interval_ms), 10000, 3600000, "300000", "consumer leaves the group when a batch takes longer"},
    {"kafka.partitions", LMP_CONF_INT, C(partitions), 1, 1000, "6", "partitions per topic when lmpctl creates them"},
    {"kafka.topic_prefix", LMP_CONF_STR, C(topic_prefix), 0, 200, "lmp.", "topic name = prefix + event type"},
    {"log.level", LMP_CONF_STR, C(log_level), 1, 5, "info", "debug, info, warn or error"},
    {"outbox.sweep_ms", LMP_CONF_INT, C(outbox_sweep_ms), 100, 600000, "5000", "how often events left unpublished by a crash are sent"},
    {"pg.connect_timeout_s", LMP_CONF_INT, C(pg_connect_timeout_s), 1, 600, "5", "PostgreSQL connection timeout"},
    {"pg.database", LMP_CONF_STR, C(pg_database), 0, 63, "", "database; empty means lmp_<service> (a hyphen written as _)"},
    {"pg.host", LMP_CONF_STR, C(pg_host), 1, 255, "127.0.0.1", "PostgreSQL host or socket directory"},
    {"pg.password", LMP_CONF_STR, C(pg_password), 0, 255, "", "PostgreSQL password (prefer a ~/.pgpass file)"},
    {"pg.port", LMP_CONF_INT, C(pg_port), 1, 65535, "15432", "PostgreSQL port"},
    {"pg.statement_timeout_ms", LMP_CONF_INT, C(pg_statement_timeout_ms), 100, 3600000, "30000", "longest a statement may run before it is cancelled and its batch retried"},
    {"pg.user", LMP_CONF_STR, C(pg_user), 1, 63, "lmp", "PostgreSQL role"},
    {"pipeline.depth", LMP_CONF_INT, C(pipeline_depth), 1, 64, "4", "batches in flight at once: one in its transaction, the others waiting for the broker"},
    {"retry.initial_ms", LMP_CONF_INT, C(retry_initial_ms), 1, 60000, "100", "first backoff after a transient fault"},
    {"retry.isolate_after", LMP_CONF_INT, C(retry_isolate_after), 1, 100, "3", "retries of a batch before its messages run one at a time, and of one message before it is dead-lettered"},
    {"retry.max_ms", LMP_CONF_INT, C(retry_max_ms), 10, 600000, "10000", "longest backoff between retries"},
    {"schemas.extra_dir", LMP_CONF_STR, C(schemas_extra_dir), 0, 1024, "", "folder of other versions of the event schemas (*.avsc) to read"},
    {"shutdown.timeout_ms", LMP_CONF_INT, C(shutdown_timeout_ms), 0, 600000, "10000", "how long SIGTERM waits for Kafka to acknowledge"},
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

static int set_entry(const struct lmp_conf_table *t, const struct lmp_conf_entry *e,
                     const char *value, const char *source, char *err, size_t errlen) {
  void *p = field_ptr(t, e);
  switch (e->type) {
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
      snprintf(err, errlen, "%s: %s: '%s' is not an integer", source, e->name, value);
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
    snprintf(err, errlen, "%s: %s: '%s' is not true or false", source, e->name, value);
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
      if (strcmp(tb->entries[i].name, name) == 0) {
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
      snprintf(err, errlen, "%s: unknown setting '%s'", source, name);
      r = LMP_ECONFIG;
      break;
    }
    r = set_entry(t, e, value, source, err, errlen);
  }
  fclose(f);
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
        if (strlen(name) == (size_t)(eq - *ev) && strncmp(name, *ev, (size_t)(eq - *ev)) == 0 &&
            (r = set_entry(t, &t->entries[i], eq + 1, name, err, errlen)) < 0)
          return r;
      }
  }
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
      }
    }
}

void lmp_config_write_example(const struct lmp_conf_table *tables, FILE *f) {
  for (const struct lmp_conf_table *t = tables; t->entries; t++)
    for (size_t i = 0; i < t->n; i++) {
      const struct lmp_conf_entry *e = &t->entries[i];
      char env[128];
      env_name(e->name, env, sizeof(env));
      fprintf(f, "# %s (environment: %s", e->help, env);
      if (e->type == LMP_CONF_INT)
        fprintf(f, "; %lld..%lld", e->min, e->max);
      fprintf(f, ")\n# %s = %s\n\n", e->name, e->def);
    }
}
