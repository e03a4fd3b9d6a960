/* lmpctl as a frontend and a warehouse: submit a request (to Kafka, or to intake's
 * front door as the signed-in partner), follow its status, report a dispatch. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "ctl.h"
#include "lmp/avro/av.h"
#include "lmp/io/kafka.h"
#include "lmp/runtime/events.h"
#include "lmp/runtime/service.h"

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


/* A text field of an answer as it may be shown (ctl_printable): the status answer
 * carries what partners, warehouses and other daemons wrote (names, carriers,
 * tracking numbers, reasons), which may hold escape sequences. "" when absent; the
 * caller frees it. */
static char *field(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return ctl_printable(json_string_value(v), json_string_length(v));
}

static void print_issues_to(FILE *f, const char *title, json_t *list) {
  if (json_array_size(list) == 0)
    return;
  fprintf(f, "  %s:\n", title);
  size_t i;
  json_t *it;
  json_array_foreach(list, i, it) {
    char *code = field(it, "code"), *path = field(it, "field"), *message = field(it, "message");
    fprintf(f, "    %-28s %-34s %s\n", code, path, message);
    free(code);
    free(path);
    free(message);
  }
}

static void print_issues(const char *title, json_t *list) { print_issues_to(stdout, title, list); }

/* One stage: when, which, and what its detail says. */
static void print_stage(json_t *st) {
  json_t *d = json_object_get(st, "detail");
  char *at = field(st, "at"), *stage = field(st, "stage");
  printf("    %s  %-22s", at, stage);
  if (json_object_get(d, "tracking_number")) {
    char *carrier = field(d, "carrier"), *tracking = field(d, "tracking_number");
    printf(" %s %s", carrier, tracking);
    free(carrier);
    free(tracking);
  } else if (json_is_integer(json_object_get(d, "shipments"))) {
    printf(" %lld shipment(s)", (long long)json_integer_value(json_object_get(d, "shipments")));
  } else if (json_is_string(json_object_get(d, "stage"))) {
    char *failed_at = field(d, "stage");
    printf(" at %s", failed_at);
    free(failed_at);
  }
  putchar('\n');
  free(at);
  free(stage);
}

static void print_human(json_t *j) {
  char *id = field(j, "onboarding_id"), *status = field(j, "status"), *partner = field(j, "partner_id"),
       *license = field(j, "license"), *account = field(j, "account_name"), *customer = field(j, "customer_id");
  for (char *c = status; *c; c++)
    *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
  printf("onboarding %s  %s\n", id, status);
  printf("  partner   %s   license %s\n", partner, license);
  printf("  account   %s\n", account);
  if (json_is_string(json_object_get(j, "customer_id")))
    printf("  customer  %s\n", customer);
  free(id);
  free(status);
  free(partner);
  free(license);
  free(account);
  free(customer);
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
  json_array_foreach(json_object_get(j, "stages"), i, st)
    print_stage(st);
  /* The mails the confirmation named: pending until sent or given up. */
  json_array_foreach(json_object_get(j, "mails"), i, st) {
    char *kind = field(st, "kind"), *to = field(st, "recipient"), *state = field(st, "status"),
         *why = field(st, "reason");
    printf("  mail %s to %s: %s%s%s\n", kind, to, state, *why ? ": " : "", why);
    free(kind);
    free(to);
    free(state);
    free(why);
  }
}

static int terminal(const char *status) {
  return status && (strcmp(status, "confirmed") == 0 || strcmp(status, "rejected") == 0 ||
                    strcmp(status, "failed") == 0);
}

/* One look at an onboarding through the front door, as the signed-in partner: a long
 * poll of up to wait_s seconds (1 to 50, within the HTTP client's 60). */
static json_t *door_status(const char *url, long wait_s, long *st) {
  char poll[1300];
  snprintf(poll, sizeof(poll), "%s?wait=%ld", url, wait_s < 1 ? 1 : wait_s > 50 ? 50 : wait_s);
  char *token = door_token(NULL, 0); /* renewed when it expires soon */
  json_t *j = http_json_bearer(poll, NULL, token, st);
  explicit_bzero(token, strlen(token));
  free(token);
  if (*st == 401)
    die("the front door did not take the sign-in (%s): run lmpctl login",
        json_string_value(json_object_get(j, "error")) ?: "HTTP 401");
  return j;
}

/* Prints an onboarding's status; with wait_s, first waits up to that long for a
 * final outcome. door: through the front door's public route, as the signed-in
 * partner. Exit status: 0 confirmed (or not final yet), 3 rejected, 4 failed, 1
 * unknown. */
