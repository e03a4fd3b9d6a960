/* Users added to an existing customer account later: the request (POST
 * /v1/customers/{id}/users, or customer.users-requested from a frontend on Kafka)
 * checked against the account and its license, recorded once per request id, and
 * passed to allocation (customer.users-accepted), which draws them all or nothing;
 * its answer (customer.users-added or -refused) is recorded, and the customer's page
 * (GET /v1/customers/{id}) shows its totals and every addition. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake.h"
#include "lmp/avro/av.h"
#include "lmp/avro/codec.h"
#include "lmp/base/error.h"
#include "lmp/base/ids.h"
#include "lmp/base/log.h"
#include "lmp/io/admin.h"
#include "lmp/runtime/events.h"

static const char *const licenses[] = {"MDR_CORE", "MDR_COMPLETE", "MDR_CLOUD"};

/* An addition's id: the partner's request id, kept apart from its onboarding ids. */
static void addition_id(const char *partner, const char *request_id, char out[37]) {
  char scoped[300];
  snprintf(scoped, sizeof(scoped), "users:%s", request_id ? request_id : "");
  lmp_onboarding_id(partner ? partner : "", scoped, out);
}

struct account {
  int found;
  char status[16];
  char license[16];
  char name[4 * 1000 + 8]; /* intake.legal_name_max characters at most, 4 bytes each */
};

/* The rules an addition must keep, given its account; reasons added to errors. */
static int check_addition(const struct intake_rules *rules, const struct account *a, const char *request_id,
                          int tier, int cloud, int sat, struct lmp_reasons *errors) {
  int r = 0;
#define NO(code, field, ...)                                \
  do {                                                      \
    if (r == 0)                                             \
      r = lmp_reasons_add(errors, code, field, __VA_ARGS__); \
  } while (0)
  if (!intake_uuid_ok(request_id))
    NO("BAD_REQUEST_ID", "request_id", "The request id must be a UUID.");
  if (!a->found || strcmp(a->status, "released") == 0)
    NO("UNKNOWN_CUSTOMER", "customer_id", "You have no customer account with this id.");
  else if (strcmp(a->status, "active") != 0)
    NO("CUSTOMER_NOT_ACTIVE", "customer_id",
       "This customer is still being onboarded; add users once its onboarding is confirmed.");
  if (tier < 0 || cloud < 0 || sat < 0)
    NO("NEGATIVE_COUNT", "users", "A user count cannot be negative.");
  else if (tier > rules->max_users || cloud > rules->max_users || sat > rules->max_users)
    NO("COUNT_TOO_LARGE", "users", "A user count is over the limit of %d.", rules->max_users);
  else if (tier + cloud + sat == 0)
    NO("NO_USERS", "users", "Ask for at least one user.");
  if (a->found && strcmp(a->license, "MDR_CLOUD") == 0 && tier > 0)
    NO("TIER_USERS_WITH_CLOUD_LICENSE", "users.tier",
       "An MDR Cloud account takes MDR Cloud users only; ask for them as cloud users.");
  if (a->found && strcmp(a->license, "MDR_COMPLETE") != 0 && sat > 0)
    NO("SAT_REQUIRES_COMPLETE", "users.sat", "Beauceron SAT users are only available with MDR Complete.");
#undef NO
  return r;
}

static void read_account(PGresult *res, struct account *a) {
  memset(a, 0, sizeof(*a));
  if (PQntuples(res) != 1)
    return;
  a->found = 1;
  snprintf(a->status, sizeof(a->status), "%s", PQgetvalue(res, 0, 0));
  snprintf(a->license, sizeof(a->license), "%s", PQgetvalue(res, 0, 1));
  snprintf(a->name, sizeof(a->name), "%s", PQgetvalue(res, 0, 2));
}

/* $1: a UUID (checked first), $2 the partner. */
#define ACCOUNT_SQL                                                                                 \
  "SELECT status, license, account_name FROM customer_accounts WHERE customer_id = $1::uuid " \
  "AND partner_id = $2"

static int counts(avro_value_t *v, int *tier, int *cloud, int *sat) {
  avro_value_t u;
  if (lmp_av_field(v, "users", &u) < 0)
    return -1;
  *tier = lmp_av_int(&u, "tier");
  *cloud = lmp_av_int(&u, "cloud");
  *sat = lmp_av_int(&u, "sat");
  return 0;
}

