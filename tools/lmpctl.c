/* lmpctl: submit onboarding requests as a frontend would, ask their status, and
 * administer topics and schemas. */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "lmp/codec.h"
#include "lmp/config.h"
#include "lmp/error.h"
#include "lmp/events.h"
#include "daemons.h"
#include "lmp/service.h"

extern char **environ;

static struct lmp_config cfg;

/* Where each daemon's HTTP endpoint is: a setting <daemon>.url per daemon of
 * deploy/daemons, by default its port in the local stack. */
#define MAX_DAEMONS 16
static char *url_values[MAX_DAEMONS];
static struct lmp_conf_entry url_conf[MAX_DAEMONS];
static size_t url_n;
static char url_names[MAX_DAEMONS][96], url_defaults[MAX_DAEMONS][64], url_help[MAX_DAEMONS][96];

static void url_table(void) {
  for (url_n = 0; lmp_daemons[url_n].name && url_n < MAX_DAEMONS; url_n++) {
    const struct lmp_daemon *d = &lmp_daemons[url_n];
    snprintf(url_names[url_n], sizeof(url_names[0]), "%s.url", d->name);
    snprintf(url_defaults[url_n], sizeof(url_defaults[0]), "http://127.0.0.1:%d", d->port);
    snprintf(url_help[url_n], sizeof(url_help[0]), "%s's HTTP address", d->name);
    url_conf[url_n] = (struct lmp_conf_entry){url_names[url_n], LMP_CONF_STR, url_n * sizeof(char *), 1, 1024,
                                              url_defaults[url_n], url_help[url_n]};
  }
}

static const char *service_url(const char *name) {
  for (size_t i = 0; i < url_n; i++)
    if (strcmp(lmp_daemons[i].name, name) == 0)
      return url_values[i];
  return NULL;
}
#define intake_url (service_url("intake"))

