/* Appliance fulfilment: virtual appliances per region, physical units per SKU. */
#ifndef FULFILMENT_H
#define FULFILMENT_H

#include "lmp/embed.h"
#include "lmp/runtime.h"

extern const struct lmp_embedded fulfilment_migrations[];

int fulfilment_handle(struct lmp_tx *tx, const struct lmp_event *ev);
int fulfilment_http(void *ctx, PGconn *db, const char *method, const char *path, const char *body,
                    size_t body_len, int *status, struct lmp_buf *out);

#endif
