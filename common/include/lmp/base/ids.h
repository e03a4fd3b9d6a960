/* Identifiers and timestamps every event carries. */
#ifndef LMP_IDS_H
#define LMP_IDS_H

#include <stdint.h>

int64_t lmp_now_ms(void);
/* A W3C traceparent for a new span: the parent's trace id kept when parent is a valid
 * traceparent, a new trace otherwise; its sampled flag as the sampler decides. out
 * holds at least 56 bytes. */
void lmp_traceparent(const char *parent, char out[64]);
/* Which spans are sampled, as OpenTelemetry's OTEL_TRACES_SAMPLER names them: the
 * ratio ones by the trace id alone, so every daemon decides the same for a trace, and
 * the parent-based ones follow the parent's flag when there is a parent. The default,
 * until set (once, before threads start), is parentbased_always_on. */
enum lmp_sampler {
  LMP_SAMPLE_ALWAYS_ON,
  LMP_SAMPLE_ALWAYS_OFF,
  LMP_SAMPLE_RATIO,
  LMP_SAMPLE_PARENT_ALWAYS_ON,
  LMP_SAMPLE_PARENT_ALWAYS_OFF,
  LMP_SAMPLE_PARENT_RATIO,
};
/* The sampler named as in OTEL_TRACES_SAMPLER ("parentbased_traceidratio"), or -1. */
int lmp_sampler_parse(const char *name);
void lmp_traceparent_sampler(enum lmp_sampler sampler, double ratio);
/* Whether a valid traceparent is sampled (its flags' lowest bit). */
int lmp_traceparent_sampled(const char *traceparent);
/* Whether s is a W3C traceparent of version 00: 00-<32 hex>-<16 hex>-<2 hex>, ids not zero. */
int lmp_traceparent_valid(const char *s);

/* An onboarding's id, from its partner and the frontend's request id: a name-based
 * UUID (version 5, RFC 9562) of "<bytes of partner_id>:<partner_id>/<request_id>" in
 * the namespace 6b1e0f4c-8d2a-4e57-9a31-5c7e20d48b93, so that a request id is scoped
 * to its partner: two partners who use the same request id get two onboardings, and
 * neither can reach or learn of the other's. Frontends compute it to follow their
 * request's events. */
void lmp_onboarding_id(const char *partner_id, const char *request_id, char out[37]);

/* A UUID as text: 8-4-4-4-12 hexadecimal digits, either case. */
int lmp_uuid_valid(const char *s);

/* A partner id as every daemon keys it: 1 to 64 of A-Z a-z 0-9 . _ : - (nothing that
 * could end a header, a path or a line). */
int lmp_partner_id_valid(const char *s);

#endif
