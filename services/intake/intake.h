/* Intake: validate requests, record onboardings and accounts, answer status queries. */
#ifndef INTAKE_H
#define INTAKE_H

#include "lmp/service.h"
#include "lmp/tx.h"
#include "lmp/embed.h"
#include "request.h"

struct intake {
  struct intake_rules rules;
};

extern const struct lmp_conf_entry intake_conf[];
extern const size_t intake_conf_n;

extern const struct lmp_embedded intake_migrations[];

int intake_configured(void *ctx, char *err, size_t errlen);
extern const struct lmp_route intake_routes[];
extern const struct lmp_http_route intake_http[];

#endif