static int usage(void) {
  fprintf(stderr,
          "usage: lmpctl COMMAND [options]\n"
          "  submit FILE.json [--new-id] [--set path=text]... [--wait SECONDS]\n"
          "        publish an onboarding request, as a web frontend does; --wait prints the final outcome\n"
          "  status ID [--json]        where onboarding ID is, with its stages\n"
          "  topics create [--partitions N] [--wait SECONDS]\n"
          "                            create every event topic and the dead-letter topic\n"
          "  topics list               the topics lmpctl would create\n"
          "  schema [EVENT_TYPE]       print a schema, its canonical form and fingerprint\n"
          "  admin load FILE.json      send each daemon its reference data (see deploy/demo-data.json)\n"
          "  admin get DAEMON PATH     GET a daemon's admin or status route, e.g. allocation /v1/pools/P\n"
          "  dispatch SHIPMENT ONBOARDING CARRIER TRACKING\n"
          "                            report a shipment dispatched, as a warehouse system does\n"
          "  schema check FILE.avsc    is a new version of a schema compatible both ways?\n"
          "  encode EVENT_TYPE FILE.json  write the framed Avro message to stdout\n"
          "  group copy FROM TO        give consumer group TO the committed offsets of FROM (both stopped)\n"
          "Settings come from -c FILE, $LMP_CONFIG or LMP_* variables (LMP_KAFKA_BROKERS, LMP_INTAKE_URL).\n");
  return 2;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "lmpctl: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* The schemas, with the other versions of schemas.extra_dir, loaded on first use. */
static struct lmp_schemas *loaded;
static struct lmp_schemas *schemas(void) {
  struct lmp_schemas *s = loaded;
  char err[600];
  if (s != NULL)
    return s;
  if (lmp_schemas_new(&s, err, sizeof(err)) < 0)
    die("schemas: %s", err);
  if (cfg.schemas_extra_dir && *cfg.schemas_extra_dir &&
      lmp_schemas_add_writer_dir(s, cfg.schemas_extra_dir, err, sizeof(err)) < 0)
    die("schemas: %s", err);
  loaded = s;
  return s;
}

/* Is a proposed version of a schema compatible both ways with the current one? */
static int schema_check(const char *file) {
  FILE *f = fopen(file, "r");
  if (f == NULL)
    die("%s: cannot open", file);
  struct lmp_buf text = {0};
  char chunk[4096], err[600];
  size_t got;
  while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
    lmp_buf_append(&text, chunk, got);
  fclose(f);
  int r = lmp_schemas_check_compat(schemas(), text.data ? text.data : "", err, sizeof(err));
  lmp_buf_free(&text);
  if (r < 0) {
    fprintf(stderr, "lmpctl: %s: incompatible: %s\n", file, err);
    return 1;
  }
  printf("%s: compatible both ways with the current schema\n", file);
  return 0;
}

static int is_event(const struct lmp_schema *s) { return strchr(s->name, '.') != NULL; }

/* ---- topics ------------------------------------------------------------------------ */

static rd_kafka_t *admin_client(void) {
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  if (rd_kafka_conf_set(c, "bootstrap.servers", cfg.kafka_brokers, err, sizeof(err)))
    die("%s", err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
  if (rk == NULL)
    die("kafka: %s", err);
  return rk; /* c is owned by rk now */
}

static int topics_create(int partitions, int wait_s) {
  struct lmp_schemas *s = schemas();
  rd_kafka_t *rk = admin_client();
  size_t n = 0;
  rd_kafka_NewTopic_t *topics[64];
  char names[64][300];
  char err[256];
  for (size_t i = 0; i < lmp_schemas_count(s) && n < 63; i++) {
    if (!is_event(lmp_schemas_at(s, i)))
      continue;
    lmp_topic_name(&cfg, lmp_schemas_at(s, i)->name, names[n], sizeof(names[n]));
    topics[n] = rd_kafka_NewTopic_new(names[n], partitions, 1, err, sizeof(err));
    n++;
  }
  snprintf(names[n], sizeof(names[n]), "%s", cfg.dead_letter_topic);
  topics[n] = rd_kafka_NewTopic_new(names[n], partitions, 1, err, sizeof(err));
  n++;
  int rc = 1;
  time_t deadline = time(NULL) + wait_s;
  do {
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opt, 10000, err, sizeof(err));
    rd_kafka_AdminOptions_set_request_timeout(opt, 10000, err, sizeof(err));
    rd_kafka_CreateTopics(rk, topics, n, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    int retry = 0;
    if (ev == NULL || rd_kafka_event_error(ev)) {
      fprintf(stderr, "lmpctl: create topics: %s\n", ev ? rd_kafka_event_error_string(ev) : "timed out");
      retry = 1;
    } else {
      size_t cnt;
      const rd_kafka_topic_result_t **res =
          rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
      rc = 0;
      for (size_t i = 0; i < cnt; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
          printf("created %s (%d partitions)\n", rd_kafka_topic_result_name(res[i]), partitions);
        else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
          printf("exists  %s\n", rd_kafka_topic_result_name(res[i]));
        else {
          fprintf(stderr, "lmpctl: %s: %s\n", rd_kafka_topic_result_name(res[i]),
                  rd_kafka_topic_result_error_string(res[i]));
          rc = 1;
          retry = 1;
        }
      }
    }
    if (ev)
      rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    if (!retry)
      break;
    sleep(1);
  } while (time(NULL) < deadline);
  for (size_t i = 0; i < n; i++)
    rd_kafka_NewTopic_destroy(topics[i]);
  rd_kafka_destroy(rk);
  return rc;
}

/* ---- consumer groups ------------------------------------------------------------------ */

static rd_kafka_t *group_client(const char *group) {
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  if (rd_kafka_conf_set(c, "bootstrap.servers", cfg.kafka_brokers, err, sizeof(err)) ||
      rd_kafka_conf_set(c, "group.id", group, err, sizeof(err)) ||
      rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof(err)))
    die("%s", err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
  if (rk == NULL)
    die("kafka: %s", err);
  return rk; /* c is owned by rk now */
}

/* Every partition of the topics under the prefix (the event topics and the dead
 * letters), for a group's committed offsets. */
static rd_kafka_topic_partition_list_t *prefix_partitions(rd_kafka_t *rk) {
  const struct rd_kafka_metadata *md;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, 15000);
  if (e)
    die("metadata: %s", rd_kafka_err2str(e));
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(64);
  for (int i = 0; i < md->topic_cnt; i++)
    if (strncmp(md->topics[i].topic, cfg.topic_prefix, strlen(cfg.topic_prefix)) == 0)
      for (int p = 0; p < md->topics[i].partition_cnt; p++)
        rd_kafka_topic_partition_list_add(l, md->topics[i].topic, md->topics[i].partitions[p].id);
  rd_kafka_metadata_destroy(md);
  return l;
}

/* Gives group `to` the committed offsets of group `from`, so a daemon renamed (or
 * given a new group) resumes where the old one stopped instead of from the start.
 * Run it with both groups stopped. */
static int group_copy(const char *from, const char *to) {
  rd_kafka_t *src = group_client(from), *dst = group_client(to);
  rd_kafka_topic_partition_list_t *l = prefix_partitions(src);
  rd_kafka_resp_err_t e = rd_kafka_committed(src, l, 15000);
  if (e)
    die("committed offsets of %s: %s", from, rd_kafka_err2str(e));
  rd_kafka_topic_partition_list_t *set = rd_kafka_topic_partition_list_new(l->cnt);
  for (int i = 0; i < l->cnt; i++)
    if (l->elems[i].offset >= 0)
      rd_kafka_topic_partition_list_add(set, l->elems[i].topic, l->elems[i].partition)->offset = l->elems[i].offset;
  int rc = 0;
  if (set->cnt == 0) {
    fprintf(stderr, "lmpctl: group %s has no committed offsets under prefix '%s'\n", from, cfg.topic_prefix);
    rc = 1;
  } else if ((e = rd_kafka_commit(dst, set, 0)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    fprintf(stderr, "lmpctl: committing for %s: %s (is the group stopped?)\n", to, rd_kafka_err2str(e));
    rc = 1;
  } else {
    for (int i = 0; i < set->cnt; i++)
      printf("%s[%d] %lld\n", set->elems[i].topic, set->elems[i].partition, (long long)set->elems[i].offset);
    printf("copied %d committed offsets from %s to %s\n", set->cnt, from, to);
  }
  rd_kafka_topic_partition_list_destroy(set);
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_destroy(src);
  rd_kafka_destroy(dst);
  return rc;
}

/* ---- submit ------------------------------------------------------------------------ */

/* --set a.b.c=text: set a string inside the request JSON. */
static void set_path(json_t *root, const char *assign) {
  const char *eq = strchr(assign, '=');
  if (eq == NULL)
    die("--set needs path=value, got '%s'", assign);
  char *path = strndup(assign, (size_t)(eq - assign));
  json_t *node = root;
  char *save = NULL, *tok = strtok_r(path, ".", &save);
  while (tok) {
    char *next = strtok_r(NULL, ".", &save);
    if (next == NULL) {
      json_object_set_new(node, tok, json_string(eq + 1));
    } else {
      json_t *child = json_object_get(node, tok);
      if (!json_is_object(child))
        die("--set: '%s' is not an object in the request", tok);
      node = child;
    }
    tok = next;
  }
  free(path);
}

static json_t *http_json(const char *url, const char *post, long *status) {
  CURL *c = curl_easy_init();
  char *body = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&body, &len);
  struct curl_slist *h = NULL;
  curl_easy_setopt(c, CURLOPT_URL, url);
  if (post) {
    h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
  }
  curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
  CURLcode cr = curl_easy_perform(c);
  fclose(mem);
  *status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  json_t *j = cr == CURLE_OK ? json_loadb(body, len, 0, NULL) : NULL;
  free(body);
  return j;
}

static int as_json; /* --json: print intake's answer as is */

static void print_issues(const char *title, json_t *list) {
  if (json_array_size(list) == 0)
    return;
  printf("  %s:\n", title);
  size_t i;
  json_t *it;
  json_array_foreach(list, i, it)
    printf("    %-28s %-34s %s\n", json_string_value(json_object_get(it, "code")),
           json_string_value(json_object_get(it, "field")),
           json_string_value(json_object_get(it, "message")));
}

static void print_human(json_t *j) {
  const char *status = json_string_value(json_object_get(j, "status"));
  char up[32];
  size_t k = 0;
  for (; status && status[k] && k < sizeof(up) - 1; k++)
    up[k] = (char)(status[k] >= 'a' && status[k] <= 'z' ? status[k] - 32 : status[k]);
  up[k] = '\0';
  printf("onboarding %s  %s\n", json_string_value(json_object_get(j, "onboarding_id")), up);
  printf("  partner   %s   license %s\n", json_string_value(json_object_get(j, "partner_id")),
         json_string_value(json_object_get(j, "license")));
  printf("  account   %s\n", json_string_value(json_object_get(j, "account_name")));
  if (json_is_string(json_object_get(j, "customer_id")))
    printf("  customer  %s\n", json_string_value(json_object_get(j, "customer_id")));
  print_issues("reasons", json_object_get(j, "reasons"));
  print_issues("warnings", json_object_get(j, "warnings"));
  json_int_t dup = json_integer_value(json_object_get(j, "duplicates"));
  json_int_t conf = json_integer_value(json_object_get(j, "conflicts"));
  if (dup || conf)
    printf("  resubmitted %lld times identically, %lld times with other content (refused)\n",
           (long long)dup, (long long)conf);
  printf("  stages:\n");
  size_t i;
  json_t *st;
  json_array_foreach(json_object_get(j, "stages"), i, st) {
    json_t *d = json_object_get(st, "detail");
    printf("    %s  %-22s", json_string_value(json_object_get(st, "at")),
           json_string_value(json_object_get(st, "stage")));
    if (json_object_get(d, "tracking_number"))
      printf(" %s %s", json_string_value(json_object_get(d, "carrier")),
             json_string_value(json_object_get(d, "tracking_number")));
    else if (json_is_integer(json_object_get(d, "shipments")))
      printf(" %lld shipment(s)", (long long)json_integer_value(json_object_get(d, "shipments")));
    else if (json_is_string(json_object_get(d, "stage")))
      printf(" at %s", json_string_value(json_object_get(d, "stage")));
    putchar('\n');
  }
}

static int terminal(const char *status) {
  return status && (strcmp(status, "confirmed") == 0 || strcmp(status, "rejected") == 0 ||
                    strcmp(status, "failed") == 0);
}

/* Prints an onboarding's status; with wait_s, first waits up to that long for a
 * final outcome. Exit status: 0 confirmed (or not final yet), 3 rejected, 4 failed,
 * 1 unknown. */
static int print_status(const char *id, int wait_s, int quiet_missing) {
  char url[1200];
  snprintf(url, sizeof(url), "%s/v1/onboardings/%s", intake_url, id);
  time_t deadline = time(NULL) + wait_s;
  for (;;) {
    long st;
    json_t *j = http_json(url, NULL, &st);
    const char *s = j && st == 200 ? json_string_value(json_object_get(j, "status")) : NULL;
    if (s && (terminal(s) || time(NULL) >= deadline)) {
      if (as_json) {
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
      } else {
        print_human(j);
      }
      int rc = strcmp(s, "rejected") == 0 ? 3 : strcmp(s, "failed") == 0 ? 4 : 0;
      json_decref(j);
      return rc;
    }
    json_decref(j);
    if (time(NULL) >= deadline) {
      if (!quiet_missing)
        fprintf(stderr, "lmpctl: no status for %s at %s (HTTP %ld)\n", id, intake_url, st);
      return 1;
    }
    usleep(200 * 1000);
  }
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  *(rd_kafka_resp_err_t *)m->_private = m->err;
}

/* Publishes one framed event, as a frontend or warehouse would: keyed, with the
 * standard headers, acknowledged by the broker before returning. */
static int produce(const char *event_type, const char *key, const void *value, size_t len) {
  char topic[300], event_id[37], trace[64];
  uuid_t u;
  uuid_generate(u);
  uuid_unparse_lower(u, event_id);
  lmp_traceparent(NULL, trace);
  lmp_topic_name(&cfg, event_type, topic, sizeof(topic));

  char cerr[256];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "bootstrap.servers", cfg.kafka_brokers, cerr, sizeof(cerr));
  rd_kafka_conf_set(c, "enable.idempotence", "true", cerr, sizeof(cerr));
  rd_kafka_conf_set(c, "message.timeout.ms", "30000", cerr, sizeof(cerr));
  rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, cerr, sizeof(cerr));
  if (rk == NULL)
    die("kafka: %s", cerr);
  rd_kafka_resp_err_t delivered = RD_KAFKA_RESP_ERR__IN_PROGRESS;
  rd_kafka_resp_err_t e = rd_kafka_producev(
      rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((void *)(uintptr_t)key, strlen(key)),
      RD_KAFKA_V_VALUE((void *)(uintptr_t)value, len),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADER("event_id", event_id, -1),
      RD_KAFKA_V_HEADER("event_type", event_type, -1), RD_KAFKA_V_HEADER("correlation_id", key, -1),
      RD_KAFKA_V_HEADER("traceparent", trace, -1),
      RD_KAFKA_V_HEADER("content_type", "application/vnd.apache.avro+single-object", -1),
      RD_KAFKA_V_OPAQUE(&delivered), RD_KAFKA_V_END);
  if (e)
    die("produce: %s", rd_kafka_err2str(e));
  while (delivered == RD_KAFKA_RESP_ERR__IN_PROGRESS)
    rd_kafka_poll(rk, 100);
  rd_kafka_destroy(rk);
  if (delivered) {
    fprintf(stderr, "lmpctl: %s %s not delivered: %s\n", event_type, key, rd_kafka_err2str(delivered));
    return 1;
  }
  return 0;
}

