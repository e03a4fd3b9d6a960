/* The customer account's lifecycle in intake, against the test PostgreSQL: reserved
 * when a request is accepted, released when the onboarding fails, active when it is
 * confirmed, never held by a rejected request, and one name won by one of two
 * racing resubmissions. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include <cmocka.h>

#include "intake.h"
#include "lmp/runtime/events.h"
#include "txh.h"

static struct intake in;
static char *regions[] = {"ca-central-1", NULL};
static char *skus[] = {"NS-100", NULL};
static const struct lmp_service svc = {
    .name = "intake", .routes = intake_routes, .migrations = intake_migrations, .ctx = &in};
static struct txh H;

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

/* Submits a request for a legal name on a license (a virtual MDR Core one, or MDR
 * Cloud users only); returns its id in id. */
static void submit_on(const char *license, const char *name, char id[37], int users) {
  char rid[37];
  new_id(rid);
  char json[2000];
  int cloud = strcmp(license, "MDR_CLOUD") == 0;
  snprintf(json, sizeof(json),
           "{\"request_id\": \"%s\", \"partner_id\": \"partner-a\", \"submitted_by\": \"a@partner.example.com\", "
           "\"license\": \"%s\", \"breach_or_incident\": false, \"customer\": {\"legal_name\": \"%s\", "
           "\"portal_admin_email\": \"it@customer.example.com\"}, \"users\": {\"tier\": %d, \"cloud\": %d, \"sat\": 0}, "
           "\"deployment\": %s, \"confirmed\": true, \"submitted_at\": 0}", rid, license, name, cloud ? 0 : users,
           cloud ? users : 0, cloud ? "null" : "{\"kind\": \"VIRTUAL\", \"hosting_region\": \"ca-central-1\"}");
  char evid[40];
  new_id(evid);
  txh_batch(&H, 1);
  txh_event(&H, 0, "onboarding.requested", rid, evid, json);
  assert_int_equal(txh_run(&H), 0);
  assert_int_equal(H.b->applied, 1);
  txh_done(&H);
  lmp_onboarding_id("partner-a", rid, id); /* the id intake gives it */
}

static void submit(const char *name, char id[37], int users) { submit_on("MDR_CORE", name, id, users); }

/* Delivers a lifecycle event to intake: whether it was applied (or refused). */
static size_t lifecycle(const char *event_type, const char *id) {
  char json[600], evid[40];
  if (strcmp(event_type, "onboarding.failed") == 0)
    snprintf(json, sizeof(json), "{\"onboarding_id\": \"%s\", \"partner_id\": \"partner-a\", \"stage\": \"allocation\", "
             "\"reasons\": [{\"code\": \"INSUFFICIENT_USERS\", \"field\": \"users\", \"message\": \"short\"}], "
             "\"onboarding\": null, \"failed_at\": 0}", id);
  else
    snprintf(json, sizeof(json), "{\"onboarding_id\": \"%s\", \"customer_id\": \"6d0f7c6e-0000-4000-8000-0000000000cc\", \"partner_id\": \"partner-a\", "
             "\"account_name\": \"x\", \"shipments\": 0, \"mails\": [], \"confirmed_at\": 0}", id);
  new_id(evid);
  txh_batch(&H, 1);
  txh_event(&H, 0, event_type, id, evid, json);
  assert_int_equal(txh_run(&H), 0);
  size_t applied = H.b->applied;
  txh_done(&H);
  return applied;
}

