/* A daemon's life: options, settings, start, signals, drain, exit. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "runtime/rt.h"

extern char **environ;

static void close_handle(uv_handle_t *h) {
  if (h->loop && !uv_is_closing(h))
    uv_close(h, NULL);
}

static void grace_cb(uv_timer_t *t) {
  struct rt *rt = t->data;
  lmp_warn(NULL, "the database worker did not return in time; exiting without it");
  _exit(rt->exit_code ? rt->exit_code : 1);
}

/* A stop that never ends is worse than one without a goodbye. Leaving the consumer
 * group and flushing block in librdkafka's own calls on the loop's thread, where the
 * deadline timer cannot fire; librdkafka bounds them (session.timeout.ms, the flush's
 * timeout), but an assignment that arrives while the group is being left has been
 * seen to hold rd_kafka_consumer_close for good. From a thread of its own, this ends
 * the process once both bounds have passed: what was committed is committed, and the
 * group takes the partitions back when the session times out. */
static void *stop_watchdog(void *arg) {
  struct rt *rt = arg;
  long ms = 2L * rt->cfg.shutdown_timeout_ms + 5000;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
  lmp_warn(NULL, "stopping took over %ld ms (leaving the consumer group or flushing the producer); "
                 "exiting without waiting longer", ms);
  _exit(rt->exit_code);
  return NULL;
}

/* The end, by drain or not: every consumed message is destroyed first (librdkafka
 * waits for them in rd_kafka_destroy), then the group is left and the producer
 * flushed; the loop ends once the worker, if busy, returns. */
void lmp__daemon_finish(struct rt *rt) {
  if (rt->closing)
    return;
  rt->closing = 1;
  atomic_store(&rt->m.draining, 1);
  if (!lmp__pipeline_idle(rt))
    lmp_warn(NULL, "stopping with work in flight: it is not committed and will be redelivered");
  lmp_info(NULL, "stopping: leaving the consumer group, flushing the producer");
  rt->has_watchdog = pthread_create(&rt->watchdog, NULL, stop_watchdog, rt) == 0;
  lmp__pipeline_free(rt);
  lmp__kafka_stop(rt);
  lmp__background_unwake(); /* before its handle closes below */
  uv_handle_t *handles[] = {(uv_handle_t *)&rt->tick,     (uv_handle_t *)&rt->retry,
                            (uv_handle_t *)&rt->resend,   (uv_handle_t *)&rt->sweep,
                            (uv_handle_t *)&rt->svc_tick, (uv_handle_t *)&rt->deadline,
                            (uv_handle_t *)&rt->sigterm,  (uv_handle_t *)&rt->sigint,
                            (uv_handle_t *)&rt->wake};
  for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++)
    close_handle(handles[i]);
  if (rt->txn) {
    /* The worker holds a batch (a statement or a connection attempt that takes its
     * time): give it a moment, then go without it. */
    uv_timer_start(&rt->grace, grace_cb, 2000, 0);
  } else {
    close_handle((uv_handle_t *)&rt->grace);
  }
}

static void finish_cb(uv_timer_t *t) { lmp__daemon_finish(t->data); }

void lmp__daemon_wire(struct rt *rt) {
  static struct lmp_ops ops;
  ops = lmp__kafka_ops;
  ops.txn = lmp__txn_run;
  rt->ops = &ops;
  rt->up = (struct rt_upcalls){lmp__pipeline_consume, lmp__pipeline_delivered, lmp__daemon_finish,
                               lmp__daemon_finish_soon};
}

void lmp__daemon_finish_soon(struct rt *rt) {
  if (!rt->closing)
    uv_timer_start(&rt->deadline, finish_cb, 0, 0);
}

static void deadline_cb(uv_timer_t *t) {
  struct rt *rt = t->data;
  lmp_warn(NULL, "drain took longer than %d ms; exiting with work uncommitted (it will be redelivered)",
           rt->cfg.shutdown_timeout_ms);
  if (rt->exit_code == 0)
    rt->exit_code = 1;
  lmp__daemon_finish(rt);
}

