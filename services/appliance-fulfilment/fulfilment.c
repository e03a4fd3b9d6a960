/* On users-allocated, reserve units or provision a virtual appliance, then emit
 * appliances-provisioned; on a later failure, give them back. */
#include "fulfilment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"
#include "lmp/runtime/events.h"

#define STAGE "appliance-fulfilment"

static int record(struct lmp_tx *tx, const char *id, const char *status, const struct lmp_reason *rs, size_t n) {
  char *reasons = lmp_reasons_json(rs, n);
  const char *p[] = {id, status, reasons};
  int r = reasons ? lmp_tx_send(tx, "INSERT INTO onboardings(onboarding_id, status, reasons) "
                                    "VALUES ($1, $2, $3::jsonb)", 3, p)
                  : LMP_ENOMEM;
  free(reasons);
  return r;
}

/* A refusal puts back the units the onboarding took before it (taken: how many) and
 * records it refused. Written back rather than rolled back to a savepoint: a savepoint
 * per onboarding, for the rare one that lacks stock, made every batch a chain of
 * subtransactions, each with an id of its own (past 64 in one transaction, snapshots
 * taken meanwhile look them up in pg_subtrans). The units holding this onboarding's id
 * are the ones reserved just now (an onboarding seen before takes nothing); an
 * available unit has no onboarding (the table's check) and no reservation time (every
 * write that frees a unit clears it). Unlike the rollback, the units stay locked until
 * the batch commits: another instance short of them meanwhile retries its batch. */
static int refuse(struct lmp_tx *tx, const char *id, const char *partner, struct lmp_reason *rs,
                  size_t n, avro_value_t *onboarding, int taken) {
  const char *p[] = {id};
  int r = taken ? lmp_tx_command(tx, "UPDATE units SET status = 'available', onboarding_id = NULL, "
                                     "reserved_at = NULL WHERE onboarding_id = $1", 1, p)
                : 0;
  if (r == 0)
    r = record(tx, id, "refused", rs, n);
  lmp_info(id, "refused: %s", rs[0].message);
  return r ? r : lmp_emit_failed(tx, id, partner, STAGE, rs, n, onboarding);
}

static int append_unit(avro_value_t *arr, int role, const char *sku, const char *serial,
                       const char *virtual_id, const char *region, const char *ship_to) {
  avro_value_t e, f;
  if (avro_value_append(arr, &e, NULL) || avro_value_get_by_name(&e, "role", &f, NULL) ||
      avro_value_set_enum(&f, role) || lmp_av_set_str(&e, "sku", sku) || lmp_av_set_str(&e, "serial", serial) ||
      lmp_av_set_str(&e, "virtual_id", virtual_id) || lmp_av_set_str(&e, "hosting_region", region) ||
      lmp_av_set_str(&e, "ship_to", ship_to))
    return LMP_ENOMEM;
  return 0;
}

/* Takes one available unit of sku. Locked rows that another transaction frees in the
 * meantime are skipped by the first try, so it tries again while any remain. */
static int take_unit(struct lmp_tx *tx, const char *id, const char *sku, char *serial, size_t len) {
  const char *p[] = {id, sku};
  for (int attempt = 0; attempt < 5; attempt++) {
    PGresult *res;
    int r = lmp_tx_query(tx, "UPDATE units SET status = 'reserved', onboarding_id = $1, reserved_at = now() "
                             "WHERE serial = (SELECT serial FROM units WHERE sku = $2 AND status = 'available' "
                             "ORDER BY serial LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING serial", 2, p, &res);
    if (r < 0)
      return r;
    if (PQntuples(res) == 1) {
      snprintf(serial, len, "%s", PQgetvalue(res, 0, 0));
      PQclear(res);
      return 1;
    }
    PQclear(res);
    const char *p2[] = {sku};
    int any;
    if ((r = lmp_tx_exists(tx, "SELECT 1 FROM units WHERE sku = $1 AND status = 'available' LIMIT 1", 1, p2,
                           &any)) < 0)
      return r;
    if (!any)
      return 0;
  }
  return LMP_ERETRY; /* every free unit locked by other transactions: contention, retry the batch */
}

