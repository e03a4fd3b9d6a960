/* Allocation: license pools per partner and product, allocated all or nothing. */
#ifndef ALLOCATION_H
#define ALLOCATION_H

#include "lmp/embed.h"
#include "lmp/runtime.h"

extern const struct lmp_embedded allocation_migrations[];

int allocation_handle(struct lmp_tx *tx, const struct lmp_event *ev);
int allocation_http(void *ctx, PGconn *db, const char *method, const char *path, const char *body,
                    size_t body_len, int *status, struct lmp_buf *out);

#endif