static void signal_cb(uv_signal_t *s, int signum) {
  struct rt *rt = s->data;
  if (rt->draining) {
    lmp_warn(NULL, "second signal: exiting now");
    if (rt->exit_code == 0)
      rt->exit_code = 1;
    lmp__daemon_finish(rt);
    return;
  }
  lmp_info(NULL, "%s: draining", strsignal(signum));
  uv_timer_start(&rt->deadline, deadline_cb, (uint64_t)rt->cfg.shutdown_timeout_ms, 0);
  lmp__pipeline_drain(rt);
}

static void tick_cb(uv_timer_t *t) { lmp__pipeline_housekeeping(t->data); }

/* Tells whoever started the daemon which port it took (http.port 0 lets the system
 * choose, so parallel tests never race for a port they picked and released). The file
 * appears whole or not at all: written beside under a name no one can foresee, made
 * by this call alone (O_EXCL: never a file or a link someone left there), then
 * renamed over the path (which replaces a link there, never follows it). */
static int write_port_file(struct rt *rt, char *err, size_t errlen) {
  const char *path = rt->cfg.http_port_file;
  if (*path == '\0')
    return 0;
  char tmp[1100];
  snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
  int fd = mkstemp(tmp);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  int ok = f && fchmod(fd, 0644) == 0 &&
           fprintf(f, "{\"http\":%d,\"admin\":%d}\n", lmp_http_port(rt->http, 0), lmp_http_port(rt->http, 1)) > 0;
  if (f ? fclose(f) != 0 : fd >= 0 && close(fd) != 0)
    ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    if (fd >= 0)
      unlink(tmp);
    return LMP_EIO;
  }
  return 0;
}

/* What the tables cannot say alone: secrets readable, kafka properties allowed. */
/* The files a run reads, readable now. --migrate (migrate_only) reads only the
 * password of the role that migrates: a step of its own need not hold the others. */
static int check_settings(const struct lmp_config *cfg, int migrate_only, char *err, size_t errlen) {
  int owner = migrate_only && *cfg->pg_migrate_user;
  const char *files[][2] = {{"pg.password_file", owner ? "" : cfg->pg_password_file},
                            {"pg.migrate_password_file", cfg->pg_migrate_password_file},
                            {"admin.tokens_file", migrate_only ? "" : cfg->admin_tokens_file}};
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    char *secret = NULL, why[400];
    if (*files[i][1] && lmp_config_read_secret(files[i][1], &secret, why, sizeof(why)) < 0) {
      snprintf(err, errlen, "%s: %s", files[i][0], why);
      return LMP_ECONFIG;
    }
    if (secret)
      explicit_bzero(secret, strlen(secret));
    free(secret);
  }
  static const char *const modes[] = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full", NULL};
  int known = 0;
  for (const char *const *m = modes; *m; m++)
    known |= strcmp(*m, cfg->pg_sslmode) == 0;
  if (!known) {
    snprintf(err, errlen, "pg.sslmode: '%s' is not disable, allow, prefer, require, verify-ca or verify-full",
             cfg->pg_sslmode);
    return LMP_ECONFIG;
  }
  return lmp__kafka_check_props(&cfg->kafka_props, err, errlen);
}

static void usage(const char *prog, const struct lmp_service *svc) {
  fprintf(stderr,
          "usage: %s [-c FILE] [--print-config | --check-config | --print-routes | --print-acls | --migrate |\n"
          "          --register-schemas]\n"
          "  The %s daemon of the LMP onboarding backend.\n"
          "  -c, --config FILE   settings file (default: $LMP_CONFIG, else built-in defaults)\n"
          "  --print-config      print every setting with its default and exit\n"
          "  --check-config      validate the settings and exit (0 when valid)\n"
          "  --print-routes      print the event types it consumes and emits, their topics, its HTTP routes\n"
          "  --print-acls        print the Kafka permissions it needs (for lmpctl acls apply)\n"
          "  --migrate           apply the database's pending migrations (as pg.migrate_user when set) and exit\n"
          "  --register-schemas  register the schemas it emits at schema_registry.url and exit\n"
          "  Each setting may also be given as an environment variable LMP_<NAME>.\n",
          prog, svc->name);
}

/* One line per event type: the topics it is read from (one per writer of a type
 * several daemons write), the one it is written to. */
