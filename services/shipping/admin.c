/* Shipping's admin routes: partners' default addresses (each change announced as
 * partner.address by the tick, address.c), shipments. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "lmp/io/admin.h"
#include "shipping.h"

/* POST /v1/admin/load {"partner_addresses": [{partner_id, address: {...}}]}, the
 * address as a request's: recipient, line1, city, postal_code and country (ISO
 * 3166-1 alpha-2) required, line2, region and phone optional. Checked whole, then
 * upserted in one transaction. */
#define ROWS_MAX 10000

static void check(json_t *j, char *err, size_t errlen) {
  static const char *const top[] = {"partner_addresses", NULL};
  static const char *const row[] = {"partner_id", "address", NULL};
  static const char *const address[] = {"recipient", "line1", "line2", "city", "region",
                                        "postal_code", "country", "phone", NULL};
  static const char *const required[] = {"recipient", "line1", "city", "postal_code", NULL};
  char where[64], w[128];
  size_t i;
  json_t *it;
  lmp_admin_known(j, top, "body", err, errlen);
  json_array_foreach(lmp_admin_rows(j, "partner_addresses", ROWS_MAX, "body", err, errlen), i, it) {
    snprintf(where, sizeof(where), "partner_addresses[%zu]", i);
    lmp_admin_text(it, "partner_id", LMP_ADMIN_ID, 1, 64, where, err, errlen);
    lmp_admin_known(it, row, where, err, errlen);
    json_t *a = json_object_get(it, "address");
    snprintf(w, sizeof(w), "%s.address", where);
    for (const char *const *k = address; *k; k++) {
      int req = 0;
      for (const char *const *r = required; *r; r++)
        req |= strcmp(*r, *k) == 0;
      lmp_admin_text(a, *k, LMP_ADMIN_TEXT, req, 200, w, err, errlen);
    }
    lmp_admin_text(a, "country", LMP_ADMIN_COUNTRY, 1, 2, w, err, errlen);
    lmp_admin_known(a, address, w, err, errlen);
  }
}

static int load(struct lmp_http_call *call) {
  PGconn *db = call->db;
  json_t *j = lmp_admin_body(call);
  if (j == NULL)
    return 0;
  char err[512] = "";
  size_t i;
  json_t *it;
  check(j, err, sizeof(err));
  lmp_admin_exec(db, "BEGIN", 0, NULL, err, sizeof(err));
  json_array_foreach(json_object_get(j, "partner_addresses"), i, it) {
    if (*err)
      break;
    char *text = json_dumps(json_object_get(it, "address"), JSON_COMPACT);
    const char *p[] = {lmp_admin_str(it, "partner_id"), text};
    if (text == NULL)
      snprintf(err, sizeof(err), "out of memory");
    lmp_admin_exec(db, "INSERT INTO partner_addresses VALUES ($1, $2::jsonb) ON CONFLICT (partner_id) "
                       "DO UPDATE SET address = EXCLUDED.address, version = partner_addresses.version + 1", 2, p, err,
                   sizeof(err));
    free(text);
  }
  json_decref(j);
  int r = lmp_admin_finish(call, err);
  lmp_service_wake(); /* the tick announces the addresses that changed (address.c) */
  return r;
}

static int load_route(void *ctx, struct lmp_http_call *call) {
  return load(call);
}

static int shipments(void *ctx, struct lmp_http_call *call) {
  const char *p[] = {call->path + strlen("/v1/onboardings/")};
  return lmp_admin_json(call, "SELECT json_agg(json_build_object('shipment_id', s.shipment_id, 'status', s.status, "
                            "'address', s.address, 'carrier', s.carrier, 'tracking_number', s.tracking_number, "
                            "'items', (SELECT json_agg(json_build_object('serial', i.serial, 'sku', i.sku, 'role', i.role)) "
                            "FROM shipment_items i WHERE i.shipment_id = s.shipment_id)))::text "
                            "FROM shipments s WHERE s.onboarding_id = $1", 1, p);
}

const struct lmp_http_route shipping_http[] = {
    {"POST", "/v1/admin/load", load_route, 1024 * 1024, 1, 0},
    {"GET", "/v1/onboardings/{}", shipments, 0, 1, 0},
    {NULL, NULL, NULL, 0, 0, 0},
};
