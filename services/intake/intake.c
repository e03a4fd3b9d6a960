/* On onboarding.requested: validate, deduplicate, record, then emit accepted or rejected. */
#include "intake.h"

#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "lmp/error.h"
#include "lmp/events.h"
#include "lmp/log.h"

#define I(field) offsetof(struct intake_rules, field)

const struct lmp_conf_entry intake_conf[] = {
    {"intake.appliance_skus", LMP_CONF_LIST, I(skus), 1, 100, "NS-100,NS-500,NS-1000",
     "appliance SKUs a request may name"},
    {"intake.hosting_regions", LMP_CONF_LIST, I(regions), 1, 100,
     "ca-central-1,us-east-1,us-west-2,eu-west-1,eu-central-1,ap-southeast-2",
     "hosting regions for a fully virtual deployment"},
    {"intake.legal_name_max", LMP_CONF_INT, I(legal_name_max), 1, 1000, "200",
     "longest legal name, in characters"},
    {"intake.max_appliances", LMP_CONF_INT, I(max_appliances), 1, 1000, "50",
     "most appliances in one request"},
    {"intake.max_users", LMP_CONF_INT, I(max_users), 1, 100000000, "1000000",
     "largest user count in one request"},
};
const size_t intake_conf_n = sizeof(intake_conf) / sizeof(intake_conf[0]);

int intake_configured(void *ctx, char *err, size_t errlen) { return 0; }

static const char *const license_names[] = {"MDR_CORE", "MDR_COMPLETE", "MDR_CLOUD"};

static json_t *issues_json(const struct intake_issue *v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++)
    json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "code", v[i].code, "field", v[i].field,
                                       "message", v[i].message));
  return a;
}

static int set_issues(avro_value_t *rec, const char *field, const struct intake_issue *v, size_t n) {
  avro_value_t arr;
  if (avro_value_get_by_name(rec, field, &arr, NULL) != 0)
    return LMP_EINVAL;
  for (size_t i = 0; i < n; i++) {
    avro_value_t e;
    if (avro_value_append(&arr, &e, NULL) != 0 || lmp_av_set_str(&e, "code", v[i].code) < 0 ||
        lmp_av_set_str(&e, "field", v[i].field) < 0 || lmp_av_set_str(&e, "message", v[i].message) < 0)
      return LMP_ENOMEM;
  }
  return 0;
}

static int record_stage(struct lmp_tx *tx, const char *id, const char *stage, json_t *detail,
                        const char *event_id) {
  char *d = json_dumps(detail, JSON_COMPACT);
  if (d == NULL)
    return LMP_ENOMEM;
  const char *p[] = {id, stage, d, event_id};
  int r = lmp_tx_command(tx, "INSERT INTO onboarding_stages(onboarding_id, stage, detail, event_id) "
                             "VALUES ($1, $2, $3::jsonb, $4)", 4, p);
  free(d);
  return r;
}


static int emit_rejected(struct lmp_tx *tx, const char *id, const char *partner,
                         const struct intake_findings *f) {
  avro_value_t v;
  int r = lmp_tx_value(tx, "onboarding.rejected", &v);
  if (r < 0)
    return r;
  if ((r = lmp_av_set_str(&v, "onboarding_id", id)) == 0 &&
      (r = lmp_av_set_str(&v, "partner_id", partner)) == 0 &&
      (r = set_issues(&v, "reasons", f->errors, f->nerrors)) == 0 &&
      (r = lmp_av_set_long(&v, "rejected_at", lmp_now_ms())) == 0)
    r = lmp_tx_emit(tx, "onboarding.rejected", id, &v);
  avro_value_decref(&v);
  return r;
}

