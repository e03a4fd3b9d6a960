/* lmpctl: submit onboarding requests as a frontend would (or as a signed-in partner,
 * through intake's front door), ask their status, report dispatches as a warehouse
 * would, and administer topics, permissions, groups, schemas, reference data, dead
 * letters and consumer lag. Options, settings, the command table. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "daemons.h"
#include "lmp/avro/registry.h"
#include "lmp/io/kafka.h"

extern char **environ;

struct lmp_config cfg;

/* Each daemon of deploy/daemons has two addresses, <daemon>.url (status and other
 * public routes) and <daemon>.admin_url (reference data, operator routes), by
 * default its ports in the local stack. */
#define MAX_DAEMONS 16
static char *urls[2 * MAX_DAEMONS];
static struct lmp_conf_entry url_conf[2 * MAX_DAEMONS];
static size_t ndaemons;
static char url_names[2 * MAX_DAEMONS][96], url_defaults[2 * MAX_DAEMONS][64], url_help[2 * MAX_DAEMONS][96];

static void url_table(void) {
  for (ndaemons = 0; lmp_daemons[ndaemons].name && ndaemons < MAX_DAEMONS; ndaemons++) {
    const struct lmp_daemon *d = &lmp_daemons[ndaemons];
    for (int admin = 0; admin < 2; admin++) {
      size_t i = 2 * ndaemons + (size_t)admin;
      snprintf(url_names[i], sizeof(url_names[0]), "%s.%s", d->name, admin ? "admin_url" : "url");
      snprintf(url_defaults[i], sizeof(url_defaults[0]), "http://127.0.0.1:%d", admin ? d->admin_port : d->port);
      snprintf(url_help[i], sizeof(url_help[0]), "%s's %s HTTP address", d->name, admin ? "admin" : "public");
      url_conf[i] = (struct lmp_conf_entry){url_names[i], LMP_CONF_STR, i * sizeof(char *), 1, 1024,
                                            url_defaults[i], url_help[i]};
    }
  }
}

const char *service_url(const char *daemon, int admin) {
  for (size_t i = 0; i < ndaemons; i++)
    if (strcmp(lmp_daemons[i].name, daemon) == 0)
      return urls[2 * i + (admin ? 1 : 0)];
  return NULL;
}

struct ctl_settings ctl;
#define S(field) offsetof(struct ctl_settings, field)
/* Kept alphabetical. */
static const struct lmp_conf_entry ctl_conf[] = {
    {"ctl.admin_token_file", LMP_CONF_STR, S(admin_token_file), 0, 1024, "", "file holding the bearer token for the daemons' admin routes"},
    {"ctl.ca_file", LMP_CONF_STR, S(ca_file), 0, 1024, "", "CA certificates (PEM) that verify the daemons' HTTPS listeners (an https:// <daemon>.url or .admin_url); empty: the system's"},
    {"ctl.oidc_client_id", LMP_CONF_STR, S(oidc_client_id), 1, 255, "lmp-cli", "the public OpenID Connect client lmpctl login signs in as, at oidc.issuer (LMP_OIDC_CLIENT_ID is read when LMP_CTL_OIDC_CLIENT_ID is not set)"},
    {"ctl.token_file", LMP_CONF_STR, S(token_file), 0, 1024, "", "where lmpctl login keeps the signed-in user's tokens (mode 0600); empty: $XDG_CACHE_HOME/lmpctl/token.json, else ~/.cache/lmpctl/token.json"},
};
#define NCTL_CONF (sizeof(ctl_conf) / sizeof(ctl_conf[0]))

void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "lmpctl: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* The reason quotes the argument refused, which may hold anything: control
 * characters but newlines are shown as '?', so an argument cannot drive the terminal. */
