/* GET /v1/onboardings/{id}: where an onboarding is, every stage it passed, and all a
 * frontend's confirmation page shows: the customer, users per product, appliances,
 * shipments with their tracking, whom the mails went to, and the notes (advice). */
#include "intake.h"

#include <string.h>

#include "lmp/admin.h"
#include "lmp/log.h"

/* Timestamps: UTC, milliseconds, always the same width. */
#define UTC(col) "to_char(" #col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
/* The detail of an onboarding's latest stage of a kind. */
#define LATEST(stage, key) \
  "(SELECT s.detail->'" key "' FROM onboarding_stages s WHERE s.onboarding_id = o.onboarding_id " \
  "AND s.stage = '" stage "' ORDER BY s.at DESC LIMIT 1)"

static const char status_sql[] =
    "SELECT json_build_object("
    "'onboarding_id', o.onboarding_id, 'status', o.status, 'partner_id', o.partner_id, "
    "'license', o.license, 'account_name', o.account_name, 'customer_id', o.customer_id, "
    "'account_status', a.status, 'reasons', o.reasons, 'warnings', o.warnings, "
    "'duplicates', o.duplicates, 'conflicts', o.conflicts, "
    "'created_at', " UTC(o.created_at) ", 'updated_at', " UTC(o.updated_at) ", "
    "'submitted_by', o.request->'submitted_by', "
    "'customer', json_build_object('customer_id', o.customer_id, 'legal_name', o.account_name, "
    "  'web_site', o.request->'customer'->'web_site', 'sub_partner_id', o.request->'customer'->'sub_partner_id', "
    "  'portal_admin_email', o.request->'customer'->'portal_admin_email'), "
    "'deployment', o.request->'deployment', "
    "'users', COALESCE(" LATEST("users-allocated", "allocations") ", '[]'), "
    "'appliances', COALESCE(" LATEST("appliances-provisioned", "appliances") ", '[]'), "
    "'shipments', COALESCE((SELECT json_agg(sh || COALESCE((SELECT jsonb_build_object('carrier', "
    "  d.detail->>'carrier', 'tracking_number', d.detail->>'tracking_number', 'dispatched_at', " UTC(d.at) ") "
    "  FROM onboarding_stages d WHERE d.onboarding_id = o.onboarding_id AND d.stage = 'shipment-dispatched' "
    "  AND d.detail->>'shipment_id' = sh->>'shipment_id' ORDER BY d.at DESC LIMIT 1), '{}'::jsonb)) "
    "  FROM jsonb_array_elements(" LATEST("shipping-completed", "shipments") ") sh), '[]'), "
    "'mails', COALESCE(" LATEST("confirmed", "mails") ", '[]'), "
    "'stages', COALESCE((SELECT json_agg(json_build_object('stage', s.stage, 'at', " UTC(s.at) ", "
    "  'detail', s.detail) ORDER BY s.at) FROM onboarding_stages s WHERE s.onboarding_id = o.onboarding_id), '[]')"
    ")::text FROM onboardings o LEFT JOIN customer_accounts a ON a.onboarding_id = o.onboarding_id "
    "WHERE o.onboarding_id = $1";

static int status_route(void *ctx, PGconn *db, const char *method, const char *path, const char *query,
                        const char *body, size_t body_len, int *status, struct lmp_buf *out) {
  const char *p[] = {path + strlen("/v1/onboardings/")};
  PGresult *res = PQexecParams(db, status_sql, 1, NULL, p, NULL, NULL, 0);
  if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
    lmp_warn(NULL, "status query failed: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(db));
    PQclear(res);
    return lmp_admin_error(503, "database error; try again", status, out);
  }
  if (PQntuples(res) == 0) {
    PQclear(res);
    return lmp_admin_error(404, "no such onboarding", status, out);
  }
  *status = 200;
  int r = lmp_buf_puts(out, PQgetvalue(res, 0, 0));
  PQclear(res);
  return r;
}

const struct lmp_http_route intake_http[] = {
    {"GET", "/v1/onboardings/{}", status_route, 0, 0},
    {NULL, NULL, NULL, 0, 0},
};
