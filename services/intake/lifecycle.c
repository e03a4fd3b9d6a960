/* Following an accepted onboarding: each later stage's event is recorded with what
 * the confirmation page needs, the status moves forward, and the customer account
 * follows the outcome.
 *
 * The customer account: reserved when intake accepts the request (the legal name is
 * held for this partner, no other onboarding may take it, the customer id is known);
 * active once the onboarding is confirmed; released when it fails, so the partner can
 * correct the request and submit it again under a new request id. A rejected request
 * never holds an account. Only reserved and active accounts hold their name. */
#include "intake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/error.h"
#include "lmp/events.h"
#include "lmp/log.h"

int intake_account_reserve(struct lmp_tx *tx, const char *customer_id, const char *partner, const char *name,
                           const char *onboarding_id, int *taken) {
  const char *p[] = {customer_id, partner, name, onboarding_id};
  PGresult *res;
  /* The unique index over reserved and active names decides a race: the second of
   * two transactions waits for the first and then finds the name taken. */
  int r = lmp_tx_query(tx, "INSERT INTO customer_accounts(customer_id, partner_id, account_name, onboarding_id) "
                           "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", 4, p, &res);
  if (r < 0)
    return r;
  *taken = strcmp(PQcmdTuples(res), "1") != 0;
  PQclear(res);
  return 0;
}

int intake_account_settle(struct lmp_tx *tx, const char *onboarding_id, const char *status) {
  const char *p[] = {onboarding_id, status};
  return lmp_tx_command(tx, "UPDATE customer_accounts SET status = $2, updated_at = now() "
                            "WHERE onboarding_id = $1 AND status = 'reserved'", 2, p);
}

int intake_record_stage(struct lmp_tx *tx, const char *id, const char *stage, json_t *detail, const char *event_id) {
  char *d = json_dumps(detail, JSON_COMPACT);
  if (d == NULL)
    return LMP_ENOMEM;
  const char *p[] = {id, stage, d, event_id};
  int r = lmp_tx_command(tx, "INSERT INTO onboarding_stages(onboarding_id, stage, detail, event_id) "
                             "VALUES ($1, $2, $3::jsonb, $4)", 4, p);
  free(d);
  return r;
}

static json_t *field_json(avro_value_t *rec, const char *field) {
  avro_value_t v;
  return lmp_av_field(rec, field, &v) == 0 ? lmp_avro_to_json(&v) : json_array();
}

/* What a stage tells: the allocations, the appliances, the shipments with their
 * addresses and items, the tracking, the mails sent, the failure's reasons. */
static json_t *stage_detail(const struct lmp_event *ev) {
  const char *t = ev->schema->name;
  avro_value_t *v = ev->value;
  if (strcmp(t, "onboarding.failed") == 0)
    return json_pack("{s:s?, s:o}", "stage", lmp_av_str(v, "stage"), "reasons", field_json(v, "reasons"));
  if (strcmp(t, "onboarding.users-allocated") == 0)
    return json_pack("{s:o}", "allocations", field_json(v, "allocations"));
  if (strcmp(t, "onboarding.appliances-provisioned") == 0)
    return json_pack("{s:o}", "appliances", field_json(v, "appliances"));
  if (strcmp(t, "onboarding.shipping-completed") == 0)
    return json_pack("{s:o}", "shipments", field_json(v, "shipments"));
  if (strcmp(t, "onboarding.confirmed") == 0)
    return json_pack("{s:o}", "mails", field_json(v, "mails"));
  if (strcmp(t, "onboarding.shipment-dispatched") == 0)
    return json_pack("{s:s?, s:s?, s:s?}", "shipment_id", lmp_av_str(v, "shipment_id"), "carrier",
                     lmp_av_str(v, "carrier"), "tracking_number", lmp_av_str(v, "tracking_number"));
  return json_object();
}

#define STATUS_ORDER \
  "ARRAY['accepted','users_allocated','appliances_provisioned','shipping_arranged','confirmed','failed']"

/* Each later stage's event moves the status forward, never back; every event is a
 * stage with its time. The route's data is the status it moves to (NULL: a stage
 * that is not a status). One statement records the stage and moves the status. */
int intake_on_lifecycle(struct lmp_tx *tx, const struct lmp_event *ev) {
  const char *status = ev->route->data;
  const char *id = lmp_av_str(ev->value, "onboarding_id");
  if (id == NULL)
    return lmp_tx_reject(tx, "%s without onboarding_id", ev->schema->name);
  json_t *detail = stage_detail(ev);
  char *d = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
  json_t *rj = json_object_get(detail, "reasons");
  char *reasons = rj ? json_dumps(rj, JSON_COMPACT) : NULL;
  json_decref(detail);
  if (d == NULL || (rj && reasons == NULL)) {
    free(d);
    free(reasons);
    return LMP_ENOMEM;
  }
  const char *p[] = {id, strrchr(ev->schema->name, '.') + 1, d, ev->event_id, status, reasons};
  PGresult *res;
  int r = lmp_tx_query(tx, "WITH stage AS (INSERT INTO onboarding_stages(onboarding_id, stage, detail, event_id) "
                           "VALUES ($1, $2, $3::jsonb, $4)) "
                           "UPDATE onboardings SET status = $5, updated_at = now(), "
                           "reasons = COALESCE($6::jsonb, reasons) "
                           "WHERE onboarding_id = $1 AND $5::text IS NOT NULL AND array_position(" STATUS_ORDER
                           ", status) < array_position(" STATUS_ORDER ", $5::text) RETURNING 1",
                       6, p, &res);
  free(d);
  free(reasons);
  if (r < 0)
    return r;
  int moved = PQntuples(res) == 1;
  PQclear(res);
  if (!moved)
    return 0;
  lmp_info(id, "status %s", status);
  if (strcmp(status, "confirmed") == 0)
    return intake_account_settle(tx, id, "active");
  if (strcmp(status, "failed") == 0)
    return intake_account_settle(tx, id, "released");
  return 0;
}

/* Retention: a finished onboarding's request body goes after the retention period;
 * its facts (status, account name, customer id, reasons, stages) stay. */
int intake_purge(struct lmp_tx *tx, int days) {
  char d[16];
  snprintf(d, sizeof(d), "%d", days);
  const char *p[] = {d};
  return lmp_tx_command(tx, "UPDATE onboardings SET request = jsonb_build_object('purged', true) "
                            "WHERE status IN ('confirmed', 'rejected', 'failed') AND NOT request ? 'purged' "
                            "AND updated_at < now() - $1::int * interval '1 day'", 1, p);
}
