/* Helpers for the event contract every service shares: copying records between
 * events, timestamps, and the onboarding.failed event that starts compensation. */
#ifndef LMP_EVENTS_H
#define LMP_EVENTS_H

#include <avro.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lmp/avro/av.h"
#include "lmp/avro/codec.h"
#include "lmp/base/ids.h"
#include "lmp/runtime/tx.h"

/* One reason for a refusal or a failure, or one piece of advice: a machine code, the
 * field it is about (a path such as "deployment.addresses[1].country", or ""), and a
 * sentence for the partner. Always valid UTF-8. */
struct lmp_reason {
  char code[40];
  char field[96];
  char message[600];
};

/* Fills a reason; the message is formatted printf-like and cut, if it must be, at a
 * character boundary. */
void lmp_reason_set(struct lmp_reason *r, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A growing list of reasons. */
struct lmp_reasons {
  struct lmp_reason *v;
  size_t n, cap;
};

/* Appends a reason; the message is formatted printf-like and cut, if it must be, at a
 * character boundary. 0, or LMP_ENOMEM. */
int lmp_reasons_add(struct lmp_reasons *rs, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void lmp_reasons_clear(struct lmp_reasons *rs);
/* The reasons as a JSON array [{code, field, message}]: a new reference, or NULL. */
json_t *lmp_reasons_to_json(const struct lmp_reason *reasons, size_t n);
/* The same as text, malloc'd. */
char *lmp_reasons_json(const struct lmp_reason *reasons, size_t n);
/* Appends the reasons to an Avro array of Issue. */
int lmp_av_set_reasons(avro_value_t *array, const struct lmp_reason *reasons, size_t n);

/* Emits onboarding.failed for stage, carrying the accepted onboarding (may be NULL)
 * so later stages and the notifier know whom to tell. */
int lmp_emit_failed(struct lmp_tx *tx, const char *onboarding_id, const char *partner_id,
                    const char *stage, const struct lmp_reason *reasons, size_t n,
                    avro_value_t *onboarding);

#endif
