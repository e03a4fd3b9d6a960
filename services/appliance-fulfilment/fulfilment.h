/* Appliance fulfilment: virtual appliances per region, physical units per SKU. */
#ifndef FULFILMENT_H
#define FULFILMENT_H

#include "lmp/base/embed.h"
#include "lmp/runtime/service.h"
#include "lmp/runtime/tx.h"

extern const struct lmp_embedded fulfilment_migrations[];

extern const struct lmp_route fulfilment_routes[];
extern const struct lmp_http_route fulfilment_http[];

#endif