static int emit_rejected(struct lmp_tx *tx, const char *id, const char *partner, const struct lmp_reasons *rs) {
  avro_value_t out, arr;
  int r = lmp_tx_value(tx, "customer.users-rejected", &out);
  if (r < 0)
    return r;
  if ((r = lmp_av_set_str(&out, "addition_id", id)) == 0 && (r = lmp_av_set_str(&out, "partner_id", partner)) == 0)
    r = avro_value_get_by_name(&out, "reasons", &arr, NULL) ? LMP_EINVAL : lmp_av_set_reasons(&arr, rs->v, rs->n);
  if (r == 0 && (r = lmp_av_set_long(&out, "rejected_at", lmp_now_ms())) == 0)
    r = lmp_tx_emit(tx, "customer.users-rejected", id, &out);
  avro_value_decref(&out);
  return r;
}

/* customer.users-requested: recorded once per id, then accepted (passed to
 * allocation) or rejected with every reason. */
int intake_on_users_requested(struct lmp_tx *tx, const struct lmp_event *ev) {
  const struct intake *in = lmp_tx_ctx(tx);
  int r = intake_request_trim(ev->value), tier = 0, cloud = 0, sat = 0;
  if (r < 0)
    return r;
  const char *request_id = lmp_av_str(ev->value, "request_id"), *partner = lmp_av_str(ev->value, "partner_id");
  const char *raw_customer = lmp_av_str(ev->value, "customer_id"), *by = lmp_av_str(ev->value, "submitted_by");
  char customer[64] = "";
  for (size_t i = 0; raw_customer && raw_customer[i] && i + 1 < sizeof(customer); i++)
    customer[i] = (char)tolower((unsigned char)raw_customer[i]);
  if (request_id == NULL || partner == NULL || raw_customer == NULL || by == NULL ||
      counts(ev->value, &tier, &cloud, &sat))
    return lmp_tx_reject(tx, "customer.users-requested without request_id, partner_id, customer_id, submitted_by "
                             "or users");
  struct intake_findings f = {0};
  if (strlen(partner) > LMP_ID_CHARS)
    return lmp_tx_reject(tx, "customer.users-requested with a partner id longer than %d characters", LMP_ID_CHARS);
  if ((r = intake_check_text(ev->value, &f)) < 0)
    return r;
  char id[37];
  addition_id(partner, request_id, id);
  /* Text that is not text, or no address to tell: answered, not recorded. */
  if (f.errors.n == 0 && (!intake_email_ok(by) || strlen(by) > 254) &&
      (r = lmp_reasons_add(&f.errors, "BAD_EMAIL", "submitted_by", "The submitter's email address is not valid.")) < 0)
    return r;
  if (f.errors.n) {
    r = emit_rejected(tx, id, partner, &f.errors);
    intake_findings_clear(&f);
    return r;
  }
  json_t *j = lmp_avro_to_json(ev->value);
  char *request = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  const char *p1[] = {id, request};
  int seen = 0;
  if (request == NULL)
    r = LMP_ENOMEM;
  else
    r = lmp_tx_exists(tx, "SELECT 1 FROM user_additions WHERE addition_id = $1", 1, p1, &seen);
  if (r < 0 || seen) {
    if (seen)
      lmp_info(id, "users for this request asked for already: nothing to do");
    free(request);
    return r;
  }
  PGresult *res;
  const char *p2[] = {customer, partner};
  struct account a = {0};
  if (lmp_uuid_valid(customer)) {
    if ((r = lmp_tx_query(tx, ACCOUNT_SQL, 2, p2, &res)) < 0) {
      free(request);
      return r;
    }
    read_account(res, &a);
    PQclear(res);
  }
  if ((r = check_addition(&in->rules, &a, request_id, tier, cloud, sat, &f.errors)) < 0)
    goto out;
  int ok = f.errors.n == 0;
  char *reasons = lmp_reasons_json(f.errors.v, f.errors.n);
  char users[96];
  snprintf(users, sizeof(users), "{\"tier\":%d,\"cloud\":%d,\"sat\":%d}", tier, cloud, sat);
  const char *p3[] = {id, partner, customer, ok ? "accepted" : "rejected", users, reasons ? reasons : "[]", request};
  r = reasons ? lmp_tx_command(tx, "INSERT INTO user_additions(addition_id, partner_id, customer_id, status, users, "
                                   "reasons, request) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb)",
                               7, p3)
              : LMP_ENOMEM;
  free(reasons);
  avro_value_t out;
  const char *type = "customer.users-accepted";
  if (r == 0 && ok && (r = lmp_tx_value(tx, type, &out)) == 0) {
    r = lmp_av_set_str(&out, "addition_id", id);
    if (r == 0)
      r = lmp_av_set_str(&out, "partner_id", partner);
    if (r == 0) {
      avro_value_t lic, u;
      int k = 0;
      while (k < 3 && strcmp(licenses[k], a.license) != 0)
        k++;
      r = lmp_av_set_str(&out, "customer_id", customer);
      if (r == 0) r = lmp_av_set_str(&out, "account_name", a.name);
      if (r == 0) r = lmp_av_set_str(&out, "submitted_by", by);
      if (r == 0 && (avro_value_get_by_name(&out, "license", &lic, NULL) || avro_value_set_enum(&lic, k < 3 ? k : 0)))
        r = LMP_EINVAL;
      if (r == 0 && avro_value_get_by_name(&out, "users", &u, NULL) == 0) {
        r = lmp_av_set_int(&u, "tier", tier);
        if (r == 0) r = lmp_av_set_int(&u, "cloud", cloud);
        if (r == 0) r = lmp_av_set_int(&u, "sat", sat);
      }
      if (r == 0) r = lmp_av_set_long(&out, "accepted_at", lmp_now_ms());
    }
    if (r == 0)
      r = lmp_tx_emit(tx, type, id, &out);
    avro_value_decref(&out);
  } else if (r == 0) {
    r = emit_rejected(tx, id, partner, &f.errors);
  }
  if (r == 0)
    lmp_info(id, "users for customer %s %s (%d tier, %d cloud, %d sat)", customer, ok ? "accepted" : "rejected",
             tier, cloud, sat);
out:
  intake_findings_clear(&f);
  free(request);
  return r;
}

