/* The notifier's mail: which addresses it writes, how header text is encoded, and a
 * body that cannot end the SMTP data or add headers, whatever an event carries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lmp/error.h"
#include "lmp/text.h"
#include "notifier.h"

static void addresses(void **state) {
  static const char *const good[] = {"alex@northwind.example.com", "first.last+tag@a-b.example.ca",
                                     "o'brien@example.ie", "x@example.co"};
  static const char *const bad[] = {
      "not an email at all", "a@b@example.com", "@example.com", "a@", "a@localhost", "a@example.c0m",
      "alex@example.com\r\nBcc: eve@example.com", "alex@example.com>\r\nDATA", "<alex@example.com>",
      "a\"b\"@example.com", "a..b@example.com", ".a@example.com", "a.@example.com", "a@-example.com",
      "a@example..com", "a@[127.0.0.1]", "caf\xc3\xa9@example.com", "a b@example.com", "a\0@example.com", "",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    if (!notifier_address_ok(good[i]))
      fail_msg("refused %s", good[i]);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (notifier_address_ok(bad[i]))
      fail_msg("accepted case %zu", i);
  assert_false(notifier_address_ok(NULL));
}

static char *header(const char *text) {
  struct lmp_buf b = {0};
  assert_int_equal(notifier_header_text(text, &b), 0);
  return lmp_buf_steal(&b);
}

/* RFC 2047 base64 words decoded back, to compare with what went in. */
static char *decode_words(const char *h) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  struct lmp_buf out = {0};
  lmp_buf_puts(&out, "");
  const char *p = h;
  while ((p = strstr(p, "=?UTF-8?B?")) != NULL) {
    p += 10;
    const char *end = strstr(p, "?=");
    assert_non_null(end);
    assert_true(end - p + 12 <= 75); /* an encoded word is at most 75 characters */
    unsigned v = 0;
    int bits = 0;
    for (; p < end && *p != '='; p++) {
      v = v << 6 | (unsigned)(strchr(t, *p) - t);
      bits += 6;
      if (bits >= 8) {
        char c = (char)(v >> (bits - 8));
        lmp_buf_append(&out, &c, 1);
        bits -= 8;
      }
    }
    p = end + 2;
  }
  return lmp_buf_steal(&out);
}

static void header_text(void **state) {
  char *h = header("Onboarding confirmed: Acme Corp");
  assert_string_equal(h, "Onboarding confirmed: Acme Corp");
  free(h);
  /* Line breaks in a value can never start a new header. */
  h = header("Acme\r\nBcc: eve@example.com");
  assert_null(strchr(h, '\r'));
  assert_null(strchr(h, '\n'));
  free(h);
  /* Non-ASCII: encoded words, each decoding to whole characters, folded lines. */
  char name[400] = "Onboarding confirmed: ";
  for (int i = 0; i < 40; i++)
    strcat(name, "\xe6\x97\xa5\xf0\x9f\x9a\x80");
  h = header(name);
  assert_non_null(strstr(h, "=?UTF-8?B?"));
  for (const char *p = h; *p; p++)
    assert_true((unsigned char)*p < 0x80);
  char *back = decode_words(h);
  assert_string_equal(back, name);
  free(back);
  /* each line of the folded header is short */
  for (const char *line = h; line;) {
    const char *nl = strstr(line, "\r\n");
    assert_true((size_t)((nl ? nl : line + strlen(line)) - line) <= 78);
    line = nl ? nl + 2 : NULL;
  }
  free(h);
  /* Text that looks like an encoded word is encoded, not trusted. */
  h = header("=?UTF-8?B?QmNjOg==?=");
  back = decode_words(h);
  assert_string_equal(back, "=?UTF-8?B?QmNjOg==?=");
  free(back);
  free(h);
}

static void body_cannot_end_data(void **state) {
  struct lmp_buf b = {0};
  const char *body = "Dear partner,\n.\r\nDATA\r\nMAIL FROM:<eve@example.com>\r\n.\rRCPT TO:x\n\n" "caf\xc3\xa9 =x \n";
  assert_int_equal(notifier_qp(body, &b), 0);
  /* Only CRLF line breaks; no line is a lone dot or starts with one; no line over 76. */
  const char *p = b.data;
  for (size_t i = 0; i < b.len; i++) {
    if (b.data[i] == '\r')
      assert_true(i + 1 < b.len && b.data[i + 1] == '\n');
    if (b.data[i] == '\n')
      assert_true(i > 0 && b.data[i - 1] == '\r');
  }
  while (p && *p) {
    const char *nl = strstr(p, "\r\n");
    assert_true(*p != '.');
    assert_true((size_t)(nl - p) <= 76);
    p = nl + 2;
  }
  assert_non_null(strstr(b.data, "caf=C3=A9 =3Dx=20\r\n"));
  assert_non_null(strstr(b.data, "=2E\r\n"));
  lmp_buf_free(&b);
}