static int submit(const char *file, int new_id, char **sets, int nsets, int wait_s) {
  json_error_t jerr;
  json_t *j = json_load_file(file, 0, &jerr);
  if (j == NULL) {
    fprintf(stderr, "lmpctl: %s:%d: %s\n", file, jerr.line, jerr.text);
    return 1;
  }
  if (new_id) {
    char id[37];
    uuid_t u;
    uuid_generate(u);
    uuid_unparse_lower(u, id);
    json_object_set_new(j, "request_id", json_string(id));
    json_object_set_new(j, "submitted_at", json_integer((json_int_t)time(NULL) * 1000));
  }
  for (int i = 0; i < nsets; i++)
    set_path(j, sets[i]);
  const struct lmp_schema *s = lmp_schemas_get(schemas(), "onboarding.requested");
  avro_value_t v;
  char err[400];
  avro_generic_value_new(s->iface, &v);
  if (lmp_avro_from_json(&v, j, err, sizeof(err)) < 0) {
    fprintf(stderr, "lmpctl: %s: %s\n", file, err);
    return 1;
  }
  struct lmp_buf msg = {0};
  lmp_avro_encode(s, &v, &msg);
  avro_value_decref(&v);
  char *id = strdup(json_string_value(json_object_get(j, "request_id")) ?: "");
  json_decref(j);

  int rc = produce("onboarding.requested", id, msg.data, msg.len);
  lmp_buf_free(&msg);
  if (rc) {
    free(id);
    return 1;
  }
  fprintf(stderr, "submitted %s\n", id);
  if (wait_s > 0)
    rc = print_status(id, wait_s, 0);
  else
    printf("%s\n", id);
  free(id);
  return rc;
}

