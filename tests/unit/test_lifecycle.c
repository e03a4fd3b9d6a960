/* Intake's record of one onboarding whatever order the topics deliver its events: every
 * permutation of its lifecycle events, through intake's real handlers in the real batch
 * transaction against the test PostgreSQL, gives the same status answer (the stages in
 * the order of the flow with their own times, the status, the account, the tracking),
 * and the status never moves back on the way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include <cmocka.h>

#include "intake.h"
#include "lmp/base/buf.h"
#include "lmp/runtime/events.h"
#include "txh.h"

#define SHIP_HALIFAX "6d0f7c6e-0000-4000-8000-00000000000a"
#define SHIP_DARTMOUTH "6d0f7c6e-0000-4000-8000-00000000000b"
#define CUSTOMER "6d0f7c6e-0000-4000-8000-0000000000cc"

static struct intake in;
static char *regions[] = {"ca-central-1", NULL};
static char *skus[] = {"NS-100", "NS-500", NULL};
static const struct lmp_service svc = {
    .name = "intake", .routes = intake_routes, .migrations = intake_migrations, .ctx = &in};
static struct txh H;

/* Each stage's own time, from a base: the dispatches happen after the confirmation
 * (the warehouse ships days later) and the second shipment's dispatch before the
 * first's, so neither arrival nor the events' times alone give the flow's order. */
#define T0 1790000000000LL /* 2026-09-21T14:13:20Z */
#define TIME(ms) "2026-09-21T14:13:20." ms "Z"

static int setup(void **state) {
  in.rules = (struct intake_rules){regions, skus, 200, 1000000, 50, NULL};
  txh_open(&H, &svc);
  return 0;
}

static int teardown(void **state) {
  txh_close(&H);
  return 0;
}

static void new_id(char out[37]) {
  uuid_t u;
  uuid_generate(u);
  uuid_unparse_lower(u, out);
}

/* Runs one event through intake; it must be applied. */
static void deliver(const char *event_type, const char *id, json_t *event) {
  char *text = json_dumps(event, JSON_COMPACT);
  char evid[40];
  new_id(evid);
  txh_batch(&H, 1);
  txh_event(&H, 0, event_type, id, evid, text);
  free(text);
  assert_int_equal(txh_run(&H), 0);
  assert_int_equal(H.b->applied, 1);
  txh_done(&H);
}

/* The physical example request under a new id and legal name (an accepted onboarding
 * holds its name), submitted to intake: it records the accepted stage. */
static json_t *submit(char id[37]) {
  static int seq;
  char path[512], name[64];
  snprintf(path, sizeof(path), "%s/deploy/examples/physical-complete.json", LMP_SOURCE_DIR);
  json_t *req = json_load_file(path, 0, NULL);
  assert_non_null(req);
  char rid[37];
  new_id(rid);
  snprintf(name, sizeof(name), "Maritime Freight %d", seq++);
  json_object_set_new(req, "request_id", json_string(rid));
  json_object_set_new(json_object_get(req, "customer"), "legal_name", json_string(name));
  deliver("onboarding.requested", rid, req);
  /* The id intake gives it, scoped to its partner. */
  lmp_onboarding_id(json_string_value(json_object_get(req, "partner_id")), rid, id);
  char sql[200];
  snprintf(sql, sizeof(sql), "SELECT count(*) FROM onboardings WHERE onboarding_id = '%s' AND status = 'accepted'", id);
  assert_int_equal(txh_long(&H, sql), 1);
  json_t *acc = json_pack("{s:s, s:s, s:s, s:o, s:[], s:I}", "onboarding_id", id, "customer_id",
                          "6d0f7c6e-0000-4000-8000-000000000001", "account_name", name, "request", req,
                          "warnings", "accepted_at", (json_int_t)T0);
  return acc;
}

static const char *or_dash(const char *s) { return s ? s : "-"; }

