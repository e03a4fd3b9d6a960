/* partner.address: each partner's default shipping address, announced after it
 * changed, so intake's partner view can show it (and refuse "ship to the default
 * address" when there is none) without reading shipping's tables. The admin load
 * raises an address's version; the tick emits every address whose version is past
 * the one announced. */
#include <jansson.h>

#include "lmp/avro/codec.h"
#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "shipping.h"

/* Marks up to 200 due addresses announced and answers each one's event, as JSON in
 * the schema's shape (absent optional lines as null), in one statement; the rows
 * stay locked until the transaction ends. */
#define PER_TICK 200
static const char due_sql[] =
    "WITH due AS (SELECT partner_id FROM partner_addresses WHERE version > announced_version "
    "  ORDER BY partner_id LIMIT 200 FOR UPDATE SKIP LOCKED), "
    "done AS (UPDATE partner_addresses a SET announced_version = a.version FROM due "
    "  WHERE a.partner_id = due.partner_id RETURNING a.partner_id, a.version, a.address) "
    "SELECT d.partner_id, json_build_object('partner_id', d.partner_id, 'version', d.version, "
    "'address', json_build_object('recipient', d.address->>'recipient', 'line1', d.address->>'line1', "
    "  'line2', d.address->>'line2', 'city', d.address->>'city', 'region', d.address->>'region', "
    "  'postal_code', d.address->>'postal_code', 'country', d.address->>'country', "
    "  'phone', d.address->>'phone'), "
    "'changed_at', (extract(epoch FROM clock_timestamp()) * 1000)::bigint)::text FROM done d";

static int emit_one(struct lmp_tx *tx, const char *partner, const char *text) {
  json_t *j = json_loads(text, 0, NULL);
  avro_value_t v;
  char err[256];
  int r = j ? lmp_tx_value(tx, "partner.address", &v) : LMP_ENOMEM;
  if (r < 0) {
    json_decref(j);
    return r;
  }
  if ((r = lmp_avro_from_json(&v, j, err, sizeof(err))) < 0)
    lmp_warn(NULL, "partner.address of %s: %s", partner, err);
  else
    r = lmp_tx_emit(tx, "partner.address", partner, &v);
  avro_value_decref(&v);
  json_decref(j);
  return r;
}

int shipping_tick(struct lmp_tx *tx) {
  PGresult *res;
  int r = lmp_tx_query(tx, due_sql, 0, NULL, &res);
  if (r < 0)
    return r;
  int n = PQntuples(res);
  for (int i = 0; r == 0 && i < n; i++)
    r = emit_one(tx, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
  PQclear(res);
  if (r == 0 && n == PER_TICK)
    lmp_tx_wake(tx); /* perhaps more are due: the tick runs again at once */
  return r;
}