static int emit_accepted(struct lmp_tx *tx, const char *id, const char *customer_id,
                         const char *account_name, avro_value_t *request,
                         const struct intake_findings *f) {
  avro_value_t v, req;
  int r = lmp_tx_value(tx, "onboarding.accepted", &v);
  if (r < 0)
    return r;
  if ((r = lmp_av_set_str(&v, "onboarding_id", id)) == 0 &&
      (r = lmp_av_set_str(&v, "customer_id", customer_id)) == 0 &&
      (r = lmp_av_set_str(&v, "account_name", account_name)) == 0 &&
      (r = avro_value_get_by_name(&v, "request", &req, NULL) ? LMP_EINVAL : 0) == 0 &&
      (r = lmp_avro_copy(&req, request)) == 0 &&
      (r = set_issues(&v, "warnings", f->warnings, f->nwarnings)) == 0 &&
      (r = lmp_av_set_long(&v, "accepted_at", lmp_now_ms())) == 0)
    r = lmp_tx_emit(tx, "onboarding.accepted", id, &v);
  avro_value_decref(&v);
  return r;
}

/* Same id seen before: identical content is a harmless resubmission; different
 * content is refused without touching the original. Returns 1 when handled. */
static int seen_before(struct lmp_tx *tx, const char *id, const char *partner, const char *json,
                       int *rc) {
  const char *p[] = {id, json};
  PGresult *res;
  if ((*rc = lmp_tx_query(tx, "SELECT request = $2::jsonb FROM onboardings "
                              "WHERE onboarding_id = $1 FOR UPDATE", 2, p, &res)) < 0)
    return 1;
  int found = PQntuples(res) == 1, same = found && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  PQclear(res);
  if (!found)
    return 0;
  if (same) {
    lmp_info(id, "duplicate submission ignored");
    *rc = lmp_tx_command(tx, "UPDATE onboardings SET duplicates = duplicates + 1, updated_at = now() "
                             "WHERE onboarding_id = $1", 1, p);
    return 1;
  }
  lmp_warn(id, "request id reused with different content: refused");
  struct intake_findings f = {0};
  *rc = intake_findings_add(&f, 0, "REQUEST_ID_CONFLICT", "request_id",
                            "This request id was already used for a different onboarding request; "
                            "submit a new request with a new id.");
  if (*rc == 0)
    *rc = lmp_tx_command(tx, "UPDATE onboardings SET conflicts = conflicts + 1, updated_at = now() "
                             "WHERE onboarding_id = $1", 1, p);
  if (*rc == 0)
    *rc = emit_rejected(tx, id, partner, &f);
  intake_findings_clear(&f);
  return 1;
}

/* Each later stage's event moves the status forward, never back; every event is a
 * stage with its time, so the status API tells the whole story. The route's data is
 * the status it moves to (NULL: a stage, not a status). */
#define STATUS_ORDER "ARRAY['accepted','users_allocated','appliances_provisioned','shipping_arranged','confirmed','failed']"

static json_t *stage_detail(const struct lmp_event *ev) {
  avro_value_t v;
  const char *t = ev->schema->name;
  if (strcmp(t, "onboarding.failed") == 0) {
    json_t *reasons = lmp_av_field(ev->value, "reasons", &v) == 0 ? lmp_avro_to_json(&v) : json_array();
    return json_pack("{s:s?, s:o}", "stage", lmp_av_str(ev->value, "stage"), "reasons", reasons);
  }
  if (strcmp(t, "onboarding.users-allocated") == 0 && lmp_av_field(ev->value, "allocations", &v) == 0)
    return json_pack("{s:o}", "allocations", lmp_avro_to_json(&v));
  if (strcmp(t, "onboarding.appliances-provisioned") == 0 && lmp_av_field(ev->value, "appliances", &v) == 0)
    return json_pack("{s:o}", "appliances", lmp_avro_to_json(&v));
  if (strcmp(t, "onboarding.shipping-completed") == 0 && lmp_av_field(ev->value, "shipments", &v) == 0) {
    size_t n = 0;
    avro_value_get_size(&v, &n);
    return json_pack("{s:I}", "shipments", (json_int_t)n);
  }
  if (strcmp(t, "onboarding.shipment-dispatched") == 0)
    return json_pack("{s:s?, s:s?, s:s?}", "shipment_id", lmp_av_str(ev->value, "shipment_id"), "carrier",
                     lmp_av_str(ev->value, "carrier"), "tracking_number", lmp_av_str(ev->value, "tracking_number"));
  return json_object();
}