/* ---- admin ------------------------------------------------------------------------- */

/* Sends each daemon its section of a reference-data file. */
static int admin_load(const char *file) {
  json_error_t e;
  json_t *j = json_load_file(file, 0, &e);
  if (j == NULL)
    die("%s:%d: %s", file, e.line, e.text);
  int rc = 0;
  const char *name;
  json_t *section;
  json_object_foreach(j, name, section) {
    const char *base = service_url(name);
    if (base == NULL)
      die("%s: '%s' is not a daemon with reference data", file, name);
    char url[1200];
    snprintf(url, sizeof(url), "%s/v1/admin/load", base);
    char *body = json_dumps(section, JSON_COMPACT);
    long st;
    json_t *res = http_json(url, body, &st);
    free(body);
    if (st == 200) {
      printf("loaded %s\n", name);
    } else {
      fprintf(stderr, "lmpctl: %s (%s): HTTP %ld %s\n", name, url, st,
              res ? json_string_value(json_object_get(res, "error")) : "(no answer)");
      rc = 1;
    }
    json_decref(res);
  }
  json_decref(j);
  return rc;
}

static int admin_get(const char *service, const char *path) {
  const char *base = service_url(service);
  if (base == NULL)
    die("no daemon named %s", service);
  char url[1200];
  snprintf(url, sizeof(url), "%s%s", base, path);
  long st;
  json_t *res = http_json(url, NULL, &st);
  if (res)
    json_dumpf(res, stdout, JSON_INDENT(2));
  putchar('\n');
  json_decref(res);
  return st == 200 ? 0 : 1;
}