static int on_allocated(struct lmp_tx *tx, const struct lmp_event *ev) {
  avro_value_t *in = ev->value, acc, req, dep, apps, allocs;
  const char *id = lmp_av_str(in, "onboarding_id");
  if (id == NULL || lmp_av_field(in, "onboarding", &acc) < 0 || lmp_av_field(&acc, "request", &req) < 0 ||
      lmp_av_field(in, "allocations", &allocs) < 0)
    return lmp_tx_reject(tx, "users-allocated without onboarding_id, its onboarding or allocations");
  const char *partner = lmp_av_str(&req, "partner_id");
  const char *p1[] = {id};
  int seen, r = lmp_tx_exists(tx, "SELECT 1 FROM onboardings WHERE onboarding_id = $1", 1, p1, &seen);
  if (r < 0 || seen)
    return r; /* a redelivery under another event id: done already */

  avro_value_t out, units;
  r = lmp_tx_value(tx, "onboarding.appliances-provisioned", &out);
  if (r < 0)
    return r;
  if ((r = avro_value_get_by_name(&out, "appliances", &units, NULL) ? LMP_EINVAL : 0) < 0)
    goto out;
  struct lmp_reason rs[8];
  size_t nr = 0;
  int taken = 0; /* units reserved, which a refusal puts back */
  if (lmp_av_field(&req, "deployment", &dep) == 0) {
    int kind = lmp_av_enum(&dep, "kind");
    const char *region = lmp_av_str(&dep, "hosting_region");
    if (kind == 0) { /* VIRTUAL */
      char vid[37];
      uuid_t u;
      uuid_generate(u);
      uuid_unparse_lower(u, vid);
      const char *p[] = {vid, id, region ? region : ""};
      int known; /* provisioned where the region is one that hosts appliances */
      if ((r = lmp_tx_exists(tx, "INSERT INTO virtual_appliances(appliance_id, onboarding_id, region, status) "
                                 "SELECT $1, $2, $3, 'provisioned' WHERE EXISTS "
                                 "(SELECT 1 FROM hosting_regions WHERE region = $3) RETURNING 1", 3, p, &known)) < 0)
        goto out;
      if (!known) {
        lmp_reason_set(&rs[0], "UNKNOWN_HOSTING_REGION", "deployment.hosting_region",
                       "Hosting region '%s' cannot host appliances.", LMP_Q(p[2]));
        r = refuse(tx, id, partner, rs, 1, &acc, taken);
        goto out;
      }
      if ((r = append_unit(&units, 0, "VIRTUAL", NULL, vid, region, NULL)) < 0)
        goto out;
    } else if (avro_value_get_by_name(&dep, "appliances", &apps, NULL) == 0) {
      size_t n = 0;
      avro_value_get_size(&apps, &n);
      for (size_t i = 0; i < n; i++) {
        avro_value_t a;
        avro_value_get_by_index(&apps, i, &a, NULL);
        const char *sku = lmp_av_str(&a, "sku");
        const char *p[] = {sku ? sku : ""};
        char serial[128];
        int got = take_unit(tx, id, p[0], serial, sizeof(serial)), known = 1;
        taken += got > 0;
        /* None taken: out of stock, or not a model in the catalogue at all. */
        if (got == 0 && (r = lmp_tx_exists(tx, "SELECT 1 FROM skus WHERE sku = $1", 1, p, &known)) < 0)
          goto out;
        if (got < 0) {
          r = got;
          goto out;
        }
        if (got)
          r = append_unit(&units, lmp_av_enum(&a, "role"), p[0], serial, NULL, NULL, lmp_av_str(&a, "ship_to"));
        else if (nr < 8) {
          char field[64]; /* at the appliance's model, where the page shows it */
          snprintf(field, sizeof(field), "deployment.appliances[%zu].sku", i);
          if (known)
            lmp_reason_set(&rs[nr], "OUT_OF_STOCK", field, "No %s appliance is in stock for appliance %zu.",
                           LMP_Q(p[0]), i + 1);
          else
            lmp_reason_set(&rs[nr], "UNKNOWN_SKU", field, "SKU '%s' of appliance %zu is not in the catalogue.",
                           LMP_Q(p[0]), i + 1);
          nr++;
        }
        if (r < 0)
          goto out;
      }
    }
  }
  if (nr) {
    r = refuse(tx, id, partner, rs, nr, &acc, taken);
    goto out;
  }
  size_t nunits = 0;
  avro_value_get_size(&units, &nunits);
  if ((r = record(tx, id, "provisioned", NULL, 0)) < 0 || (r = lmp_av_set_str(&out, "onboarding_id", id)) < 0 ||
      (r = lmp_av_copy_field(&out, "onboarding", &acc)) < 0 ||
      (r = lmp_av_copy_field(&out, "allocations", &allocs)) < 0 ||
      (r = lmp_av_set_long(&out, "provisioned_at", lmp_now_ms())) < 0)
    goto out;
  r = lmp_tx_emit(tx, "onboarding.appliances-provisioned", id, &out);
  if (r == 0)
    lmp_info(id, "provisioned %zu appliances", nunits);
out:
  avro_value_decref(&out);
  return r;
}

