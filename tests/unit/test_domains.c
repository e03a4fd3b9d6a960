/* Each daemon's domain handlers in-process, against the test PostgreSQL, fed the
 * event the stage before would send (what the previous handler emitted): their
 * tables and the events they emit are checked, and their compensations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "allocation.h"
#include "lmp/base/buf.h"
#include "fulfilment.h"
#include "notifier.h"
#include "shipping.h"
#include "txh.h"

static const struct lmp_service allocation = {
    .name = "allocation", .routes = allocation_routes, .migrations = allocation_migrations};
static const struct lmp_service fulfilment = {
    .name = "appliance-fulfilment", .routes = fulfilment_routes, .migrations = fulfilment_migrations};
static const struct lmp_service shipping = {
    .name = "shipping", .routes = shipping_routes, .migrations = shipping_migrations};
static struct notifier mailer = {.template_dir = ""};
static const struct lmp_service notifier = {
    .name = "notifier", .routes = notifier_routes, .migrations = notifier_migrations, .ctx = &mailer};

/* Feeds one event (the reference is taken) to the harness's daemon; the events it
 * emitted, as JSON. */
static json_t *feed(struct txh *h, const char *event_type, const char *key, json_t *event) {
  static int seq;
  char *text = json_dumps(event, JSON_COMPACT);
  json_decref(event);
  char evid[32];
  snprintf(evid, sizeof(evid), "unit-%d", seq++);
  txh_batch(h, 1);
  txh_event(h, 0, event_type, key, evid, text);
  h->b->raws[0].offset = seq; /* poison is known by its position: each its own */
  free(text);
  assert_int_equal(txh_run(h), 0);
  json_t *rows = txh_rows(h);
  txh_done(h);
  return rows;
}

/* Whether a row's topic is t.<suffix>, or t.<suffix>.<writer> for a type several
 * daemons write. */
static int on(const char *topic, const char *suffix) {
  size_t n = strlen(suffix);
  return strncmp(topic + 2, suffix, n) == 0 && (topic[2 + n] == '\0' || topic[2 + n] == '.');
}

/* The emitted event of a type (the first), or fails. */
static json_t *emitted(json_t *rows, const char *topic_suffix) {
  size_t i;
  json_t *r;
  json_array_foreach(rows, i, r) {
    const char *t = json_string_value(json_object_get(r, "topic"));
    if (on(t, topic_suffix))
      return json_object_get(r, "event");
  }
  fail_msg("no %s among the emitted events", topic_suffix);
  return NULL;
}

static size_t count(json_t *rows, const char *topic_suffix) {
  size_t i, n = 0;
  json_t *r;
  json_array_foreach(rows, i, r)
    n += on(json_string_value(json_object_get(r, "topic")), topic_suffix);
  return n;
}

static json_t *accepted(const char *example, const char *id) {
  char path[512];
  snprintf(path, sizeof(path), "%s/deploy/examples/%s", LMP_SOURCE_DIR, example);
  json_t *req = json_load_file(path, 0, NULL);
  assert_non_null(req);
  json_object_set_new(req, "request_id", json_string(id));
  return json_pack("{s:s, s:s, s:s, s:o, s:[], s:i}", "onboarding_id", id, "customer_id",
                   "6d0f7c6e-0000-4000-8000-000000000001", "account_name", "Maritime Freight", "request", req,
                   "warnings", "accepted_at", 0);
}

static json_t *failed(const char *id, const char *stage) {
  return json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:s}], s:n, s:i}", "onboarding_id", id, "partner_id",
                   "partner-northwind", "stage", stage, "reasons", "code", "OUT_OF_STOCK", "field", "",
                   "message", "none left", "onboarding", "failed_at", 0);
}

/* Allocation draws every product all or nothing, and gives back on a later failure;
 * appliance-fulfilment reserves a unit per appliance, and gives back; shipping groups
 * by address; the notifier owes the two mails. */
