/* The partner's view (GET /v1/partner): the licenses the signed-in partner holds with
 * the users available for each count of the form, the partners that share its
 * license, and its default shipping address. Intake reads no other daemon's tables:
 * it keeps what allocation announces (partner.balance) and what shipping announces
 * (partner.address), each at the highest version heard. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake.h"
#include "lmp/avro/codec.h"
#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"
#include "lmp/io/admin.h"

#define TEXT_MAX 200 /* characters of a name or an address line */
static const char *const products[] = {"MDR_CORE", "MDR_COMPLETE", "MDR_CLOUD", "BEAUCERON_SAT"};

static int id_ok(const char *s) { return s && *s && strlen(s) <= LMP_ID_CHARS; }
static int text_ok(const char *s) { return s == NULL || strlen(s) <= TEXT_MAX * 4; }

/* The event's time of the change, as seconds for to_timestamp. */
static void changed_at(avro_value_t *v, char out[32]) {
  avro_value_t at;
  int64_t ms = 0;
  if (lmp_av_field(v, "changed_at", &at) == 0)
    avro_value_get_long(&at, &ms);
  snprintf(out, 32, "%.3f", (double)ms / 1000.0);
}

static int version_of(avro_value_t *v, char out[24]) {
  avro_value_t f;
  int64_t n = 0;
  if (lmp_av_field(v, "version", &f) < 0 || avro_value_get_long(&f, &n) != 0 || n < 1)
    return -1;
  snprintf(out, 24, "%lld", (long long)n);
  return 0;
}

/* Why a balance cannot be kept, or NULL: one pool per product at most, counts that
 * add up, sub-partners named. */
static const char *balance_wrong(json_t *j) {
  json_t *pools = json_object_get(j, "pools"), *subs = json_object_get(j, "sub_partners"), *it;
  size_t i;
  int seen[4] = {0};
  if (!text_ok(json_string_value(json_object_get(j, "name"))))
    return "a name longer than 200 characters";
  json_array_foreach(pools, i, it) {
    const char *product = json_string_value(json_object_get(it, "product"));
    json_int_t total = json_integer_value(json_object_get(it, "total"));
    json_int_t avail = json_integer_value(json_object_get(it, "available"));
    size_t k = 0;
    while (k < 4 && (product == NULL || strcmp(products[k], product) != 0))
      k++;
    if (k == 4 || seen[k]++)
      return "a product's pool twice";
    if (total < 0 || avail < 0 || avail > total)
      return "a pool whose available users are not between 0 and its total";
  }
  json_array_foreach(subs, i, it) {
    if (!id_ok(json_string_value(json_object_get(it, "partner_id"))) ||
        !text_ok(json_string_value(json_object_get(it, "name"))))
      return "a sub-partner without a partner_id of 1 to 64 characters, or with a name too long";
  }
  return NULL;
}

int intake_on_balance(struct lmp_tx *tx, const struct lmp_event *ev) {
  const char *partner = lmp_av_str(ev->value, "partner_id");
  char version[24], at[32];
  if (!id_ok(partner) || version_of(ev->value, version) < 0)
    return lmp_tx_reject(tx, "partner.balance without a partner_id of 1 to 64 characters or a version >= 1");
  json_t *j = lmp_avro_to_json(ev->value);
  if (j == NULL)
    return LMP_ENOMEM;
  const char *wrong = balance_wrong(j);
  if (wrong) {
    json_decref(j);
    return lmp_tx_reject(tx, "partner.balance with %s", wrong);
  }
  char *pools = json_dumps(json_object_get(j, "pools"), JSON_COMPACT);
  char *subs = json_dumps(json_object_get(j, "sub_partners"), JSON_COMPACT);
  changed_at(ev->value, at);
  const char *p[] = {partner, json_string_value(json_object_get(j, "name")), pools, subs, version, at};
  int r = pools && subs ? lmp_tx_command(tx, "INSERT INTO partner_view(partner_id, name, pools, sub_partners, "
                                             "balance_version, balance_at) VALUES ($1, $2, $3::jsonb, $4::jsonb, "
                                             "$5::bigint, to_timestamp($6::double precision)) "
                                             "ON CONFLICT (partner_id) DO UPDATE SET name = EXCLUDED.name, "
                                             "pools = EXCLUDED.pools, sub_partners = EXCLUDED.sub_partners, "
                                             "balance_version = EXCLUDED.balance_version, "
                                             "balance_at = EXCLUDED.balance_at "
                                             "WHERE partner_view.balance_version < EXCLUDED.balance_version",
                                         6, p)
                        : LMP_ENOMEM;
  free(pools);
  free(subs);
  json_decref(j);
  return r;
}

/* Why an address cannot be kept, or NULL. */
static const char *address_wrong(json_t *a) {
  static const char *const required[] = {"recipient", "line1", "city", "postal_code", NULL};
  static const char *const optional[] = {"line2", "region", "phone", NULL};
  for (const char *const *k = required; *k; k++) {
    const char *s = json_string_value(json_object_get(a, *k));
    if (s == NULL || *s == '\0' || !text_ok(s))
      return "an address without a recipient, line1, city or postal_code, or with a line too long";
  }
  for (const char *const *k = optional; *k; k++)
    if (!text_ok(json_string_value(json_object_get(a, *k))))
      return "an address line too long";
  if (!lmp_country_ok(json_string_value(json_object_get(a, "country"))))
    return "a country that is not an ISO 3166-1 alpha-2 code";
  return NULL;
}