static int on_lifecycle(struct lmp_tx *tx, const struct lmp_event *ev) {
  const char *status = ev->route->data;
  const char *id = lmp_av_str(ev->value, "onboarding_id");
  if (id == NULL)
    return lmp_tx_reject(tx, "%s without onboarding_id", ev->schema->name);
  json_t *detail = stage_detail(ev);
  int r = detail ? record_stage(tx, id, strrchr(ev->schema->name, '.') + 1, detail, ev->event_id) : LMP_ENOMEM;
  char *reasons = NULL;
  if (r == 0 && status) {
    json_t *rj = json_object_get(detail, "reasons");
    reasons = rj ? json_dumps(rj, JSON_COMPACT) : strdup("[]");
    const char *p[] = {id, status, reasons, rj ? "t" : "f"};
    PGresult *res;
    r = lmp_tx_query(tx, "UPDATE onboardings SET status = $2, updated_at = now(), "
                         "reasons = CASE WHEN $4::bool THEN $3::jsonb ELSE reasons END "
                         "WHERE onboarding_id = $1 AND array_position(" STATUS_ORDER ", status) < "
                         "array_position(" STATUS_ORDER ", $2::text) RETURNING 1", 4, p, &res);
    if (r == 0 && PQntuples(res) == 1)
      lmp_info(id, "status %s", status);
    PQclear(res);
  }
  free(reasons);
  json_decref(detail);
  return r;
}



static int on_request(struct lmp_tx *tx, const struct lmp_event *ev) {
  struct intake *in = lmp_tx_ctx(tx);
  struct intake_request req;
  struct intake_findings f = {0};
  char *account = NULL, *json = NULL, *reasons = NULL, *warnings = NULL;
  int r = intake_request_read(ev->value, &req);
  if (r < 0)
    goto out;
  /* The id keys every later event; an absurd one is cut, the request rejected. */
  char id[65];
  snprintf(id, sizeof(id), "%s", req.request_id ? req.request_id : "");
  const char *partner = req.partner_id ? req.partner_id : "";
  json_t *j = lmp_avro_to_json(ev->value);
  json = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  account = intake_trim(req.legal_name);
  if (json == NULL || account == NULL) {
    r = LMP_ENOMEM;
    goto out;
  }
  if (seen_before(tx, id, partner, json, &r))
    goto out;
  if ((r = intake_validate(&req, &in->rules, &f)) < 0)
    goto out;

  char customer_id[37] = "";
  if (f.nerrors == 0) {
    uuid_t u;
    uuid_generate(u);
    uuid_unparse_lower(u, customer_id);
    const char *p[] = {customer_id, partner, account, id};
    PGresult *res;
    if ((r = lmp_tx_query(tx, "INSERT INTO customer_accounts(customer_id, partner_id, account_name, onboarding_id) "
                              "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", 4, p, &res)) < 0)
      goto out;
    int taken = strcmp(PQcmdTuples(res), "1") != 0;
    PQclear(res);
    if (taken && (r = intake_findings_add(&f, 0, "LEGAL_NAME_TAKEN", "customer.legal_name",
                                          "This partner already has a customer named '%.200s'.", account)) < 0)
      goto out;
  }
  int accepted = f.nerrors == 0;
  json_t *rj = issues_json(f.errors, f.nerrors), *wj = issues_json(f.warnings, f.nwarnings);
  reasons = rj ? json_dumps(rj, JSON_COMPACT) : NULL;
  warnings = wj ? json_dumps(wj, JSON_COMPACT) : NULL;
  if (reasons == NULL || warnings == NULL) {
    json_decref(rj);
    json_decref(wj);
    r = LMP_ENOMEM;
    goto out;
  }
  json_t *detail = accepted ? json_pack("{s:O}", "warnings", wj) : json_pack("{s:O}", "reasons", rj);
  json_decref(rj);
  json_decref(wj);
  const char *license = req.license >= 0 && req.license < 3 ? license_names[req.license] : "";
  const char *p[] = {id, partner, license, account, accepted ? "accepted" : "rejected", reasons,
                     warnings, json, accepted ? customer_id : NULL};
  r = detail ? lmp_tx_command(tx, "INSERT INTO onboardings(onboarding_id, partner_id, license, account_name, "
                                  "status, reasons, warnings, request, customer_id) "
                                  "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9::uuid)", 9, p)
             : LMP_ENOMEM;
  if (r == 0)
    r = record_stage(tx, id, accepted ? "accepted" : "rejected", detail, ev->event_id);
  json_decref(detail);
  if (r < 0)
    goto out;
  if (accepted) {
    lmp_info(id, "accepted: %s for partner %s (%zu warnings)", account, partner, f.nwarnings);
    r = emit_accepted(tx, id, customer_id, account, ev->value, &f);
  } else {
    lmp_info(id, "rejected: %zu reasons, first %s", f.nerrors, f.errors[0].code);
    r = emit_rejected(tx, id, partner, &f);
  }
out:
  free(account);
  free(json);
  free(reasons);
  free(warnings);
  intake_findings_clear(&f);
  intake_request_clear(&req);
  return r;
}

