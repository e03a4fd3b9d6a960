/* Identifiers and timestamps every event carries: onboarding ids, UUIDs, partner ids,
 * W3C traceparents, the clock in milliseconds. */
#include "lmp/base/ids.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
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
