/* Configuration: defaults, file, environment, and every kind of bad value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lmp/base/config.h"
#include "lmp/base/ids.h"
#include "lmp/base/error.h"
#include "lmp/io/kafka.h"

struct svc {
  char **regions;
  int enabled;
};
static const struct lmp_conf_entry svc_entries[] = {
    {"svc.enabled", LMP_CONF_BOOL, offsetof(struct svc, enabled), 0, 1, "false", "a switch"},
    {"svc.regions", LMP_CONF_LIST, offsetof(struct svc, regions), 1, 3, "a,b", "some regions"},
};

static struct lmp_config cfg;
static struct svc sv;
static struct lmp_conf_table tables[] = {{lmp_config_entries, 0, &cfg}, {svc_entries, 2, &sv}, {NULL, 0, NULL}};

static int setup(void **state) {
  tables[0].n = lmp_config_entries_n;
  return 0;
}

static int teardown_each(void **state) {
  lmp_config_free(tables);
  return 0;
}

static char *write_file(const char *text) {
  static char path[64];
  snprintf(path, sizeof(path), "/tmp/lmp-test-config-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

static void defaults(void **state) {
  char err[300];
  assert_int_equal(lmp_config_load(tables, NULL, NULL, err, sizeof(err)), 0);
  assert_string_equal(cfg.kafka_brokers, "127.0.0.1:19092");
  assert_int_equal(cfg.pg_port, 15432);
  assert_int_equal(cfg.batch_max, 100);
  assert_int_equal(sv.enabled, 0);
  assert_string_equal(sv.regions[0], "a");
  assert_string_equal(sv.regions[1], "b");
  assert_null(sv.regions[2]);
}

static void file_then_environment(void **state) {
  char *path = write_file("# comment\n\n kafka.brokers = k1:9092,k2:9092 \nbatch.max=42\n"
                          "svc.enabled = yes\nsvc.regions = x , y, z\n");
  char *env[] = {"LMP_BATCH_MAX=7", "HOME=/root", "LMP_PG_HOST=db.internal", NULL};
  char err[300];
  assert_int_equal(lmp_config_load(tables, path, env, err, sizeof(err)), 0);
  assert_string_equal(cfg.kafka_brokers, "k1:9092,k2:9092");
  assert_int_equal(cfg.batch_max, 7); /* environment wins over the file */
  assert_string_equal(cfg.pg_host, "db.internal");
  assert_int_equal(sv.enabled, 1);
  assert_string_equal(sv.regions[2], "z");
  unlink(path);
}

static void bad_values(void **state) {
  static const struct {
    const char *file;
    const char *env;
    const char *want;
  } cases[] = {
      {"nonsense = 1\n", NULL, ":1: unknown setting 'nonsense'"},
      {"batch.max = many\n", NULL, "batch.max: 'many' is not an integer"},
      {"batch.max = 0\n", NULL, "batch.max: 0 is not in 1..10000"},
      {"batch.max = 99999999999999999999\n", NULL, "is not an integer"},
      {"\n\njust words\n", NULL, ":3: expected 'name = value'"},
      {"svc.enabled = maybe\n", NULL, "svc.enabled: 'maybe' is not true or false"},
      {"svc.regions = a,b,c,d\n", NULL, "svc.regions: needs 1..3"},
      {"svc.regions = ,\n", NULL, "svc.regions: needs 1..3"},
      {"pg.user = \n", NULL, "pg.user: length must be 1..63"},
      {"", "LMP_HTTP_PORT=70000", "LMP_HTTP_PORT: http.port: 70000 is not in 0..65535"},
      {"", "LMP_PG_PORT=", "LMP_PG_PORT: pg.port: '' is not an integer"},
      {"http.tls_cert_file = /etc/hostname\n", NULL, "http.tls_cert_file and http.tls_key_file: set both"},
      {"", "LMP_ADMIN_TLS_KEY_FILE=/etc/hostname", "admin.tls_cert_file and admin.tls_key_file: set both"},
      {"admin.tls_cert_file = /nonexistent/c\nadmin.tls_key_file = /etc/hostname\n", NULL,
       "admin.tls_cert_file: cannot read /nonexistent/c"},
      {"", "LMP_HTTP_MIN_RATE_WINDOW_S=0", "http.min_rate_window_s: 0 is not in 1..3600"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *path = write_file(cases[i].file);
    char *env[] = {(char *)(uintptr_t)cases[i].env, NULL};
    char err[300] = "";
    assert_int_equal(lmp_config_load(tables, path, env, err, sizeof(err)), LMP_ECONFIG);
    if (strstr(err, cases[i].want) == NULL)
      fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].want);
    unlink(path);
    lmp_config_free(tables);
  }
  char err[300];
  assert_int_equal(lmp_config_load(tables, "/nonexistent/lmp.conf", NULL, err, sizeof(err)), LMP_ECONFIG);
  assert_non_null(strstr(err, "cannot open"));
}