static json_t *unit(const char *sku, const char *serial) {
  return json_pack("{s:s, s:s, s:s, s:n, s:n, s:s}", "role", "PRIMARY", "sku", sku, "serial", serial, "virtual_id",
                   "hosting_region", "ship_to", "head-office");
}

static json_t *address(const char *city) {
  return json_pack("{s:s, s:s, s:s, s:n, s:s, s:n, s:s, s:s, s:n}", "ref", "", "recipient", "IT", "line1",
                   "1 Water St", "line2", "city", city, "region", "postal_code", "B3H 1A1", "country", "CA", "phone");
}

/* One lifecycle event: its type and its value. */
struct ev {
  const char *type;
  json_t *value;
};

static json_t *allocations(void) { return json_pack("[{s:s, s:i}]", "product", "MDR_COMPLETE", "users", 120); }

static json_t *appliances(void) { return json_pack("[o, o]", unit("NS-100", "A1"), unit("NS-500", "B1")); }

static json_t *shipments(void) {
  return json_pack("[{s:s, s:o, s:[o]}, {s:s, s:o, s:[o]}]", "shipment_id", SHIP_HALIFAX, "address",
                   address("Halifax"), "items", unit("NS-100", "A1"), "shipment_id", SHIP_DARTMOUTH, "address",
                   address("Dartmouth"), "items", unit("NS-500", "B1"));
}

static json_t *failed(const char *id, const char *stage, json_t *acc, long long at) {
  return json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:s}], s:O, s:I}", "onboarding_id", id, "partner_id",
                   "partner-northwind", "stage", stage, "reasons", "code", "OUT_OF_STOCK", "field", "",
                   "message", "none left", "onboarding", acc, "failed_at", (json_int_t)at);
}

static json_t *dispatched(const char *id, const char *sid, const char *city, const char *tracking, long long at) {
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:[o], s:I}", "onboarding_id", id, "shipment_id", sid,
                   "partner_id", "partner-northwind", "partner_email", "ops@northwind.example.com", "account_name",
                   "Maritime Freight", "carrier", "Purolator", "tracking_number", tracking, "address", address(city),
                   "items", unit("NS-100", "A1"), "dispatched_at", (json_int_t)at);
}

/* The events of a confirmed physical onboarding with two shipments. */
static size_t confirmed_flow(const char *id, json_t *acc, struct ev *out) {
  out[0] = (struct ev){"onboarding.users-allocated",
                       json_pack("{s:s, s:O, s:o, s:I}", "onboarding_id", id, "onboarding", acc, "allocations",
                                 allocations(), "allocated_at", (json_int_t)(T0 + 100))};
  out[1] = (struct ev){"onboarding.appliances-provisioned",
                       json_pack("{s:s, s:O, s:o, s:o, s:I}", "onboarding_id", id, "onboarding", acc, "allocations",
                                 allocations(), "appliances", appliances(), "provisioned_at", (json_int_t)(T0 + 200))};
  out[2] = (struct ev){"onboarding.shipping-completed",
                       json_pack("{s:s, s:O, s:o, s:o, s:o, s:I}", "onboarding_id", id, "onboarding", acc,
                                 "allocations", allocations(), "appliances", appliances(), "shipments", shipments(),
                                 "completed_at", (json_int_t)(T0 + 300))};
  out[3] = (struct ev){"onboarding.confirmed",
                       json_pack("{s:s, s:s, s:s, s:s, s:i, s:[{s:s, s:s, s:s}], s:I}", "onboarding_id", id,
                                 "customer_id", CUSTOMER, "partner_id", "partner-northwind", "account_name", "x",
                                 "shipments", 2, "mails", "kind", "confirmation", "recipient", "ops@example.com",
                                 "status", "sent", "confirmed_at", (json_int_t)(T0 + 400))};
  out[4] = (struct ev){"onboarding.shipment-dispatched",
                       dispatched(id, SHIP_HALIFAX, "Halifax", "PRL-H", T0 + 600)};
  out[5] = (struct ev){"onboarding.shipment-dispatched",
                       dispatched(id, SHIP_DARTMOUTH, "Dartmouth", "PRL-D", T0 + 500)};
  return 6;
}