/* customer.users-added and -refused: allocation's answer, recorded once. */
int intake_on_users_settled(struct lmp_tx *tx, const struct lmp_event *ev) {
  int added = ev->route->data != NULL;
  const char *id = lmp_av_str(ev->value, "addition_id");
  avro_value_t list;
  if (id == NULL || lmp_av_field(ev->value, added ? "allocations" : "reasons", &list) < 0)
    return lmp_tx_reject(tx, "%s without addition_id or %s", added ? "customer.users-added" : "customer.users-refused",
                         added ? "allocations" : "reasons");
  json_t *j = lmp_avro_to_json(&list);
  char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (text == NULL)
    return LMP_ENOMEM;
  const char *p[] = {id, text};
  int r = lmp_tx_command(tx, added ? "UPDATE user_additions SET status = 'added', allocations = $2::jsonb, "
                                     "updated_at = now() WHERE addition_id = $1 AND status = 'accepted'"
                                   : "UPDATE user_additions SET status = 'refused', reasons = $2::jsonb, "
                                     "updated_at = now() WHERE addition_id = $1 AND status = 'accepted'",
                         2, p);
  free(text);
  if (r == 0)
    lmp_info(id, "users %s", added ? "added" : "refused");
  return r;
}

/* The customer's id in /v1/customers/{id}[/users]: a UUID, else NULL. */
static const char *path_customer(const struct lmp_http_call *call, char out[37]) {
  const char *s = call->path + strlen("/v1/customers/");
  size_t n = strcspn(s, "/");
  if (n != 36)
    return NULL;
  for (size_t i = 0; i < 36; i++)
    out[i] = (char)tolower((unsigned char)s[i]);
  out[36] = '\0';
  return lmp_uuid_valid(out) ? out : NULL;
}

/* POST /v1/customers/{id}/users {"request_id", "users": {tier, cloud, sat}}: checked
 * as intake will, 422 with every reason; a repeat of the same request is answered the
 * same; 202 once customer.users-requested is on the broker. */
