/* On onboarding.accepted, draw every product's users from the partner's pools in one
 * step or not at all; on onboarding.failed, give them back; on
 * onboarding.shipping-completed, keep them for good. */
#include "allocation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"
#include "lmp/runtime/events.h"

#define STAGE "allocation"

/* The products in the order a license lists them (and its shortfalls are named in). */
static const char *const products[] = {"MDR_CORE", "MDR_COMPLETE", "MDR_CLOUD", "BEAUCERON_SAT"};
static const char *const product_names[] = {"MDR Core", "MDR Complete", "MDR Cloud", "Beauceron SAT"};

/* Every transaction that changes a partner's pools locks its partners row first (and
 * raises its balance_version there), then its pools: the admin load and the balance
 * tick take them in that order too, so none waits on another in a circle. */
#define PARTNER_FIRST "SELECT 1 FROM partners WHERE partner_id = $1 FOR NO KEY UPDATE"

struct need {
  int product; /* index into products */
  int users;
};

static int fail(struct lmp_tx *tx, const char *id, const char *partner, struct lmp_reason *rs,
                size_t n, avro_value_t *onboarding) {
  char *reasons = lmp_reasons_json(rs, n);
  const char *p[] = {id, partner, reasons};
  int r = reasons ? lmp_tx_command(tx, "INSERT INTO onboardings(onboarding_id, partner_id, status, reasons) "
                                       "VALUES ($1, $2, 'refused', $3::jsonb)", 3, p)
                  : LMP_ENOMEM;
  free(reasons);
  lmp_info(id, "refused: %s", rs[0].message);
  return r ? r : lmp_emit_failed(tx, id, partner, STAGE, rs, n, onboarding);
}

/* What a license's counts draw from: its tier's pool, the cloud pool, the SAT pool. */
static size_t needs_of(int license, avro_value_t *users, struct need needs[4]) {
  size_t nn = 0;
  int tier = lmp_av_int(users, "tier"), cloud = lmp_av_int(users, "cloud"), sat = lmp_av_int(users, "sat");
  if (license == 0 && tier > 0)
    needs[nn++] = (struct need){0, tier};
  if (license == 1 && tier > 0)
    needs[nn++] = (struct need){1, tier};
  if (cloud > 0)
    needs[nn++] = (struct need){2, cloud};
  if (sat > 0)
    needs[nn++] = (struct need){3, sat};
  return nn;
}

/* needs as two array literals, {MDR_CORE,MDR_CLOUD} and {10,5}: the products are
 * this file's own names, so nothing in them needs quoting. */
static void needs_arrays(const struct need *needs, size_t nn, char *products_a, char *users_a, size_t len) {
  size_t a = 0, b = 0;
  products_a[a++] = '{';
  users_a[b++] = '{';
  for (size_t i = 0; i < nn; i++) {
    a += (size_t)snprintf(products_a + a, len - a, "%s%s", i ? "," : "", products[needs[i].product]);
    b += (size_t)snprintf(users_a + b, len - b, "%s%d", i ? "," : "", needs[i].users);
  }
  snprintf(products_a + a, len - a, "}");
  snprintf(users_a + b, len - b, "}");
}

/* Draws every need from the partner's pools or none, in one statement (the partner's
 * row is locked, PARTNER_FIRST, so the pools it sees are the pools it updates): each
 * shortfall a reason in rs (*nr of them, at most 4) naming the product, what was
 * requested and what is available, and then nothing is drawn. Should a pool change
 * between the statement's look and its update all the same (a writer that did not
 * lock the partner first), part would be drawn: LMP_ERETRY rolls it all back. */
