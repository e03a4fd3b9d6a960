/* Intake: validate requests, record onboardings and accounts, answer status queries. */
#ifndef INTAKE_H
#define INTAKE_H

#include "lmp/base/embed.h"
#include "lmp/runtime/service.h"
#include "lmp/runtime/tx.h"
#include "request.h"

struct intake {
  struct intake_rules rules;
  char **region_names;      /* "code=name" each: what the page shows for a hosting region */
  char **appliance_names;   /* and for an appliance model */
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

/* The stages of the flow, in lifecycle.c's one table. Events on different topics
 * reach intake in any order, so each stage has its place in the flow: the stage list
 * is ordered by place, then by when the stage happened at its own daemon, then by when
 * intake learned of it. A status moves only to a higher rank. */
enum intake_stage_id {
  INTAKE_ACCEPTED,
  INTAKE_REJECTED,
  INTAKE_USERS_ALLOCATED,
  INTAKE_APPLIANCES_PROVISIONED,
  INTAKE_SHIPPING_ARRANGED,
  INTAKE_SHIPMENT_DISPATCHED,
  INTAKE_CONFIRMED,
  INTAKE_FAILED,
  INTAKE_STAGES
};
struct intake_stage {
  const char *name;       /* as onboarding_stages and the status answer name it */
  int place;              /* its place in the flow (a failure's depends on who failed) */
  const char *status;     /* the status it moves the onboarding to; NULL: none */
  int final;              /* that status is an outcome: nothing moves it again */
  const char *time_field; /* the event's own time of the stage; NULL: intake's own */
};
extern const struct intake_stage intake_stages[INTAKE_STAGES];
/* The rank of the status a stage sets: outcomes rank above every stage. */
int intake_status_rank(const struct intake_stage *st);
/* The stage list's order, over onboarding_stages as alias: the one definition that
 * the status answer and every reader of the stages use. */
#define INTAKE_STAGE_ORDER(alias) \
  #alias ".place, " #alias ".happened_at, " #alias ".at, " #alias ".event_id"

/* The lifecycle of everything after acceptance (lifecycle.c); the route's data is
 * its stage. */
int intake_on_lifecycle(struct lmp_tx *tx, const struct lmp_event *ev);
/* onboarding.mail-settled: a confirmed onboarding's mail sent or given up. */
int intake_on_mail_settled(struct lmp_tx *tx, const struct lmp_event *ev);
/* Users added to a customer later (additions.c): customer.users-requested checked and
 * recorded once; customer.users-added (route data non-NULL) or -refused recorded;
 * POST /v1/customers/{id}/users and GET /v1/customers/{id} for the signed-in partner. */
int intake_on_users_requested(struct lmp_tx *tx, const struct lmp_event *ev);
int intake_on_users_settled(struct lmp_tx *tx, const struct lmp_event *ev);
int intake_add_users_route(void *ctx, struct lmp_http_call *call);
int intake_customer_route(void *ctx, struct lmp_http_call *call);

/* SQL: the users per product of customer account a (an alias of customer_accounts):
 * its onboarding's allocation and every addition's, as [{product, users}]. */
#define INTAKE_CUSTOMER_TOTALS(a)                                                                                            \
  "COALESCE((SELECT json_agg(json_build_object('product', e.product, 'users', e.users) ORDER BY e.product) " \
  "FROM (SELECT x->>'product' AS product, sum((x->>'users')::int) AS users FROM ("                           \
  "  SELECT jsonb_array_elements(s.detail->'allocations') x FROM (SELECT detail FROM onboarding_stages "     \
  "    WHERE onboarding_id = " #a ".onboarding_id AND stage = 'users-allocated' ORDER BY at DESC LIMIT 1) s " \
  "  UNION ALL SELECT jsonb_array_elements(u.allocations) FROM user_additions u "                             \
  "    WHERE u.customer_id = " #a ".customer_id::text AND u.status = 'added') y GROUP BY 1) e), '[]')"


/* The front door's steps every submission route takes (door.c). The body, read once
 * the call may wait, is within the partner's and the address's rates and is JSON,
 * and made to speak for the signed-in partner: its reference, or NULL with the call
 * answered (503, 429, 415, 400, 403). Then the event published, the call answered
 * 202 with answer (taken) and location once the broker has it (intake_door_answer on
 * the route's next run, when call->state is set), or 413/503. */
json_t *intake_door_body(const struct intake *in, struct lmp_http_call *call);
int intake_door_publish(struct lmp_http_call *call, const char *event_type, const char *id, avro_value_t *v,
                        const char *location, json_t *answer);
int intake_door_answer(struct lmp_http_call *call);
/* 202 with answer (taken) and where to follow it (location, also its status_url). */
int intake_door_accepted(struct lmp_http_call *call, const char *location, json_t *answer);
/* The body j as the event type's value: 0 with *v to release, or 1 answered (400 not
 * what (e.g. "an onboarding request"), 503), or LMP_ENOMEM. */
int intake_door_value(struct lmp_http_call *call, json_t *j, const char *event_type, const char *what,
                      avro_value_t *v);
/* 422 with every reason (and warning) of f; nothing is published. */
int intake_door_refused(struct lmp_http_call *call, const struct intake_findings *f);

/* The partner's view (partner.c): partner.balance and partner.address kept at their
 * highest version, and GET /v1/partner for the signed-in partner. */
int intake_on_balance(struct lmp_tx *tx, const struct lmp_event *ev);
int intake_on_address(struct lmp_tx *tx, const struct lmp_event *ev);
int intake_partner_route(void *ctx, struct lmp_http_call *call);
/* The signed-in partner's lists (lists.c): GET /v1/onboardings, GET /v1/customers. */
int intake_onboardings_route(void *ctx, struct lmp_http_call *call);
int intake_customers_route(void *ctx, struct lmp_http_call *call);
/* Reserves the customer account for an accepted onboarding, on its volume license;
 * *taken when a reserved or active account of the partner on that license has the
 * name (in any letter case). The onboarding's outcome settles it: active once
 * confirmed, released once failed (intake_on_lifecycle). */
int intake_account_reserve(struct lmp_tx *tx, const char *customer_id, const char *partner, const char *license,
                           const char *name, const char *onboarding_id, int *taken);
/* Retention: finished onboardings' request bodies older than days are purged. */
int intake_purge(struct lmp_tx *tx, int days);

#endif