static void example_file_loads_back(void **state) {
  char path[] = "/tmp/lmp-test-example-XXXXXX";
  int fd = mkstemp(path);
  FILE *f = fdopen(fd, "w");
  lmp_config_write_example(tables, f);
  fclose(f);
  char err[300];
  assert_int_equal(lmp_config_load(tables, path, NULL, err, sizeof(err)), 0);
  unlink(path);
}

/* What --check-config prints, as a string. */
static char *effective(void) {
  static char out[16384];
  FILE *f = fmemopen(out, sizeof(out), "w");
  assert_non_null(f);
  lmp_config_write_effective(tables, f);
  fclose(f);
  return out;
}

/* Any librdkafka property passes through, from the file or the environment; a
 * secret comes from a file and is never printed. */
static void kafka_properties(void **state) {
  char *secret = strdup(write_file("s3cret-from-a-file\n"));
  char text[512];
  snprintf(text, sizeof(text),
           "kafka.property.security.protocol = SASL_SSL\nkafka.property.sasl.mechanism = SCRAM-SHA-512\n"
           "kafka.property.sasl.password_file = %s\nkafka.property.sasl.username = bob\n",
           secret);
  char *path = write_file(text);
  char *env[] = {"LMP_KAFKA_PROPERTY_SASL_USERNAME=alice", "LMP_PG_PASSWORD=pg-s3cret", NULL};
  char err[300];
  assert_int_equal(lmp_config_load(tables, path, env, err, sizeof(err)), 0);
  const struct lmp_kvs *m = &cfg.kafka_props;
  assert_int_equal(m->n, 4);
  for (size_t i = 0; i < m->n; i++) {
    if (strcmp(m->v[i].key, "sasl.password") == 0) {
      assert_string_equal(m->v[i].value, "s3cret-from-a-file");
      assert_true(m->v[i].secret);
    }
    if (strcmp(m->v[i].key, "sasl.username") == 0)
      assert_string_equal(m->v[i].value, "alice"); /* the environment wins */
  }
  char *out = effective();
  assert_non_null(strstr(out, "kafka.property.security.protocol = SASL_SSL\n"));
  assert_non_null(strstr(out, "kafka.property.sasl.password = ********\n"));
  assert_non_null(strstr(out, "kafka.property.sasl.username = alice\n"));
  assert_non_null(strstr(out, "pg.password = ********\n"));
  assert_null(strstr(out, "s3cret"));
  /* librdkafka takes them all. */
  rd_kafka_conf_t *kc = lmp_kafka_conf(&cfg, err, sizeof(err));
  assert_non_null(kc);
  char v[64];
  size_t vn = sizeof(v);
  assert_int_equal(rd_kafka_conf_get(kc, "sasl.username", v, &vn), RD_KAFKA_CONF_OK);
  assert_string_equal(v, "alice");
  rd_kafka_conf_destroy(kc);
  unlink(path);
  unlink(secret);
  free(secret);
}

static void kafka_properties_refused(void **state) {
  static const struct {
    const char *file;
    const char *env;
    const char *want;
  } cases[] = {
      {"kafka.property.Security.Protocol = SSL\n", NULL, "a key is 1 to 128 of a-z"},
      {"kafka.property. = SSL\n", NULL, "a key is 1 to 128"},
      {"kafka.property.sasl.password_file = /nonexistent/secret\n", NULL, "cannot read /nonexistent/secret"},
      {"", "LMP_KAFKA_PROPERTY_SSL_KEY_PASSWORD_FILE=/nonexistent/k", "cannot read /nonexistent/k"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *path = write_file(cases[i].file);
    char *env[] = {(char *)(uintptr_t)cases[i].env, NULL};
    char err[300] = "";
    assert_int_equal(lmp_config_load(tables, path, env, err, sizeof(err)), LMP_ECONFIG);
    if (strstr(err, cases[i].want) == NULL)
      fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].want);
    unlink(path);
    lmp_config_free(tables);
  }
  /* A property librdkafka does not know is named. */
  char *path = write_file("kafka.property.no.such.property = 1\n");
  char err[300];
  assert_int_equal(lmp_config_load(tables, path, NULL, err, sizeof(err)), 0);
  assert_null(lmp_kafka_conf(&cfg, err, sizeof(err)));
  assert_non_null(strstr(err, "kafka.property.no.such.property"));
  unlink(path);
}

