/* Helpers for the event contract: copies, timestamps, onboarding.failed. */
#include "lmp/events.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>
#include <time.h>

#include "lmp/error.h"
#include "lmp/service.h"
#include "lmp/text.h"

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
  avro_value_decref(&v);
  return r;
}

/* Fixed forever: the ids of every onboarding already taken depend on it. */
static const uuid_t onboarding_namespace = {0x6b, 0x1e, 0x0f, 0x4c, 0x8d, 0x2a, 0x4e, 0x57,
                                            0x9a, 0x31, 0x5c, 0x7e, 0x20, 0xd4, 0x8b, 0x93};

void lmp_onboarding_id(const char *partner_id, const char *request_id, char out[37]) {
  /* "<bytes of the partner id>:<partner id>/<request id>": the length makes the
   * name of each pair unique whatever the ids hold. Every caller's ids are bounded
   * (a partner id of 64 characters, a request id checked or cut to 64), far below
   * the buffer; a longer one would be cut, the same way every time. */
  char name[2048];
  int n = snprintf(name, sizeof(name), "%zu:%s/%s", strlen(partner_id), partner_id, request_id);
  size_t len = n < 0 ? 0 : (size_t)n < sizeof(name) ? (size_t)n : sizeof(name) - 1;
  uuid_t u;
  uuid_generate_sha1(u, onboarding_namespace, name, len);
  uuid_unparse_lower(u, out);
}

int lmp_uuid_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n != 36)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
      return 0;
  return 1;
}

int lmp_partner_id_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  return n > 0 && n <= 64 &&
         strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}

/* onboarding.failed: a stage fails only its own part, and says which in "stage". */
static const char *const failing_stages[] = {"allocation", "appliance-fulfilment", "shipping", NULL};
static const struct lmp_writers several[] = {{"onboarding.failed", "stage", failing_stages}};

const struct lmp_writers *lmp_event_writers(const char *event_type) {
  for (size_t i = 0; i < sizeof(several) / sizeof(several[0]); i++)
    if (strcmp(several[i].event_type, event_type) == 0)
      return &several[i];
  return NULL;
}