static int draw(struct lmp_tx *tx, const char *partner, const struct need *needs, size_t nn, struct lmp_reason *rs,
                size_t *nr) {
  char products_a[96], users_a[96];
  needs_arrays(needs, nn, products_a, users_a, sizeof(products_a));
  const char *p[] = {partner, products_a, users_a};
  PGresult *res;
  int r = lmp_tx_query(tx, "WITH need AS (SELECT * FROM unnest($2::text[], $3::int[]) AS n(product, users)), "
                           "short AS (SELECT n.product, n.users, COALESCE(p.total - p.allocated, 0) AS avail "
                           "  FROM need n LEFT JOIN pools p ON p.partner_id = $1 AND p.product = n.product "
                           "  WHERE p.product IS NULL OR p.allocated + n.users > p.total), "
                           "drawn AS (UPDATE pools p SET allocated = p.allocated + n.users FROM need n "
                           "  WHERE p.partner_id = $1 AND p.product = n.product "
                           "  AND p.allocated + n.users <= p.total AND NOT EXISTS (SELECT 1 FROM short) RETURNING 1) "
                           "SELECT s.product, s.avail, (SELECT count(*) FROM drawn) FROM (SELECT 1) one "
                           "LEFT JOIN short s ON true ORDER BY array_position($2::text[], s.product)",
                       3, p, &res);
  if (r < 0)
    return r;
  for (int i = 0; i < PQntuples(res) && !PQgetisnull(res, i, 0); i++) {
    const struct need *n = NULL;
    for (size_t k = 0; k < nn && n == NULL; k++)
      if (strcmp(products[needs[k].product], PQgetvalue(res, i, 0)) == 0)
        n = &needs[k];
    if (n == NULL || *nr >= 4)
      continue;
    lmp_reason_set(&rs[*nr], "INSUFFICIENT_USERS", "users", "%s: %d users requested, %ld available on %s's license.",
                   product_names[n->product], n->users, strtol(PQgetvalue(res, i, 1), NULL, 10), LMP_Q(partner));
    (*nr)++;
  }
  long drawn = PQntuples(res) ? strtol(PQgetvalue(res, 0, 2), NULL, 10) : 0;
  PQclear(res);
  if (*nr == 0 && drawn != (long)nn) {
    lmp_warn(NULL, "a pool of %s changed while its users were drawn; trying again", partner);
    return LMP_ERETRY;
  }
  return 0;
}

static int on_accepted(struct lmp_tx *tx, const struct lmp_event *ev) {
  avro_value_t *acc = ev->value, req, cust, users;
  const char *id = lmp_av_str(acc, "onboarding_id");
  if (id == NULL || lmp_av_field(acc, "request", &req) < 0 || lmp_av_field(&req, "customer", &cust) < 0 ||
      lmp_av_field(&req, "users", &users) < 0)
    return lmp_tx_reject(tx, "onboarding.accepted without onboarding_id or its request");
  const char *partner = lmp_av_str(&req, "partner_id");
  const char *sub = lmp_av_str(&cust, "sub_partner_id");
  int license = lmp_av_enum(&req, "license");
  /* Whether it was handled before, and the partner locked first (PARTNER_FIRST), in
   * one round trip: the lock taken for a redelivery as well costs nothing worth a
   * second one. */
  const char *p1[] = {id, partner};
  PGresult *res;
  int found, r = lmp_tx_query(tx, "SELECT EXISTS (SELECT 1 FROM onboardings WHERE onboarding_id = $1), "
                                  "EXISTS (SELECT 1 FROM partners WHERE partner_id = $2 FOR NO KEY UPDATE)",
                              2, p1, &res);
  if (r < 0)
    return r;
  int seen = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  found = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
  PQclear(res);
  if (seen) {
    lmp_info(id, "already allocated or refused; nothing to do");
    return 0;
  }

  struct lmp_reason rs[4];
  size_t nr = 0;
  const char *p2[] = {partner, sub};
  if (!found) {
    lmp_reason_set(&rs[0], "UNKNOWN_PARTNER", "partner_id", "Partner '%s' holds no volume license.", LMP_Q(partner));
    return fail(tx, id, partner, rs, 1, acc);
  }
  /* A sub-partner that does not share the license and one that does not exist get the
   * same answer: the reason goes to the requesting partner, who must not learn from
   * it which other partners there are. */
  if (sub && *sub) {
    if ((r = lmp_tx_exists(tx, "SELECT 1 FROM license_shares WHERE partner_id = $1 AND sub_partner_id = $2",
                    2, p2, &found)) < 0)
      return r;
    if (!found) {
      lmp_reason_set(&rs[0], "SUB_PARTNER_NOT_SHARING", "customer.sub_partner_id",
                     "'%s' is not a partner that shares your volume license.", LMP_Q(sub));
      return fail(tx, id, partner, rs, 1, acc);
    }
  }

  struct need needs[4];
  size_t nn = needs_of(license, &users, needs);
  if ((r = draw(tx, partner, needs, nn, rs, &nr)) < 0)
    return r;
  if (nr)
    return fail(tx, id, partner, rs, nr, acc);
  /* The partner's balance changed: announced by the tick (balance.c). */
  char products_a[96], users_a[96];
  needs_arrays(needs, nn, products_a, users_a, sizeof(products_a));
  const char *p3[] = {id, partner, products_a, users_a};
  if ((r = lmp_tx_send(tx, "WITH changed AS (UPDATE partners SET balance_version = balance_version + 1 "
                           "WHERE partner_id = $2), kept AS (INSERT INTO allocations(onboarding_id, partner_id, "
                           "product, users) SELECT $1, $2, a.product, a.users "
                           "FROM unnest($3::text[], $4::int[]) AS a(product, users)) "
                           "INSERT INTO onboardings(onboarding_id, partner_id, status) VALUES ($1, $2, 'allocated')",
                       4, p3)) < 0)
    return r;
  lmp_tx_wake(tx);

  avro_value_t out, arr;
  if ((r = lmp_tx_value(tx, "onboarding.users-allocated", &out)) < 0)
    return r;
  r = lmp_av_set_str(&out, "onboarding_id", id);
  if (r == 0)
    r = lmp_av_copy_field(&out, "onboarding", acc);
  if (r == 0)
    r = avro_value_get_by_name(&out, "allocations", &arr, NULL) ? LMP_EINVAL : 0;
  for (size_t i = 0; r == 0 && i < nn; i++) {
    avro_value_t e, f;
    if (avro_value_append(&arr, &e, NULL) || avro_value_get_by_name(&e, "product", &f, NULL) ||
        avro_value_set_enum(&f, needs[i].product) || lmp_av_set_int(&e, "users", needs[i].users))
      r = LMP_ENOMEM;
  }
  if (r == 0)
    r = lmp_av_set_long(&out, "allocated_at", lmp_now_ms());
  if (r == 0)
    r = lmp_tx_emit(tx, "onboarding.users-allocated", id, &out);
  avro_value_decref(&out);
  if (r == 0)
    lmp_info(id, "allocated %zu products for %s", nn, partner);
  return r;
}

