/* Identifiers and timestamps every event carries: onboarding ids, UUIDs, partner ids,
 * W3C traceparents, the clock in milliseconds. */
#include "lmp/base/ids.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <uuid/uuid.h>

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

static enum lmp_sampler sampler = LMP_SAMPLE_PARENT_ALWAYS_ON;
static uint64_t ratio_bound = UINT64_C(1) << 63; /* sampled below this (of 2^63) */

static const char *const sampler_names[] = {
    [LMP_SAMPLE_ALWAYS_ON] = "always_on",
    [LMP_SAMPLE_ALWAYS_OFF] = "always_off",
    [LMP_SAMPLE_RATIO] = "traceidratio",
    [LMP_SAMPLE_PARENT_ALWAYS_ON] = "parentbased_always_on",
    [LMP_SAMPLE_PARENT_ALWAYS_OFF] = "parentbased_always_off",
    [LMP_SAMPLE_PARENT_RATIO] = "parentbased_traceidratio",
};

int lmp_sampler_parse(const char *name) {
  for (int i = 0; i < (int)(sizeof(sampler_names) / sizeof(sampler_names[0])); i++)
    if (name && strcmp(name, sampler_names[i]) == 0)
      return i;
  return -1;
}

void lmp_traceparent_sampler(enum lmp_sampler s, double ratio) {
  sampler = s;
  ratio = ratio < 0 ? 0 : ratio > 1 ? 1 : ratio;
  ratio_bound = ratio >= 1 ? (UINT64_C(1) << 63) : (uint64_t)(ratio * 9223372036854775808.0);
}

int lmp_traceparent_sampled(const char *tp) {
  if (!lmp_traceparent_valid(tp))
    return 0;
  int low = tp[54] >= 'a' ? tp[54] - 'a' + 10 : tp[54] - '0';
  return low & 1;
}

/* OpenTelemetry's TraceIdRatioBased: the trace id's last 8 bytes, as a big-endian
 * number shifted right by one, below ratio * 2^63. */
static int by_ratio(const char trace[32]) {
  uint64_t x = 0;
  for (int i = 16; i < 32; i++)
    x = x << 4 | (uint64_t)(trace[i] >= 'a' ? trace[i] - 'a' + 10 : trace[i] - '0');
  return ratio_bound >= (UINT64_C(1) << 63) || (x >> 1) < ratio_bound;
}

static int sampled(const char trace[32], const char *parent) {
  int has_parent = lmp_traceparent_valid(parent);
  switch (sampler) {
  case LMP_SAMPLE_ALWAYS_ON:
    return 1;
  case LMP_SAMPLE_ALWAYS_OFF:
    return 0;
  case LMP_SAMPLE_RATIO:
    return by_ratio(trace);
  case LMP_SAMPLE_PARENT_ALWAYS_ON:
    return has_parent ? lmp_traceparent_sampled(parent) : 1;
  case LMP_SAMPLE_PARENT_ALWAYS_OFF:
    return has_parent ? lmp_traceparent_sampled(parent) : 0;
  case LMP_SAMPLE_PARENT_RATIO:
    return has_parent ? lmp_traceparent_sampled(parent) : by_ratio(trace);
  }
  return 1;
}

/* Random bytes for ids: the kernel's; a random UUID's (fewer random bits, never
 * failing) if it has none to give. */
static void random_bytes(unsigned char *out, size_t n) {
  if (getrandom(out, n, 0) == (ssize_t)n)
    return;
  for (size_t i = 0; i < n; i += 16) {
    uuid_t u;
    uuid_generate_random(u);
    memcpy(out + i, u, n - i < 16 ? n - i : 16);
  }
}

void lmp_traceparent(const char *parent, char out[64]) {
  /* Every bit random (a UUID's version and variant bits would bias the ratio
   * samplers, which read the trace id's last 8 bytes). */
  unsigned char a[16], b[8];
  random_bytes(a, sizeof(a));
  do
    random_bytes(b, sizeof(b));
  while (!(b[0] | b[1] | b[2] | b[3] | b[4] | b[5] | b[6] | b[7])); /* a span id is never zero */
  char trace[33], span[17];
  for (int i = 0; i < 16; i++)
    snprintf(trace + 2 * i, 3, "%02x", a[i]);
  for (int i = 0; i < 8; i++)
    snprintf(span + 2 * i, 3, "%02x", b[i]);
  if (lmp_traceparent_valid(parent))
    memcpy(trace, parent + 3, 32);
  snprintf(out, 64, "00-%s-%s-%s", trace, span, sampled(trace, parent) ? "01" : "00");
}

int64_t lmp_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