/* The database server is verified unless the operator says otherwise: every weaker
 * sslmode is refused, naming both settings, until pg.allow_insecure is set. */
static void pg_sslmode_weaker_needs_allow_insecure(void **state) {
  char err[300] = "";
  assert_int_equal(lmp_config_load(tables, NULL, NULL, err, sizeof(err)), 0);
  assert_string_equal(cfg.pg_sslmode, "verify-full");
  assert_int_equal(cfg.pg_allow_insecure, 0);
  lmp_config_free(tables);
  static const char *const weak[] = {"disable", "allow", "prefer", "require", "verify-ca"};
  for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
    char text[64], *env[] = {"LMP_PG_ALLOW_INSECURE=true", NULL};
    snprintf(text, sizeof(text), "pg.sslmode = %s\n", weak[i]);
    char *path = write_file(text);
    assert_int_equal(lmp_config_load(tables, path, NULL, err, sizeof(err)), LMP_ECONFIG);
    if (strstr(err, "pg.sslmode") == NULL || strstr(err, weak[i]) == NULL || strstr(err, "pg.allow_insecure") == NULL)
      fail_msg("%s: error '%s' names neither the mode nor both settings", weak[i], err);
    lmp_config_free(tables);
    assert_int_equal(lmp_config_load(tables, path, env, err, sizeof(err)), 0);
    assert_string_equal(cfg.pg_sslmode, weak[i]);
    lmp_config_free(tables);
    unlink(path);
  }
  char *env[] = {"LMP_PG_SSLMODE=verify-full", "LMP_PG_ALLOW_INSECURE=false", NULL};
  assert_int_equal(lmp_config_load(tables, NULL, env, err, sizeof(err)), 0);
}

/* The migration role's settings make sense together: its password file belongs to a
 * role that is named, and that role is not the daemon's own. */
static void pg_migrate_role(void **state) {
  static const struct {
    const char *env[3];
    const char *want; /* NULL: accepted */
  } cases[] = {
      {{"LMP_PG_MIGRATE_PASSWORD_FILE=/etc/hostname", NULL}, "pg.migrate_user is not"},
      {{"LMP_PG_USER=lmp_intake", "LMP_PG_MIGRATE_USER=lmp_intake", NULL}, "pg.migrate_user is pg.user (lmp_intake)"},
      {{"LMP_PG_USER=lmp_intake", "LMP_PG_MIGRATE_USER=lmp_intake_owner", NULL}, NULL},
      {{"LMP_PG_MIGRATE_ON_START=maybe", NULL}, "pg.migrate_on_start"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char err[300] = "";
    int r = lmp_config_load(tables, NULL, (char **)(uintptr_t)cases[i].env, err, sizeof(err));
    if (cases[i].want == NULL) {
      assert_int_equal(r, 0);
      assert_string_equal(cfg.pg_migrate_user, "lmp_intake_owner");
      assert_int_equal(cfg.pg_migrate_on_start, 1);
    } else if (r != LMP_ECONFIG || strstr(err, cases[i].want) == NULL) {
      fail_msg("case %zu: %d '%s' lacks '%s'", i, r, err, cases[i].want);
    }
    lmp_config_free(tables);
  }
}

/* The tracing settings a bound cannot check: each bad one refused, naming the setting
 * and the value; the good ones taken, and set the sampler. */
static void tracing_settings(void **state) {
  static const char *const bad[][2] = {
      {"LMP_TRACING_SAMPLER=sometimes", "tracing.sampler"},   {"LMP_TRACING_SAMPLER=", "tracing.sampler"},
      {"LMP_TRACING_RATIO=half", "tracing.ratio"},            {"LMP_TRACING_RATIO=1.5", "tracing.ratio"},
      {"LMP_TRACING_RATIO=-0.1", "tracing.ratio"},            {"LMP_TRACING_RATIO=0.5x", "tracing.ratio"},
      {"LMP_TRACING_RATIO=nan", "tracing.ratio"},             {"LMP_TRACING_ENDPOINT=ftp://collector", "tracing.endpoint"},
      {"LMP_TRACING_ENDPOINT=127.0.0.1:4318", "tracing.endpoint"}, {"LMP_TRACING_QUEUE_SPANS=8", "tracing.queue_spans"},
      {"LMP_TRACING_BATCH_SPANS=0", "tracing.batch_spans"},   {"LMP_TRACING_TIMEOUT_MS=10", "tracing.timeout_ms"},
      {"LMP_TRACING_INTERVAL_MS=1", "tracing.interval_ms"},
  };
  char err[600];
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char var[96];
    snprintf(var, sizeof(var), "%s", bad[i][0]);
    char *env[] = {var, NULL};
    assert_int_equal(lmp_config_load(tables, NULL, env, err, sizeof(err)), LMP_ECONFIG);
    if (strstr(err, bad[i][1]) == NULL)
      fail_msg("%s: error '%s' does not name %s", bad[i][0], err, bad[i][1]);
    lmp_config_free(tables);
  }
  char *good[] = {"LMP_TRACING_SAMPLER=parentbased_traceidratio", "LMP_TRACING_RATIO=0.25",
                  "LMP_TRACING_ENDPOINT=https://collector.example:4318/", NULL};
  assert_int_equal(lmp_config_load(tables, NULL, good, err, sizeof(err)), 0);
  assert_string_equal(cfg.tracing_sampler, "parentbased_traceidratio");
  assert_string_equal(cfg.tracing_endpoint, "https://collector.example:4318/");
}

