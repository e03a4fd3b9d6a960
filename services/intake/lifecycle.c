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

#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/runtime/events.h"

int intake_account_reserve(struct lmp_tx *tx, const char *customer_id, const char *partner, const char *license,
                           const char *name, const char *onboarding_id, int *taken) {
  const char *p[] = {customer_id, partner, name, onboarding_id, license};
  PGresult *res;
  /* The unique index over reserved and active names decides a race: the second of
   * two transactions waits for the first and then finds the name taken. */
  int r = lmp_tx_query(tx, "INSERT INTO customer_accounts(customer_id, partner_id, account_name, onboarding_id, "
                           "license) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", 5, p, &res);
  if (r < 0)
    return r;
  *taken = strcmp(PQcmdTuples(res), "1") != 0;
  PQclear(res);
  return 0;
}

/* The one table of the flow's stages, in their order. A failure's place is right
 * after the last stage it could follow (failure_place); its own place here is for a
 * failing daemon it does not know: then it is listed last. */
const struct intake_stage intake_stages[INTAKE_STAGES] = {
    [INTAKE_ACCEPTED] = {"accepted", 0, "accepted", 0, NULL},
    [INTAKE_REJECTED] = {"rejected", 0, "rejected", 1, NULL},
    [INTAKE_USERS_ALLOCATED] = {"users-allocated", 2, "users_allocated", 0, "allocated_at"},
    [INTAKE_APPLIANCES_PROVISIONED] = {"appliances-provisioned", 4, "appliances_provisioned", 0, "provisioned_at"},
    [INTAKE_SHIPPING_ARRANGED] = {"shipping-completed", 6, "shipping_arranged", 0, "completed_at"},
    /* One per shipment, between shipping arranged and confirmed, by their own time. */
    [INTAKE_SHIPMENT_DISPATCHED] = {"shipment-dispatched", 8, NULL, 0, "dispatched_at"},
    [INTAKE_CONFIRMED] = {"confirmed", 10, "confirmed", 1, "confirmed_at"},
    [INTAKE_FAILED] = {"failed", 12, "failed", 1, "failed_at"},
};

/* Outcomes rank above every stage, so that nothing moves them: a confirmed onboarding
 * never turns failed, a failure is not undone by the stage it undid arriving late. */
#define FINAL_RANK 1000

int intake_status_rank(const struct intake_stage *st) { return st->final ? FINAL_RANK : st->place; }

/* The daemons that may fail an onboarding (onboarding.failed's stage), the last stage
 * each could follow, and the stage it gives instead of failing: one or the other,
 * never both. */
static const struct {
  const char *daemon;
  enum intake_stage_id after, instead;
} failed_after[] = {
    {"allocation", INTAKE_ACCEPTED, INTAKE_USERS_ALLOCATED},
    {"appliance-fulfilment", INTAKE_USERS_ALLOCATED, INTAKE_APPLIANCES_PROVISIONED},
    {"shipping", INTAKE_APPLIANCES_PROVISIONED, INTAKE_SHIPPING_ARRANGED},
};

static int failing_daemon(const char *daemon) {
  for (size_t i = 0; daemon && i < sizeof(failed_after) / sizeof(failed_after[0]); i++)
    if (strcmp(failed_after[i].daemon, daemon) == 0)
      return (int)i;
  return -1;
}

/* A failure is believed only while it can be true: from a daemon that fails
 * onboardings, for an onboarding not confirmed, whose failing daemon has not done
 * its part already. Anything else was not written by the flow: it is refused
 * (dead-lettered with the reason), and nothing of the onboarding changes. */