static void print_routes(const struct rt *rt) {
  char topics[8][LMP_TOPIC_NAME_MAX], topic[LMP_TOPIC_NAME_MAX];
  for (const struct lmp_route *r = rt->svc->routes; r->event_type; r++) {
    size_t n = lmp_event_topics(&rt->cfg, r->event_type, topics, 8);
    printf("consumes %s", r->event_type);
    for (size_t i = 0; i < n && i < 8; i++)
      printf(" %s", topics[i]);
    putchar('\n');
  }
  for (const char *const *e = rt->svc->emits; e && *e; e++) {
    lmp_emit_topic(&rt->cfg, *e, rt->svc->name, topic, sizeof(topic));
    printf("emits %s %s\n", *e, topic);
  }
  for (const struct lmp_http_route *h = rt->svc->http; h && h->method; h++)
    printf("http %s %s %s\n", h->method, h->pattern, h->admin ? "admin" : "public");
}

/* What the daemon's Kafka principal needs, and nothing more: read the topics it
 * consumes and its replays, write those it emits and its own dead letters, read its
 * group. For lmpctl acls apply. */
static void print_acls(const struct rt *rt) {
  char topics[8][LMP_TOPIC_NAME_MAX], topic[LMP_TOPIC_NAME_MAX];
  for (const struct lmp_route *r = rt->svc->routes; r->event_type; r++) {
    size_t n = lmp_event_topics(&rt->cfg, r->event_type, topics, 8);
    for (size_t i = 0; i < n && i < 8; i++)
      printf("topic %s read\n", topics[i]);
  }
  for (const char *const *e = rt->svc->emits; e && *e; e++) {
    lmp_emit_topic(&rt->cfg, *e, rt->svc->name, topic, sizeof(topic));
    printf("topic %s write\n", topic);
  }
  printf("topic %s read\ntopic %s write\ngroup %s read\n", rt->cfg.replay_topic, rt->cfg.dead_letter_topic,
         rt->group);
}

/* Everything up to the loop; 0, or the exit status. */
/* With a schema registry, each event type the daemon emits is registered under its
 * topic's subject (<topic>-value, as Confluent's serializers do) before anything is
 * emitted, and its id kept; ids met in consumed messages are resolved as they come.
 * A registry away at start is waited for a while; one that refuses a schema
 * (incompatible with what the subject holds) stops the daemon. */
#define REGISTRY_START_TRIES 30

/* The registry ids of what the daemon emits: registered (schema_registry.register,
 * or --register-schemas), else only looked up, by a client that may not write. */
static int register_schemas(struct rt *rt) {
  lmp_schemas_use_registry(rt->schemas, rt->registry);
  size_t n = 0;
  while (rt->svc->emits && rt->svc->emits[n])
    n++;
  if ((rt->emit_ids = calloc(n ? n : 1, sizeof(*rt->emit_ids))) == NULL)
    return LMP_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const struct lmp_schema *s = lmp_schemas_get(rt->schemas, rt->svc->emits[i]);
    char topic[300], subject[320], err[600];
    lmp_emit_topic(&rt->cfg, rt->svc->emits[i], rt->svc->name, topic, sizeof(topic));
    snprintf(subject, sizeof(subject), "%s-value", topic);
    int r = s ? LMP_ERETRY : LMP_ESCHEMA;
    for (int t = 0; s && r == LMP_ERETRY && t < REGISTRY_START_TRIES; t++) {
      r = rt->cfg.registry_register
              ? lmp_registry_register(rt->registry, subject, s->json, &rt->emit_ids[i], err, sizeof(err))
              : lmp_registry_lookup(rt->registry, subject, s->json, &rt->emit_ids[i], err, sizeof(err));
      if (r == LMP_ERETRY && t + 1 < REGISTRY_START_TRIES) {
        lmp_warn(NULL, "schema registry: %s; trying again", err);
        sleep(1);
      }
    }
    if (r < 0) {
      lmp_error(NULL, "schema registry: %s: %s", subject, s ? err : "no such schema");
      return r;
    }
  }
  lmp_info(NULL, "schema registry %s: %zu schemas %s", lmp_registry_url(rt->registry), n,
           rt->cfg.registry_register ? "registered" : "found registered");
  return 0;
}