/* As a warehouse system would: report a shipment dispatched. */
static int dispatch(const char *shipment_id, const char *onboarding_id, const char *carrier,
                    const char *tracking) {
  const struct lmp_schema *s = lmp_schemas_get(schemas(), "shipment.dispatched");
  avro_value_t v;
  avro_generic_value_new(s->iface, &v);
  lmp_av_set_str(&v, "shipment_id", shipment_id);
  lmp_av_set_str(&v, "carrier", carrier);
  lmp_av_set_str(&v, "tracking_number", tracking);
  lmp_av_set_long(&v, "dispatched_at", (int64_t)time(NULL) * 1000);
  struct lmp_buf msg = {0};
  lmp_avro_encode(s, &v, &msg);
  avro_value_decref(&v);
  int rc = produce("shipment.dispatched", onboarding_id, msg.data, msg.len);
  lmp_buf_free(&msg);
  if (rc == 0)
    printf("dispatched %s with %s, tracking %s\n", shipment_id, carrier, tracking);
  return rc;
}

/* ---- schema / encode -------------------------------------------------------------- */

static int schema_cmd(const char *name) {
  struct lmp_schemas *s = schemas();
  for (size_t i = 0; i < lmp_schemas_count(s); i++) {
    const struct lmp_schema *sc = lmp_schemas_at(s, i);
    if (name && strcmp(sc->name, name) != 0)
      continue;
    if (name) {
      printf("%s\n", sc->json);
      fprintf(stderr, "canonical: %s\nfingerprint: %016llx\n", sc->canonical,
              (unsigned long long)sc->fingerprint);
      return 0;
    }
    printf("%-24s %016llx %s\n", sc->name, (unsigned long long)sc->fingerprint, sc->full_name);
  }
  if (name)
    die("no schema named %s", name);
  return 0;
}