/* Compensation: units back to stock, the virtual appliance released, once. Shipping
 * may fail an onboarding we provisioned, allocation only one we never heard of (its
 * users-allocated is what we provision on), and nothing one whose shipping completed:
 * any other failure was not written by the flow, and is refused. */
static int on_failed(struct lmp_tx *tx, const struct lmp_event *ev) {
  const char *id = lmp_av_str(ev->value, "onboarding_id");
  const char *stage = lmp_av_str(ev->value, "stage");
  if (id == NULL || stage == NULL)
    return lmp_tx_reject(tx, "onboarding.failed without onboarding_id or stage");
  if (strcmp(stage, STAGE) == 0)
    return 0;
  int from_allocation = strcmp(stage, "allocation") == 0;
  if (!from_allocation && strcmp(stage, "shipping") != 0)
    return lmp_tx_reject(tx, "onboarding.failed names stage '%.64s', which fails no onboarding", stage);
  const char *p[] = {id};
  int past;
  int r = lmp_tx_exists(tx, from_allocation ? "SELECT 1 FROM onboardings WHERE onboarding_id = $1 "
                                              "AND status IN ('provisioned', 'completed')"
                                            : "SELECT 1 FROM onboardings WHERE onboarding_id = $1 "
                                              "AND status = 'completed'",
                        1, p, &past);
  if (r < 0)
    return r;
  if (past)
    return lmp_tx_reject(tx, "onboarding.failed from %s for an onboarding past that stage: %s", stage,
                         from_allocation ? "its users were allocated" : "its shipping completed");
  int had;
  r = lmp_tx_exists(tx, "UPDATE onboardings SET status = 'released', updated_at = now() "
                            "WHERE onboarding_id = $1 AND status = 'provisioned' RETURNING 1", 1, p, &had);
  if (r < 0)
    return r;
  /* Heard before the users-allocated it undoes (a later stage's failure follows our own
   * appliances-provisioned, so only an event delivered late, such as a replayed dead
   * letter, comes after it): nothing to give back, and the onboarding is closed so that
   * the late event reserves nothing for an onboarding that failed. */
  if (!had)
    return lmp_tx_command(tx, "INSERT INTO onboardings(onboarding_id, status) VALUES ($1, 'released') "
                              "ON CONFLICT DO NOTHING", 1, p);
  r = lmp_tx_command(tx, "UPDATE units SET status = 'available', onboarding_id = NULL, reserved_at = NULL "
                             "WHERE onboarding_id = $1", 1, p);
  if (r == 0)
    r = lmp_tx_command(tx, "UPDATE virtual_appliances SET status = 'released' WHERE onboarding_id = $1", 1, p);
  if (r == 0)
    lmp_info(id, "released the appliances: %s failed", stage);
  return r;
}

/* The batch's completed onboardings, one statement for all (lmp_tx_add). */
static const struct lmp_set completed_set = {
    "UPDATE onboardings o SET status = 'completed', updated_at = now() FROM unnest($1::text[]) AS r(id) "
    "WHERE o.onboarding_id = r.id AND o.status = 'provisioned'",
    1};

/* Shipping completed: the units are on their way and nothing can fail the onboarding
 * any more, so a failure that names it later is refused. */
static int on_completed(struct lmp_tx *tx, const struct lmp_event *ev) {
  const char *id = lmp_av_str(ev->value, "onboarding_id");
  if (id == NULL)
    return lmp_tx_reject(tx, "onboarding.shipping-completed without onboarding_id");
  const char *p[] = {id};
  return lmp_tx_add(tx, &completed_set, p);
}

const struct lmp_route fulfilment_routes[] = {
    {"onboarding.users-allocated", on_allocated, NULL, 0},
    {"onboarding.failed", on_failed, NULL, 0},
    {"onboarding.shipping-completed", on_completed, NULL, 0},
    {NULL, NULL, NULL, 0},
};
