/* Fulfilment's admin routes: hosting regions, the SKU catalogue and inventory. */
#include <stdio.h>
#include <string.h>

#include "fulfilment.h"
#include "lmp/admin.h"

/* POST /v1/admin/load {"regions": [{region, name}], "skus": [{sku, description}],
 *   "inventory": [{sku, serials: [...]} or {sku, serial_prefix, count}]} */
static int load(PGconn *db, const char *body, size_t len, int *status, struct lmp_buf *out) {
  json_t *j = lmp_admin_body(body, len, status, out);
  if (j == NULL)
    return 0;
  char err[512] = "";
  size_t i, k;
  json_t *it, *s;
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
    json_int_t count = json_integer_value(json_object_get(it, "count"));
    if (prefix && (count < 0 || count > 1000000))
      snprintf(err, sizeof(err), "inventory[%zu]: count must be 0..1000000", i);
    if (prefix) {
      char n[24];
      snprintf(n, sizeof(n), "%lld", (long long)count);
      const char *p[] = {prefix, sku, n};
      lmp_admin_exec(db, "INSERT INTO units(serial, sku) SELECT $1 || lpad(g::text, 6, '0'), $2 "
                         "FROM generate_series(1, $3::int) g ON CONFLICT DO NOTHING", 3, p, err, sizeof(err));
    }
  }
  json_decref(j);
  return lmp_admin_finish(db, err, status, out);
}

static int load_route(void *ctx, PGconn *db, const char *method, const char *path, const char *query,
                      const char *body, size_t len, int *status, struct lmp_buf *out) {
  return load(db, body, len, status, out);
}

static int inventory(void *ctx, PGconn *db, const char *method, const char *path, const char *query,
                     const char *body, size_t len, int *status, struct lmp_buf *out) {
  return lmp_admin_json(db, "SELECT COALESCE(json_agg(json_build_object('sku', s.sku, 'available', "
                            "(SELECT count(*) FROM units u WHERE u.sku = s.sku AND u.status = 'available'), "
                            "'reserved', (SELECT count(*) FROM units u WHERE u.sku = s.sku AND u.status = 'reserved')) "
                            "ORDER BY s.sku), '[]')::text FROM skus s", 0, NULL, status, out);
}

const struct lmp_http_route fulfilment_http[] = {
    {"POST", "/v1/admin/load", load_route, 1024 * 1024, 1},
    {"GET", "/v1/inventory", inventory, 0, 1},
    {NULL, NULL, NULL, 0, 0},
};
