/* Events of one onboarding on different topics arrive in either order (README, "Order
 * between topics"): each daemon that consumes two topics of one onboarding, fed them
 * the other way round, against the test PostgreSQL. Intake's side is unit.lifecycle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "allocation.h"
#include "fulfilment.h"
#include "notifier.h"
#include "txh.h"

static const struct lmp_service allocation = {
    .name = "allocation", .routes = allocation_routes, .migrations = allocation_migrations};
static const struct lmp_service fulfilment = {
    .name = "appliance-fulfilment", .routes = fulfilment_routes, .migrations = fulfilment_migrations};
static struct notifier mailer = {.template_dir = ""};
static const struct lmp_service notifier = {.name = "notifier",
                                            .routes = notifier_routes,
                                            .migrations = notifier_migrations,
                                            .ctx = &mailer,
                                            .tick = notifier_tick};

/* Feeds one event (the reference is taken); the events the daemon emitted, as JSON. */
static json_t *feed(struct txh *h, const char *event_type, const char *key, json_t *event) {
  static int seq;
  char *text = json_dumps(event, JSON_COMPACT);
  json_decref(event);
  char evid[32];
  snprintf(evid, sizeof(evid), "order-%d", seq++);
  txh_batch(h, 1);
  txh_event(h, 0, event_type, key, evid, text);
  free(text);
  assert_int_equal(txh_run(h), 0);
  assert_int_equal(h->b->applied, 1);
  json_t *rows = txh_rows(h);
  txh_done(h);
  return rows;
}

/* Runs the service's tick in its own transaction, as the runtime does. */
static json_t *tick(struct txh *h) {
  txh_batch(h, 0);
  h->b->kind = BATCH_TICK;
  assert_int_equal(txh_run(h), 0);
  json_t *rows = txh_rows(h);
  txh_done(h);
  return rows;
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

static json_t *failed(const char *id, const char *stage, const char *example) {
  return json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:s}], s:o, s:i}", "onboarding_id", id, "partner_id",
                   "partner-northwind", "stage", stage, "reasons", "code", "NO_DEFAULT_ADDRESS", "field", "",
                   "message", "no address", "onboarding", accepted(example, id), "failed_at", 0);
}

static json_t *unit(const char *sku, const char *serial) {
  return json_pack("{s:s, s:s, s:s, s:n, s:n, s:s}", "role", "PRIMARY", "sku", sku, "serial", serial, "virtual_id",
                   "hosting_region", "ship_to", "head-office");
}

static json_t *address(void) {
  return json_pack("{s:s, s:s, s:s, s:n, s:s, s:n, s:s, s:s, s:n}", "ref", "", "recipient", "IT", "line1",
                   "1 Water St", "line2", "city", "Halifax", "region", "postal_code", "B3H 1A1", "country", "CA",
                   "phone");
}

static size_t count(json_t *rows, const char *topic_suffix) {
  size_t i, n = 0;
  json_t *r;
  json_array_foreach(rows, i, r) n += strcmp(json_string_value(json_object_get(r, "topic")) + 2, topic_suffix) == 0;
  return n;
}

/* A shipment id as shipping makes them: the notifier refuses any other. */
#define SHIP "5b3c9e1a-7d2f-4c8b-9a0e-1f2d3c4b5a69"

/* The notifier hears of a shipment's dispatch before the shipping-completed that
 * arranged it (two topics): the tracking mail is owed from the dispatch alone; the
 * confirmation and the invitation when shipping-completed comes, which confirms the
 * onboarding at once, naming both as pending; then each one's fate is announced once
 * it is settled, whatever the tracking mail's state. */