static void a_physical_onboarding(void **state) {
  struct txh a, f, s, n;
  txh_open(&a, &allocation);
  txh_exec(&a, "INSERT INTO partners VALUES ('partner-northwind', 'N')");
  txh_exec(&a, "INSERT INTO pools VALUES ('partner-northwind', 'MDR_COMPLETE', 200, 0), "
               "('partner-northwind', 'MDR_CLOUD', 30, 0), ('partner-northwind', 'BEAUCERON_SAT', 120, 0)");
  const char *id = "11111111-1111-4111-8111-111111111111";
  json_t *rows = feed(&a, "onboarding.accepted", id, accepted("physical-complete.json", id));
  json_t *ua = json_incref(emitted(rows, "onboarding.users-allocated"));
  json_decref(rows);
  assert_int_equal(json_array_size(json_object_get(ua, "allocations")), 3);
  assert_int_equal(txh_long(&a, "SELECT sum(allocated) FROM pools"), 120 + 25 + 120);
  /* The same accepted event under another id: already allocated, nothing drawn. */
  rows = feed(&a, "onboarding.accepted", id, accepted("physical-complete.json", id));
  assert_int_equal(json_array_size(rows), 0);
  json_decref(rows);
  assert_int_equal(txh_long(&a, "SELECT sum(allocated) FROM pools"), 265);

  txh_open(&f, &fulfilment);
  txh_exec(&f, "INSERT INTO skus VALUES ('NS-100', ''), ('NS-500', '')");
  txh_exec(&f, "INSERT INTO units(serial, sku) VALUES ('A1', 'NS-100'), ('A2', 'NS-100'), ('B1', 'NS-500')");
  rows = feed(&f, "onboarding.users-allocated", id, json_incref(ua));
  json_t *ap = json_incref(emitted(rows, "onboarding.appliances-provisioned"));
  json_decref(rows);
  assert_int_equal(json_array_size(json_object_get(ap, "appliances")), 3);
  assert_int_equal(txh_long(&f, "SELECT count(*) FROM units WHERE status = 'reserved'"), 3);

  txh_open(&s, &shipping);
  rows = feed(&s, "onboarding.appliances-provisioned", id, json_incref(ap));
  assert_int_equal(count(rows, "shipment.requested"), 2); /* head office and warehouse */
  json_t *sc = json_incref(emitted(rows, "onboarding.shipping-completed"));
  json_t *sreq = json_incref(emitted(rows, "shipment.requested"));
  json_decref(rows);
  assert_int_equal(json_array_size(json_object_get(sc, "shipments")), 2);
  assert_int_equal(txh_long(&s, "SELECT count(*) FROM shipment_items"), 3);
  /* The warehouse reports the dispatch twice: recorded once, told once. */
  json_t *dispatch = json_pack("{s:O, s:s, s:s, s:i}", "shipment_id", json_object_get(sreq, "shipment_id"), "carrier",
                               "Purolator", "tracking_number", "PRL1", "dispatched_at", 0);
  rows = feed(&s, "shipment.dispatched", id, json_incref(dispatch));
  assert_int_equal(count(rows, "onboarding.shipment-dispatched"), 1);
  json_decref(rows);
  rows = feed(&s, "shipment.dispatched", id, json_incref(dispatch));
  assert_int_equal(json_array_size(rows), 0);
  json_decref(rows);
  /* A carrier or tracking number that could carry markup or run long into the
   * partner's mail is refused, whoever the shipment is. */
  static const char *const hostile[][2] = {{"<a href=https://evil.example>Purolator</a>", "PRL1"},
                                           {"Purolator", "PRL1 call +1-555-0100 to pay"},
                                           {"Purolator", "PRL12345678901234567890123456789012345678901234567890123456789012345"}};
  for (size_t i = 0; i < 3; i++) {
    json_t *bad = json_pack("{s:O, s:s, s:s, s:i}", "shipment_id", json_object_get(sreq, "shipment_id"), "carrier",
                            hostile[i][0], "tracking_number", hostile[i][1], "dispatched_at", 0);
    rows = feed(&s, "shipment.dispatched", id, bad);
    assert_int_equal(count(rows, "dead-letter"), 1);
    json_decref(rows);
  }
  assert_int_equal(txh_long(&s, "SELECT count(*) FROM shipments WHERE carrier <> 'Purolator' OR "
                                "tracking_number <> 'PRL1'"), 0);
  /* A shipment never requested is refused: dead-lettered with the handler's reason. */
  json_object_set_new(dispatch, "shipment_id", json_string("00000000-0000-4000-8000-000000000000"));
  rows = feed(&s, "shipment.dispatched", id, json_incref(dispatch));
  assert_int_equal(count(rows, "dead-letter"), 1);
  json_decref(rows);
  json_decref(dispatch);

  txh_open(&n, &notifier);
  rows = feed(&n, "onboarding.shipping-completed", id, json_incref(sc));
  /* Confirmed here, naming both mails, which the senders send after the commit. */
  assert_int_equal(json_array_size(rows), 1);
  assert_int_equal(count(rows, "onboarding.confirmed"), 1);
  json_decref(rows);
  assert_int_equal(txh_long(&n, "SELECT count(*) FROM confirmations WHERE confirmed_at IS NOT NULL"), 1);
  assert_int_equal(txh_long(&n, "SELECT count(*) FROM mails WHERE status = 'pending' AND kind IN "
                                "('confirmation', 'invitation')"), 2);
  assert_int_equal(txh_long(&n, "SELECT count(*) FROM confirmations WHERE traceparent LIKE '00-%'"), 1);

  /* A later stage fails: allocation and fulfilment give back exactly what they took. */
  rows = feed(&a, "onboarding.failed", id, failed(id, "shipping"));
  json_decref(rows);
  assert_int_equal(txh_long(&a, "SELECT sum(allocated) FROM pools"), 0);
  rows = feed(&f, "onboarding.failed", id, failed(id, "shipping"));
  json_decref(rows);
  assert_int_equal(txh_long(&f, "SELECT count(*) FROM units WHERE status = 'available'"), 3);
  /* The notifier knows shipping completed: a failure now was not written by the flow. */
  rows = feed(&n, "onboarding.failed", id, failed(id, "shipping"));
  assert_int_equal(count(rows, "dead-letter"), 1);
  json_decref(rows);
  assert_int_equal(txh_long(&n, "SELECT count(*) FROM mails WHERE kind = 'failure'"), 0);

  json_decref(ua);
  json_decref(ap);
  json_decref(sc);
  json_decref(sreq);
  txh_close(&a);
  txh_close(&f);
  txh_close(&s);
  txh_close(&n);
}