/* Appliance-fulfilment ran out of stock after allocation: the failure undoes it. */
static size_t failed_at_fulfilment(const char *id, json_t *acc, struct ev *out) {
  out[0] = (struct ev){"onboarding.users-allocated",
                       json_pack("{s:s, s:O, s:o, s:I}", "onboarding_id", id, "onboarding", acc, "allocations",
                                 allocations(), "allocated_at", (json_int_t)(T0 + 100))};
  out[1] = (struct ev){"onboarding.failed", failed(id, "appliance-fulfilment", acc, T0 + 200)};
  return 2;
}

/* Shipping found no address: users and appliances are undone. */
static size_t failed_at_shipping(const char *id, json_t *acc, struct ev *out) {
  failed_at_fulfilment(id, acc, out);
  json_decref(out[1].value);
  out[1] = (struct ev){"onboarding.appliances-provisioned",
                       json_pack("{s:s, s:O, s:o, s:o, s:I}", "onboarding_id", id, "onboarding", acc, "allocations",
                                 allocations(), "appliances", appliances(), "provisioned_at", (json_int_t)(T0 + 200))};
  out[2] = (struct ev){"onboarding.failed", failed(id, "shipping", acc, T0 + 300)};
  return 3;
}

/* The status answer as the route gives it. */
static json_t *status_answer(const char *id) {
  char path[128];
  snprintf(path, sizeof(path), "/v1/onboardings/%s", id);
  struct lmp_buf out = {0};
  /* As the owning partner's signed-in user asks it on the public route. */
  static const struct lmp_caller owner = {.name = "nora", .partner_id = "partner-northwind",
                                          .email = "nora@northwind.example"};
  struct lmp_http_call call = {.db = H.rt.db.conn, .method = "GET", .path = path, .out = &out, .caller = &owner};
  assert_int_equal(intake_status_route(NULL, &call), 0);
  assert_int_equal(call.status, 200);
  json_t *j = json_loads(out.data, 0, NULL);
  assert_non_null(j);
  lmp_buf_free(&out);
  return j;
}

/* What must not depend on the arrival order: the status, the account, the reasons,
 * each stage with its own time (and shipment), and each shipment's tracking. */
static void shape(json_t *answer, char *out, size_t len) {
  size_t n = snprintf(out, len, "%s %s %s |", json_string_value(json_object_get(answer, "status")),
                      json_string_value(json_object_get(answer, "account_status")),
                      or_dash(json_string_value(
                          json_object_get(json_array_get(json_object_get(answer, "reasons"), 0), "code"))));
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(answer, "stages"), i, s) {
    json_t *d = json_object_get(s, "detail");
    const char *sid = json_string_value(json_object_get(d, "shipment_id"));
    const char *who = json_string_value(json_object_get(d, "stage"));
    n += snprintf(out + n, len - n, " %s%s%s@%s", json_string_value(json_object_get(s, "stage")),
                  sid || who ? ":" : "", sid ? sid : who ? who : "",
                  i ? json_string_value(json_object_get(s, "happened_at")) : "");
  }
  n += snprintf(out + n, len - n, " |");
  json_array_foreach(json_object_get(answer, "shipments"), i, s)
    n += snprintf(out + n, len - n, " %s=%s", json_string_value(json_object_get(s, "shipment_id")),
                  or_dash(json_string_value(json_object_get(s, "tracking_number"))));
  assert_true(n < len);
}

static long status_rank(const char *id) {
  char sql[200];
  snprintf(sql, sizeof(sql), "SELECT status_rank FROM onboardings WHERE onboarding_id = '%s'", id);
  return txh_long(&H, sql);
}

/* Heap's algorithm: every permutation of order[0..n), each passed to fn once. */
static void permute(size_t *order, size_t k, size_t n, void (*fn)(const size_t *, size_t, void *), void *ctx) {
  if (k <= 1) {
    fn(order, n, ctx);
    return;
  }
  for (size_t i = 0; i < k; i++) {
    permute(order, k - 1, n, fn, ctx);
    size_t j = k % 2 ? 0 : i, t = order[j];
    order[j] = order[k - 1];
    order[k - 1] = t;
  }
}

