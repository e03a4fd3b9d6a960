/* UTF-8 checks and character-boundary cuts (RFC 3629). */
#include "lmp/base/text.h"

#include <stdlib.h>
#include <string.h>

/* Length of the character that starts at s (n bytes left) and its code point, or 0
 * when the bytes there are not UTF-8: shortest form only, no surrogates, at most
 * U+10FFFF, every continuation byte present. */
static size_t char_at(const unsigned char *s, size_t n, unsigned *cp) {
  unsigned c = s[0];
  size_t len;
  unsigned min;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, min = 0x80, c &= 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, min = 0x800, c &= 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, min = 0x10000, c &= 0x07;
  } else {
    return 0; /* a continuation byte, an overlong lead (C0, C1) or beyond U+10FFFF */
  }
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    c = (c << 6) | (s[i] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
    return 0;
  *cp = c;
  return len;
}

enum lmp_text_fault lmp_text_check(const char *s, size_t n, int allow_newlines, size_t *chars) {
  const unsigned char *p = (const unsigned char *)s;
  size_t count = 0;
  while (n) {
    unsigned cp;
    size_t len = char_at(p, n, &cp);
    if (len == 0)
      return LMP_TEXT_NOT_UTF8;
    if (cp == 0)
      return LMP_TEXT_NUL;
    int newline = cp == '\n' || cp == '\r' || cp == '\t';
    if ((cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) && !(allow_newlines && newline))
      return LMP_TEXT_CONTROL;
    p += len;
    n -= len;
    count++;
  }
  if (chars)
    *chars = count;
  return LMP_TEXT_OK;
}

const char *lmp_text_fault_str(enum lmp_text_fault f) {
  switch (f) {
  case LMP_TEXT_OK: return "is valid text";
  case LMP_TEXT_NOT_UTF8: return "is not valid UTF-8";
  case LMP_TEXT_NUL: return "contains a NUL character";
  case LMP_TEXT_CONTROL: return "contains a control character";
  }
  return "is not valid text";
}

int lmp_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  while (n) {
    unsigned cp;
    size_t len = char_at(p, n, &cp);
    if (len == 0)
      return 0;
    p += len;
    n -= len;
  }
  return 1;
}

size_t lmp_utf8_cut(const char *s, size_t n, size_t max) {
  const unsigned char *p = (const unsigned char *)s;
  size_t keep = 0;
  while (keep < n) {
    unsigned cp;
    size_t len = char_at(p + keep, n - keep, &cp);
    if (len == 0 || keep + len > max)
      break;
    keep += len;
  }
  return keep;
}

char *lmp_utf8_copy(char *out, size_t outlen, const char *s, size_t max_chars) {
  if (outlen == 0)
    return out;
  size_t n = strlen(s), bytes = 0, chars = 0;
  const unsigned char *p = (const unsigned char *)s;
  while (bytes < n && chars < max_chars) {
    unsigned cp;
    size_t len = char_at(p + bytes, n - bytes, &cp);
    if (len == 0)
      break;
    bytes += len;
    chars++;
  }
  /* Cut when the characters or the bytes do not fit; then room for the ellipsis (when
   * out holds one) and the terminator, cut back to a boundary to fit. */
  int cut = (bytes < n || bytes > outlen - 1) && outlen >= 5;
  size_t room = outlen - 1 - (cut ? 3 : 0);
  if (bytes > room)
    bytes = lmp_utf8_cut(s, bytes, room);
  memcpy(out, s, bytes);
  if (cut) {
    memcpy(out + bytes, "...", 3);
    bytes += 3;
  }
  out[bytes] = '\0';
  return out;
}

char *lmp_text_shown(char *out, const char *s) {
  lmp_utf8_copy(out, 168, s ? s : "", 40);
  for (unsigned char *c = (unsigned char *)out; *c; c++)
    if (*c < 0x20 || *c == 0x7f)
      *c = '?';
  return out;
}

char *lmp_utf8_sanitize(const char *s, size_t n, size_t *outlen) {
  char *out = malloc(3 * n + 1); /* each byte becomes at most the 3 bytes of U+FFFD */
  if (out == NULL)
    return NULL;
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, o = 0;
  while (i < n) {
    unsigned cp;
    size_t len = char_at(p + i, n - i, &cp);
    if (len == 0 || cp == 0) {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i += len ? len : 1;
    } else {
      memcpy(out + o, p + i, len);
      o += len;
      i += len;
    }
  }
  out[o] = '\0';
  if (outlen)
    *outlen = o;
  return out;
}

/* ISO 3166-1 alpha-2, the 249 officially assigned codes. */
static const char countries[] =
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ "
    "BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM "
    "DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS "
    "GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN "
    "KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ "
    "MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM "
    "PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV "
    "SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI "
    "VN VU WF WS YE YT ZA ZM ZW";

const char *lmp_country_codes(void) { return countries; }

int lmp_country_ok(const char *s) {
  if (s == NULL || strlen(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z')
    return 0;
  for (size_t i = 0; i + 2 < sizeof(countries); i += 3)
    if (countries[i] == s[0] && countries[i + 1] == s[1])
      return 1;
  return 0;
}