/* A shortfall in one product takes nothing from any pool, and says what is missing. */
static void all_or_nothing(void **state) {
  struct txh a;
  txh_open(&a, &allocation);
  txh_exec(&a, "INSERT INTO partners VALUES ('partner-northwind', 'N')");
  txh_exec(&a, "INSERT INTO pools VALUES ('partner-northwind', 'MDR_COMPLETE', 200, 0), "
               "('partner-northwind', 'MDR_CLOUD', 10, 0), ('partner-northwind', 'BEAUCERON_SAT', 120, 0)");
  const char *id = "22222222-2222-4222-8222-222222222222";
  json_t *rows = feed(&a, "onboarding.accepted", id, accepted("physical-complete.json", id));
  json_t *f = emitted(rows, "onboarding.failed");
  const char *msg = json_string_value(json_object_get(json_array_get(json_object_get(f, "reasons"), 0), "message"));
  assert_non_null(strstr(msg, "MDR Cloud: 25 users requested, 10 available"));
  json_decref(rows);
  assert_int_equal(txh_long(&a, "SELECT sum(allocated) FROM pools"), 0);
  /* Every shortfall named, in the license's order, a product without a pool as none
   * available; and still nothing drawn, the pool that had enough included. */
  txh_exec(&a, "UPDATE pools SET total = 100 WHERE product = 'MDR_COMPLETE'");
  txh_exec(&a, "DELETE FROM pools WHERE product = 'BEAUCERON_SAT'");
  txh_exec(&a, "INSERT INTO pools VALUES ('partner-northwind', 'MDR_CORE', 500, 0)");
  const char *id2 = "22222222-2222-4222-8222-222222222223";
  rows = feed(&a, "onboarding.accepted", id2, accepted("physical-complete.json", id2));
  json_t *reasons = json_object_get(emitted(rows, "onboarding.failed"), "reasons");
  assert_int_equal(json_array_size(reasons), 3);
  const char *want[] = {"MDR Complete: 120 users requested, 100 available",
                        "MDR Cloud: 25 users requested, 10 available",
                        "Beauceron SAT: 120 users requested, 0 available"};
  for (size_t i = 0; i < 3; i++)
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(reasons, i), "message")), want[i]));
  json_decref(rows);
  txh_exec(&a, "UPDATE pools SET total = 200 WHERE product = 'MDR_COMPLETE'");
  txh_exec(&a, "UPDATE pools SET total = 30 WHERE product = 'MDR_CLOUD'");
  txh_exec(&a, "INSERT INTO pools VALUES ('partner-northwind', 'BEAUCERON_SAT', 120, 0)");
  const char *id3 = "22222222-2222-4222-8222-222222222224";
  rows = feed(&a, "onboarding.accepted", id3, accepted("physical-complete.json", id3));
  assert_int_equal(count(rows, "onboarding.users-allocated"), 1);
  json_decref(rows);
  assert_int_equal(txh_long(&a, "SELECT sum(allocated) FROM pools"), 120 + 25 + 120);
  assert_int_equal(txh_long(&a, "SELECT sum(users) FROM allocations "
                                "WHERE onboarding_id = '22222222-2222-4222-8222-222222222224'"),
                   120 + 25 + 120);
  txh_close(&a);
}