/* --register-schemas: the schemas the daemon emits registered under its subjects, as
 * a step of its own by a registry client that may write, for daemons whose own client
 * may only read (schema_registry.register = false). */
static int register_and_exit(struct rt *rt) {
  char err[600];
  int r = lmp_schemas_new(&rt->schemas, err, sizeof(err));
  if (r == 0)
    r = lmp_registry_new(&rt->registry, &rt->cfg, err, sizeof(err));
  if (r == 0 && rt->registry == NULL) {
    snprintf(err, sizeof(err), "no schema_registry.url is set");
    r = LMP_ECONFIG;
  }
  if (r < 0) {
    fprintf(stderr, "lmp-%s: --register-schemas: %s\n", rt->svc->name, err);
    return 2;
  }
  rt->cfg.registry_register = 1;
  r = register_schemas(rt);
  if (r == 0)
    printf("lmp-%s: its schemas are registered at %s\n", rt->svc->name, lmp_registry_url(rt->registry));
  return r < 0 ? 1 : 0;
}

static int start(struct rt *rt) {
  char err[600];
  int r = lmp_schemas_new(&rt->schemas, err, sizeof(err));
  if (r == 0 && *rt->cfg.schemas_extra_dir)
    r = lmp_schemas_add_writer_dir(rt->schemas, rt->cfg.schemas_extra_dir, err, sizeof(err));
  if (r < 0) {
    fprintf(stderr, "lmp-%s: schemas: %s\n", rt->svc->name, err);
    return 2;
  }
  if ((r = lmp_registry_new(&rt->registry, &rt->cfg, err, sizeof(err))) < 0) {
    fprintf(stderr, "lmp-%s: configuration: %s\n", rt->svc->name, err);
    return 2;
  }
  if (rt->registry && (r = register_schemas(rt)) < 0)
    return 1;
  char app[80];
  snprintf(app, sizeof(app), "lmp-%s", rt->svc->name);
  if (lmp__db_init(&rt->db, &rt->cfg, rt->dbname, app) < 0) {
    fprintf(stderr, "lmp-%s: configuration: %s\n", rt->svc->name, rt->db.err);
    return 2;
  }

  rt->loop = uv_default_loop();
  uv_timer_t *timers[] = {&rt->tick, &rt->retry, &rt->resend, &rt->sweep, &rt->svc_tick, &rt->deadline, &rt->grace};
  for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
    uv_timer_init(rt->loop, timers[i]);
    timers[i]->data = rt;
  }
  uv_signal_init(rt->loop, &rt->sigterm);
  uv_signal_init(rt->loop, &rt->sigint);
  rt->sigterm.data = rt->sigint.data = rt;
  uv_signal_start(&rt->sigterm, signal_cb, SIGTERM);
  uv_signal_start(&rt->sigint, signal_cb, SIGINT);
  rt->last_consume_ns = uv_hrtime();

  if ((r = lmp__kafka_start(rt, err, sizeof(err))) < 0) {
    lmp_error(NULL, "kafka: %s", err);
  } else if ((r = lmp_http_start(&rt->http, &rt->cfg,
                                 &(struct lmp_http_app){rt->svc->name, rt->svc->http, rt->svc->ctx, rt->svc->metrics},
                                 &rt->m, rt->db.conninfo, &rt->host, err, sizeof(err))) < 0) {
    lmp_error(NULL, "http: %s", err);
  } else if ((r = write_port_file(rt, err, sizeof(err))) < 0) {
    lmp_error(NULL, "http.port_file: %s", err);
  } else if ((r = lmp__background_start(rt)) < 0) {
    lmp_error(NULL, "cannot start the background threads");
  }
  if (r < 0) {
    rt->exit_code = 1;
    lmp__daemon_finish(rt);
    return 0;
  }
  lmp_info(NULL, "started: group %s, database %s on %s:%d, brokers %s, http %s:%d, admin %s:%d", rt->group,
           rt->dbname, rt->cfg.pg_host, rt->cfg.pg_port, rt->cfg.kafka_brokers, rt->cfg.http_bind,
           lmp_http_port(rt->http, 0), rt->cfg.admin_bind, lmp_http_port(rt->http, 1));
  if (lmp_http_tokens(rt->http) == 0)
    lmp_warn(NULL, "admin.tokens_file holds no token: every admin request is refused");
  uv_timer_start(&rt->tick, tick_cb, 1000, 1000);
  lmp__pipeline_start(rt);
  return 0;
}

