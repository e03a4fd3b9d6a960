/* partner.address: each partner's default shipping address, announced after it
 * changed, so intake's partner view can show it (and refuse "ship to the default
 * address" when there is none) without reading shipping's tables. The admin load
 * raises an address's version; the tick emits every address whose version is past
 * the one announced. */
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

int shipping_tick(struct lmp_tx *tx) { return lmp_tx_emit_query(tx, "partner.address", due_sql, PER_TICK); }
