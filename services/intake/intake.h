/* Intake: validate requests, record onboardings and accounts, answer status queries. */
#ifndef INTAKE_H
#define INTAKE_H

#include "lmp/runtime.h"
#include "lmp/embed.h"
#include "request.h"

struct intake {
  struct intake_rules rules;
};

extern const struct lmp_conf_entry intake_conf[];
extern const size_t intake_conf_n;

extern const struct lmp_embedded intake_migrations[];

int intake_configured(void *ctx, char *err, size_t errlen);
int intake_handle(struct lmp_tx *tx, const struct lmp_event *ev);
int intake_http(void *ctx, PGconn *db, const char *method, const char *path, const char *body,
                size_t body_len, int *status, struct lmp_buf *out);

#endif