/* Out of stock after allocation: nothing stays reserved, the failure names the SKU. */
static void out_of_stock(void **state) {
  struct txh f;
  txh_open(&f, &fulfilment);
  txh_exec(&f, "INSERT INTO skus VALUES ('NS-100', ''), ('NS-500', '')");
  txh_exec(&f, "INSERT INTO units(serial, sku) VALUES ('A1', 'NS-100'), ('B1', 'NS-500')");
  const char *id = "33333333-3333-4333-8333-333333333333";
  json_t *ua = json_pack("{s:s, s:o, s:[{s:s, s:i}], s:i}", "onboarding_id", id, "onboarding",
                         accepted("physical-complete.json", id), "allocations", "product", "MDR_COMPLETE", "users",
                         120, "allocated_at", 0);
  json_t *rows = feed(&f, "onboarding.users-allocated", id, json_incref(ua));
  json_t *fe = emitted(rows, "onboarding.failed");
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(fe, "reasons"), 0), "code")),
                      "OUT_OF_STOCK");
  json_decref(rows);
  json_decref(ua);
  assert_int_equal(txh_long(&f, "SELECT count(*) FROM units WHERE status = 'reserved'"), 0);
  txh_close(&f);
}

/* Fulfilment checks the reference data it keeps itself (intake's may differ): an
 * unknown hosting region provisions nothing, and a model not in its catalogue refuses
 * the onboarding with the units taken before it given back; each names its field. */