static int encode_cmd(const char *type, const char *file) {
  const struct lmp_schema *s = lmp_schemas_get(schemas(), type);
  if (s == NULL)
    die("no schema named %s", type);
  json_error_t jerr;
  json_t *j = json_load_file(file, 0, &jerr);
  if (j == NULL)
    die("cannot read JSON: %s", jerr.text);
  avro_value_t v;
  char err[400];
  avro_generic_value_new(s->iface, &v);
  if (lmp_avro_from_json(&v, j, err, sizeof(err)) < 0)
    die("%s", err);
  struct lmp_buf b = {0};
  lmp_avro_encode(s, &v, &b);
  fwrite(b.data, 1, b.len, stdout);
  lmp_buf_free(&b);
  avro_value_decref(&v);
  json_decref(j);
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'}, {"new-id", no_argument, NULL, 'n'},
      {"set", required_argument, NULL, 's'},    {"wait", required_argument, NULL, 'w'},
      {"partitions", required_argument, NULL, 'p'}, {"help", no_argument, NULL, 'h'},
      {"json", no_argument, NULL, 'j'},
      {NULL, 0, NULL, 0}};
  const char *path = getenv("LMP_CONFIG");
  int new_id = 0, wait_s = 0, partitions = 0, nsets = 0, o;
  char *sets[32];
  while ((o = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
    switch (o) {
    case 'c': path = optarg; break;
    case 'n': new_id = 1; break;
    case 's': if (nsets < 32) sets[nsets++] = optarg; break;
    case 'w': wait_s = atoi(optarg); break;
    case 'p': partitions = atoi(optarg); break;
    case 'j': as_json = 1; break;
    default: return usage();
    }
  }
  /* Options may also follow the command and its arguments. */
  int nargs = 0;
  char *args[8];
  for (int i = optind; i < argc; i++) {
    if (argv[i][0] == '-' && argv[i][1] == '-') {
      const char *a = argv[i] + 2;
      if (strcmp(a, "new-id") == 0) new_id = 1;
      else if (strcmp(a, "json") == 0) as_json = 1;
      else if (strcmp(a, "set") == 0 && i + 1 < argc) { if (nsets < 32) sets[nsets++] = argv[++i]; }
      else if (strcmp(a, "wait") == 0 && i + 1 < argc) wait_s = atoi(argv[++i]);
      else if (strcmp(a, "partitions") == 0 && i + 1 < argc) partitions = atoi(argv[++i]);
      else return usage();
    } else if (nargs < 8) {
      args[nargs++] = argv[i];
    }
  }
  if (nargs == 0)
    return usage();
  url_table();
  struct lmp_conf_table tables[] = {{lmp_config_entries, lmp_config_entries_n, &cfg},
                                    {url_conf, url_n, url_values},
                                    {NULL, 0, NULL}};
  char err[600];
  if (lmp_config_load(tables, path && *path ? path : NULL, environ, err, sizeof(err)) < 0) {
    fprintf(stderr, "lmpctl: configuration: %s\n", err);
    return 2;
  }
  int rc;
  const char *cmd = args[0];
  if (strcmp(cmd, "submit") == 0 && nargs == 2)
    rc = submit(args[1], new_id, sets, nsets, wait_s);
  else if (strcmp(cmd, "status") == 0 && nargs == 2)
    rc = print_status(args[1], wait_s, 0);
  else if (strcmp(cmd, "topics") == 0 && nargs == 2 && strcmp(args[1], "create") == 0)
    rc = topics_create(partitions > 0 ? partitions : cfg.partitions, wait_s > 0 ? wait_s : 30);
  else if (strcmp(cmd, "topics") == 0 && nargs == 2 && strcmp(args[1], "list") == 0) {
    for (size_t i = 0; i < lmp_schemas_count(schemas()); i++)
      if (is_event(lmp_schemas_at(schemas(), i))) {
        char t[300];
        lmp_topic_name(&cfg, lmp_schemas_at(schemas(), i)->name, t, sizeof(t));
        printf("%s\n", t);
      }
    printf("%s\n", cfg.dead_letter_topic);
    rc = 0;
  } else if (strcmp(cmd, "schema") == 0 && nargs == 3 && strcmp(args[1], "check") == 0)
    rc = schema_check(args[2]);
  else if (strcmp(cmd, "schema") == 0 && nargs <= 2)
    rc = schema_cmd(nargs == 2 ? args[1] : NULL);
  else if (strcmp(cmd, "admin") == 0 && nargs == 3 && strcmp(args[1], "load") == 0)
    rc = admin_load(args[2]);
  else if (strcmp(cmd, "admin") == 0 && nargs == 4 && strcmp(args[1], "get") == 0)
    rc = admin_get(args[2], args[3]);
  else if (strcmp(cmd, "dispatch") == 0 && nargs == 5)
    rc = dispatch(args[1], args[2], args[3], args[4]);
  else if (strcmp(cmd, "group") == 0 && nargs == 4 && strcmp(args[1], "copy") == 0)
    rc = group_copy(args[2], args[3]);
  else if (strcmp(cmd, "encode") == 0 && nargs == 3)
    rc = encode_cmd(args[1], args[2]);
  else
    rc = usage();
  lmp_schemas_free(loaded);
  lmp_config_free(tables);
  return rc;
}