/* A daemon's memory follows its work down again: few malloc arenas for its many
 * threads (each would keep its own high-water mark), and large blocks (a batch's
 * messages and rows) mapped apart and returned when freed, whatever their size was
 * before (glibc otherwise raises that threshold as they are freed). */
static void bounded_heap(void) {
  mallopt(M_ARENA_MAX, 2);
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024);
}

/* --migrate: the database brought to this build's schema, once, for a deployment
 * that runs the daemon itself with a role that cannot change tables (an init
 * container, a step before the service starts). */
static int migrate_and_exit(struct rt *rt) {
  char app[80];
  snprintf(app, sizeof(app), "lmp-%s", rt->svc->name);
  /* As pg.migrate_user, the daemon's own role and its password are not needed. */
  int r = *rt->cfg.pg_migrate_user ? 0 : lmp__db_init(&rt->db, &rt->cfg, rt->dbname, app);
  if (r == 0)
    r = lmp__db_migrate_all(&rt->db, &rt->cfg, rt->dbname, rt->svc->name, rt->svc->migrations);
  if (r < 0)
    fprintf(stderr, "lmp-%s: migrating database %s: %s\n", rt->svc->name, rt->dbname, rt->db.err);
  else
    printf("lmp-%s: database %s is migrated%s%s\n", rt->svc->name, rt->dbname,
           *rt->cfg.pg_migrate_user ? " by " : "", rt->cfg.pg_migrate_user);
  lmp__db_close(&rt->db);
  return r == LMP_ECONFIG ? 2 : r < 0 ? 1 : 0;
}

