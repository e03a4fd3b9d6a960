/* partner.balance: what each partner holds, announced after it changed. Handlers and
 * the admin load raise a partner's balance_version where they change its pools,
 * shares or name; the tick emits the balance of every partner whose version is past
 * the one announced, so intake's partner view follows allocation without reading
 * its tables, and a burst of onboardings of one partner costs one announcement. */
#include "allocation.h"

/* Marks up to 200 due partners announced and answers each one's event, as JSON in
 * the schema's shape, in one statement. The rows stay locked until the transaction
 * ends, and another instance's tick skips them. The pools are read in the statement's
 * snapshot, so the version announced (and marked) is the one that snapshot saw (seen):
 * a change that committed while the rows were being locked leaves the partner due
 * again, and the next tick announces it. If an emit fails, the transaction rolls back
 * and they are due again. */
#define PER_TICK 200
static const char due_sql[] =
    "WITH seen AS (SELECT partner_id, balance_version FROM partners WHERE balance_version > announced_version), "
    "due AS (SELECT partner_id FROM partners WHERE balance_version > announced_version "
    "  ORDER BY partner_id LIMIT 200 FOR UPDATE SKIP LOCKED), "
    "done AS (UPDATE partners p SET announced_version = seen.balance_version FROM due JOIN seen USING (partner_id) "
    "  WHERE p.partner_id = due.partner_id RETURNING p.partner_id, p.name, seen.balance_version) "
    "SELECT d.partner_id, json_build_object('partner_id', d.partner_id, 'name', d.name, "
    "'version', d.balance_version, "
    "'pools', COALESCE((SELECT json_agg(json_build_object('product', l.product, 'total', l.total, "
    "  'available', l.total - l.allocated) ORDER BY l.product) FROM pools l WHERE l.partner_id = d.partner_id), "
    "  '[]'), "
    "'sub_partners', COALESCE((SELECT json_agg(json_build_object('partner_id', s.sub_partner_id, "
    "  'name', q.name) ORDER BY s.sub_partner_id) FROM license_shares s JOIN partners q "
    "  ON q.partner_id = s.sub_partner_id WHERE s.partner_id = d.partner_id), '[]'), "
    "'changed_at', (extract(epoch FROM clock_timestamp()) * 1000)::bigint)::text FROM done d";

int allocation_tick(struct lmp_tx *tx) { return lmp_tx_emit_query(tx, "partner.balance", due_sql, PER_TICK); }
