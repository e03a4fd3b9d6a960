/* Shipping's admin routes: partners' default addresses, shipments. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "lmp/admin.h"
#include "shipping.h"

/* POST /v1/admin/load {"partner_addresses": [{partner_id, address: {...}}]} */
static int load(PGconn *db, const char *body, size_t len, int *status, struct lmp_buf *out) {
  json_t *j = lmp_admin_body(body, len, status, out);
  if (j == NULL)
    return 0;
  char err[512] = "";
  size_t i;
  json_t *it;
  lmp_admin_exec(db, "BEGIN", 0, NULL, err, sizeof(err));
  json_array_foreach(json_object_get(j, "partner_addresses"), i, it) {
    json_t *a = json_object_get(it, "address");
    char *text = json_is_object(a) ? json_dumps(a, JSON_COMPACT) : NULL;
    const char *p[] = {lmp_admin_str(it, "partner_id"), text};
    if (p[0] == NULL || text == NULL || !lmp_admin_str(a, "line1") || !lmp_admin_str(a, "city") ||
        !lmp_admin_str(a, "postal_code") || !lmp_admin_str(a, "country") || !lmp_admin_str(a, "recipient"))
      snprintf(err, sizeof(err), "partner_addresses[%zu]: partner_id and an address with recipient, line1, "
                                 "city, postal_code and country are required", i);
    lmp_admin_exec(db, "INSERT INTO partner_addresses VALUES ($1, $2::jsonb) ON CONFLICT (partner_id) "
                       "DO UPDATE SET address = EXCLUDED.address", 2, p, err, sizeof(err));
    free(text);
  }
  json_decref(j);
  return lmp_admin_finish(db, err, status, out);
}

static int load_route(void *ctx, PGconn *db, const char *method, const char *path, const char *query,
                      const char *body, size_t len, int *status, struct lmp_buf *out) {
  return load(db, body, len, status, out);
}

static int shipments(void *ctx, PGconn *db, const char *method, const char *path, const char *query,
                     const char *body, size_t len, int *status, struct lmp_buf *out) {
  const char *p[] = {path + strlen("/v1/onboardings/")};
  return lmp_admin_json(db, "SELECT json_agg(json_build_object('shipment_id', s.shipment_id, 'status', s.status, "
                            "'address', s.address, 'carrier', s.carrier, 'tracking_number', s.tracking_number, "
                            "'items', (SELECT json_agg(json_build_object('serial', i.serial, 'sku', i.sku, 'role', i.role)) "
                            "FROM shipment_items i WHERE i.shipment_id = s.shipment_id)))::text "
                            "FROM shipments s WHERE s.onboarding_id = $1", 1, p, status, out);
}

const struct lmp_http_route shipping_http[] = {
    {"POST", "/v1/admin/load", load_route, 1024 * 1024, 1},
    {"GET", "/v1/onboardings/{}", shipments, 0, 1},
    {NULL, NULL, NULL, 0, 0},
};