static int print_status(const char *id, int wait_s, int as_json, int door) {
  char url[1200];
  /* As the operator, on intake's admin listener: any partner's onboarding. Through
   * the front door: the signed-in partner's only. */
  snprintf(url, sizeof(url), "%s/v1/onboardings/%s", service_url("intake", !door), id);
  time_t deadline = time(NULL) + wait_s;
  for (;;) {
    long st;
    json_t *j = door ? door_status(url, (long)(deadline - time(NULL)), &st) : http_json(url, NULL, 1, &st);
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
      fprintf(stderr, "lmpctl: no status for %s at %s (HTTP %ld)\n", id, service_url("intake", !door), st);
      return 1;
    }
    if (!door || st != 200) /* a long poll that answered 200 waited already */
      usleep(door ? 500 * 1000 : 200 * 1000);
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
  rd_kafka_conf_t *c = lmp_kafka_conf(&cfg, cerr, sizeof(cerr));
  if (c == NULL)
    die("kafka: %s", cerr);
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

/* POSTs the request to intake's front door with the signed-in partner's access
 * token; the partner and the submitter are the token's. Exit status as print_status's;
 * 3 also when the door refuses the request (422). */
static int door_submit(json_t *j, const struct ctl_opts *o) {
  char who[600], url[1200];
  char *token = door_token(who, sizeof(who));
  snprintf(url, sizeof(url), "%s/v1/onboardings", service_url("intake", 0));
  char *body = json_dumps(j, JSON_COMPACT);
  if (body == NULL)
    die("out of memory");
  long st;
  json_t *a = http_json_bearer(url, body, token, &st);
  free(body);
  explicit_bzero(token, strlen(token));
  free(token);
  char *error = json_is_string(json_object_get(a, "error")) ? field(a, "error") : NULL;
  const char *id = json_string_value(json_object_get(a, "onboarding_id"));
  int rc = 1;
  if ((st == 202 || st == 200) && id) {
    char *shown = field(a, "onboarding_id");
    fprintf(stderr, "submitted %s through the front door as %s\n", shown, who);
    print_issues_to(stderr, "warnings", json_object_get(a, "warnings"));
    if (o->wait_s > 0) {
      rc = print_status(id, o->wait_s, o->json, 1);
    } else {
      printf("%s\n", shown);
      rc = 0;
    }
    free(shown);
  } else if (st == 422) {
    fprintf(stderr, "lmpctl: the front door refused the request:\n");
    print_issues_to(stderr, "reasons", json_object_get(a, "reasons"));
    print_issues_to(stderr, "warnings", json_object_get(a, "warnings"));
    rc = 3;
  } else if (st == 401) {
    fprintf(stderr, "lmpctl: the front door did not take the sign-in of %s (%s): run lmpctl login\n", who,
            error ? error : "HTTP 401");
  } else if (st == 0) {
    fprintf(stderr, "lmpctl: intake's front door at %s does not answer\n", url);
  } else {
    fprintf(stderr, "lmpctl: the front door answered HTTP %ld: %s\n", st, error ? error : "(no error given)");
  }
  free(error);
  json_decref(a);
  return rc;
}

/* Publishes an onboarding request, as a web frontend does. */
int cmd_submit(char **args, int nargs, const struct ctl_opts *o) {
  const char *file = args[0];
  json_error_t jerr;
  json_t *j = json_load_file(file, 0, &jerr);
  if (j == NULL) {
    fprintf(stderr, "lmpctl: %s:%d: %s\n", file, jerr.line, jerr.text);
    return 1;
  }
  if (o->new_id) {
    char id[37];
    uuid_t u;
    uuid_generate(u);
    uuid_unparse_lower(u, id);
    json_object_set_new(j, "request_id", json_string(id));
    json_object_set_new(j, "submitted_at", json_integer((json_int_t)time(NULL) * 1000));
  }
  if (o->door) {
    /* The door takes them from the token: a body that named another partner would
     * be refused, and the mails go to whoever signed in. --set may still name them. */
    json_object_del(j, "partner_id");
    json_object_del(j, "submitted_by");
  }
  for (int i = 0; i < o->nsets; i++)
    set_path(j, o->sets[i]);
  if (o->door) {
    int rc = door_submit(j, o);
    json_decref(j);
    return rc;
  }
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
  /* Keyed by the request id, as a frontend does (it is also the correlation id of
   * every later event); followed by the id intake will give it, scoped to its partner. */
  char id[37], *request_id = strdup(json_string_value(json_object_get(j, "request_id")) ?: "");
  lmp_onboarding_id(json_string_value(json_object_get(j, "partner_id")) ?: "", request_id ? request_id : "", id);
  json_decref(j);
  if (request_id == NULL)
    die("out of memory");
  int rc = produce("onboarding.requested", request_id, msg.data, msg.len);
  free(request_id);
  lmp_buf_free(&msg);
  if (rc)
    return 1;
  fprintf(stderr, "submitted %s\n", id);
  if (o->wait_s > 0)
    rc = print_status(id, o->wait_s, o->json, 0);
  else
    printf("%s\n", id);
  return rc;
}

/* As a warehouse system would: report a shipment dispatched. */
int cmd_dispatch(char **args, int nargs, const struct ctl_opts *o) {
  const char *shipment_id = args[0], *onboarding_id = args[1], *carrier = args[2], *tracking = args[3];
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


int cmd_status(char **args, int nargs, const struct ctl_opts *o) {
  return print_status(args[0], o->wait_s, o->json, o->door);
}
