/* Helpers for the event contract: copies, timestamps, onboarding.failed. */
#include "lmp/events.h"

#include <stdio.h>
#include <string.h>
#include <uuid/uuid.h>
#include <time.h>

#include "lmp/error.h"

static int hex_run(const char *s, size_t n, int *nonzero) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return 0;
    *nonzero |= c != '0';
  }
  return 1;
}

int lmp_traceparent_valid(const char *s) {
  int v = 0, t = 0, p = 0, f = 0;
  return s && strlen(s) == 55 && s[2] == '-' && s[35] == '-' && s[52] == '-' && hex_run(s, 2, &v) &&
         !v && hex_run(s + 3, 32, &t) && t && hex_run(s + 36, 16, &p) && p && hex_run(s + 53, 2, &f);
}

void lmp_traceparent(const char *parent, char out[64]) {
  uuid_t a, b;
  uuid_generate_random(a);
  uuid_generate_random(b);
  char trace[33], span[17];
  for (int i = 0; i < 16; i++)
    snprintf(trace + 2 * i, 3, "%02x", a[i]);
  for (int i = 0; i < 8; i++)
    snprintf(span + 2 * i, 3, "%02x", b[i]);
  if (lmp_traceparent_valid(parent))
    memcpy(trace, parent + 3, 32);
  snprintf(out, 64, "00-%s-%s-01", trace, span);
}

int64_t lmp_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int lmp_av_copy_field(avro_value_t *rec, const char *field, avro_value_t *src) {
  avro_value_t f;
  if (avro_value_get_by_name(rec, field, &f, NULL) != 0)
    return LMP_EINVAL;
  return lmp_avro_copy(&f, src);
}

int lmp_av_set_int(avro_value_t *rec, const char *field, int32_t v) {
  avro_value_t f;
  if (avro_value_get_by_name(rec, field, &f, NULL) != 0)
    return LMP_EINVAL;
  return avro_value_set_int(&f, v) == 0 ? 0 : LMP_EINVAL;
}

int lmp_av_append_issue(avro_value_t *array, const char *code, const char *field, const char *message) {
  avro_value_t e;
  if (avro_value_append(array, &e, NULL) != 0 || lmp_av_set_str(&e, "code", code) < 0 ||
      lmp_av_set_str(&e, "field", field ? field : "") < 0 || lmp_av_set_str(&e, "message", message) < 0)
    return LMP_ENOMEM;
  return 0;
}

char *lmp_reasons_json(const struct lmp_reason *reasons, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++)
    json_array_append_new(a, json_pack("{s:s, s:s}", "code", reasons[i].code, "message", reasons[i].message));
  char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
  json_decref(a);
  return text;
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
    for (size_t i = 0; r == 0 && i < n; i++)
      r = lmp_av_append_issue(&arr, reasons[i].code, reasons[i].field, reasons[i].message);
  }
  if (r == 0 && onboarding)
    r = lmp_av_copy_field(&v, "onboarding", onboarding);
  else if (r == 0)
    r = lmp_av_set_str(&v, "onboarding", NULL);
  if (r == 0)
    r = lmp_av_set_long(&v, "failed_at", lmp_now_ms());
  if (r == 0)
    r = lmp_tx_emit(tx, "onboarding.failed", onboarding_id, &v);
  avro_value_decref(&v);
  return r;
}
