/* Shipping: shipments per distinct address, warehouse requests and dispatches. */
#ifndef SHIPPING_H
#define SHIPPING_H

#include "lmp/embed.h"
#include "lmp/runtime.h"

extern const struct lmp_embedded shipping_migrations[];

int shipping_handle(struct lmp_tx *tx, const struct lmp_event *ev);
int shipping_http(void *ctx, PGconn *db, const char *method, const char *path, const char *body,
                  size_t body_len, int *status, struct lmp_buf *out);

#endif
