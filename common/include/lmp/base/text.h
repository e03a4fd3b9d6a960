/* UTF-8 text: checks and cuts that never split a character. */
#ifndef LMP_TEXT_H
#define LMP_TEXT_H

#include <stddef.h>

/* Why a text is refused, from lmp_text_check. */
enum lmp_text_fault {
  LMP_TEXT_OK = 0,
  LMP_TEXT_NOT_UTF8,  /* a byte sequence that is not UTF-8 (overlong, surrogate, cut, > U+10FFFF) */
  LMP_TEXT_NUL,       /* a NUL byte */
  LMP_TEXT_CONTROL,   /* a C0 or C1 control character, or DEL */
};

/* Checks n bytes of text. Control characters are refused unless allow_newlines and
 * they are \n, \r or \t. Returns the fault, and in *chars (may be NULL) how many
 * characters the text has when it is OK. */
enum lmp_text_fault lmp_text_check(const char *s, size_t n, int allow_newlines, size_t *chars);
/* A sentence for a fault, e.g. "is not valid UTF-8". */
const char *lmp_text_fault_str(enum lmp_text_fault f);

/* Whether s (n bytes) is valid UTF-8; control characters allowed. */
int lmp_utf8_valid(const char *s, size_t n);

/* The longest prefix of valid UTF-8 text s (n bytes) that is at most max bytes and
 * ends on a character boundary: the number of bytes to keep. */
size_t lmp_utf8_cut(const char *s, size_t n, size_t max);

/* Copies at most max characters of NUL-terminated UTF-8 text into out (outlen bytes,
 * the cut also on a character boundary to fit); appends "..." when it cut. */
char *lmp_utf8_copy(char *out, size_t outlen, const char *s, size_t max_chars);
/* A value quoted in a message: at most 40 characters of s (NULL: ""), in buf. */
#define LMP_Q(s) lmp_utf8_copy((char[168]){0}, 168, (s) ? (s) : "", 40)
/* A value from outside (a setting, an address) as an error message quotes it: LMP_Q's
 * cut, and each control character a '?', so it can neither flood nor steer the
 * terminal or the log that shows the message. out holds 168 bytes. */
char *lmp_text_shown(char *out, const char *s);
#define LMP_SHOWN(s) lmp_text_shown((char[168]){0}, (s))

/* A copy of s (n bytes) that is valid UTF-8 without NUL: every byte that starts no
 * character, and every NUL, becomes U+FFFD. malloc'd, NUL-terminated; *outlen (may
 * be NULL) its length. NULL when out of memory. */
char *lmp_utf8_sanitize(const char *s, size_t n, size_t *outlen);

/* Whether s is an assigned ISO 3166-1 alpha-2 country code, such as CA. */
int lmp_country_ok(const char *s);
/* Every code lmp_country_ok takes, in order, separated by single spaces. */
const char *lmp_country_codes(void);

#endif