static void unknown_region_and_sku(void **state) {
  struct txh f;
  txh_open(&f, &fulfilment);
  txh_exec(&f, "INSERT INTO hosting_regions VALUES ('eu-west-1')");
  txh_exec(&f, "INSERT INTO skus VALUES ('NS-500', '')");
  txh_exec(&f, "INSERT INTO units(serial, sku) VALUES ('B1', 'NS-500')");
  const char *id = "34343434-3434-4343-8343-343434343434";
  json_t *ua = json_pack("{s:s, s:o, s:[{s:s, s:i}], s:i}", "onboarding_id", id, "onboarding",
                         accepted("virtual-core.json", id), "allocations", "product", "MDR_CORE", "users", 10,
                         "allocated_at", 0);
  json_t *rows = feed(&f, "onboarding.users-allocated", id, ua);
  json_t *reason = json_array_get(json_object_get(emitted(rows, "onboarding.failed"), "reasons"), 0);
  assert_string_equal(json_string_value(json_object_get(reason, "code")), "UNKNOWN_HOSTING_REGION");
  assert_string_equal(json_string_value(json_object_get(reason, "field")), "deployment.hosting_region");
  json_decref(rows);
  assert_int_equal(txh_long(&f, "SELECT count(*) FROM virtual_appliances"), 0);
  assert_int_equal(txh_long(&f, "SELECT count(*) FROM onboardings WHERE status = 'refused'"), 1);

  const char *id2 = "34343434-3434-4343-8343-343434343435";
  ua = json_pack("{s:s, s:o, s:[{s:s, s:i}], s:i}", "onboarding_id", id2, "onboarding",
                 accepted("physical-complete.json", id2), "allocations", "product", "MDR_COMPLETE", "users", 120,
                 "allocated_at", 0);
  rows = feed(&f, "onboarding.users-allocated", id2, ua);
  json_t *reasons = json_object_get(emitted(rows, "onboarding.failed"), "reasons");
  assert_int_equal(json_array_size(reasons), 2); /* both NS-100 sensors */
  for (size_t i = 0; i < 2; i++) {
    reason = json_array_get(reasons, i);
    assert_string_equal(json_string_value(json_object_get(reason, "code")), "UNKNOWN_SKU");
    char field[64];
    snprintf(field, sizeof(field), "deployment.appliances[%zu].sku", i + 1);
    assert_string_equal(json_string_value(json_object_get(reason, "field")), field);
  }
  json_decref(rows);
  /* The NS-500 taken for the first appliance went back. */
  assert_int_equal(txh_long(&f, "SELECT count(*) FROM units WHERE status = 'available' AND onboarding_id IS NULL"), 1);
  txh_close(&f);
}

/* A reference-data load that meets a row another transaction holds (a deadlock, a
 * restart are the same to it: the database's state, not the load's fault) is answered
 * 503, to be sent again, with nothing of it kept; sent again once the lock is gone, it
 * is taken. A load the database refuses for its content stays a 400. */
static void load_meets_a_lock(void **state) {
  struct txh a;
  txh_open(&a, &allocation);
  txh_exec(&a, "INSERT INTO partners VALUES ('partner-northwind', 'N')");
  txh_exec(&a, "INSERT INTO pools VALUES ('partner-northwind', 'MDR_CORE', 100, 0)");
  PGconn *holder = PQconnectdb(a.rt.db.conninfo);
  assert_int_equal(PQstatus(holder), CONNECTION_OK);
  PQclear(PQexec(holder, "BEGIN"));
  PGresult *held = PQexec(holder, "UPDATE pools SET total = total WHERE product = 'MDR_CORE'");
  assert_int_equal(PQresultStatus(held), PGRES_COMMAND_OK);
  PQclear(held);
  txh_exec(&a, "SET lock_timeout = '200ms'");

  const char *body = "{\"pools\": [{\"partner_id\": \"partner-northwind\", \"product\": \"MDR_CORE\", "
                     "\"total\": 150}]}";
  struct lmp_buf out = {0};
  struct lmp_http_call call = {.db = a.rt.db.conn, .method = "POST", .path = "/v1/admin/load", .body = body,
                               .body_len = strlen(body), .status = 500, .out = &out};
  assert_string_equal(allocation_http[0].pattern, "/v1/admin/load");
  assert_int_equal(allocation_http[0].fn(NULL, &call), 0);
  assert_int_equal(call.status, 503);
  assert_non_null(strstr(out.data, "SQLSTATE 55P03"));
  PQclear(PQexec(holder, "COMMIT"));
  PQfinish(holder);
  assert_int_equal(txh_long(&a, "SELECT total FROM pools"), 100);

  call.status = 500;
  assert_int_equal(allocation_http[0].fn(NULL, &call), 0);
  assert_int_equal(call.status, 200);
  assert_int_equal(txh_long(&a, "SELECT total FROM pools"), 150);

  /* Below what is allocated: the data breaks a rule of the table, not the moment. */
  txh_exec(&a, "UPDATE pools SET allocated = 120");
  const char *low = "{\"pools\": [{\"partner_id\": \"partner-northwind\", \"product\": \"MDR_CORE\", "
                    "\"total\": 100}]}";
  call = (struct lmp_http_call){.db = a.rt.db.conn, .method = "POST", .path = "/v1/admin/load", .body = low,
                                .body_len = strlen(low), .status = 500, .out = &out};
  assert_int_equal(allocation_http[0].fn(NULL, &call), 0);
  assert_int_equal(call.status, 400);
  lmp_buf_free(&out);
  txh_close(&a);
}

