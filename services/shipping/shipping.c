/* On appliances-provisioned, group the physical units by address into shipments,
 * ask the warehouse for each, and emit shipping-completed; on a warehouse's
 * dispatch, record the tracking and tell the notifier. */
#include "shipping.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "lmp/avro/codec.h"
#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"
#include "lmp/runtime/events.h"

#define STAGE "shipping"
#define PARTNER_DEFAULT "partner-default"

static const char *const address_fields[] = {"recipient", "line1", "line2", "city", "region",
                                             "postal_code", "country", "phone", NULL};

/* The address as JSON without its ref, in a fixed key order: equal addresses give
 * equal keys, whatever refs the form gave them. */
static json_t *address_json(json_t *src) {
  json_t *o = json_object();
  for (const char *const *f = address_fields; *f; f++) {
    json_t *v = json_object_get(src, *f);
    json_object_set_new(o, *f, json_is_string(v) ? json_string(json_string_value(v)) : json_null());
  }
  return o;
}

struct group {
  char *key;           /* normalised address */
  json_t *address;
  size_t *units;       /* indexes into the appliances array */
  size_t n;
};

static void groups_free(struct group *g, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(g[i].key);
    json_decref(g[i].address);
    free(g[i].units);
  }
  free(g);
}

static int set_address(avro_value_t *rec, const char *field, json_t *addr, const char *ref) {
  avro_value_t a;
  if (avro_value_get_by_name(rec, field, &a, NULL))
    return LMP_EINVAL;
  int r = lmp_av_set_str(&a, "ref", ref);
  for (const char *const *f = address_fields; r == 0 && *f; f++) {
    const char *v = json_string_value(json_object_get(addr, *f));
    avro_value_t fv;
    if (avro_value_get_by_name(&a, *f, &fv, NULL))
      return LMP_EINVAL;
    r = (avro_value_get_type(&fv) == AVRO_UNION || v) ? lmp_av_set_str(&a, *f, v) : lmp_av_set_str(&a, *f, "");
  }
  return r;
}

/* The batch's writes, a statement each for all its onboardings (lmp_tx_add): the
 * shipments first, their items after them, then each onboarding's record. */
static const struct lmp_set shipments_set = {
    "INSERT INTO shipments(shipment_id, onboarding_id, address_key, address, partner_id, partner_email, "
    "customer_id, account_name) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::text[], "
    "$6::text[], $7::text[], $8::text[])",
    8};
static const struct lmp_set items_set = {
    "INSERT INTO shipment_items(shipment_id, serial, sku, role) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])",
    4};
static const struct lmp_set arranged_set = {
    "INSERT INTO onboardings(onboarding_id, status, shipments) "
    "SELECT id, 'arranged', n FROM unnest($1::text[], $2::int[]) AS r(id, n)",
    2};