static const char *account(const char *id) {
  static char status[32];
  char sql[200];
  snprintf(sql, sizeof(sql), "SELECT status FROM customer_accounts WHERE onboarding_id = '%s'", id);
  PGresult *r = PQexec(H.rt.db.conn, sql);
  snprintf(status, sizeof(status), "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "none");
  PQclear(r);
  return status;
}

static const char *outcome(const char *id) {
  static char status[32];
  char sql[200];
  snprintf(sql, sizeof(sql), "SELECT status || ' ' || COALESCE(reasons->0->>'code', '') FROM onboardings "
           "WHERE onboarding_id = '%s'", id);
  PGresult *r = PQexec(H.rt.db.conn, sql);
  snprintf(status, sizeof(status), "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "none");
  PQclear(r);
  return status;
}

static void failed_releases_confirmed_holds(void **state) {
  char first[37], second[37], third[37];
  submit("Harbourview Dental", first, 51);
  assert_string_equal(account(first), "reserved");
  submit("HARBOURVIEW dental", second, 5); /* in flight: the name is held, in any letter case */
  assert_string_equal(outcome(second), "rejected LEGAL_NAME_TAKEN");
  assert_string_equal(account(second), "none"); /* a rejected request never holds an account */
  assert_int_equal(lifecycle("onboarding.failed", first), 1);
  assert_string_equal(account(first), "released");
  submit("Harbourview Dental", third, 50); /* corrected and resubmitted: accepted */
  assert_string_equal(outcome(third), "accepted ");
  assert_string_equal(account(third), "reserved");
  assert_int_equal(lifecycle("onboarding.confirmed", third), 1);
  assert_string_equal(account(third), "active");
  /* A failure after confirmation is refused, and changes nothing. */
  assert_int_equal(lifecycle("onboarding.failed", third), 0);
  assert_string_equal(account(third), "active");
  char fourth[37];
  submit("harbourview dental", fourth, 5);
  assert_string_equal(outcome(fourth), "rejected LEGAL_NAME_TAKEN");
}

/* An account is per partner and license: the same customer may hold an MDR Core and
 * an MDR Cloud account, but not two on one license. */
static void one_name_per_license(void **state) {
  char core[37], cloud[37], again[37];
  submit_on("MDR_CORE", "Seaside Optometry", core, 5);
  assert_string_equal(outcome(core), "accepted ");
  submit_on("MDR_CLOUD", "SEASIDE optometry", cloud, 5);
  assert_string_equal(outcome(cloud), "accepted ");
  assert_string_equal(account(cloud), "reserved");
  submit_on("MDR_CLOUD", "Seaside Optometry", again, 5);
  assert_string_equal(outcome(again), "rejected LEGAL_NAME_TAKEN");
  char sql[200];
  snprintf(sql, sizeof(sql), "SELECT reasons->0->>'message' FROM onboardings WHERE onboarding_id = '%s'", again);
  PGresult *r = PQexec(H.rt.db.conn, sql);
  assert_int_equal(PQntuples(r), 1);
  assert_string_equal(PQgetvalue(r, 0, 0),
                      "You already have a customer named 'Seaside Optometry' on your MDR Cloud license.");
  PQclear(r);
}

struct racer {
  struct txh h;
  const char *name;
  int taken, rc;
  struct timespec done;
};

static void *reserve(void *arg) {
  struct racer *r = arg;
  char cid[37], oid[37];
  new_id(cid);
  new_id(oid);
  r->rc = intake_account_reserve(&r->h.tx, cid, "partner-race", "MDR_CORE", r->name, oid, &r->taken);
  clock_gettime(CLOCK_MONOTONIC, &r->done);
  return NULL;
}

/* Two resubmissions of one name in two transactions at once: the second waits for
 * the first and finds the name taken if it commits, or takes it if it rolls back. */
static void racing_resubmissions(void **state) {
  for (int commit = 1; commit >= 0; commit--) {
    struct racer a = {.name = commit ? "Race Corp" : "Other Race Corp"}, b = {.name = a.name};
    txh_attach(&a.h, &svc, &H);
    txh_attach(&b.h, &svc, &H);
    txh_exec(&a.h, "BEGIN");
    txh_exec(&b.h, "BEGIN");
    reserve(&a);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.taken, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reserve, &b), 0);
    struct timespec pause = {0, 300 * 1000 * 1000}, before;
    nanosleep(&pause, NULL);
    clock_gettime(CLOCK_MONOTONIC, &before);
    txh_exec(&a.h, commit ? "COMMIT" : "ROLLBACK");
    pthread_join(t, NULL);
    /* b answered only once a had ended: it waited on the unique index. */
    assert_true(b.done.tv_sec > before.tv_sec || (b.done.tv_sec == before.tv_sec && b.done.tv_nsec >= before.tv_nsec));
    assert_int_equal(b.rc, 0);
    assert_int_equal(b.taken, commit);
    txh_exec(&b.h, "COMMIT");
    txh_close(&a.h);
    txh_close(&b.h);
  }
  assert_int_equal(txh_long(&H, "SELECT count(*) FROM customer_accounts WHERE partner_id = 'partner-race'"), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(failed_releases_confirmed_holds),
      cmocka_unit_test(racing_resubmissions),
      cmocka_unit_test(one_name_per_license),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