static int sampled_share(const char *parent, int n) {
  int k = 0;
  for (int i = 0; i < n; i++) {
    char tp[64];
    lmp_traceparent(parent, tp);
    assert_true(lmp_traceparent_valid(tp));
    k += lmp_traceparent_sampled(tp);
  }
  return k;
}

/* The samplers as OpenTelemetry defines them: a root by the sampler's own rule, a
 * child by its parent's flag when parent-based; the ratio by the trace id alone, so
 * every daemon decides alike for one trace. */
static void samplers(void **state) {
  const char *on = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const char *off = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
  assert_int_equal(lmp_sampler_parse("traceidratio"), LMP_SAMPLE_RATIO);
  assert_int_equal(lmp_sampler_parse("always"), -1);
  lmp_traceparent_sampler(LMP_SAMPLE_ALWAYS_OFF, 1);
  assert_int_equal(sampled_share(NULL, 50) + sampled_share(on, 50), 0);
  lmp_traceparent_sampler(LMP_SAMPLE_ALWAYS_ON, 0);
  assert_int_equal(sampled_share(NULL, 50) + sampled_share(off, 50), 100);
  lmp_traceparent_sampler(LMP_SAMPLE_PARENT_ALWAYS_OFF, 1);
  assert_int_equal(sampled_share(NULL, 50), 0);
  assert_int_equal(sampled_share(on, 50), 50);
  assert_int_equal(sampled_share(off, 50), 0);
  lmp_traceparent_sampler(LMP_SAMPLE_PARENT_RATIO, 0);
  assert_int_equal(sampled_share(NULL, 50), 0);
  assert_int_equal(sampled_share(on, 50), 50);
  lmp_traceparent_sampler(LMP_SAMPLE_RATIO, 0.25);
  int k = sampled_share(NULL, 4000);
  if (k < 800 || k > 1200)
    fail_msg("ratio 0.25 sampled %d of 4000 new traces", k);
  /* One trace, one decision: its children all decide as the ratio says of its id. */
  int first = sampled_share(on, 1);
  assert_int_equal(sampled_share(on, 20), 20 * first);
  lmp_traceparent_sampler(LMP_SAMPLE_PARENT_ALWAYS_ON, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(defaults, teardown_each),
      cmocka_unit_test_teardown(file_then_environment, teardown_each),
      cmocka_unit_test_teardown(bad_values, teardown_each),
      cmocka_unit_test_teardown(example_file_loads_back, teardown_each),
      cmocka_unit_test_teardown(kafka_properties, teardown_each),
      cmocka_unit_test_teardown(kafka_properties_refused, teardown_each),
      cmocka_unit_test_teardown(pg_sslmode_weaker_needs_allow_insecure, teardown_each),
      cmocka_unit_test_teardown(pg_migrate_role, teardown_each),
      cmocka_unit_test_teardown(tracing_settings, teardown_each),
      cmocka_unit_test(samplers),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
