/* Configuration as declarative tables: defaults, bounds, file, then environment. */
#ifndef LMP_CONFIG_H
#define LMP_CONFIG_H

#include <stddef.h>
#include <stdio.h>

enum lmp_conf_type {
  LMP_CONF_STR,  /* char *; max = longest accepted length */
  LMP_CONF_INT,  /* int; min..max inclusive */
  LMP_CONF_BOOL, /* int 0/1; true/false/yes/no/on/off/1/0 */
  LMP_CONF_LIST, /* char ** NULL-terminated; comma-separated text */
  LMP_CONF_MAP,  /* struct lmp_kvs; the entry's name is a prefix: "<name>.<key> = value",
                  * environment LMP_<NAME>_<KEY> with '_' read as '.'; a key ending in
                  * _file takes its value (a secret) from that file */
};

/* Settings under a prefix, such as librdkafka's properties. */
struct lmp_kv {
  char *key;
  char *value;
  int secret; /* printed masked */
};
struct lmp_kvs {
  struct lmp_kv *v;
  size_t n;
};

struct lmp_conf_entry {
  const char *name;        /* "kafka.brokers"; environment LMP_KAFKA_BROKERS */
  enum lmp_conf_type type;
  size_t offset;           /* of the field in the settings struct */
  long long min, max;      /* bounds, see the types */
  const char *def;         /* default, as the text a file would hold */
  const char *help;        /* one line for the example file */
};

/* One table and the struct its offsets point into; a NULL entries ends an array. */
struct lmp_conf_table {
  const struct lmp_conf_entry *entries;
  size_t n;
  void *base;
};

/* Applies defaults, then the file (when path is not NULL), then LMP_* variables of
 * env, then checks what the table of the settings every daemon has cannot say of one
 * setting alone (pg.sslmode against pg.allow_insecure, ...). On error, err names the
 * source (file and line, or variable) and the value, or the settings at odds. */
int lmp_config_load(const struct lmp_conf_table *tables, const char *path, char **env,
                    char *err, size_t errlen);
void lmp_config_free(const struct lmp_conf_table *tables);
/* Writes a commented example file holding every setting with its default. */
void lmp_config_write_example(const struct lmp_conf_table *tables, FILE *f);
/* Writes the settings in effect, one "name = value" a line; secrets (names that say
 * password, secret or token, values read from files) are masked. */
void lmp_config_write_effective(const struct lmp_conf_table *tables, FILE *f);
/* Whether a setting's value is a secret, by its name. */
int lmp_config_secret(const char *name);
/* Reads a secret from a file: its content without the trailing newline, malloc'd. 0, or
 * LMP_ECONFIG with the reason in err. */
int lmp_config_read_secret(const char *path, char **out, char *err, size_t errlen);

/* Settings every daemon has. */
struct lmp_config {
  char *kafka_brokers;       /* bootstrap servers */
  struct lmp_kvs kafka_props;/* any librdkafka property, for both clients */
  char *group_id;            /* consumer group; empty means lmp-<service> */
  char *topic_prefix;        /* topics are <prefix><event type> */
  char *dead_letter_topic;   /* the daemon's own (lmp_dead_letter_topic); not a setting */
  char *replay_topic;        /* the daemon's replays (lmp_replay_topic); not a setting */
  int partitions;            /* partition count lmpctl creates topics with */
  char *pg_host;
  int pg_port;
  char *pg_user;
  char *pg_password;
  char *pg_password_file;    /* the password, read from this file when set */
  char *pg_migrate_user;     /* owner of the tables, migrates; empty: pg_user does */
  char *pg_migrate_password_file;
  int pg_migrate_on_start;   /* apply pending migrations at start, else only check */
  char *pg_sslmode;          /* libpq sslmode: verify-full unless pg_allow_insecure */
  int pg_allow_insecure;     /* a weaker sslmode is accepted */
  char *pg_sslrootcert;      /* CA certificates that verify the server */
  char *pg_sslcert;          /* client certificate, for certificate authentication */
  char *pg_sslkey;
  char *pg_database;         /* empty means lmp_<service> */
  int pg_connect_timeout_s;
  int pg_statement_timeout_ms;
  char *http_bind;
  int http_port;             /* 0: any free port, reported in http_port_file */
  char *http_port_file;      /* where the bound port is written; empty: nowhere */
  int http_max_connections;
  int http_max_connections_per_ip;
  int http_timeout_s;        /* idle connections closed after */
  int http_workers;          /* threads running the service's routes */
  int http_body_budget;      /* request body bytes buffered at once, per listener */
  int http_body_budget_per_address; /* of them, by one client address */
  int http_min_bytes_per_s;  /* slower bodies drop their connection; 0: any rate */
  int http_min_rate_window_s; /* the window that rate is measured over */
  char *probe_bind;          /* a listener of probes and metrics only; empty: none */
  int probe_port;
  char *http_tls_cert_file;  /* PEM chain and key: the public listener serves HTTPS; empty: HTTP */
  char *http_tls_key_file;
  char *admin_bind;          /* the admin listener: reference data, operator routes */
  int admin_port;            /* 0: any free port, reported in http_port_file */
  char *admin_tokens_file;   /* "name token" lines; empty: every admin request refused */
  char *admin_tls_cert_file; /* PEM chain and key: the admin listener serves HTTPS; empty: HTTP */
  char *admin_tls_key_file;
  int retention_days;        /* processed inbox rows, request and mail bodies kept this long */
  int retention_interval_s;  /* how often the purge runs */
  int batch_max;             /* messages per database transaction */
  int pipeline_depth;        /* batches in flight: one transacting, the rest publishing */
  int retry_initial_ms;      /* first backoff after a transient fault */
  int retry_isolate_after;   /* environment retries before isolating, and per message after */
  int retry_max_ms;          /* backoff ceiling */
  int max_poll_interval_ms;  /* Kafka consumer liveness bound */
  int commit_interval_ms;    /* offsets committed at most this often; 0: after every batch */
  int shutdown_timeout_ms;   /* how long SIGTERM waits for the flush */
  int outbox_sweep_ms;       /* how often rows left by a crash are republished */
  char *log_level;
  char *schemas_extra_dir;   /* other versions of the event schemas to read */
  char *registry_url;        /* a schema registry: events framed with its ids; empty: single-object */
  char *registry_ca_file, *registry_username, *registry_password_file;
  int registry_timeout_ms;
  int registry_allow_http;   /* an http:// registry_url is accepted (else https:// only) */
  int registry_register;     /* register what it emits at start; else only look its ids up */
  char *oidc_issuer;         /* access tokens' issuer; empty: nobody signs in */
  char *oidc_audience, *oidc_ca_file, *oidc_partner_claim, *oidc_operator_role;
  int oidc_clock_skew_s, oidc_jwks_refetch_s, oidc_jwks_max_age_s, oidc_timeout_ms;
  char *tracing_endpoint;    /* OTLP/HTTP collector; empty: no spans exported */
  char *tracing_ca_file, *tracing_sampler, *tracing_ratio;
  int tracing_queue_spans, tracing_batch_spans, tracing_interval_ms, tracing_timeout_ms;
};

extern const struct lmp_conf_entry lmp_config_entries[];
extern const size_t lmp_config_entries_n;

#endif
