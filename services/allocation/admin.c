/* Allocation's admin routes: partners, license shares and pools. */
#include <stdio.h>
#include <string.h>

#include "allocation.h"
#include "lmp/admin.h"

/* POST /v1/admin/load {"partners": [{partner_id, name, shares_with: [...]}],
 *                      "pools": [{partner_id, product, total}]}
 * Upserts everything in one transaction; a pool total below what is already
 * allocated is refused by the pools' CHECK. */
static int load(PGconn *db, const char *body, size_t len, int *status, struct lmp_buf *out) {
  json_t *j = lmp_admin_body(body, len, status, out);
  if (j == NULL)
    return 0;
  char err[512] = "";
  size_t i, k;
  json_t *it, *sub;
  lmp_admin_exec(db, "BEGIN", 0, NULL, err, sizeof(err));
  json_array_foreach(json_object_get(j, "partners"), i, it) {
    const char *p[] = {lmp_admin_str(it, "partner_id"), lmp_admin_str(it, "name") ?: ""};
    if (p[0] == NULL)
      snprintf(err, sizeof(err), "partners[%zu]: partner_id is required", i);
    lmp_admin_exec(db, "INSERT INTO partners(partner_id, name) VALUES ($1, $2) "
                       "ON CONFLICT (partner_id) DO UPDATE SET name = EXCLUDED.name", 2, p, err, sizeof(err));
  }
  json_array_foreach(json_object_get(j, "partners"), i, it) {
    json_array_foreach(json_object_get(it, "shares_with"), k, sub) {
      const char *p[] = {lmp_admin_str(it, "partner_id"), json_string_value(sub)};
      lmp_admin_exec(db, "INSERT INTO license_shares VALUES ($1, $2) ON CONFLICT DO NOTHING", 2, p, err,
                     sizeof(err));
    }
  }
  json_array_foreach(json_object_get(j, "pools"), i, it) {
    char total[24];
    snprintf(total, sizeof(total), "%lld", (long long)json_integer_value(json_object_get(it, "total")));
    const char *p[] = {lmp_admin_str(it, "partner_id"), lmp_admin_str(it, "product"), total};
    if (p[0] == NULL || p[1] == NULL || !json_is_integer(json_object_get(it, "total")))
      snprintf(err, sizeof(err), "pools[%zu]: partner_id, product and an integer total are required", i);
    lmp_admin_exec(db, "INSERT INTO pools(partner_id, product, total) VALUES ($1, $2, $3::int) "
                       "ON CONFLICT (partner_id, product) DO UPDATE SET total = EXCLUDED.total",
                   3, p, err, sizeof(err));
  }
  json_decref(j);
  return lmp_admin_finish(db, err, status, out);
}

static int pools(void *ctx, PGconn *db, const char *method, const char *path, const char *query,
                 const char *body, size_t len, int *status, struct lmp_buf *out) {
  const char *p[] = {path + strlen("/v1/pools/")};
  return lmp_admin_json(db, "SELECT json_agg(json_build_object('product', product, 'total', total, "
                            "'allocated', allocated, 'available', total - allocated) ORDER BY product)::text "
                            "FROM pools WHERE partner_id = $1", 1, p, status, out);
}

static int onboarding(void *ctx, PGconn *db, const char *method, const char *path, const char *query,
                      const char *body, size_t len, int *status, struct lmp_buf *out) {
  const char *p[] = {path + strlen("/v1/onboardings/")};
  return lmp_admin_json(db, "SELECT json_build_object('onboarding_id', o.onboarding_id, 'status', o.status, "
                            "'reasons', o.reasons, 'allocations', COALESCE((SELECT json_agg(json_build_object("
                            "'product', a.product, 'users', a.users)) FROM allocations a "
                            "WHERE a.onboarding_id = o.onboarding_id), '[]'))::text "
                            "FROM onboardings o WHERE o.onboarding_id = $1", 1, p, status, out);
}

static int load_route(void *ctx, PGconn *db, const char *method, const char *path, const char *query,
                      const char *body, size_t len, int *status, struct lmp_buf *out) {
  return load(db, body, len, status, out);
}

const struct lmp_http_route allocation_http[] = {
    {"POST", "/v1/admin/load", load_route, 1024 * 1024, 1},
    {"GET", "/v1/pools/{}", pools, 0, 1},
    {"GET", "/v1/onboardings/{}", onboarding, 0, 1},
    {NULL, NULL, NULL, 0, 0},
};