static int on_provisioned(struct lmp_tx *tx, const struct lmp_event *ev) {
  avro_value_t *in = ev->value, acc, req, cust, apps, dep, addrs;
  const char *id = lmp_av_str(in, "onboarding_id");
  if (id == NULL || lmp_av_field(in, "onboarding", &acc) < 0 || lmp_av_field(&acc, "request", &req) < 0 ||
      lmp_av_field(&req, "customer", &cust) < 0 || lmp_av_field(in, "appliances", &apps) < 0)
    return lmp_tx_reject(tx, "appliances-provisioned without onboarding_id, its request or appliances");
  const char *partner = lmp_av_str(&req, "partner_id");
  const char *p1[] = {id};
  int seen, rc = lmp_tx_exists(tx, "SELECT 1 FROM onboardings WHERE onboarding_id = $1", 1, p1, &seen);
  if (rc < 0 || seen)
    return rc; /* a redelivery under another event id: done already */
  PGresult *res;

  /* The request's addresses by ref, and the partner's default when asked for. */
  json_t *by_ref = json_object();
  if (lmp_av_field(&req, "deployment", &dep) == 0 && avro_value_get_by_name(&dep, "addresses", &addrs, NULL) == 0) {
    json_t *list = lmp_avro_to_json(&addrs);
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a) json_object_set(by_ref, json_string_value(json_object_get(a, "ref")), a);
    json_decref(list);
  }
  size_t n = 0;
  avro_value_get_size(&apps, &n);
  struct group *g = calloc(n ? n : 1, sizeof(*g));
  size_t ng = 0;
  int r = g ? 0 : LMP_ENOMEM;
  for (size_t i = 0; r == 0 && i < n; i++) {
    avro_value_t u;
    avro_value_get_by_index(&apps, i, &u, NULL);
    if (lmp_av_str(&u, "serial") == NULL)
      continue; /* a virtual appliance ships nothing */
    const char *ref = lmp_av_str(&u, "ship_to");
    json_t *src = NULL;
    if (ref && strcmp(ref, PARTNER_DEFAULT) == 0) {
      const char *p[] = {partner};
      if ((r = lmp_tx_query(tx, "SELECT address::text FROM partner_addresses WHERE partner_id = $1", 1, p, &res)) < 0)
        break;
      src = PQntuples(res) ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
      PQclear(res);
      if (src == NULL) {
        struct lmp_reason rs;
        char field[64];
        snprintf(field, sizeof(field), "deployment.appliances[%zu].ship_to", i);
        lmp_reason_set(&rs, "NO_DEFAULT_ADDRESS", field,
                       "Partner %s has no default shipping address on file; give a custom address.", LMP_Q(partner));
        const char *p2[] = {id};
        r = lmp_tx_command(tx, "INSERT INTO onboardings(onboarding_id, status) VALUES ($1, 'refused')", 1, p2);
        if (r == 0)
          r = lmp_emit_failed(tx, id, partner, STAGE, &rs, 1, &acc);
        lmp_info(id, "refused: %s", rs.message);
        groups_free(g, ng);
        json_decref(by_ref);
        return r;
      }
    } else {
      src = json_incref(json_object_get(by_ref, ref ? ref : ""));
      if (src == NULL) {
        r = lmp_tx_reject(tx, "appliance %zu is to go to address '%.64s', which the request lacks", i + 1,
                          ref ? ref : ""); /* intake guarantees every appliance an address */
        break;
      }
    }
    json_t *addr = address_json(src);
    json_decref(src);
    char *key = json_dumps(addr, JSON_COMPACT | JSON_SORT_KEYS);
    size_t k = 0;
    while (k < ng && strcmp(g[k].key, key) != 0)
      k++;
    if (k == ng) {
      g[ng++] = (struct group){key, addr, calloc(n, sizeof(size_t)), 0};
    } else {
      free(key);
      json_decref(addr);
    }
    g[k].units[g[k].n++] = i;
  }
  json_decref(by_ref);

  const char *account = lmp_av_str(&acc, "account_name");
  const char *customer = lmp_av_str(&acc, "customer_id");
  const char *email = lmp_av_str(&req, "submitted_by");
  avro_value_t done, ships;
  int have_done = 0;
  if (r == 0 && (r = lmp_tx_value(tx, "onboarding.shipping-completed", &done)) == 0)
    have_done = 1;
  if (r == 0)
    r = avro_value_get_by_name(&done, "shipments", &ships, NULL) ? LMP_EINVAL : 0;
  for (size_t k = 0; r == 0 && k < ng; k++) {
    char sid[37];
    uuid_t uu;
    uuid_generate(uu);
    uuid_unparse_lower(uu, sid);
    char *addr = json_dumps(g[k].address, JSON_COMPACT);
    const char *p[] = {sid, id, g[k].key, addr, partner, email, customer, account};
    r = lmp_tx_add(tx, &shipments_set, p);
    free(addr);
    avro_value_t sreq, items, shipment, sitems;
    if (r == 0 && (r = lmp_tx_value(tx, "shipment.requested", &sreq)) == 0) {
      r = lmp_av_set_str(&sreq, "shipment_id", sid);
      if (r == 0) r = lmp_av_set_str(&sreq, "onboarding_id", id);
      if (r == 0) r = lmp_av_set_str(&sreq, "customer_id", customer);
      if (r == 0) r = lmp_av_set_str(&sreq, "account_name", account);
      if (r == 0) r = lmp_av_set_str(&sreq, "partner_id", partner);
      if (r == 0) r = set_address(&sreq, "address", g[k].address, "");
      if (r == 0) r = avro_value_get_by_name(&sreq, "items", &items, NULL) ? LMP_EINVAL : 0;
      if (r == 0 && (avro_value_append(&ships, &shipment, NULL) ||
                     avro_value_get_by_name(&shipment, "items", &sitems, NULL)))
        r = LMP_ENOMEM;
      if (r == 0) r = lmp_av_set_str(&shipment, "shipment_id", sid);
      if (r == 0) r = set_address(&shipment, "address", g[k].address, "");
      for (size_t u = 0; r == 0 && u < g[k].n; u++) {
        avro_value_t unit, e1, e2;
        avro_value_get_by_index(&apps, g[k].units[u], &unit, NULL);
        const char *role = lmp_av_enum_name(&unit, "role");
        const char *pi[] = {sid, lmp_av_str(&unit, "serial"), lmp_av_str(&unit, "sku"), role ? role : ""};
        r = lmp_tx_add(tx, &items_set, pi);
        if (r == 0 && (avro_value_append(&items, &e1, NULL) || lmp_avro_copy(&e1, &unit) ||
                       avro_value_append(&sitems, &e2, NULL) || lmp_avro_copy(&e2, &unit)))
          r = LMP_EINVAL;
      }
      if (r == 0) r = lmp_av_set_long(&sreq, "requested_at", lmp_now_ms());
      if (r == 0) r = lmp_tx_emit(tx, "shipment.requested", id, &sreq);
      avro_value_decref(&sreq);
    }
  }
  groups_free(g, ng);
  if (r == 0) {
    char count[24];
    snprintf(count, sizeof(count), "%zu", ng);
    const char *p[] = {id, count};
    r = lmp_tx_add(tx, &arranged_set, p);
  }
  avro_value_t allocs;
  if (r == 0) r = lmp_av_set_str(&done, "onboarding_id", id);
  if (r == 0) r = lmp_av_copy_field(&done, "onboarding", &acc);
  if (r == 0)
    r = lmp_av_field(in, "allocations", &allocs) == 0 ? lmp_av_copy_field(&done, "allocations", &allocs)
                                                      : lmp_tx_reject(tx, "appliances-provisioned without allocations");
  if (r == 0) r = lmp_av_copy_field(&done, "appliances", &apps);
  if (r == 0) r = lmp_av_set_long(&done, "completed_at", lmp_now_ms());
  if (r == 0) r = lmp_tx_emit(tx, "onboarding.shipping-completed", id, &done);
  if (r == 0)
    lmp_info(id, "%zu shipments requested", ng);
  if (have_done)
    avro_value_decref(&done);
  return r;
}