/* Timestamps in the status API: UTC, milliseconds, always the same width. */
#define UTC(col) "to_char(" #col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* GET /v1/onboardings/{id}: where an onboarding is, with every stage it passed. */
static int status_route(void *ctx, PGconn *db, const char *method, const char *path, const char *query,
                        const char *body, size_t body_len, int *status, struct lmp_buf *out) {
  static const char prefix[] = "/v1/onboardings/";
  const char *id = path + sizeof(prefix) - 1;
  const char *p[] = {id};
  PGresult *res = PQexecParams(
      db,
      "SELECT json_build_object('onboarding_id', o.onboarding_id, 'status', o.status, "
      "'partner_id', o.partner_id, 'license', o.license, 'account_name', o.account_name, "
      "'customer_id', o.customer_id, 'reasons', o.reasons, 'warnings', o.warnings, "
      "'duplicates', o.duplicates, 'conflicts', o.conflicts, 'created_at', " UTC(o.created_at) ", "
      "'updated_at', " UTC(o.updated_at) ", 'stages', COALESCE((SELECT json_agg(json_build_object("
      "'stage', s.stage, 'at', " UTC(s.at) ", 'detail', s.detail) ORDER BY s.at) FROM onboarding_stages s "
      "WHERE s.onboarding_id = o.onboarding_id), '[]'))::text FROM onboardings o WHERE o.onboarding_id = $1",
      1, NULL, p, NULL, NULL, 0);
  if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
    lmp_warn(NULL, "status query failed: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(db));
    PQclear(res);
    *status = 503;
    return lmp_buf_puts(out, "{\"error\":\"database error; try again\"}");
  }
  if (PQntuples(res) == 0) {
    *status = 404;
    PQclear(res);
    return lmp_buf_puts(out, "{\"error\":\"no such onboarding\"}");
  }
  *status = 200;
  int r = lmp_buf_puts(out, PQgetvalue(res, 0, 0));
  PQclear(res);
  return r;
}

const struct lmp_route intake_routes[] = {
    {"onboarding.requested", on_request, NULL, 1},
    {"onboarding.users-allocated", on_lifecycle, "users_allocated", 0},
    {"onboarding.appliances-provisioned", on_lifecycle, "appliances_provisioned", 0},
    {"onboarding.shipping-completed", on_lifecycle, "shipping_arranged", 0},
    {"onboarding.confirmed", on_lifecycle, "confirmed", 0},
    {"onboarding.failed", on_lifecycle, "failed", 0},
    {"onboarding.shipment-dispatched", on_lifecycle, NULL, 0},
    {NULL, NULL, NULL, 0},
};

const struct lmp_http_route intake_http[] = {
    {"GET", "/v1/onboardings/{}", status_route, 0},
    {NULL, NULL, NULL, 0},
};