int lmp_service_main(const struct lmp_service *svc, int argc, char **argv) {
  static struct rt rt0; /* one runtime per process */
  struct rt *rt = &rt0;
  bounded_heap();
  memset(rt, 0, sizeof(*rt));
  rt->svc = svc;
  lmp__daemon_wire(rt);
  const char *path = getenv("LMP_CONFIG");
  int print = 0, check_only = 0, routes = 0, migrate_only = 0, register_only = 0;
  static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                       {"print-config", no_argument, NULL, 'p'},
                                       {"check-config", no_argument, NULL, 'k'},
                                       {"print-routes", no_argument, NULL, 'r'},
                                       {"print-acls", no_argument, NULL, 'a'},
                                       {"migrate", no_argument, NULL, 'm'},
                                       {"register-schemas", no_argument, NULL, 's'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int o;
  while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
    switch (o) {
    case 'c': path = optarg; break;
    case 'p': print = 1; break;
    case 'k': check_only = 1; break;
    case 'r': routes = 1; break;
    case 'a': routes = 2; break;
    case 'm': migrate_only = 1; break;
    case 's': register_only = 1; break;
    case 'h': usage(argv[0], svc); return 0;
    default: usage(argv[0], svc); return 2;
    }
  }
  if (path && *path == '\0')
    path = NULL;
  struct lmp_conf_table tables[3] = {{lmp_config_entries, lmp_config_entries_n, &rt->cfg},
                                     {svc->conf, svc->conf_n, svc->conf_base},
                                     {NULL, 0, NULL}};
  if (svc->conf == NULL)
    tables[1] = tables[2];
  if (print) {
    printf("# Settings of lmp-%s. Each may also be set as an environment variable.\n\n", svc->name);
    lmp_config_write_example(tables, stdout);
    return 0;
  }
  char err[600];
  int r = lmp_config_load(tables, path, environ, err, sizeof(err));
  if (r == 0)
    r = register_only ? 0 : check_settings(&rt->cfg, migrate_only, err, sizeof(err));
  if (r == 0 && !migrate_only)
    r = lmp_registry_check_config(&rt->cfg, err, sizeof(err));
  if (r == 0 && svc->configured && !migrate_only && !register_only)
    r = svc->configured(svc->ctx, err, sizeof(err));
  if (r == 0 && lmp_log_init(svc->name, rt->cfg.log_level) < 0) {
    snprintf(err, sizeof(err), "log.level: '%s' is not debug, info, warn or error", rt->cfg.log_level);
    r = LMP_ECONFIG;
  }
  if (r == 0) { /* the group is part of what --print-acls says */
    snprintf(rt->group, sizeof(rt->group), "%s", *rt->cfg.group_id ? rt->cfg.group_id : "");
    if (!*rt->group)
      snprintf(rt->group, sizeof(rt->group), "lmp-%s", svc->name);
    lmp_dead_letter_topic(&rt->cfg, svc->name, rt->dead_letter, sizeof(rt->dead_letter));
    lmp_replay_topic(&rt->cfg, svc->name, rt->replay, sizeof(rt->replay));
    rt->cfg.dead_letter_topic = rt->dead_letter;
    rt->cfg.replay_topic = rt->replay;
  }
  if (r < 0 || check_only || routes) {
    if (r < 0)
      fprintf(stderr, "lmp-%s: configuration: %s\n", svc->name, err);
    else if (routes == 2)
      print_acls(rt);
    else if (routes)
      print_routes(rt);
    else {
      printf("lmp-%s: configuration is valid; in effect:\n", svc->name);
      lmp_config_write_effective(tables, stdout);
    }
    lmp_config_free(tables);
    return r < 0 ? 2 : 0;
  }
  snprintf(rt->dbname, sizeof(rt->dbname), "%s", *rt->cfg.pg_database ? rt->cfg.pg_database : "");
  if (!*rt->dbname) {
    snprintf(rt->dbname, sizeof(rt->dbname), "lmp_%s", svc->name);
    for (char *c = rt->dbname; *c; c++)
      if (*c == '-')
        *c = '_'; /* a name PostgreSQL takes without quotes */
  }
  if (migrate_only || register_only) {
    r = migrate_only ? migrate_and_exit(rt) : register_and_exit(rt);
    free(rt->emit_ids);
    lmp_schemas_free(rt->schemas);
    lmp_registry_free(rt->registry);
    lmp_config_free(tables);
    return r;
  }
  lmp_metrics_init(&rt->m);
  char service[80];
  snprintf(service, sizeof(service), "lmp-%s", svc->name);
  if (lmp_trace_start(&rt->cfg, service, err, sizeof(err)) < 0) {
    fprintf(stderr, "lmp-%s: tracing: %s\n", svc->name, err);
    lmp_config_free(tables);
    return 2;
  }
  pthread_mutex_init(&rt->door_lock, NULL);
  rt->host = (struct lmp_http_host){rt, lmp__door_value, lmp__door_publish};
  atomic_store(&rt->m.heartbeat_ms, (int64_t)(uv_hrtime() / 1000000));

  int status = start(rt);
  if (status == 0 && rt->loop) {
    uv_run(rt->loop, UV_RUN_DEFAULT);
    status = rt->exit_code;
  }
  if (rt->has_watchdog) { /* the stop ended in time; the watchdog sleeps, a cancellation point */
    pthread_cancel(rt->watchdog);
    pthread_join(rt->watchdog, NULL);
  }
  lmp__background_free(rt);
  lmp__door_free(rt); /* its last reports resume routes of the HTTP runtime */
  lmp_http_stop(rt->http);
  lmp__pipeline_free(rt);
  lmp__kafka_free(rt);
  free(rt->carry);
  free(rt->carry_msgs);
  for (size_t i = 0; i < rt->npublished; i++)
    free(rt->published[i]);
  free(rt->published);
  for (size_t i = 0; i < rt->npark; i++)
    free(rt->park[i].event_id);
  free(rt->park);
  lmp__db_close(&rt->db);
  lmp_schemas_free(rt->schemas);
  lmp_registry_free(rt->registry);
  free(rt->emit_ids);
  if (rt->loop)
    uv_loop_close(rt->loop);
  /* The worker threads end here, while OpenSSL still runs: ending at exit, after
   * OpenSSL's own cleanup, they would leave its per-thread state (TLS to PostgreSQL)
   * behind. */
  uv_library_shutdown();
  lmp_trace_stop(); /* every thread that ends spans has ended */
  if (status != 2)
    lmp_info(NULL, "stopped");
  lmp_config_free(tables);
  return status;
}