static int failure_possible(struct lmp_tx *tx, const char *id, const char *daemon) {
  int i = failing_daemon(daemon);
  if (i < 0)
    return lmp_tx_reject(tx, "onboarding.failed names stage '%.64s', which fails no onboarding", daemon ? daemon : "");
  char done[16];
  snprintf(done, sizeof(done), "%d", intake_stages[failed_after[i].instead].place);
  const char *p[] = {id, done};
  int past;
  int r = lmp_tx_exists(tx, "SELECT 1 FROM onboardings WHERE onboarding_id = $1 AND status = 'confirmed' UNION ALL "
                            "SELECT 1 FROM onboarding_stages WHERE onboarding_id = $1 AND place >= $2::int "
                            "AND stage <> 'failed' LIMIT 1", 2, p, &past);
  if (r == 0 && past)
    r = lmp_tx_reject(tx, "onboarding.failed from %s for an onboarding past that stage (its %s is recorded)", daemon,
                      intake_stages[failed_after[i].instead].name);
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

/* When the stage happened at its own daemon: the event's time field, in ms. */
static int event_time(const struct lmp_event *ev, const struct intake_stage *st, int64_t *ms) {
  avro_value_t v;
  if (lmp_av_field(ev->value, st->time_field, &v) < 0 || avro_value_get_long(&v, ms) != 0)
    return LMP_EINVAL;
  return 0;
}

/* The batch's stages, one statement for all (lmp_tx_add): each recorded; the status
 * moves only forward, so of an onboarding's stages in the batch the highest rank
 * moves it, the first of equals as one statement per stage in order would (a stage
 * heard late leaves it); the outcome that moved it settles the customer account. */
static const struct lmp_set stages_set = {
    "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::text[], $6::jsonb[], "
    "  $7::int[], $8::bigint[], $9::int[], $10::text[]) WITH ORDINALITY "
    "  AS r(id, stage, detail, event_id, status, reasons, place, at, rank, settle, ord)), "
    "stage AS (INSERT INTO onboarding_stages(onboarding_id, stage, detail, event_id, place, happened_at) "
    "  SELECT id, stage, detail, event_id, place, 'epoch'::timestamptz + at * interval '1 millisecond' "
    "  FROM r ORDER BY ord), "
    "best AS (SELECT DISTINCT ON (id) id, status, reasons, rank, settle FROM r WHERE status IS NOT NULL "
    "  ORDER BY id, rank DESC, ord), "
    "moved AS (UPDATE onboardings o SET status = b.status, status_rank = b.rank, updated_at = now(), "
    "  reasons = COALESCE(b.reasons, o.reasons) FROM best b "
    "  WHERE o.onboarding_id = b.id AND o.status_rank < b.rank RETURNING b.id, b.settle) "
    "UPDATE customer_accounts a SET status = m.settle, updated_at = now() FROM moved m "
    "WHERE a.onboarding_id = m.id AND a.status = 'reserved' AND m.settle IS NOT NULL",
    10};

/* Each later stage's event is recorded at its place in the flow with the time it
 * happened, and moves the status to a higher rank, never back: events on different
 * topics arrive in any order. */
int intake_on_lifecycle(struct lmp_tx *tx, const struct lmp_event *ev) {
  const struct intake_stage *st = ev->route->data;
  const char *id = lmp_av_str(ev->value, "onboarding_id");
  if (id == NULL)
    return lmp_tx_reject(tx, "%s without onboarding_id", ev->schema->name);
  int64_t ms;
  if (event_time(ev, st, &ms) < 0)
    return lmp_tx_reject(tx, "%s without %s", ev->schema->name, st->time_field);
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
  int where = st->place;
  if (st == &intake_stages[INTAKE_FAILED]) {
    const char *daemon = lmp_av_str(ev->value, "stage");
    int r = failure_possible(tx, id, daemon);
    if (r < 0) {
      free(d);
      free(reasons);
      return r;
    }
    where = intake_stages[failed_after[failing_daemon(daemon)].after].place + 1;
  }
  char place[16], at[24], rank[16];
  snprintf(place, sizeof(place), "%d", where);
  snprintf(at, sizeof(at), "%lld", (long long)ms);
  snprintf(rank, sizeof(rank), "%d", intake_status_rank(st));
  /* The outcome settles the customer account the request reserved: kept, or let go. */
  const char *settle = st == &intake_stages[INTAKE_CONFIRMED] ? "active"
                       : st == &intake_stages[INTAKE_FAILED]  ? "released"
                                                              : NULL;
  const char *row[] = {id, st->name, d, ev->event_id, st->status, reasons, place, at, rank, settle};
  int r = lmp_tx_add(tx, &stages_set, row);
  free(d);
  free(reasons);
  if (r == 0)
    lmp_info(id, "stage %s", st->name);
  return r;
}

/* The batch's mail fates, one statement for all: the first of each kept. */
static const struct lmp_set fates_set = {
    "INSERT INTO mail_fates(onboarding_id, kind, status, reason, settled_at) "
    "SELECT id, kind, status, reason, to_timestamp(at) FROM unnest($1::text[], $2::text[], $3::text[], "
    "  $4::text[], $5::double precision[]) WITH ORDINALITY AS f(id, kind, status, reason, at, ord) "
    "ORDER BY ord ON CONFLICT DO NOTHING",
    5};

/* A mail the confirmation named is settled: its fate kept, once, for the status
 * answer, whichever of the two intake hears of first. Only the two mails a
 * confirmation names are announced, and only as sent or failed. */
int intake_on_mail_settled(struct lmp_tx *tx, const struct lmp_event *ev) {
  const char *id = lmp_av_str(ev->value, "onboarding_id"), *kind = lmp_av_str(ev->value, "kind");
  const char *status = lmp_av_str(ev->value, "status"), *reason = lmp_av_str(ev->value, "reason");
  if (id == NULL || kind == NULL || status == NULL)
    return lmp_tx_reject(tx, "onboarding.mail-settled without onboarding_id, kind or status");
  if (strcmp(kind, "confirmation") != 0 && strcmp(kind, "invitation") != 0)
    return lmp_tx_reject(tx, "onboarding.mail-settled of a %.40s mail: only the confirmation and the invitation "
                         "are announced", kind);
  if (strcmp(status, "sent") != 0 && strcmp(status, "failed") != 0)
    return lmp_tx_reject(tx, "onboarding.mail-settled with status '%.40s', not sent or failed", status);
  avro_value_t at;
  int64_t ms = 0;
  if (lmp_av_field(ev->value, "settled_at", &at) < 0 || avro_value_get_long(&at, &ms) != 0)
    return lmp_tx_reject(tx, "onboarding.mail-settled without settled_at");
  char when[32];
  snprintf(when, sizeof(when), "%.3f", (double)ms / 1000.0);
  const char *row[] = {id, kind, status, strcmp(status, "failed") == 0 ? reason : NULL, when};
  int r = lmp_tx_add(tx, &fates_set, row);
  if (r == 0)
    lmp_info(id, "mail %s %s", kind, status);
  return r;
}

/* Retention: past the retention period an onboarding keeps its facts (status, account
 * name, customer id, reasons, the stages and when they happened) and loses every copy
 * of a person's data: the request body (emails, addresses, phones), the shipments'
 * addresses in the shipping stage, the mails' recipients in the confirmation. An
 * onboarding stuck short of its outcome is purged as well: its data is no less
 * personal for the flow having stopped. */
int intake_purge(struct lmp_tx *tx, int days) {
  char d[16];
  snprintf(d, sizeof(d), "%d", days);
  const char *p[] = {d};
  int r = lmp_tx_command(tx, "UPDATE onboardings SET request = jsonb_build_object('purged', true) "
                             "WHERE NOT request ? 'purged' AND updated_at < now() - $1::int * interval '1 day'", 1, p);
  /* An addition's request names who asked (an email): its facts (counts, outcome) stay. */
  if (r == 0)
    r = lmp_tx_command(tx, "UPDATE user_additions SET request = jsonb_build_object('purged', true) "
                           "WHERE NOT request ? 'purged' AND updated_at < now() - $1::int * interval '1 day'", 1, p);
  /* The stages of a purged onboarding, those recorded after its purge too. */
  if (r == 0)
    r = lmp_tx_command(
        tx, "UPDATE onboarding_stages s SET detail = CASE s.stage "
            "  WHEN 'shipping-completed' THEN jsonb_set(s.detail, '{shipments}', (SELECT COALESCE(jsonb_agg(sh - "
            "    'address'), '[]') FROM jsonb_array_elements(s.detail->'shipments') sh)) "
            "  ELSE jsonb_set(s.detail, '{mails}', (SELECT COALESCE(jsonb_agg(m - 'recipient'), '[]') "
            "    FROM jsonb_array_elements(s.detail->'mails') m)) END "
            "FROM onboardings o WHERE o.onboarding_id = s.onboarding_id AND o.request ? 'purged' "
            "AND (s.stage = 'shipping-completed' AND s.detail @? '$.shipments[*].address' "
            "  OR s.stage = 'confirmed' AND s.detail @? '$.mails[*].recipient')",
        0, NULL);
  /* A failed mail's reason came from the mail server: it goes with the rest. */
  if (r == 0)
    r = lmp_tx_command(tx, "UPDATE mail_fates f SET reason = NULL FROM onboardings o "
                           "WHERE o.onboarding_id = f.onboarding_id AND o.request ? 'purged' AND f.reason IS NOT NULL",
                       0, NULL);
  return r;
}