static void notifier_dispatch_before_shipping(void **state) {
  struct txh n;
  txh_open(&n, &notifier);
  const char *id = "44444444-4444-4444-8444-444444444444";
  json_t *dispatch = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:[o], s:i}", "onboarding_id", id,
                               "shipment_id", SHIP, "partner_id", "partner-northwind", "partner_email",
                               "ops@northwind.example.com", "account_name", "Maritime Freight", "carrier", "Purolator",
                               "tracking_number", "PRL-1", "address", address(), "items", unit("NS-100", "A1"),
                               "dispatched_at", 0);
  json_decref(feed(&n, "onboarding.shipment-dispatched", id, dispatch));
  assert_int_equal(txh_long(&n, "SELECT count(*) FROM mails WHERE kind = 'dispatch:" SHIP "' AND body LIKE '%PRL-1%' "
                                "AND recipient = 'ops@northwind.example.com'"), 1);
  assert_int_equal(txh_long(&n, "SELECT count(*) FROM confirmations"), 0);

  json_t *completed = json_pack("{s:s, s:o, s:[{s:s, s:i}], s:[o], s:[{s:s, s:o, s:[o]}], s:i}", "onboarding_id", id,
                                "onboarding", accepted("physical-complete.json", id), "allocations", "product",
                                "MDR_COMPLETE", "users", 120, "appliances", unit("NS-100", "A1"), "shipments",
                                "shipment_id", SHIP, "address", address(), "items", unit("NS-100", "A1"),
                                "completed_at", 0);
  json_t *rows = feed(&n, "onboarding.shipping-completed", id, completed);
  assert_int_equal(txh_long(&n, "SELECT count(*) FROM mails WHERE kind IN ('confirmation', 'invitation')"), 2);
  assert_int_equal(txh_long(&n, "SELECT count(*) FROM mails"), 3); /* the tracking mail is still owed once */
  /* Confirmed in the same transaction, the two mails pending: no mail server holds it. */
  assert_int_equal(count(rows, "onboarding.confirmed"), 1);
  json_t *mails = json_object_get(json_object_get(json_array_get(rows, 0), "event"), "mails");
  assert_int_equal(json_array_size(mails), 2);
  for (size_t i = 0; i < 2; i++)
    assert_string_equal(json_string_value(json_object_get(json_array_get(mails, i), "status")), "pending");
  json_decref(rows);

  /* Nothing is settled yet: the tick announces nothing and confirms nothing again. */
  rows = tick(&n);
  assert_int_equal(json_array_size(rows), 0);
  json_decref(rows);
  /* The confirmation sent, the invitation refused by a server that quoted its
   * recipient: each announced once, with the reason in the notifier's own words. */
  txh_exec(&n, "UPDATE mails SET status = 'sent', settled_at = now() WHERE kind = 'confirmation'");
  txh_exec(&n, "UPDATE mails SET status = 'failed', settled_at = now(), last_error = '550 <' || recipient || "
               "'> no such user (SMTP 550)', fail_reason = 'the mail server refused it (SMTP 550)' "
               "WHERE kind = 'invitation'");
  rows = tick(&n);
  assert_int_equal(count(rows, "onboarding.confirmed"), 0);
  assert_int_equal(count(rows, "onboarding.mail-settled"), 2);
  size_t i;
  json_t *r;
  json_array_foreach(rows, i, r) {
    json_t *ev = json_object_get(r, "event");
    const char *kind = json_string_value(json_object_get(ev, "kind"));
    const char *status = json_string_value(json_object_get(ev, "status"));
    json_t *reason = json_object_get(ev, "reason");
    assert_string_equal(json_string_value(json_object_get(ev, "onboarding_id")), id);
    if (strcmp(kind, "confirmation") == 0) {
      assert_string_equal(status, "sent");
      assert_true(json_is_null(reason));
    } else {
      assert_string_equal(kind, "invitation");
      assert_string_equal(status, "failed");
      const char *why = json_string_value(json_object_get(reason, "string"));
      if (why == NULL)
        why = json_string_value(reason);
      assert_non_null(why);
      assert_string_equal(why, "the mail server refused it (SMTP 550)");
    }
  }
  json_decref(rows);
  rows = tick(&n); /* announced once */
  assert_int_equal(json_array_size(rows), 0);
  json_decref(rows);
  assert_int_equal(txh_long(&n, "SELECT count(*) FROM mails WHERE kind = 'dispatch:" SHIP "' AND status = 'pending'"),
                   1);
  txh_close(&n);
}

/* What an upgrade leaves: an onboarding recorded by the previous version, waiting for
 * its confirmation with one mail sent and one pending. The tick confirms it with the
 * mails as they stand, then announces each as it settles, once. */