/* What a warehouse may say a carrier and a tracking number are: they go into the
 * partner's mail and the operator's terminal, so nothing but the characters such
 * names and numbers are made of, and not much of it. */
#define CARRIER_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .&'-"
#define TRACKING_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"
#define DISPATCH_FIELD_MAX 64

static int made_of(const char *s, const char *chars) {
  size_t n = strlen(s);
  return n > 0 && n <= DISPATCH_FIELD_MAX && strspn(s, chars) == n;
}

/* The warehouse dispatched a shipment: record carrier and tracking, once. */
static int on_dispatched(struct lmp_tx *tx, const struct lmp_event *ev) {
  const char *sid = lmp_av_str(ev->value, "shipment_id");
  const char *carrier = lmp_av_str(ev->value, "carrier");
  const char *tracking = lmp_av_str(ev->value, "tracking_number");
  if (sid == NULL || carrier == NULL || tracking == NULL || !*carrier || !*tracking)
    return lmp_tx_reject(tx, "a dispatch needs shipment_id, carrier and tracking_number");
  if (!made_of(carrier, CARRIER_CHARS))
    return lmp_tx_reject(tx, "carrier must be 1 to %d of letters, digits, space and . & ' -", DISPATCH_FIELD_MAX);
  if (!made_of(tracking, TRACKING_CHARS))
    return lmp_tx_reject(tx, "tracking_number must be 1 to %d of letters, digits and -", DISPATCH_FIELD_MAX);
  uuid_t u;
  if (uuid_parse(sid, u) != 0)
    return lmp_tx_reject(tx, "shipment_id is not a UUID");
  const char *p[] = {sid, carrier, tracking};
  PGresult *res;
  int r = lmp_tx_query(tx, "UPDATE shipments SET status = 'dispatched', carrier = $2, tracking_number = $3, "
                           "dispatched_at = now() WHERE shipment_id = $1::uuid AND status = 'requested' "
                           "RETURNING onboarding_id, partner_id, partner_email, account_name, address::text",
                       3, p, &res);
  if (r < 0)
    return r;
  if (PQntuples(res) == 0) {
    PQclear(res);
    const char *p2[] = {sid};
    int known;
    if ((r = lmp_tx_exists(tx, "SELECT status FROM shipments WHERE shipment_id = $1::uuid", 1, p2, &known)) < 0)
      return r;
    if (!known) /* a shipment we never requested: dead-letter it */
      return lmp_tx_reject(tx, "no shipment %s was requested", sid);
    return 0; /* already dispatched: a repeat from the warehouse */
  }
  char oid[128], partner[128], email[320], account[1024];
  snprintf(oid, sizeof(oid), "%s", PQgetvalue(res, 0, 0));
  snprintf(partner, sizeof(partner), "%s", PQgetvalue(res, 0, 1));
  snprintf(email, sizeof(email), "%s", PQgetvalue(res, 0, 2));
  snprintf(account, sizeof(account), "%s", PQgetvalue(res, 0, 3));
  json_t *addr = json_loads(PQgetvalue(res, 0, 4), 0, NULL);
  PQclear(res);
  avro_value_t out, items;
  r = lmp_tx_value(tx, "onboarding.shipment-dispatched", &out);
  if (r < 0) {
    json_decref(addr);
    return r;
  }
  if (r == 0) r = lmp_av_set_str(&out, "onboarding_id", oid);
  if (r == 0) r = lmp_av_set_str(&out, "shipment_id", sid);
  if (r == 0) r = lmp_av_set_str(&out, "partner_id", partner);
  if (r == 0) r = lmp_av_set_str(&out, "partner_email", email);
  if (r == 0) r = lmp_av_set_str(&out, "account_name", account);
  if (r == 0) r = lmp_av_set_str(&out, "carrier", carrier);
  if (r == 0) r = lmp_av_set_str(&out, "tracking_number", tracking);
  if (r == 0) r = set_address(&out, "address", addr, "");
  json_decref(addr);
  const char *p3[] = {sid};
  if (r == 0)
    r = lmp_tx_query(tx, "SELECT serial, sku, role FROM shipment_items WHERE shipment_id = $1::uuid "
                         "ORDER BY serial", 1, p3, &res);
  if (r == 0) {
    avro_value_get_by_name(&out, "items", &items, NULL);
    for (int i = 0; r == 0 && i < PQntuples(res); i++) {
      avro_value_t e, f;
      if (avro_value_append(&items, &e, NULL) || avro_value_get_by_name(&e, "role", &f, NULL) ||
          avro_value_set_enum(&f, strcmp(PQgetvalue(res, i, 2), "PRIMARY") == 0 ? 0 : 1) ||
          lmp_av_set_str(&e, "sku", PQgetvalue(res, i, 1)) || lmp_av_set_str(&e, "serial", PQgetvalue(res, i, 0)) ||
          lmp_av_set_str(&e, "virtual_id", NULL) || lmp_av_set_str(&e, "hosting_region", NULL) ||
          lmp_av_set_str(&e, "ship_to", NULL))
        r = LMP_ENOMEM;
    }
    PQclear(res);
  }
  if (r == 0) r = lmp_av_set_long(&out, "dispatched_at", lmp_now_ms());
  if (r == 0) r = lmp_tx_emit(tx, "onboarding.shipment-dispatched", oid, &out);
  avro_value_decref(&out);
  if (r == 0)
    lmp_info(oid, "shipment %s dispatched with %s, tracking %s", sid, carrier, tracking);
  return r;
}

const struct lmp_route shipping_routes[] = {
    {"onboarding.appliances-provisioned", on_provisioned, NULL, 0},
    {"shipment.dispatched", on_dispatched, NULL, 0},
    {NULL, NULL, NULL, 0},
};

/* A shipment not yet dispatched keeps them: the dispatch tells the partner where it
 * went. The address key is the address too, so it becomes the shipment's own id. */
int shipping_purge(struct lmp_tx *tx, int days) {
  char d[16];
  snprintf(d, sizeof(d), "%d", days);
  const char *p[] = {d};
  return lmp_tx_command(tx, "UPDATE shipments SET address = jsonb_build_object('purged', true), "
                            "address_key = shipment_id::text, partner_email = '' "
                            "WHERE status = 'dispatched' AND NOT address ? 'purged' "
                            "AND dispatched_at < now() - $1::int * interval '1 day'", 1, p);
}
