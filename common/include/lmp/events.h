/* Helpers for the event contract every service shares: copying records between
 * events, timestamps, and the onboarding.failed event that starts compensation. */
#ifndef LMP_EVENTS_H
#define LMP_EVENTS_H

#include <avro.h>
#include <stdint.h>

#include "lmp/codec.h"
#include "lmp/tx.h"

int64_t lmp_now_ms(void);
/* A W3C traceparent for a new span: the parent's trace id kept when parent is a valid
 * traceparent, a new trace otherwise. out holds at least 56 bytes. */
void lmp_traceparent(const char *parent, char out[64]);
/* Whether s is a W3C traceparent of version 00: 00-<32 hex>-<16 hex>-<2 hex>, ids not zero. */
int lmp_traceparent_valid(const char *s);
/* Copies src into a record's field; a union field takes src's type's branch. */
int lmp_av_copy_field(avro_value_t *rec, const char *field, avro_value_t *src);
int lmp_av_set_int(avro_value_t *rec, const char *field, int32_t v);
/* Appends {code, field, message} to an array of Issue. */
int lmp_av_append_issue(avro_value_t *array, const char *code, const char *field, const char *message);

/* One reason for a failure. */
struct lmp_reason {
  const char *code;
  const char *field;
  char message[300];
};

/* The reasons as a JSON array text [{code, message}], malloc'd. */
char *lmp_reasons_json(const struct lmp_reason *reasons, size_t n);

/* Emits onboarding.failed for stage, carrying the accepted onboarding (may be NULL)
 * so later stages and the notifier know whom to tell. */
int lmp_emit_failed(struct lmp_tx *tx, const char *onboarding_id, const char *partner_id,
                    const char *stage, const struct lmp_reason *reasons, size_t n,
                    avro_value_t *onboarding);

#endif