static void notifier_confirms_what_an_upgrade_left(void **state) {
  struct txh n;
  txh_open(&n, &notifier);
  txh_exec(&n, "INSERT INTO confirmations(onboarding_id, customer_id, partner_id, account_name, shipments, "
               "correlation_id, traceparent, partner_email) VALUES ('77777777-7777-4777-8777-777777777777', "
               "'6d0f7c6e-0000-4000-8000-000000000001', 'partner-northwind', 'Old Ltd', 0, 'req-old', "
               "'00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'ops@northwind.example.com')");
  txh_exec(&n, "INSERT INTO mails(onboarding_id, kind, recipient, subject, body, status, sent_at, settled_at) VALUES "
               "('77777777-7777-4777-8777-777777777777', 'confirmation', 'ops@northwind.example.com', 's', 'b', "
               "'sent', now(), now()), ('77777777-7777-4777-8777-777777777777', 'invitation', "
               "'admin@old.example.com', 's', 'b', 'pending', NULL, NULL)");
  json_t *rows = tick(&n);
  assert_int_equal(count(rows, "onboarding.confirmed"), 1);
  assert_int_equal(count(rows, "onboarding.mail-settled"), 1);
  size_t i;
  json_t *r;
  json_array_foreach(rows, i, r) {
    json_t *ev = json_object_get(r, "event");
    /* Both continue the trace and correlation stored with the onboarding. */
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(r, "headers"), "traceparent")),
                           "4bf92f3577b34da6a3ce929d0e0e4736"));
    if (json_object_get(ev, "mails")) {
      json_t *m = json_object_get(ev, "mails");
      assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "status")), "sent");
      assert_string_equal(json_string_value(json_object_get(json_array_get(m, 1), "status")), "pending");
    } else {
      assert_string_equal(json_string_value(json_object_get(ev, "kind")), "confirmation");
    }
  }
  json_decref(rows);
  rows = tick(&n);
  assert_int_equal(json_array_size(rows), 0);
  json_decref(rows);
  txh_exec(&n, "UPDATE mails SET status = 'failed', settled_at = now(), fail_reason = 'no mail server took it in "
               "10 attempts' WHERE kind = 'invitation'");
  rows = tick(&n);
  assert_int_equal(count(rows, "onboarding.mail-settled"), 1);
  assert_int_equal(json_array_size(rows), 1);
  json_decref(rows);
  txh_close(&n);
}

/* Appliance-fulfilment hears of a later stage's failure before the users-allocated it
 * would undo (only a late event, such as a replayed dead letter, can do that: the
 * failure follows fulfilment's own appliances-provisioned): nothing to give back, and
 * the late users-allocated reserves nothing and provisions nothing. */
static void fulfilment_failure_before_allocated(void **state) {
  struct txh f;
  txh_open(&f, &fulfilment);
  txh_exec(&f, "INSERT INTO skus VALUES ('NS-100', ''), ('NS-500', '')");
  txh_exec(&f, "INSERT INTO units(serial, sku) VALUES ('A1', 'NS-100'), ('A2', 'NS-100'), ('B1', 'NS-500')");
  const char *id = "55555555-5555-4555-8555-555555555555";
  json_t *rows = feed(&f, "onboarding.failed", id, failed(id, "shipping", "physical-complete.json"));
  assert_int_equal(json_array_size(rows), 0);
  json_decref(rows);
  json_t *ua = json_pack("{s:s, s:o, s:[{s:s, s:i}], s:i}", "onboarding_id", id, "onboarding",
                         accepted("physical-complete.json", id), "allocations", "product", "MDR_COMPLETE", "users",
                         120, "allocated_at", 0);
  rows = feed(&f, "onboarding.users-allocated", id, ua);
  assert_int_equal(json_array_size(rows), 0);
  json_decref(rows);
  assert_int_equal(txh_long(&f, "SELECT count(*) FROM units WHERE status = 'available'"), 3);
  assert_int_equal(txh_long(&f, "SELECT count(*) FROM onboardings WHERE status = 'released'"), 1);
  txh_close(&f);
}

/* Allocation hears of a later stage's failure before the acceptance it would undo
 * (again only a late event): the late acceptance draws nothing from the pools. */
static void allocation_failure_before_accepted(void **state) {
  struct txh a;
  txh_open(&a, &allocation);
  txh_exec(&a, "INSERT INTO partners VALUES ('partner-northwind', 'N')");
  txh_exec(&a, "INSERT INTO pools VALUES ('partner-northwind', 'MDR_COMPLETE', 200, 0), "
               "('partner-northwind', 'MDR_CLOUD', 30, 0), ('partner-northwind', 'BEAUCERON_SAT', 120, 0)");
  const char *id = "66666666-6666-4666-8666-666666666666";
  json_decref(feed(&a, "onboarding.failed", id, failed(id, "appliance-fulfilment", "physical-complete.json")));
  json_t *rows = feed(&a, "onboarding.accepted", id, accepted("physical-complete.json", id));
  assert_int_equal(json_array_size(rows), 0);
  json_decref(rows);
  assert_int_equal(txh_long(&a, "SELECT sum(allocated) FROM pools"), 0);
  assert_int_equal(txh_long(&a, "SELECT count(*) FROM allocations"), 0);
  txh_close(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(notifier_dispatch_before_shipping),
      cmocka_unit_test(notifier_confirms_what_an_upgrade_left),
      cmocka_unit_test(fulfilment_failure_before_allocated),
      cmocka_unit_test(allocation_failure_before_accepted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