int intake_on_address(struct lmp_tx *tx, const struct lmp_event *ev) {
  const char *partner = lmp_av_str(ev->value, "partner_id");
  char version[24], at[32];
  if (!id_ok(partner) || version_of(ev->value, version) < 0)
    return lmp_tx_reject(tx, "partner.address without a partner_id of 1 to 64 characters or a version >= 1");
  json_t *j = lmp_avro_to_json(ev->value);
  if (j == NULL)
    return LMP_ENOMEM;
  json_t *a = json_object_get(j, "address");
  const char *wrong = json_is_null(a) ? NULL : address_wrong(a);
  if (wrong) {
    json_decref(j);
    return lmp_tx_reject(tx, "partner.address with %s", wrong);
  }
  char *text = json_is_null(a) ? NULL : json_dumps(a, JSON_COMPACT);
  changed_at(ev->value, at);
  const char *p[] = {partner, text, version, at};
  int r = text || json_is_null(a)
              ? lmp_tx_command(tx, "INSERT INTO partner_view(partner_id, address, address_version, address_at) "
                                   "VALUES ($1, $2::jsonb, $3::bigint, to_timestamp($4::double precision)) "
                                   "ON CONFLICT (partner_id) DO UPDATE SET address = EXCLUDED.address, "
                                   "address_version = EXCLUDED.address_version, address_at = EXCLUDED.address_at "
                                   "WHERE partner_view.address_version < EXCLUDED.address_version",
                               4, p)
              : LMP_ENOMEM;
  free(text);
  json_decref(j);
  return r;
}

/* What each license of the form may draw: its tier's pool, the cloud pool, and SAT
 * with MDR Complete only (the article's rules; validate.c checks the same). */
static const struct {
  const char *license, *name;
  int tier, cloud, sat; /* index into products, or -1: the count is not offered */
} licenses[] = {
    {"MDR_CORE", "MDR Core", 0, 2, -1},
    {"MDR_COMPLETE", "MDR Complete", 1, 2, 3},
    {"MDR_CLOUD", "MDR Cloud", -1, 2, -1},
};

/* The users available of a product, from the pools; -1 when the partner has no pool of it. */
static json_int_t available(json_t *pools, int product) {
  json_t *it;
  size_t i;
  json_array_foreach(pools, i, it) {
    const char *name = json_string_value(json_object_get(it, "product"));
    if (name && strcmp(name, products[product]) == 0)
      return json_integer_value(json_object_get(it, "available"));
  }
  return -1;
}

/* A license is held when the partner has a pool of its tier's product. */
static json_t *held(json_t *pools) {
  json_t *out = json_array();
  for (size_t i = 0; out && i < sizeof(licenses) / sizeof(licenses[0]); i++) {
    int own = licenses[i].tier >= 0 ? licenses[i].tier : licenses[i].cloud;
    if (available(pools, own) < 0)
      continue;
    json_t *users = json_object();
    const char *const counts[] = {"tier", "cloud", "sat"};
    const int which[] = {licenses[i].tier, licenses[i].cloud, licenses[i].sat};
    for (int k = 0; k < 3; k++) {
      json_int_t n = which[k] >= 0 ? available(pools, which[k]) : -1;
      if (which[k] >= 0)
        json_object_set_new(users, counts[k], json_integer(n < 0 ? 0 : n));
    }
    json_array_append_new(out, json_pack("{s:s,s:s,s:o}", "license", licenses[i].license, "name",
                                         licenses[i].name, "users_available", users));
  }
  return out;
}

#define UTC(col) "to_char(" #col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* GET /v1/partner: the signed-in partner's own view; a partner intake has heard
 * nothing of holds nothing yet. */
int intake_partner_route(void *ctx, struct lmp_http_call *call) {
  const char *partner = call->caller->partner_id;
  if (*partner == '\0')
    return lmp_admin_error(call, 403, "this account acts for no partner");
  const char *p[] = {partner};
  PGresult *res = PQexecParams(call->db,
                               "SELECT name, pools::text, sub_partners::text, address::text, "
                               UTC(balance_at) ", " UTC(address_at) " FROM partner_view WHERE partner_id = $1",
                               1, NULL, p, NULL, NULL, 0);
  if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
    lmp_warn(NULL, "partner view query failed: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(call->db));
    PQclear(res);
    return lmp_admin_error(call, 503, "database error; try again");
  }
  int found = PQntuples(res) == 1;
  json_t *pools = found ? json_loads(PQgetvalue(res, 0, 1), 0, NULL) : json_array();
  json_t *subs = found ? json_loads(PQgetvalue(res, 0, 2), 0, NULL) : json_array();
  json_t *address = found && !PQgetisnull(res, 0, 3) ? json_loads(PQgetvalue(res, 0, 3), 0, NULL) : json_null();
  json_t *o = json_pack("{s:s,s:s,s:o,s:O,s:o,s:o,s:o,s:o}", "partner_id", partner, "name",
                        found ? PQgetvalue(res, 0, 0) : "", "licenses", held(pools), "pools", pools,
                        "sub_partners", subs, "default_address", address, "balance_as_of",
                        found && !PQgetisnull(res, 0, 4) ? json_string(PQgetvalue(res, 0, 4)) : json_null(),
                        "address_as_of",
                        found && !PQgetisnull(res, 0, 5) ? json_string(PQgetvalue(res, 0, 5)) : json_null());
  PQclear(res);
  json_decref(pools);
  return lmp_admin_answer(call, 200, o);
}
