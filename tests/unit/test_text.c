/* UTF-8 checks and cuts: characters of 1 to 4 bytes, at every cut point, and the
 * byte sequences that are not UTF-8; reasons stay valid text whatever is formatted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "lmp/base/log.h"
#include "lmp/base/text.h"
#include "lmp/runtime/events.h"

/* "a", "é", "日", "🚀": one character of each length, repeated. */
static const char *const chars[] = {"a", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x9a\x80"};

static void cut_at_every_point(void **state) {
  for (int w = 0; w < 4; w++) {
    char s[64] = "";
    for (int i = 0; i < 10; i++)
      strcat(s, chars[w]);
    size_t n = strlen(s), width = (size_t)w + 1;
    for (size_t max = 0; max <= n + 2; max++) {
      size_t keep = lmp_utf8_cut(s, n, max);
      size_t want = (max > n ? n : max) / width * width;
      assert_int_equal(keep, want);
      assert_true(lmp_utf8_valid(s, keep));
    }
  }
  /* A mix: every prefix the cut keeps is valid and as long as the limit allows. */
  char mix[64];
  snprintf(mix, sizeof(mix), "%s%s%s%s%s", chars[3], chars[0], chars[2], chars[1], chars[3]);
  for (size_t max = 0; max <= strlen(mix); max++) {
    size_t keep = lmp_utf8_cut(mix, strlen(mix), max);
    assert_true(keep <= max && lmp_utf8_valid(mix, keep));
    assert_true(keep == strlen(mix) || keep + 4 > max);
  }
}

static void copy_by_characters(void **state) {
  char out[32];
  lmp_utf8_copy(out, sizeof(out), "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 2);
  assert_string_equal(out, "\xe6\x97\xa5\xe6\x9c\xac...");
  lmp_utf8_copy(out, 8, "\xf0\x9f\x9a\x80\xf0\x9f\x9a\x80\xf0\x9f\x9a\x80", 10); /* room for one and "..." */
  assert_string_equal(out, "\xf0\x9f\x9a\x80...");
  assert_true(lmp_utf8_valid(out, strlen(out)));
  /* Cut by bytes, not characters: the ellipsis still fits, and nothing past outlen
   * is written. */
  memset(out, 'Z', sizeof(out));
  lmp_utf8_copy(out, 8, "abcdefghij", 40);
  assert_string_equal(out, "abcd...");
  assert_int_equal(out[8], 'Z');
  lmp_utf8_copy(out, sizeof(out), "short", 40);
  assert_string_equal(out, "short");
  assert_string_equal(LMP_Q(NULL), "");
}

/* A value from outside quoted in an error: no control character gets through (a
 * terminal's escape, a line break into the log), not UTF-8 stops it, a flood is cut. */
static void shown_harmless(void **state) {
  assert_string_equal(LMP_SHOWN("10\x1b[2J\r\nBcc: x\x7f"), "10?[2J??Bcc: x?");
  assert_string_equal(LMP_SHOWN("ok\xff\xfe"), "ok...");
  char flood[5001];
  memset(flood, '9', 5000);
  flood[5000] = '\0';
  const char *q = LMP_SHOWN(flood);
  assert_int_equal(strlen(q), 43);
  assert_string_equal(q + 40, "...");
  assert_string_equal(LMP_SHOWN("Canada \xe6\x97\xa5"), "Canada \xe6\x97\xa5"); /* text stays as it is */
  assert_string_equal(LMP_SHOWN(NULL), "");
}

static void not_utf8(void **state) {
  static const struct {
    const char *s;
    size_t n;
    enum lmp_text_fault f;
  } cases[] = {
      {"\xc0\xaf", 2, LMP_TEXT_NOT_UTF8},                 /* overlong '/' */
      {"\xe0\x80\xaf", 3, LMP_TEXT_NOT_UTF8},             /* overlong, 3 bytes */
      {"\xf0\x80\x80\xaf", 4, LMP_TEXT_NOT_UTF8},         /* overlong, 4 bytes */
      {"\xed\xa0\x80", 3, LMP_TEXT_NOT_UTF8},             /* surrogate U+D800 */
      {"\xf4\x90\x80\x80", 4, LMP_TEXT_NOT_UTF8},         /* U+110000 */
      {"\xff", 1, LMP_TEXT_NOT_UTF8},
      {"\x80", 1, LMP_TEXT_NOT_UTF8},                     /* a lone continuation byte */
      {"\xe6\x97", 2, LMP_TEXT_NOT_UTF8},                 /* cut short */
      {"a\0b", 3, LMP_TEXT_NUL},
      {"a\nb", 3, LMP_TEXT_CONTROL},
      {"\x7f", 1, LMP_TEXT_CONTROL},
      {"\xc2\x85", 2, LMP_TEXT_CONTROL},                  /* NEL, a C1 control */
      {"\xe2\x80\xa8", 3, LMP_TEXT_OK},                   /* LINE SEPARATOR is a character */
      {"\xf4\x8f\xbf\xbf", 4, LMP_TEXT_OK},               /* U+10FFFF */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    enum lmp_text_fault f = lmp_text_check(cases[i].s, cases[i].n, 0, NULL);
    if (f != cases[i].f)
      fail_msg("case %zu: fault %d, want %d", i, f, cases[i].f);
  }
  size_t chars_n;
  assert_int_equal(lmp_text_check("a\tb\r\n", 5, 1, &chars_n), LMP_TEXT_OK);
  assert_int_equal(chars_n, 5);
  size_t len;
  char *clean = lmp_utf8_sanitize("a\xff\0b\xe6\x97", 6, &len);
  assert_string_equal(clean, "a\xef\xbf\xbd\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd");
  assert_true(lmp_utf8_valid(clean, len));
  free(clean);
}

/* A reason's message is cut at a character boundary, however long the values. */
static void reasons_stay_text(void **state) {
  char name[2000] = "";
  for (int i = 0; i < 200; i++)
    strcat(name, chars[2]);
  struct lmp_reasons rs = {0};
  assert_int_equal(lmp_reasons_add(&rs, "LEGAL_NAME_TAKEN", "customer.legal_name",
                                   "This partner already has a customer named '%s'.", name), 0);
  for (int w = 0; w < 4; w++) {
    char text[1300] = "x";
    for (int i = 0; i < 300; i++)
      strcat(text, chars[w]);
    assert_int_equal(lmp_reasons_add(&rs, "C", "f", "%s", text), 0);
  }
  for (size_t i = 0; i < rs.n; i++)
    assert_true(lmp_utf8_valid(rs.v[i].message, strlen(rs.v[i].message)));
  char *json = lmp_reasons_json(rs.v, rs.n);
  assert_non_null(json); /* jansson refuses text that is not UTF-8 */
  free(json);
  lmp_reasons_clear(&rs);
}

/* The "msg" of the one line lmp_log writes to stderr for what fmt formats. */
__attribute__((format(printf, 1, 2))) static json_t *logged(const char *fmt, ...) {
  char path[] = "/tmp/lmp-test-log-XXXXXX";
  int fd = mkstemp(path), saved = dup(2);
  assert_true(fd >= 0 && saved >= 0);
  unlink(path);
  fflush(stderr);
  dup2(fd, 2);
  va_list ap;
  va_start(ap, fmt);
  char *text = NULL;
  assert_true(vasprintf(&text, fmt, ap) >= 0);
  va_end(ap);
  lmp_warn(NULL, "%s", text);
  free(text);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char line[8192] = "";
  ssize_t n = pread(fd, line, sizeof(line) - 1, 0);
  close(fd);
  assert_true(n > 0 && line[n - 1] == '\n');
  json_error_t e;
  json_t *j = json_loads(line, 0, &e);
  if (j == NULL)
    fail_msg("not one JSON line: %s (%s)", line, e.text);
  json_t *msg = json_incref(json_object_get(j, "msg"));
  json_decref(j);
  assert_true(json_is_string(msg));
  return msg;
}

/* A refusal that quotes a URL cut at 200 bytes mid-character, and a message cut at
 * the line's limit mid-character, keep their text (L1): once the whole line read
 * "(message not valid UTF-8)". */
static void log_lines_keep_their_text(void **state) {
  assert_int_equal(lmp_log_init("test", "info"), 0);
  char url[400] = "/v1/onboardings/x";
  while (strlen(url) < 300)
    strcat(url, "\xc3\xa9"); /* é: the 200th byte is its first half */
  json_t *m = logged("refused: GET %.200s -> 404", url);
  const char *s = json_string_value(m);
  assert_non_null(strstr(s, "refused: GET /v1/onboardings/x\xc3\xa9\xc3\xa9"));
  assert_non_null(strstr(s, "\xef\xbf\xbd -> 404")); /* the half character, as U+FFFD */
  json_decref(m);

  char big[3000];
  memset(big, 'x', sizeof(big));
  memcpy(big + 2042, "\xf0\x9f\x9a\x80", 4); /* a 4-byte character across the 2044th byte */
  big[sizeof(big) - 1] = '\0';
  m = logged("dispatch %s", big);
  s = json_string_value(m);
  assert_int_equal(strncmp(s, "dispatch xxx", 12), 0);
  assert_true(json_string_length(m) < 2048);
  assert_int_equal(strcmp(s + json_string_length(m) - 3, "..."), 0);
  assert_true(lmp_utf8_valid(s, json_string_length(m)));
  json_decref(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cut_at_every_point),
      cmocka_unit_test(copy_by_characters), cmocka_unit_test(shown_harmless),
      cmocka_unit_test(not_utf8),
      cmocka_unit_test(reasons_stay_text),
      cmocka_unit_test(log_lines_keep_their_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
