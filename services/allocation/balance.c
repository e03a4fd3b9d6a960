/* partner.balance: what each partner holds, announced after it changed. Handlers and
 * the admin load raise a partner's balance_version where they change its pools,
 * shares or name; the tick emits the balance of every partner whose version is past
 * the one announced, so intake's partner view follows allocation without reading
 * its tables, and a burst of onboardings of one partner costs one announcement. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "allocation.h"
#include "lmp/avro/codec.h"
#include "lmp/base/error.h"
#include "lmp/base/log.h"

/* Marks up to 200 due partners announced and answers each one's event, as JSON in
 * the schema's shape, in one statement. The rows stay locked until the transaction
 * ends, so no change of theirs commits in between, and another instance's tick skips
 * them. If an emit fails, the transaction rolls back and they are due again. */
#define PER_TICK 200
static const char due_sql[] =
    "WITH due AS (SELECT partner_id FROM partners WHERE balance_version > announced_version "
    "  ORDER BY partner_id LIMIT 200 FOR UPDATE SKIP LOCKED), "
    "done AS (UPDATE partners p SET announced_version = p.balance_version FROM due "
    "  WHERE p.partner_id = due.partner_id RETURNING p.partner_id, p.name, p.balance_version) "
    "SELECT d.partner_id, json_build_object('partner_id', d.partner_id, 'name', d.name, "
    "'version', d.balance_version, "
    "'pools', COALESCE((SELECT json_agg(json_build_object('product', l.product, 'total', l.total, "
    "  'available', l.total - l.allocated) ORDER BY l.product) FROM pools l WHERE l.partner_id = d.partner_id), "
    "  '[]'), "
    "'sub_partners', COALESCE((SELECT json_agg(json_build_object('partner_id', s.sub_partner_id, "
    "  'name', q.name) ORDER BY s.sub_partner_id) FROM license_shares s JOIN partners q "
    "  ON q.partner_id = s.sub_partner_id WHERE s.partner_id = d.partner_id), '[]'), "
    "'changed_at', (extract(epoch FROM clock_timestamp()) * 1000)::bigint)::text FROM done d";

static int emit_one(struct lmp_tx *tx, const char *partner, const char *text) {
  json_t *j = json_loads(text, 0, NULL);
  avro_value_t v;
  char err[256];
  int r = j ? lmp_tx_value(tx, "partner.balance", &v) : LMP_ENOMEM;
  if (r < 0) {
    json_decref(j);
    return r;
  }
  if ((r = lmp_avro_from_json(&v, j, err, sizeof(err))) < 0)
    lmp_warn(NULL, "partner.balance of %s: %s", partner, err);
  else
    r = lmp_tx_emit(tx, "partner.balance", partner, &v);
  avro_value_decref(&v);
  json_decref(j);
  return r;
}

int allocation_tick(struct lmp_tx *tx) {
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
