/* Helpers for the event contract: copies, timestamps, onboarding.failed. */
#include "lmp/runtime/events.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>
#include <time.h>

#include "lmp/base/error.h"
#include "lmp/base/text.h"
#include "lmp/runtime/service.h"

__attribute__((format(printf, 4, 0))) static void set_reason(struct lmp_reason *r, const char *code, const char *field,
                                                       const char *fmt, va_list ap) {
  char text[2048];
  vsnprintf(text, sizeof(text), fmt, ap);
  lmp_utf8_copy(r->code, sizeof(r->code), code, sizeof(r->code));
  lmp_utf8_copy(r->field, sizeof(r->field), field ? field : "", sizeof(r->field));
  lmp_utf8_copy(r->message, sizeof(r->message), text, sizeof(r->message));
}

void lmp_reason_set(struct lmp_reason *r, const char *code, const char *field, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_reason(r, code, field, fmt, ap);
  va_end(ap);
}

int lmp_reasons_add(struct lmp_reasons *rs, const char *code, const char *field, const char *fmt, ...) {
  if (rs->n == rs->cap) {
    size_t cap = rs->cap ? rs->cap * 2 : 8;
    struct lmp_reason *p = realloc(rs->v, cap * sizeof(*p));
    if (p == NULL)
      return LMP_ENOMEM;
    rs->v = p;
    rs->cap = cap;
  }
  va_list ap;
  va_start(ap, fmt);
  set_reason(&rs->v[rs->n++], code, field, fmt, ap);
  va_end(ap);
  return 0;
}

void lmp_reasons_clear(struct lmp_reasons *rs) {
  free(rs->v);
  memset(rs, 0, sizeof(*rs));
}

json_t *lmp_reasons_to_json(const struct lmp_reason *reasons, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++)
    if (json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "code", reasons[i].code, "field", reasons[i].field,
                                           "message", reasons[i].message)) < 0) {
      json_decref(a);
      return NULL;
    }
  return a;
}

char *lmp_reasons_json(const struct lmp_reason *reasons, size_t n) {
  json_t *a = lmp_reasons_to_json(reasons, n);
  char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
  json_decref(a);
  return text;
}

int lmp_av_set_reasons(avro_value_t *array, const struct lmp_reason *reasons, size_t n) {
  for (size_t i = 0; i < n; i++) {
    avro_value_t e;
    if (avro_value_append(array, &e, NULL) != 0 || lmp_av_set_str(&e, "code", reasons[i].code) < 0 ||
        lmp_av_set_str(&e, "field", reasons[i].field) < 0 || lmp_av_set_str(&e, "message", reasons[i].message) < 0)
      return LMP_ENOMEM;
  }
  return 0;
}

int lmp_emit_failed(struct lmp_tx *tx, const char *onboarding_id, const char *partner_id,
                    const char *stage, const struct lmp_reason *reasons, size_t n,
                    avro_value_t *onboarding) {
  avro_value_t v, arr;
  int r = lmp_tx_value(tx, "onboarding.failed", &v);
  if (r < 0)
    return r;
  if ((r = lmp_av_set_str(&v, "onboarding_id", onboarding_id)) == 0 &&
      (r = lmp_av_set_str(&v, "partner_id", partner_id ? partner_id : "")) == 0 &&
      (r = lmp_av_set_str(&v, "stage", stage)) == 0 &&
      (r = avro_value_get_by_name(&v, "reasons", &arr, NULL) ? LMP_EINVAL : 0) == 0) {
    r = lmp_av_set_reasons(&arr, reasons, n);
  }
  if (r == 0 && onboarding)
    r = lmp_av_copy_field(&v, "onboarding", onboarding);
  else if (r == 0)
    r = lmp_av_set_str(&v, "onboarding", NULL);
  if (r == 0)
    r = lmp_av_set_long(&v, "failed_at", lmp_now_ms());
  if (r == 0)
    r = lmp_tx_emit(tx, "onboarding.failed", onboarding_id, &v);
  if (r == 0) /* the trace marks the stage where the onboarding broke */
    lmp_tx_span_fail(tx, "%s failed: %s", stage, n ? reasons[0].message : "no reason given");
  avro_value_decref(&v);
  return r;
}