/* A failure the flow cannot have written changes nothing and is dead-lettered: from a
 * stage that fails no onboarding there, from allocation for an onboarding already
 * provisioned, from anyone once shipping completed (the users and units stay). */
static void failures_past_their_stage(void **state) {
  struct txh a, f;
  txh_open(&a, &allocation);
  txh_exec(&a, "INSERT INTO partners VALUES ('partner-northwind', 'N')");
  txh_exec(&a, "INSERT INTO pools VALUES ('partner-northwind', 'MDR_COMPLETE', 200, 0), "
               "('partner-northwind', 'MDR_CLOUD', 30, 0), ('partner-northwind', 'BEAUCERON_SAT', 120, 0)");
  const char *id = "44444444-4444-4444-8444-444444444444";
  json_t *rows = feed(&a, "onboarding.accepted", id, accepted("physical-complete.json", id));
  json_t *ua = json_incref(emitted(rows, "onboarding.users-allocated"));
  json_decref(rows);
  static const char *const not_after_allocation[] = {"notifier", "intake", ""};
  for (size_t i = 0; i < 3; i++) {
    rows = feed(&a, "onboarding.failed", id, failed(id, not_after_allocation[i]));
    assert_int_equal(count(rows, "dead-letter"), 1);
    json_decref(rows);
  }
  assert_int_equal(txh_long(&a, "SELECT sum(allocated) FROM pools"), 265);

  txh_open(&f, &fulfilment);
  txh_exec(&f, "INSERT INTO skus VALUES ('NS-100', ''), ('NS-500', '')");
  txh_exec(&f, "INSERT INTO units(serial, sku) VALUES ('A1', 'NS-100'), ('A2', 'NS-100'), ('B1', 'NS-500')");
  rows = feed(&f, "onboarding.users-allocated", id, json_incref(ua));
  json_t *ap = json_incref(emitted(rows, "onboarding.appliances-provisioned"));
  json_decref(rows);
  rows = feed(&f, "onboarding.failed", id, failed(id, "allocation"));
  assert_int_equal(count(rows, "dead-letter"), 1);
  json_decref(rows);
  assert_int_equal(txh_long(&f, "SELECT count(*) FROM units WHERE status = 'reserved'"), 3);

  json_t *sc = json_pack("{s:s, s:O, s:O, s:O, s:[], s:i}", "onboarding_id", id, "onboarding",
                         json_object_get(ap, "onboarding"), "allocations", json_object_get(ap, "allocations"),
                         "appliances", json_object_get(ap, "appliances"), "shipments", "completed_at", 0);
  json_decref(feed(&a, "onboarding.shipping-completed", id, json_incref(sc)));
  json_decref(feed(&f, "onboarding.shipping-completed", id, json_incref(sc)));
  rows = feed(&a, "onboarding.failed", id, failed(id, "shipping"));
  assert_int_equal(count(rows, "dead-letter"), 1);
  json_decref(rows);
  rows = feed(&f, "onboarding.failed", id, failed(id, "shipping"));
  assert_int_equal(count(rows, "dead-letter"), 1);
  json_decref(rows);
  assert_int_equal(txh_long(&a, "SELECT sum(allocated) FROM pools"), 265);
  assert_int_equal(txh_long(&f, "SELECT count(*) FROM units WHERE status = 'reserved'"), 3);
  json_decref(ua);
  json_decref(ap);
  json_decref(sc);
  txh_close(&a);
  txh_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_physical_onboarding),
      cmocka_unit_test(all_or_nothing),
      cmocka_unit_test(out_of_stock),
      cmocka_unit_test(unknown_region_and_sku),
      cmocka_unit_test(failures_past_their_stage),
      cmocka_unit_test(load_meets_a_lock),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