/* What the notifier stores (migrations/004) and sends for every attempt. */
#define MID "0b0c2a53-4a7e-4d8e-9d0e-6f4cf2b8a1e7@lmp-onboarding"

/* A Message-ID is the stored random value; the builder refuses anything that could
 * end the header or add one, and writes nothing then. */
static void message_ids(void **state) {
  static const char *const good[] = {MID, "a@b", "x.y@lmp-onboarding", "a+b@c.d"};
  static const char *const bad[] = {
      "", "@lmp-onboarding", "abc@", "abc", "a@b@c", MID "\r\nBcc: eve@example.com",
      "abc\r@lmp-onboarding", "abc\n@lmp-onboarding", "abc@lmp-onboarding\r\n",
      "<abc@lmp-onboarding>", "abc@lmp-onboarding>", "a b@lmp-onboarding", ".a@b", "a.@b",
      "a..b@c", "a@b.", "\"a\"@b", "a@[127.0.0.1]", "caf\xc3\xa9@b", "a\0@b", "a(comment)@b"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    if (!notifier_message_id_ok(good[i]))
      fail_msg("refused %s", good[i]);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (notifier_message_id_ok(bad[i]))
      fail_msg("accepted case %zu", i);
  assert_false(notifier_message_id_ok(NULL));
  char long_id[300];
  memset(long_id, 'a', sizeof(long_id));
  memcpy(long_id + 280, "@lmp-onboarding", 16);
  assert_false(notifier_message_id_ok(long_id));

  struct notifier n = {.from_address = "onboarding@lmp.example.com", .from_name = ""};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct lmp_buf b = {0};
    assert_int_equal(notifier_message(&n, "alex@northwind.example.com", "Hello", "body", bad[i], 0, &b),
                     LMP_EINVAL);
    assert_null(b.data);
  }
  /* The sender gives such a mail up before it opens a connection. */
  void *handle = NULL;
  char err[200] = "";
  assert_int_equal(notifier_send(&n, &handle, "alex@northwind.example.com", "Hello", "body",
                                 "abc\r\nBcc: eve@example.com@lmp-onboarding", err, sizeof(err)),
                   LMP_EREJECT);
  assert_null(handle);
  assert_non_null(strstr(err, "Message-ID"));
}

static void whole_message(void **state) {
  struct notifier n = {.from_address = "onboarding@lmp.example.com", .from_name = "Licence Portal \xc3\x89quipe"};
  struct lmp_buf b = {0};
  assert_int_equal(notifier_message(&n, "alex@northwind.example.com", "Hello\r\nBcc: eve@example.com",
                                    "line\n.\n", MID, 0, &b), 0);
  const char *end = strstr(b.data, "\r\n\r\n");
  assert_non_null(end);
  /* The Message-ID is the one given, once, among the headers. */
  const char *mid = strstr(b.data, "\r\nMessage-ID: <" MID ">\r\n");
  assert_non_null(mid);
  assert_true(mid < end);
  assert_null(strstr(mid + 3, "Message-ID"));
  /* Exactly the headers we write: no Bcc, every header line starts with a known name. */
  assert_null(strstr(b.data, "\nBcc"));
  assert_non_null(strstr(b.data, "From: =?UTF-8?B?"));
  assert_non_null(strstr(b.data, "To: <alex@northwind.example.com>\r\n"));
  assert_non_null(strstr(b.data, "Content-Transfer-Encoding: quoted-printable\r\n"));
  for (size_t i = 0; i < b.len; i++)
    assert_true((unsigned char)b.data[i] < 0x80);
  lmp_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(addresses),
      cmocka_unit_test(header_text),
      cmocka_unit_test(body_cannot_end_data),
      cmocka_unit_test(message_ids),
      cmocka_unit_test(whole_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
