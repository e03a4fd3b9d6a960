/* Shipping: shipments per distinct address, warehouse requests and dispatches. */
#ifndef SHIPPING_H
#define SHIPPING_H

#include "lmp/base/embed.h"
#include "lmp/runtime/service.h"
#include "lmp/runtime/tx.h"

extern const struct lmp_embedded shipping_migrations[];

extern const struct lmp_route shipping_routes[];
extern const struct lmp_http_route shipping_http[];
/* Emits partner.address for every default address that changed since it was last
 * announced (address.c). */
int shipping_tick(struct lmp_tx *tx);

/* Retention: a dispatched shipment past retention.days keeps its facts (onboarding,
 * items, carrier, tracking) and loses the address and the partner's email. */
int shipping_purge(struct lmp_tx *tx, int days);

#endif