/* Compensation: a later stage failed, so the users go back to the pools, once. Only
 * a stage after ours can fail an onboarding we allocated, and none can once its
 * shipping completed: such a failure was not written by the flow, and is refused. */
static int on_failed(struct lmp_tx *tx, const struct lmp_event *ev) {
  const char *id = lmp_av_str(ev->value, "onboarding_id");
  const char *stage = lmp_av_str(ev->value, "stage");
  if (id == NULL || stage == NULL)
    return lmp_tx_reject(tx, "onboarding.failed without onboarding_id or stage");
  if (strcmp(stage, STAGE) == 0)
    return 0; /* our own refusal: nothing was taken */
  if (strcmp(stage, "appliance-fulfilment") != 0 && strcmp(stage, "shipping") != 0)
    return lmp_tx_reject(tx, "onboarding.failed names stage '%.64s', which fails no onboarding after allocation",
                         stage);
  const char *p[] = {id};
  int done;
  int r0 = lmp_tx_exists(tx, "SELECT 1 FROM onboardings WHERE onboarding_id = $1 AND status = 'completed'", 1, p,
                         &done);
  if (r0 < 0)
    return r0;
  if (done)
    return lmp_tx_reject(tx, "onboarding.failed from %s for an onboarding whose shipping completed: its users stay",
                         stage);
  PGresult *res;
  int locked; /* the partner first (PARTNER_FIRST), then its pools below */
  int r = lmp_tx_exists(tx, "SELECT 1 FROM partners WHERE partner_id = "
                            "(SELECT partner_id FROM onboardings WHERE onboarding_id = $1) FOR NO KEY UPDATE", 1, p,
                        &locked);
  if (r == 0)
    r = lmp_tx_query(tx, "UPDATE onboardings SET status = 'released', updated_at = now() "
                           "WHERE onboarding_id = $1 AND status = 'allocated' RETURNING 1", 1, p, &res);
  if (r < 0)
    return r;
  int had = PQntuples(res) == 1;
  PQclear(res);
  if (!had) {
    /* Heard before the acceptance it undoes (a failure follows our own users-allocated,
     * so only an event delivered late, such as a replayed dead letter, comes after it):
     * nothing to give back, and the onboarding is closed so that the late acceptance
     * draws nothing for an onboarding that failed. */
    const char *p2[] = {id, lmp_av_str(ev->value, "partner_id")};
    return lmp_tx_command(tx, "INSERT INTO onboardings(onboarding_id, partner_id, status) "
                              "VALUES ($1, COALESCE($2, ''), 'released') ON CONFLICT DO NOTHING", 2, p2);
  }
  r = lmp_tx_command(tx, "WITH back AS (UPDATE pools p SET allocated = p.allocated - a.users FROM allocations a "
                         "WHERE a.onboarding_id = $1 AND p.partner_id = a.partner_id AND p.product = a.product "
                         "RETURNING p.partner_id) UPDATE partners SET balance_version = balance_version + 1 "
                         "WHERE partner_id IN (SELECT partner_id FROM back)", 1, p);
  lmp_tx_wake(tx);
  if (r == 0)
    lmp_info(id, "released the users: %s failed", stage);
  return r;
}

/* The batch's completed onboardings, one statement for all (lmp_tx_add). */
static const struct lmp_set completed_set = {
    "UPDATE onboardings o SET status = 'completed', updated_at = now() FROM unnest($1::text[]) AS r(id) "
    "WHERE o.onboarding_id = r.id AND o.status = 'allocated'",
    1};

/* Shipping completed: nothing can fail the onboarding any more, so its users are
 * allocated for good, and a failure that names it later is refused. */
