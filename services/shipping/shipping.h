/* Shipping: shipments per distinct address, warehouse requests and dispatches. */
#ifndef SHIPPING_H
#define SHIPPING_H

#include "lmp/embed.h"
#include "lmp/service.h"
#include "lmp/tx.h"

extern const struct lmp_embedded shipping_migrations[];

extern const struct lmp_route shipping_routes[];
extern const struct lmp_http_route shipping_http[];

#endif