int intake_add_users_route(void *ctx, struct lmp_http_call *call) {
  const struct intake *in = ctx;
  if (call->state)
    return intake_door_answer(call);
  char customer[37];
  json_t *j = intake_door_body(in, call);
  if (j == NULL)
    return 0;
  if (path_customer(call, customer) == NULL) {
    json_decref(j);
    return lmp_admin_error(call, 404, "no such customer");
  }
  json_object_set_new(j, "customer_id", json_string(customer));
  /* A count left out is none, as the schema's defaults say. */
  json_t *u = json_object_get(j, "users");
  static const char *const kinds[] = {"tier", "cloud", "sat"};
  for (size_t i = 0; json_is_object(u) && i < 3; i++)
    if (json_object_get(u, kinds[i]) == NULL)
      json_object_set_new(u, kinds[i], json_integer(0));
  if (!json_object_get(j, "submitted_at"))
    json_object_set_new(j, "submitted_at", json_integer(lmp_now_ms()));
  avro_value_t v;
  int r = intake_door_value(call, j, "customer.users-requested", "a request for users", &v);
  if (r != 0) {
    json_decref(j);
    return r < 0 ? r : 0;
  }
  struct intake_findings f = {0};
  int tier = 0, cloud = 0, sat = 0;
  if ((r = intake_request_trim(&v)) < 0 || (r = intake_check_text(&v, &f)) < 0)
    goto out;
  counts(&v, &tier, &cloud, &sat);
  const char *request_id = lmp_av_str(&v, "request_id");
  const char *p[] = {customer, call->caller->partner_id};
  PGresult *res = PQexecParams(call->db, ACCOUNT_SQL, 2, NULL, p, NULL, NULL, 0);
  if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
    PQclear(res);
    r = lmp_admin_error(call, 503, "database error; try again");
    goto out;
  }
  struct account a;
  read_account(res, &a);
  PQclear(res);
  if (!a.found || strcmp(a.status, "released") == 0) {
    r = lmp_admin_error(call, 404, "no such customer");
    goto out;
  }
  if (f.errors.n == 0 && (r = check_addition(&in->rules, &a, request_id, tier, cloud, sat, &f.errors)) < 0)
    goto out;
  if (f.errors.n) {
    /* Reasons the account gives (its license, its state) are a conflict with it, 409:
     * the same body is right for another account. Any reason of the body alone, 422. */
    static const char *const account_codes[] = {"CUSTOMER_NOT_ACTIVE", "TIER_USERS_WITH_CLOUD_LICENSE",
                                                "SAT_REQUIRES_COMPLETE", NULL};
    size_t of_account = 0;
    for (size_t i = 0; i < f.errors.n; i++)
      for (const char *const *c = account_codes; *c; c++)
        of_account += strcmp(f.errors.v[i].code, *c) == 0;
    r = intake_door_refused(call, &f);
    if (r == 0 && of_account == f.errors.n)
      call->status = 409;
    goto out;
  }
  char id[37], location[120], users[96];
  addition_id(call->caller->partner_id, request_id, id);
  snprintf(location, sizeof(location), "/v1/customers/%s", customer);
  /* A request id used before: the same request is answered as it was; another is 409. */
  snprintf(users, sizeof(users), "{\"tier\":%d,\"cloud\":%d,\"sat\":%d}", tier, cloud, sat);
  const char *p2[] = {id, customer, users};
  res = PQexecParams(call->db, "SELECT customer_id = $2 AND users = $3::jsonb FROM user_additions "
                               "WHERE addition_id = $1", 3, NULL, p2, NULL, NULL, 0);
  if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
    PQclear(res);
    r = lmp_admin_error(call, 503, "database error; try again");
    goto out;
  }
  int before = PQntuples(res), same = before && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  PQclear(res);
  if (before && !same) {
    r = lmp_admin_error(call, 409, "you already used this request id for other users or another customer; "
                                   "send a new request with a new id");
    goto out;
  }
  if (same) {
    r = intake_door_accepted(call, location, json_pack("{s:s,s:s,s:s}", "addition_id", id, "customer_id", customer,
                                                       "status", "submitted"));
    goto out;
  }
  r = intake_door_publish(call, "customer.users-requested", id, &v, location,
                          json_pack("{s:s,s:s,s:s}", "addition_id", id, "customer_id", customer, "status", "submitted"));
out:
  intake_findings_clear(&f);
  avro_value_decref(&v);
  json_decref(j);
  return r;
}

#define UTC(col) "to_char(" #col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static const char customer_sql[] =
    "SELECT json_build_object('customer_id', a.customer_id, 'account_name', a.account_name, 'license', a.license, "
    "'status', a.status, 'onboarding_id', a.onboarding_id, 'created_at', " UTC(a.created_at) ", "
    "'users', " INTAKE_CUSTOMER_TOTALS(a) ", "
    "'additions', COALESCE((SELECT json_agg(json_build_object('addition_id', u.addition_id, 'status', u.status, "
    "  'users', u.users, 'allocations', u.allocations, 'reasons', u.reasons, 'created_at', " UTC(u.created_at) ", "
    "  'updated_at', " UTC(u.updated_at) ") ORDER BY u.created_at DESC) FROM user_additions u "
    "  WHERE u.customer_id = a.customer_id::text AND u.partner_id = a.partner_id), '[]'))::text "
    "FROM customer_accounts a WHERE a.customer_id = $1::uuid AND a.partner_id = $2";

/* GET /v1/customers/{id}: the account, its users per product, its additions; the
 * signed-in partner's only (another's is the same 404 as none). */
int intake_customer_route(void *ctx, struct lmp_http_call *call) {
  char customer[37];
  if (call->caller->partner_id[0] == '\0' || path_customer(call, customer) == NULL)
    return lmp_admin_error(call, 404, "no such customer");
  const char *p[] = {customer, call->caller->partner_id};
  return lmp_admin_json(call, customer_sql, 2, p);
}