static int on_completed(struct lmp_tx *tx, const struct lmp_event *ev) {
  const char *id = lmp_av_str(ev->value, "onboarding_id");
  if (id == NULL)
    return lmp_tx_reject(tx, "onboarding.shipping-completed without onboarding_id");
  const char *p[] = {id};
  return lmp_tx_add(tx, &completed_set, p);
}

/* customer.users-accepted: more users for an existing customer, drawn all or nothing
 * like an onboarding's, once per addition; customer.users-added, or -refused naming
 * the shortfall. No later stage can fail an addition: its users stay. */
static int on_users_accepted(struct lmp_tx *tx, const struct lmp_event *ev) {
  avro_value_t *acc = ev->value, users;
  const char *id = lmp_av_str(acc, "addition_id"), *partner = lmp_av_str(acc, "partner_id");
  int license = lmp_av_enum(acc, "license");
  if (id == NULL || partner == NULL || license < 0 || lmp_av_field(acc, "users", &users) < 0)
    return lmp_tx_reject(tx, "customer.users-accepted without addition_id, partner_id, license or users");
  const char *p1[] = {id};
  int found, r = lmp_tx_exists(tx, "SELECT 1 FROM additions WHERE addition_id = $1", 1, p1, &found);
  if (r < 0 || found)
    return r;
  struct lmp_reason rs[4];
  size_t nr = 0, nn = 0;
  struct need needs[4];
  const char *p2[] = {partner};
  if ((r = lmp_tx_exists(tx, PARTNER_FIRST, 1, p2, &found)) < 0)
    return r;
  if (!found)
    lmp_reason_set(&rs[nr++], "UNKNOWN_PARTNER", "partner_id", "Partner '%s' holds no volume license.",
                   LMP_Q(partner));
  else if ((nn = needs_of(license, &users, needs)) > 0 && (r = draw(tx, partner, needs, nn, rs, &nr)) < 0)
    return r;
  int added = nr == 0;
  const char *type = added ? "customer.users-added" : "customer.users-refused";
  avro_value_t out, arr;
  if ((r = lmp_tx_value(tx, type, &out)) < 0)
    return r;
  r = lmp_av_set_str(&out, "addition_id", id);
  if (r == 0)
    r = lmp_av_copy_field(&out, "addition", acc);
  if (r == 0)
    r = avro_value_get_by_name(&out, added ? "allocations" : "reasons", &arr, NULL) ? LMP_EINVAL : 0;
  json_t *list = json_array();
  for (size_t i = 0; r == 0 && added && i < nn; i++) {
    avro_value_t e, f;
    if (avro_value_append(&arr, &e, NULL) || avro_value_get_by_name(&e, "product", &f, NULL) ||
        avro_value_set_enum(&f, needs[i].product) || lmp_av_set_int(&e, "users", needs[i].users))
      r = LMP_ENOMEM;
    json_array_append_new(list, json_pack("{s:s,s:i}", "product", products[needs[i].product], "users", needs[i].users));
  }
  if (r == 0 && !added)
    r = lmp_av_set_reasons(&arr, rs, nr);
  if (r == 0)
    r = lmp_av_set_long(&out, added ? "added_at" : "refused_at", lmp_now_ms());
  char *allocs = list ? json_dumps(list, JSON_COMPACT) : NULL, *reasons = lmp_reasons_json(rs, nr);
  json_decref(list);
  const char *p3[] = {id, partner, added ? "added" : "refused", allocs, reasons};
  if (r == 0)
    r = allocs && reasons
            ? lmp_tx_command(tx, added ? "WITH changed AS (UPDATE partners SET balance_version = balance_version + 1 "
                                         "WHERE partner_id = $2) INSERT INTO additions(addition_id, partner_id, status, "
                                         "allocations, reasons) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb)"
                                       : "INSERT INTO additions(addition_id, partner_id, status, allocations, reasons) "
                                         "VALUES ($1, $2, $3, $4::jsonb, $5::jsonb)",
                             5, p3)
            : LMP_ENOMEM;
  free(allocs);
  free(reasons);
  if (r == 0 && added)
    lmp_tx_wake(tx); /* the partner's balance changed: the tick announces it */
  if (r == 0)
    r = lmp_tx_emit(tx, type, id, &out);
  avro_value_decref(&out);
  if (r == 0)
    lmp_info(id, "users for %s %s", partner, added ? "added" : rs[0].message);
  return r;
}

const struct lmp_route allocation_routes[] = {
    {"onboarding.accepted", on_accepted, NULL, 0},
    {"onboarding.failed", on_failed, NULL, 0},
    {"onboarding.shipping-completed", on_completed, NULL, 0},
    {"customer.users-accepted", on_users_accepted, NULL, 0},
    {NULL, NULL, NULL, 0},
};
