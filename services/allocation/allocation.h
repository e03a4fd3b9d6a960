/* Allocation: license pools per partner and product, allocated all or nothing. */
#ifndef ALLOCATION_H
#define ALLOCATION_H

#include "lmp/base/embed.h"
#include "lmp/runtime/service.h"
#include "lmp/runtime/tx.h"

extern const struct lmp_embedded allocation_migrations[];

extern const struct lmp_route allocation_routes[];
extern const struct lmp_http_route allocation_http[];
/* Emits partner.balance for every partner whose pools, shares or name changed since
 * it was last announced (balance.c). */
int allocation_tick(struct lmp_tx *tx);

#endif
