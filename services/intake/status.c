/* GET /v1/onboardings/{id}: where an onboarding is, every stage it passed in the
 * order of the flow, and all a frontend's confirmation page shows: the customer, users
 * per product, appliances, shipments with their tracking, whom the mails go to and how
 * they went, and the notes (advice). */
#include "intake.h"

#include <stdlib.h>
#include <string.h>

#include "lmp/base/log.h"
#include "lmp/io/admin.h"

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
    /* Whom the confirmation named, and where each mail stands: as the confirmation
     * said (pending), or as its announced fate says since. */
    "'mails', COALESCE((SELECT json_agg(m || COALESCE((SELECT jsonb_build_object('status', f.status, "
    "  'reason', f.reason, 'settled_at', " UTC(f.settled_at) ") FROM mail_fates f "
    "  WHERE f.onboarding_id = o.onboarding_id AND f.kind = m->>'kind'), '{}'::jsonb)) "
    "  FROM jsonb_array_elements(" LATEST("confirmed", "mails") ") m), '[]'), "
    "'stages', COALESCE((SELECT json_agg(json_build_object('stage', s.stage, 'at', " UTC(s.at) ", "
    "  'happened_at', " UTC(s.happened_at) ", 'detail', s.detail) ORDER BY " INTAKE_STAGE_ORDER(s) ") "
    "  FROM onboarding_stages s WHERE s.onboarding_id = o.onboarding_id), '[]')"
    ")::text FROM onboardings o LEFT JOIN customer_accounts a ON a.onboarding_id = o.onboarding_id "
    "WHERE o.onboarding_id = $1 AND ($2::text IS NULL OR o.partner_id = $2)";

/* ?wait=N (1..60): seconds to wait for a final state; 0 when absent, -1 when not a
 * number in range. */
static int wait_seconds(const char *query) {
  for (const char *q = query; q && *q;) {
    if (strncmp(q, "wait=", 5) == 0) {
      char *end;
      long n = strtol(q + 5, &end, 10);
      return end != q + 5 && (*end == '\0' || *end == '&') && n >= 1 && n <= 60 ? (int)n : -1;
    }
    q = strchr(q, '&');
    q = q ? q + 1 : NULL;
  }
  return 0;
}

static int final(const char *json) {
  json_t *j = json_loads(json, 0, NULL);
  const char *s = json_string_value(json_object_get(j, "status"));
  int yes = s && (strcmp(s, "confirmed") == 0 || strcmp(s, "rejected") == 0 || strcmp(s, "failed") == 0);
  json_decref(j);
  return yes;
}

/* GET /v1/onboardings/{id}[?wait=N], for partner (NULL: any, for operators): with
 * wait, the answer comes the moment the onboarding is confirmed, rejected or failed
 * (the route runs again after each commit), or after N seconds with where it is then;
 * an id not yet known is waited for too. */
static int status_of(struct lmp_http_call *call, const char *partner) {
  int wait = wait_seconds(call->query);
  if (wait < 0)
    return lmp_admin_error(call, 400, "wait must be a number of seconds from 1 to 60");
  const char *p[] = {call->path + strlen("/v1/onboardings/"), partner};
  if (!intake_uuid_ok(p[0])) /* never an onboarding's id: nothing to wait for */
    return lmp_admin_error(call, 404, "no such onboarding");
  PGresult *res = PQexecParams(call->db, status_sql, 2, NULL, p, NULL, NULL, 0);
  if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
    lmp_warn(NULL, "status query failed: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(call->db));
    PQclear(res);
    return lmp_admin_error(call, 503, "database error; try again");
  }
  int found = PQntuples(res) == 1;
  if (!call->last && call->waited_ms < wait * 1000LL && !(found && final(PQgetvalue(res, 0, 0)))) {
    PQclear(res);
    call->again_ms = 1000; /* a safety net: a commit runs it sooner */
    return 0;
  }
  if (!found) {
    PQclear(res);
    return lmp_admin_error(call, 404, "no such onboarding");
  }
  call->status = 200;
  int r = lmp_buf_puts(call->out, PQgetvalue(res, 0, 0));
  PQclear(res);
  return r;
}

/* The public route: the signed-in partner's onboardings only; another partner's is
 * answered exactly as one that does not exist. */
int intake_status_route(void *ctx, struct lmp_http_call *call) {
  if (call->caller->partner_id[0] == '\0')
    return lmp_admin_error(call, 404, "no such onboarding");
  return status_of(call, call->caller->partner_id);
}

/* The admin route: any partner's, for operators. */
int intake_status_admin_route(void *ctx, struct lmp_http_call *call) { return status_of(call, NULL); }