void die_usage(const char *fmt, ...) {
  char why[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  for (char *p = why; *p; p++)
    if (((unsigned char)*p < 0x20 && *p != '\n') || *p == 0x7F)
      *p = '?';
  fprintf(stderr, "lmpctl: %s (lmpctl --help shows the usage)\n", why);
  exit(2);
}

static struct lmp_schemas *loaded;
static struct lmp_registry *registry;
struct lmp_schemas *schemas(void) {
  char err[600];
  if (loaded != NULL)
    return loaded;
  if (lmp_schemas_new(&loaded, err, sizeof(err)) < 0)
    die("schemas: %s", err);
  if (cfg.schemas_extra_dir && *cfg.schemas_extra_dir &&
      lmp_schemas_add_writer_dir(loaded, cfg.schemas_extra_dir, err, sizeof(err)) < 0)
    die("schemas: %s", err);
  /* With schema_registry.url set, registry-framed events (dead letters among them)
   * decode with the ids it resolves. It lives as long as lmpctl does. */
  if (lmp_registry_new(&registry, &cfg, err, sizeof(err)) < 0)
    die("schema registry: %s", err);
  lmp_schemas_use_registry(loaded, registry);
  return loaded;
}

rd_kafka_t *kafka_client(rd_kafka_type_t type, const char *group) {
  char err[512];
  rd_kafka_conf_t *c = lmp_kafka_conf(&cfg, err, sizeof(err));
  if (c == NULL)
    die("kafka: %s", err);
  if (group && (rd_kafka_conf_set(c, "group.id", group, err, sizeof(err)) ||
                rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof(err))))
    die("kafka: %s", err);
  rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof(err));
  if (rk == NULL)
    die("kafka: %s", err);
  return rk; /* c is owned by rk now */
}