struct run {
  size_t (*flow)(const char *id, json_t *acc, struct ev *out);
  const char *want;  /* the answer's shape every order must give */
  size_t runs;
};

/* One arrival order: a new onboarding, its events in that order, the status never
 * moving back, and the answer's shape as wanted. */
static void one_order(const size_t *order, size_t n, void *ctx) {
  struct run *run = ctx;
  char id[37];
  json_t *acc = submit(id);
  struct ev evs[8];
  assert_int_equal(run->flow(id, acc, evs), n);
  long rank = status_rank(id);
  for (size_t i = 0; i < n; i++) {
    deliver(evs[order[i]].type, id, evs[order[i]].value);
    long now = status_rank(id);
    assert_true(now >= rank);
    rank = now;
  }
  for (size_t i = 0; i < n; i++)
    json_decref(evs[i].value);
  json_decref(acc);
  json_t *answer = status_answer(id);
  char got[2000];
  shape(answer, got, sizeof(got));
  json_decref(answer);
  if (strcmp(got, run->want) != 0) {
    char arrival[256] = "";
    for (size_t i = 0; i < n; i++)
      snprintf(arrival + strlen(arrival), sizeof(arrival) - strlen(arrival), " %s", evs[order[i]].type + 11);
    fail_msg("arriving as%s gave\n  %s\nnot\n  %s", arrival, got, run->want);
  }
  run->runs++;
}

static void every_order(struct run *run, size_t n) {
  size_t order[8];
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  permute(order, n, n, one_order, run);
}

/* 720 arrival orders of a confirmed physical onboarding with two dispatches: one
 * history, accepted first and confirmed last, the dispatches between shipping arranged
 * and confirmed by their own time, each shipment with its tracking. */
static void confirmed_in_any_order(void **state) {
  struct run run = {confirmed_flow,
                    "confirmed active - | accepted@ users-allocated@" TIME("100") " appliances-provisioned@" TIME(
                        "200") " shipping-completed@" TIME("300") " shipment-dispatched:" SHIP_DARTMOUTH "@" TIME("500")
                    " shipment-dispatched:" SHIP_HALIFAX "@" TIME("600") " confirmed@" TIME("400")
                    " | " SHIP_HALIFAX "=PRL-H " SHIP_DARTMOUTH "=PRL-D", 0};
  every_order(&run, 6);
  assert_int_equal(run.runs, 720);
}

static void refuse_event(const char *event_type, const char *id, json_t *event, const char *code, const char *why);

/* The confirmation names its two mails as pending; each one's fate follows on a topic
 * of its own (onboarding.mail-settled), before or after the confirmation: in all six
 * orders the answer shows the confirmation sent and the invitation failed with its
 * reason, and a mail not settled yet as pending. */
static json_t *settled(const char *id, const char *kind, const char *status, const char *reason) {
  return json_pack("{s:s, s:s, s:s, s:o, s:I}", "onboarding_id", id, "kind", kind, "status", status, "reason",
                   reason ? json_pack("{s:s}", "string", reason) : json_null(), "settled_at", (json_int_t)(T0 + 900));
}

static const char *mail_state(json_t *answer, const char *kind, const char *field) {
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(answer, "mails"), i, m) if (strcmp(json_string_value(json_object_get(m, "kind")),
                                                                        kind) == 0) return json_string_value(
      json_object_get(m, field));
  return NULL;
}

