/* Allocation's admin routes: partners, license shares and pools. A load raises the
 * balance_version of every partner whose balance it may change (balance.c). */
#include <stdio.h>
#include <string.h>

#include "allocation.h"
#include "lmp/io/admin.h"

/* POST /v1/admin/load {"partners": [{partner_id, name, shares_with: [...]}],
 *                      "pools": [{partner_id, product, total}]}
 * Checked whole, then upserted in one transaction; a pool total below what is
 * already allocated is refused by the pools' CHECK. */
#define ROWS_MAX 10000
#define TOTAL_MAX 100000000

static void check(json_t *j, char *err, size_t errlen) {
  static const char *const top[] = {"partners", "pools", NULL};
  static const char *const partner[] = {"partner_id", "name", "shares_with", NULL};
  static const char *const pool[] = {"partner_id", "product", "total", NULL};
  char where[64];
  size_t i, k;
  json_t *it, *sub;
  lmp_admin_known(j, top, "body", err, errlen);
  json_array_foreach(lmp_admin_rows(j, "partners", ROWS_MAX, "body", err, errlen), i, it) {
    snprintf(where, sizeof(where), "partners[%zu]", i);
    lmp_admin_text(it, "partner_id", LMP_ADMIN_ID, 1, 64, where, err, errlen);
    lmp_admin_text(it, "name", LMP_ADMIN_TEXT, 0, 200, where, err, errlen);
    lmp_admin_known(it, partner, where, err, errlen);
    json_array_foreach(lmp_admin_rows(it, "shares_with", ROWS_MAX, where, err, errlen), k, sub) {
      char w[128];
      snprintf(w, sizeof(w), "%s.shares_with[%zu]", where, k);
      lmp_admin_value(sub, LMP_ADMIN_ID, 1, 64, w, NULL, err, errlen);
    }
  }
  json_array_foreach(lmp_admin_rows(j, "pools", ROWS_MAX, "body", err, errlen), i, it) {
    long long total;
    snprintf(where, sizeof(where), "pools[%zu]", i);
    lmp_admin_text(it, "partner_id", LMP_ADMIN_ID, 1, 64, where, err, errlen);
    lmp_admin_text(it, "product", LMP_ADMIN_ID, 1, 64, where, err, errlen);
    lmp_admin_int(it, "total", 0, TOTAL_MAX, where, &total, err, errlen);
    lmp_admin_known(it, pool, where, err, errlen);
  }
}

static int load(struct lmp_http_call *call) {
  PGconn *db = call->db;
  json_t *j = lmp_admin_body(call);
  if (j == NULL)
    return 0;
  char err[512] = "";
  size_t i, k;
  json_t *it, *sub;
  check(j, err, sizeof(err));
  lmp_admin_exec(db, "BEGIN", 0, NULL, err, sizeof(err));
  json_array_foreach(json_object_get(j, "partners"), i, it) {
    const char *p[] = {lmp_admin_str(it, "partner_id"), lmp_admin_str(it, "name") ?: ""};
    lmp_admin_exec(db, "INSERT INTO partners(partner_id, name) VALUES ($1, $2) "
                       "ON CONFLICT (partner_id) DO UPDATE SET name = EXCLUDED.name, "
                       "balance_version = partners.balance_version + 1", 2, p, err, sizeof(err));
    /* Its name is in the balances of the partners that share with it. */
    lmp_admin_exec(db, "UPDATE partners SET balance_version = balance_version + 1 WHERE partner_id IN "
                       "(SELECT partner_id FROM license_shares WHERE sub_partner_id = $1)", 1, p, err, sizeof(err));
  }
  json_array_foreach(json_object_get(j, "partners"), i, it) {
    json_array_foreach(json_object_get(it, "shares_with"), k, sub) {
      const char *p[] = {lmp_admin_str(it, "partner_id"), json_string_value(sub)};
      lmp_admin_exec(db, "WITH changed AS (UPDATE partners SET balance_version = balance_version + 1 "
                         "WHERE partner_id = $1) INSERT INTO license_shares VALUES ($1, $2) ON CONFLICT DO NOTHING",
                     2, p, err, sizeof(err));
    }
  }
  json_array_foreach(json_object_get(j, "pools"), i, it) {
    char total[24];
    snprintf(total, sizeof(total), "%lld", (long long)json_integer_value(json_object_get(it, "total")));
    const char *p[] = {lmp_admin_str(it, "partner_id"), lmp_admin_str(it, "product"), total};
    /* The partner's row first, in a statement of its own (a data-modifying WITH runs
     * after the statement it is attached to): the order allocation takes them in. */
    lmp_admin_exec(db, "UPDATE partners SET balance_version = balance_version + 1 WHERE partner_id = $1", 1, p, err,
                   sizeof(err));
    lmp_admin_exec(db, "INSERT INTO pools(partner_id, product, total) VALUES ($1, $2, $3::int) "
                       "ON CONFLICT (partner_id, product) DO UPDATE SET total = EXCLUDED.total",
                   3, p, err, sizeof(err));
  }
  json_decref(j);
  int r = lmp_admin_finish(call, err);
  lmp_service_wake(); /* the tick announces the balances that changed (balance.c) */
  return r;
}

static int pools(void *ctx, struct lmp_http_call *call) {
  const char *p[] = {call->path + strlen("/v1/pools/")};
  return lmp_admin_json(call, "SELECT json_agg(json_build_object('product', product, 'total', total, "
                            "'allocated', allocated, 'available', total - allocated) ORDER BY product)::text "
                            "FROM pools WHERE partner_id = $1", 1, p);
}

static int onboarding(void *ctx, struct lmp_http_call *call) {
  const char *p[] = {call->path + strlen("/v1/onboardings/")};
  return lmp_admin_json(call, "SELECT json_build_object('onboarding_id', o.onboarding_id, 'status', o.status, "
                            "'reasons', o.reasons, 'allocations', COALESCE((SELECT json_agg(json_build_object("
                            "'product', a.product, 'users', a.users)) FROM allocations a "
                            "WHERE a.onboarding_id = o.onboarding_id), '[]'))::text "
                            "FROM onboardings o WHERE o.onboarding_id = $1", 1, p);
}

static int load_route(void *ctx, struct lmp_http_call *call) {
  return load(call);
}

const struct lmp_http_route allocation_http[] = {
    {"POST", "/v1/admin/load", load_route, 1024 * 1024, 1, 0},
    {"GET", "/v1/pools/{}", pools, 0, 1, 0},
    {"GET", "/v1/onboardings/{}", onboarding, 0, 1, 0},
    {NULL, NULL, NULL, 0, 0, 0},
};