json_t *http_json_bearer(const char *url, const char *post, const char *bearer, long *status) {
  CURL *c = curl_easy_init();
  char *body = NULL, *auth = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&body, &len);
  struct curl_slist *h = NULL;
  if (bearer) {
    if (asprintf(&auth, "Authorization: Bearer %s", bearer) < 0)
      die("out of memory");
    h = curl_slist_append(h, auth);
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  if (*ctl.ca_file)
    curl_easy_setopt(c, CURLOPT_CAINFO, ctl.ca_file);
  if (post) {
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  char why[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, why);
  CURLcode cr = curl_easy_perform(c);
  if (cr != CURLE_OK) /* no answer at all: say why (an HTTPS listener it cannot verify, ...) */
    fprintf(stderr, "lmpctl: %s: %s\n", url, why[0] ? why : curl_easy_strerror(cr));
  fclose(mem);
  *status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  if (auth) {
    explicit_bzero(auth, strlen(auth));
    free(auth);
  }
  json_t *j = cr == CURLE_OK ? json_loadb(body, len, 0, NULL) : NULL;
  free(body);
  return j;
}

json_t *http_json(const char *url, const char *post, int admin, long *status) {
  char *token = NULL, err[400];
  if (admin && *ctl.admin_token_file && lmp_config_read_secret(ctl.admin_token_file, &token, err, sizeof(err)) < 0)
    die("ctl.admin_token_file: %s", err);
  json_t *j = http_json_bearer(url, post, token, status);
  free(token);
  return j;
}

static const struct ctl_command commands[] = {
    {"submit", NULL, 1, cmd_submit, "FILE.json [--new-id] [--set path=text]... [--wait SECONDS] [--door]\n"
     "        publish an onboarding request, as a web frontend does; --wait prints the final outcome;\n"
     "        --door posts it to intake's front door as the partner signed in with lmpctl login"},
    {"status", NULL, 1, cmd_status, "ID [--json] [--wait SECONDS] [--door]   where onboarding ID is, with its stages\n"
     "        (--door: through the front door, as the partner signed in with lmpctl login)"},
    {"dispatch", NULL, 4, cmd_dispatch, "SHIPMENT ONBOARDING CARRIER TRACKING\n"
     "        report a shipment dispatched, as a warehouse system does"},
    {"topics", "create", 0, cmd_topics_create, "[--partitions N] [--wait SECONDS]   every event topic, and each daemon's dead-letter and replay topics"},
    {"topics", "list", 0, cmd_topics_list, "   the topics lmpctl creates"},
    {"acls", "apply", -1, cmd_acls_apply, "PRINCIPAL [FILE]   allow what FILE (or stdin) lists: lines\n"
     "        'topic NAME read|write', 'group NAME read', with '-prefix' after topic or group for a prefix"},
    {"group", "copy", 2, cmd_group_copy, "FROM TO   give consumer group TO the committed offsets of FROM (both stopped)"},
    {"admin", "load", 1, cmd_admin_load, "FILE.json   send each daemon its reference data (see deploy/demo-data.json)"},
    {"admin", "get", 2, cmd_admin_get, "DAEMON PATH   GET a daemon's admin route, e.g. allocation /v1/pools/P"},
    {"schema", "check", 1, cmd_schema_check, "FILE.avsc   is a new version of a schema compatible both ways?"},
    {"schema", NULL, -1, cmd_schema, "[EVENT_TYPE]   a schema, its canonical form and fingerprint (all: a list)"},
    {"encode", NULL, 2, cmd_encode, "EVENT_TYPE FILE.json   write the framed Avro message to stdout"},
    {"dlq", "list", 0, cmd_dlq_list, "[--daemon D] [--topic SOURCE_TOPIC] [--code ERROR_CODE] [--since TIME] [--limit N]\n"
     "        [--json]   the dead letters of every daemon (or D), oldest first (the newest 100 unless --limit);\n"
     "        TIME is RFC 3339 or an age: 90s, 15m, 2h, 7d"},
    {"dlq", "show", 1, cmd_dlq_show, "DAEMON/PARTITION:OFFSET|DLQ_EVENT_ID [--json]   one dead letter: headers, error, source, body"},
    {"dlq", "replay", -1, cmd_dlq_replay, "SELECTOR...|FILTERS [--dry-run|--yes]\n"
     "        hand dead letters back to the daemon that wrote them (its replay topic), once each however often\n"
     "        replayed; by filters, the plan is shown and sent only with --yes (or a yes at a terminal)"},
    {"dlq", "acls", 0, cmd_dlq_acls, "   the permissions of the principal that replays (for acls apply)"},
    {"lag", NULL, 0, cmd_lag, "[--group GROUP]... [--json]   committed offsets, end offsets and lag of each daemon's group"},
    {"login", NULL, -1, cmd_login, "[USERNAME --password-stdin]   sign a partner's user in at oidc.issuer: in a browser\n"
     "        with a code (device grant), or USERNAME with the password as one line of stdin (password grant);\n"
     "        keeps the tokens in ctl.token_file. Exit 3: refused or declined, 4: the code expired"},
    {"logout", NULL, 0, cmd_logout, "   end the session at the issuer and remove the token file"},
    {"whoami", NULL, 0, cmd_whoami, "[--json]   who is signed in, for which partner, and when the access token expires"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static int usage(void) {
  fprintf(stderr, "usage: lmpctl [-c FILE] COMMAND [options]\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(stderr, "  %s%s%s %s\n", commands[i].name, commands[i].sub ? " " : "", commands[i].sub ? commands[i].sub : "",
            commands[i].usage);
  fprintf(stderr, "Settings come from -c FILE, $LMP_CONFIG or LMP_* variables (LMP_KAFKA_BROKERS, LMP_INTAKE_URL,\n"
                  "LMP_KAFKA_PROPERTY_SASL_USERNAME, LMP_CTL_ADMIN_TOKEN_FILE, LMP_CTL_CA_FILE, LMP_OIDC_ISSUER,\n"
                  "LMP_OIDC_CA_FILE, LMP_CTL_OIDC_CLIENT_ID, LMP_CTL_TOKEN_FILE, ...).\n");
  return 2;
}

/* The value of the option at argv[*i], which must follow it. */
static const char *value_of(int argc, char **argv, int *i) {
  if (*i + 1 >= argc)
    die_usage("option %s needs a value", argv[*i]);
  return argv[++*i];
}

/* A count, strictly decimal, so that "10x" or "-1" is refused, not read as 10 or 0. */
static int count_of(const char *opt, const char *v, int min, int max) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (*v < '0' || *v > '9' || *end != '\0' || errno || n < min || n > max)
    die_usage("%s must be a whole number from %d to %d, not '%s'", opt, min, max, v);
  return (int)n;
}

/* The environment settings are read from: LMP_OIDC_CLIENT_ID, as deploy/stack env
 * prints it for every client, stands for LMP_CTL_OIDC_CLIENT_ID when that is not set.
 * A copy of environ's pointers, and the one string added (freed by the caller). */
static char **settings_env(char **added) {
  size_t n = 0;
  while (environ[n])
    n++;
  char **env = calloc(n + 2, sizeof(char *));
  if (env == NULL)
    die("out of memory");
  memcpy(env, environ, n * sizeof(char *));
  const char *alias = getenv("LMP_OIDC_CLIENT_ID");
  *added = NULL;
  if (alias && getenv("LMP_CTL_OIDC_CLIENT_ID") == NULL) {
    if (asprintf(added, "LMP_CTL_OIDC_CLIENT_ID=%s", alias) < 0)
      die("out of memory");
    env[n] = *added;
  }
  return env;
}

#define MAX_ARGS 256

int main(int argc, char **argv) {
  struct ctl_opts o = {0};
  const char *path = getenv("LMP_CONFIG");
  char *args[MAX_ARGS];
  int nargs = 0;
  /* Options may come before or after the command and its arguments. */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-c") == 0) path = value_of(argc, argv, &i);
    else if (strcmp(a, "--new-id") == 0) o.new_id = 1;
    else if (strcmp(a, "--json") == 0) o.json = 1;
    else if (strcmp(a, "--dry-run") == 0) o.dry_run = 1;
    else if (strcmp(a, "--yes") == 0) o.yes = 1;
    else if (strcmp(a, "--daemon") == 0) o.daemon = value_of(argc, argv, &i);
    else if (strcmp(a, "--door") == 0) o.door = 1;
    else if (strcmp(a, "--password-stdin") == 0) o.password_stdin = 1;
    else if (strcmp(a, "--set") == 0) {
      const char *v = value_of(argc, argv, &i);
      if (o.nsets == (int)(sizeof(o.sets) / sizeof(o.sets[0])))
        die_usage("at most %d --set options", o.nsets);
      o.sets[o.nsets++] = v;
    }
    else if (strcmp(a, "--wait") == 0) o.wait_s = count_of(a, value_of(argc, argv, &i), 0, 3600);
    else if (strcmp(a, "--partitions") == 0) o.partitions = count_of(a, value_of(argc, argv, &i), 1, 10000);
    else if (strcmp(a, "--topic") == 0) o.topic = value_of(argc, argv, &i);
    else if (strcmp(a, "--code") == 0) o.code = value_of(argc, argv, &i);
    else if (strcmp(a, "--since") == 0) o.since = value_of(argc, argv, &i);
    else if (strcmp(a, "--limit") == 0) o.limit = count_of(a, value_of(argc, argv, &i), 1, 1000000);
    else if (strcmp(a, "--group") == 0) {
      const char *v = value_of(argc, argv, &i);
      if (o.ngroups == (int)(sizeof(o.groups) / sizeof(o.groups[0])))
        die_usage("at most %d --group options", o.ngroups);
      o.groups[o.ngroups++] = v;
    }
    else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return usage();
    else if (a[0] == '-' && a[1] != '\0') die_usage("unknown option '%s'", a);
    else if (nargs < MAX_ARGS) args[nargs++] = argv[i];
    else die_usage("more than %d arguments", MAX_ARGS);
  }
  if (nargs == 0)
    return usage();
  url_table();
  struct lmp_conf_table tables[] = {{lmp_config_entries, lmp_config_entries_n, &cfg},
                                    {url_conf, 2 * ndaemons, urls},
                                    {ctl_conf, NCTL_CONF, &ctl},
                                    {NULL, 0, NULL}};
  char err[600], *added;
  char **env = settings_env(&added);
  int loaded_ok = lmp_config_load(tables, path && *path ? path : NULL, env, err, sizeof(err));
  free(env);
  free(added);
  if (loaded_ok < 0) {
    fprintf(stderr, "lmpctl: configuration: %s\n", err);
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = -1;
  for (size_t i = 0; i < NCOMMANDS && rc == -1; i++) {
    const struct ctl_command *c = &commands[i];
    int skip = c->sub ? 2 : 1;
    if (strcmp(args[0], c->name) != 0 || (c->sub && (nargs < 2 || strcmp(args[1], c->sub) != 0)))
      continue;
    if (c->nargs >= 0 && nargs - skip != c->nargs)
      die_usage("%s%s%s takes %d argument%s: %s", c->name, c->sub ? " " : "", c->sub ? c->sub : "", c->nargs,
                c->nargs == 1 ? "" : "s", c->usage);
    rc = c->run(args + skip, nargs - skip, &o);
  }
  if (rc == -1)
    rc = usage();
  lmp_schemas_free(loaded);
  lmp_registry_free(registry);
  lmp_config_free(tables);
  curl_global_cleanup();
  return rc;
}