static void mails_in_any_order(void **state) {
  static const size_t orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
  for (size_t o = 0; o < 6; o++) {
    char id[37];
    json_t *acc = submit(id);
    struct ev evs[8];
    size_t n = confirmed_flow(id, acc, evs);
    for (size_t i = 0; i < 3; i++)
      deliver(evs[i].type, id, evs[i].value);
    json_decref(evs[3].value);
    struct ev mail[3] = {
        {"onboarding.confirmed",
         json_pack("{s:s, s:s, s:s, s:s, s:i, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}], s:I}", "onboarding_id", id,
                   "customer_id", CUSTOMER, "partner_id", "partner-northwind", "account_name", "x", "shipments", 2,
                   "mails", "kind", "confirmation", "recipient", "ops@example.com", "status", "pending", "kind",
                   "invitation", "recipient", "admin@example.com", "status", "pending", "confirmed_at",
                   (json_int_t)(T0 + 400))},
        {"onboarding.mail-settled", settled(id, "confirmation", "sent", NULL)},
        {"onboarding.mail-settled", settled(id, "invitation", "failed", "550 the recipient: no such user")}};
    for (size_t i = 0; i < 3; i++) {
      deliver(mail[orders[o][i]].type, id, mail[orders[o][i]].value);
      json_t *answer = status_answer(id);
      if (orders[o][i] == 0 && i == 0) { /* confirmed first: both pending */
        assert_string_equal(mail_state(answer, "confirmation", "status"), "pending");
        assert_string_equal(mail_state(answer, "invitation", "status"), "pending");
        assert_string_equal(json_string_value(json_object_get(answer, "status")), "confirmed");
      }
      json_decref(answer);
    }
    json_t *answer = status_answer(id);
    assert_string_equal(json_string_value(json_object_get(answer, "status")), "confirmed");
    assert_string_equal(mail_state(answer, "confirmation", "status"), "sent");
    assert_string_equal(mail_state(answer, "confirmation", "recipient"), "ops@example.com");
    assert_null(mail_state(answer, "confirmation", "reason"));
    assert_string_equal(mail_state(answer, "invitation", "status"), "failed");
    assert_string_equal(mail_state(answer, "invitation", "reason"), "550 the recipient: no such user");
    assert_string_equal(mail_state(answer, "invitation", "settled_at"), TIME("900"));
    json_decref(answer);
    for (size_t i = 0; i < 3; i++)
      json_decref(mail[i].value);
    for (size_t i = 0; i < n; i++)
      if (i != 3)
        json_decref(evs[i].value);
    json_decref(acc);
  }
}

/* A mail-settled that is not one: refused with the reason, nothing kept. */
static void mail_settled_refused(void **state) {
  char id[37];
  json_t *acc = submit(id);
  json_decref(acc);
  json_t *other = settled(id, "dispatch:x", "sent", NULL), *bounced = settled(id, "invitation", "bounced", NULL);
  refuse_event("onboarding.mail-settled", id, other, "HANDLER_REJECTED", "only the confirmation and the invitation");
  refuse_event("onboarding.mail-settled", id, bounced, "HANDLER_REJECTED", "not sent or failed");
  json_decref(other);
  json_decref(bounced);
  char sql[200];
  snprintf(sql, sizeof(sql), "SELECT count(*) FROM mail_fates WHERE onboarding_id = '%s'", id);
  assert_int_equal(txh_long(&H, sql), 0);
}

/* A failure heard before the stage it undoes: still failed, the account released,
 * the failure listed after the stage it followed. */
static void failed_in_any_order(void **state) {
  struct run fulfilment = {failed_at_fulfilment,
                           "failed released OUT_OF_STOCK | accepted@ users-allocated@" TIME("100")
                           " failed:appliance-fulfilment@" TIME("200") " |", 0};
  every_order(&fulfilment, 2);
  struct run shipping = {failed_at_shipping,
                         "failed released OUT_OF_STOCK | accepted@ users-allocated@" TIME("100")
                         " appliances-provisioned@" TIME("200") " failed:shipping@" TIME("300") " |", 0};
  every_order(&shipping, 3);
  assert_int_equal(fulfilment.runs + shipping.runs, 8);
}

/* A failure the flow cannot have written is refused (dead-lettered with the reason)
 * and changes nothing: after the confirmation, from a daemon that already did its
 * part, from no daemon that fails onboardings. One that can be true is taken, and a
 * confirmation after it does not revive the onboarding. */
