/* Intake: validate requests, record onboardings and accounts, answer status queries. */
#ifndef INTAKE_H
#define INTAKE_H

#include "lmp/service.h"
#include "lmp/tx.h"
#include "lmp/embed.h"
#include "request.h"

struct intake {
  struct intake_rules rules;
  char *portal_client_id;   /* the page's client at the identity provider */
  int partner_per_min;      /* submissions a partner may make per minute */
  int address_per_min;      /* and a client address */
};

extern const struct lmp_conf_entry intake_conf[];
extern const size_t intake_conf_n;

extern const struct lmp_embedded intake_migrations[];

int intake_configured(void *ctx, char *err, size_t errlen);
/* Longest request and partner id kept as keys, in characters. */
#define LMP_ID_CHARS 64

extern const struct lmp_route intake_routes[];
extern const struct lmp_http_route intake_http[];
/* The page of the onboarding form and what it loads (web/). */
extern const struct lmp_embedded intake_web[];
/* GET /v1/onboardings/{id}, with ?wait=N a long poll (status.c): on the public
 * listener the signed-in partner's only, on the admin listener any. */
int intake_status_route(void *ctx, struct lmp_http_call *call);
int intake_status_admin_route(void *ctx, struct lmp_http_call *call);

/* The lifecycle of everything after acceptance (lifecycle.c). */
int intake_on_lifecycle(struct lmp_tx *tx, const struct lmp_event *ev);
int intake_record_stage(struct lmp_tx *tx, const char *id, const char *stage, json_t *detail, const char *event_id);
/* Reserves the customer account for an accepted onboarding; *taken when a reserved or
 * active account of the partner has the name (in any letter case). */
int intake_account_reserve(struct lmp_tx *tx, const char *customer_id, const char *partner, const char *name,
                           const char *onboarding_id, int *taken);
/* Retention: finished onboardings' request bodies older than days are purged. */
int intake_purge(struct lmp_tx *tx, int days);
/* A reserved account becomes "active" (confirmed) or "released" (failed). */
int intake_account_settle(struct lmp_tx *tx, const char *onboarding_id, const char *status);

#endif
