/* Fulfilment's admin routes: hosting regions, the SKU catalogue and inventory. */
#include <stdio.h>
#include <string.h>

#include "fulfilment.h"
#include "lmp/io/admin.h"

/* POST /v1/admin/load {"regions": [{region, name}], "skus": [{sku, description}],
 *   "inventory": [{sku, serials: [...]} or {sku, serial_prefix, count}]}
 * Checked whole, then upserted in one transaction. */
#define ROWS_MAX 10000
#define COUNT_MAX 1000000

static void check(json_t *j, char *err, size_t errlen) {
  static const char *const top[] = {"regions", "skus", "inventory", NULL};
  static const char *const region[] = {"region", "name", NULL};
  static const char *const sku[] = {"sku", "description", NULL};
  static const char *const stock[] = {"sku", "serials", "serial_prefix", "count", NULL};
  char where[64];
  size_t i, k;
  json_t *it, *s;
  lmp_admin_known(j, top, "body", err, errlen);
  json_array_foreach(lmp_admin_rows(j, "regions", ROWS_MAX, "body", err, errlen), i, it) {
    snprintf(where, sizeof(where), "regions[%zu]", i);
    lmp_admin_text(it, "region", LMP_ADMIN_ID, 1, 64, where, err, errlen);
    lmp_admin_text(it, "name", LMP_ADMIN_TEXT, 0, 200, where, err, errlen);
    lmp_admin_known(it, region, where, err, errlen);
  }
  json_array_foreach(lmp_admin_rows(j, "skus", ROWS_MAX, "body", err, errlen), i, it) {
    snprintf(where, sizeof(where), "skus[%zu]", i);
    lmp_admin_text(it, "sku", LMP_ADMIN_ID, 1, 64, where, err, errlen);
    lmp_admin_text(it, "description", LMP_ADMIN_TEXT, 0, 200, where, err, errlen);
    lmp_admin_known(it, sku, where, err, errlen);
  }
  json_array_foreach(lmp_admin_rows(j, "inventory", ROWS_MAX, "body", err, errlen), i, it) {
    snprintf(where, sizeof(where), "inventory[%zu]", i);
    lmp_admin_text(it, "sku", LMP_ADMIN_ID, 1, 64, where, err, errlen);
    lmp_admin_known(it, stock, where, err, errlen);
    json_array_foreach(lmp_admin_rows(it, "serials", ROWS_MAX, where, err, errlen), k, s) {
      char w[128];
      snprintf(w, sizeof(w), "%s.serials[%zu]", where, k);
      lmp_admin_value(s, LMP_ADMIN_ID, 1, 64, w, NULL, err, errlen);
    }
    if (json_object_get(it, "serial_prefix") || json_object_get(it, "count")) {
      long long count;
      lmp_admin_text(it, "serial_prefix", LMP_ADMIN_ID, 1, 32, where, err, errlen);
      lmp_admin_int(it, "count", 0, COUNT_MAX, where, &count, err, errlen);
    }
  }
}

static int load(struct lmp_http_call *call) {
  PGconn *db = call->db;
  json_t *j = lmp_admin_body(call);
  if (j == NULL)
    return 0;
  char err[512] = "";
  size_t i, k;
  json_t *it, *s;
  check(j, err, sizeof(err));
  lmp_admin_exec(db, "BEGIN", 0, NULL, err, sizeof(err));
  json_array_foreach(json_object_get(j, "regions"), i, it) {
    const char *p[] = {lmp_admin_str(it, "region"), lmp_admin_str(it, "name") ?: ""};
    lmp_admin_exec(db, "INSERT INTO hosting_regions VALUES ($1, $2) ON CONFLICT (region) DO UPDATE "
                       "SET name = EXCLUDED.name", 2, p, err, sizeof(err));
  }
  json_array_foreach(json_object_get(j, "skus"), i, it) {
    const char *p[] = {lmp_admin_str(it, "sku"), lmp_admin_str(it, "description") ?: ""};
    lmp_admin_exec(db, "INSERT INTO skus VALUES ($1, $2) ON CONFLICT (sku) DO UPDATE "
                       "SET description = EXCLUDED.description", 2, p, err, sizeof(err));
  }
  json_array_foreach(json_object_get(j, "inventory"), i, it) {
    const char *sku = lmp_admin_str(it, "sku");
    json_array_foreach(json_object_get(it, "serials"), k, s) {
      const char *p[] = {json_string_value(s), sku};
      lmp_admin_exec(db, "INSERT INTO units(serial, sku) VALUES ($1, $2) ON CONFLICT DO NOTHING", 2, p, err,
                     sizeof(err));
    }
    const char *prefix = lmp_admin_str(it, "serial_prefix");
    if (prefix) {
      char n[24];
      snprintf(n, sizeof(n), "%lld", (long long)json_integer_value(json_object_get(it, "count")));
      const char *p[] = {prefix, sku, n};
      lmp_admin_exec(db, "INSERT INTO units(serial, sku) SELECT $1 || lpad(g::text, 6, '0'), $2 "
                         "FROM generate_series(1, $3::int) g ON CONFLICT DO NOTHING", 3, p, err, sizeof(err));
    }
  }
  json_decref(j);
  return lmp_admin_finish(call, err);
}

static int load_route(void *ctx, struct lmp_http_call *call) {
  return load(call);
}

static int inventory(void *ctx, struct lmp_http_call *call) {
  return lmp_admin_json(call, "SELECT COALESCE(json_agg(json_build_object('sku', s.sku, 'available', "
                            "(SELECT count(*) FROM units u WHERE u.sku = s.sku AND u.status = 'available'), "
                            "'reserved', (SELECT count(*) FROM units u WHERE u.sku = s.sku AND u.status = 'reserved')) "
                            "ORDER BY s.sku), '[]')::text FROM skus s", 0, NULL);
}

const struct lmp_http_route fulfilment_http[] = {
    {"POST", "/v1/admin/load", load_route, 1024 * 1024, 1, 0},
    {"GET", "/v1/inventory", inventory, 0, 1, 0},
    {NULL, NULL, NULL, 0, 0, 0},
};