static void refuse_event(const char *event_type, const char *id, json_t *event, const char *code, const char *why) {
  char *text = json_dumps(event, JSON_COMPACT);
  char evid[40];
  new_id(evid);
  txh_batch(&H, 1);
  txh_event(&H, 0, event_type, id, evid, text);
  static int64_t offset = 1000;
  H.b->raws[0].offset = offset++; /* poison is known by its position: each its own */
  free(text);
  assert_int_equal(txh_run(&H), 0);
  assert_int_equal(H.b->applied, 0);
  assert_string_equal(txh_dead_codes(&H), code);
  json_t *rows = txh_rows(&H);
  char *dump = json_dumps(rows, JSON_COMPACT);
  if (strstr(dump, why) == NULL)
    fail_msg("no dead letter says \"%s\": %s", why, dump);
  free(dump);
  json_decref(rows);
  txh_done(&H);
}

static void refuse(const char *id, json_t *event, const char *code, const char *why) {
  refuse_event("onboarding.failed", id, event, code, why);
}

static const char *status_of(const char *id, const char *field) {
  static char out[64];
  json_t *answer = status_answer(id);
  snprintf(out, sizeof(out), "%s", json_string_value(json_object_get(answer, field)));
  json_decref(answer);
  return out;
}

static void impossible_failures_refused(void **state) {
  char id[37];
  json_t *acc = submit(id);
  struct ev evs[8];
  confirmed_flow(id, acc, evs);
  for (size_t i = 0; i < 4; i++)
    deliver(evs[i].type, id, evs[i].value);
  /* A stage that fails no onboarding can only be named on another's topic (txh puts
   * it on allocation's): the runtime refuses it before intake sees it. */
  static const char *const after_confirmation[][3] = {
      {"shipping", "HANDLER_REJECTED", "its shipping-completed is recorded"},
      {"allocation", "HANDLER_REJECTED", "its users-allocated is recorded"},
      {"appliance-fulfilment", "HANDLER_REJECTED", "its appliances-provisioned is recorded"},
      {"notifier", "WRONG_TOPIC", "carries allocation's onboarding.failed only"},
      {"", "WRONG_TOPIC", "carries allocation's onboarding.failed only"}};
  for (size_t i = 0; i < 5; i++) {
    json_t *f = failed(id, after_confirmation[i][0], acc, T0 + 450);
    refuse(id, f, after_confirmation[i][1], after_confirmation[i][2]);
    json_decref(f);
  }
  assert_string_equal(status_of(id, "status"), "confirmed");
  assert_string_equal(status_of(id, "account_status"), "active");

  /* Users allocated, nothing provisioned yet: allocation cannot fail it any more,
   * appliance fulfilment can; a confirmation after that failure changes nothing. */
  char id2[37];
  json_t *acc2 = submit(id2);
  struct ev evs2[8];
  confirmed_flow(id2, acc2, evs2);
  deliver(evs2[0].type, id2, evs2[0].value);
  json_t *early = failed(id2, "allocation", acc2, T0 + 150);
  refuse(id2, early, "HANDLER_REJECTED", "its users-allocated is recorded");
  json_t *f = failed(id2, "appliance-fulfilment", acc2, T0 + 200);
  deliver("onboarding.failed", id2, f);
  deliver(evs2[3].type, id2, evs2[3].value);
  assert_string_equal(status_of(id2, "status"), "failed");
  assert_string_equal(status_of(id2, "account_status"), "released");
  json_decref(early);
  json_decref(f);
  for (size_t i = 0; i < 6; i++) {
    json_decref(evs[i].value);
    json_decref(evs2[i].value);
  }
  json_decref(acc);
  json_decref(acc2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(confirmed_in_any_order),
      cmocka_unit_test(failed_in_any_order),
      cmocka_unit_test(impossible_failures_refused),
      cmocka_unit_test(mails_in_any_order),
      cmocka_unit_test(mail_settled_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
