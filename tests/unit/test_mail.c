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
#include <curl/curl.h>
#include <unistd.h>

#include "lmp/avro/codec.h"
#include "lmp/base/error.h"
#include "lmp/base/text.h"
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

/* Every line of a header block is at most max characters. */
static void lines_at_most(const char *h, size_t max) {
  for (const char *line = h; line && *line;) {
    const char *nl = strstr(line, "\r\n");
    assert_true((size_t)((nl ? nl : line + strlen(line)) - line) <= max);
    line = nl ? nl + 2 : NULL;
  }
}

static void header_text(void **state) {
  char *h = header("Onboarding confirmed: Acme Corp");
  assert_string_equal(h, "Onboarding confirmed: Acme Corp");
  free(h);
  /* A control character is refused, not encoded: a line break stays out of the field. */
  static const char *const bad[] = {"Acme\r\nBcc: eve@example.com", "Acme\n", "Acme\r", "\x1b[31mAcme", "A\tB",
                                    "A\x7f", "A\xc2\x9b[31m", "caf\xc3", "\xff"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct lmp_buf b = {0};
    if (notifier_header_text(bad[i], &b) != LMP_EINVAL)
      fail_msg("encoded case %zu", i);
    lmp_buf_free(&b);
  }
  /* Non-ASCII: encoded words, each decoding to whole characters; the builder folds
   * them into short lines. */
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
  struct lmp_buf line = {0};
  char err[200];
  assert_int_equal(notifier_header(&line, "Subject", h, err, sizeof(err)), 0);
  assert_true(strncmp(line.data, "Subject: =?UTF-8?B?", 19) == 0);
  lines_at_most(line.data, 76); /* RFC 2047 6.1: a line with an encoded word */
  back = decode_words(line.data);
  assert_string_equal(back, name);
  free(back);
  lmp_buf_free(&line);
  free(h);
  /* Text that looks like an encoded word is encoded, not trusted. */
  h = header("=?UTF-8?B?QmNjOg==?=");
  back = decode_words(h);
  assert_string_equal(back, "=?UTF-8?B?QmNjOg==?=");
  free(back);
  free(h);
}

/* The review's payload (M2): headers of its own and a replaced body, as any field of
 * an event could carry it. */
#define PAYLOAD "x>\r\nBcc: eve@evil.example\r\nContent-Type: text/html\r\n\r\n<a href=http://evil>pay</a>\r\nX: <y"

/* The one header writer refuses CR, LF and every other byte that is not printable
 * ASCII in a name or a value, says why, and writes nothing then. */
static void one_header_writer(void **state) {
  static const char *const names[] = {"Date", "From", "To", "Subject", "Message-ID", "MIME-Version",
                                      "Content-Type", "Content-Transfer-Encoding"};
  static const char *const values[] = {PAYLOAD, "a\rb", "a\nb", "a\r\n b", "a\x1b[2Jb", "a\tb", "a\x7f",
                                       "caf\xc3\xa9", "a\xc2\x85z"};
  char err[200];
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    for (size_t k = 0; k < sizeof(values) / sizeof(values[0]); k++) {
      struct lmp_buf b = {0};
      lmp_buf_puts(&b, "Kept: yes\r\n");
      err[0] = '\0';
      if (notifier_header(&b, names[i], values[k], err, sizeof(err)) != LMP_EINVAL)
        fail_msg("%s: wrote value %zu", names[i], k);
      assert_string_equal(b.data, "Kept: yes\r\n");
      assert_non_null(strstr(err, names[i]));
      lmp_buf_free(&b);
    }
  static const char *const bad_names[] = {"", "X\r\nBcc", "Bcc: eve@evil.example\r\nX", "X Y", "X:", "X\n",
                                          "\xc3\xa9"};
  for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
    struct lmp_buf b = {0};
    if (notifier_header(&b, bad_names[i], "v", err, sizeof(err)) != LMP_EINVAL)
      fail_msg("wrote name %zu", i);
    assert_null(b.data);
    assert_non_null(strstr(err, "header name"));
  }
  /* A word no header line can hold is refused too. */
  char *long_word = calloc(1, 1001);
  memset(long_word, 'a', 1000);
  struct lmp_buf k = {0};
  lmp_buf_puts(&k, "Kept: yes\r\n");
  assert_int_equal(notifier_header(&k, "Subject", long_word, err, sizeof(err)), LMP_EINVAL);
  assert_string_equal(k.data, "Kept: yes\r\n");
  assert_non_null(strstr(err, "the Subject header"));
  lmp_buf_free(&k);
  free(long_word);
  /* A good one is one line, or folded at spaces: unfolded, the value comes back. */
  struct lmp_buf b = {0};
  assert_int_equal(notifier_header(&b, "Subject", "Onboarding confirmed: Acme", err, sizeof(err)), 0);
  assert_string_equal(b.data, "Subject: Onboarding confirmed: Acme\r\n");
  lmp_buf_reset(&b);
  char words[700] = "";
  for (int i = 0; i < 50; i++)
    strcat(words, i ? " word-of-ten" : "word-of-ten");
  assert_int_equal(notifier_header(&b, "Subject", words, err, sizeof(err)), 0);
  lines_at_most(b.data, 76);
  char *unfolded = strdup(b.data + 9);
  for (char *p; (p = strstr(unfolded, "\r\n")) != NULL;)
    memmove(p, p + 2, strlen(p + 2) + 1);
  assert_string_equal(unfolded, words);
  free(unfolded);
  lmp_buf_free(&b);
}

/* The payload in each field that reaches a header is refused, whichever field it is
 * in, with the header named; no message comes out. The build of the reviewed commit
 * wrote it into the Message-ID, and main's wrote it into To (notifier_message took the
 * recipient as it was; only notifier_send checked it). */
static void review_payload_in_every_field(void **state) {
  struct notifier good = {.from_address = "onboarding@lmp.example.com", .from_name = "Licence Portal"};
  const char *to = "alex@northwind.example.com", *subject = "Hello", *mid = "0b0c2a53@lmp-onboarding";
  for (int field = 0; field < 5; field++) {
    struct notifier n = good;
    const char *t = to, *s = subject, *m = mid, *want = NULL;
    switch (field) {
    case 0: t = PAYLOAD, want = "To"; break;
    case 1: s = PAYLOAD, want = "Subject"; break;
    case 2: m = PAYLOAD, want = "Message-ID"; break;
    case 3: n.from_address = PAYLOAD, want = "From"; break;
    default: n.from_name = PAYLOAD, want = "From"; break;
    }
    struct lmp_buf b = {0};
    char err[200] = "";
    if (notifier_message(&n, t, s, "body", m, 0, &b, err, sizeof(err)) != LMP_EINVAL)
      fail_msg("field %d: the payload was written: %s", field, b.data ? b.data : "");
    assert_null(b.data);
    char header[40];
    snprintf(header, sizeof(header), "the %s header", want);
    if (strstr(err, header) == NULL)
      fail_msg("field %d: '%s' does not name %s", field, err, header);
    /* The sender refuses it before it opens a connection. */
    void *handle = NULL;
    assert_int_equal(notifier_send(&n, &handle, t, s, "body", m, err, sizeof(err)), LMP_EREJECT);
    assert_null(handle);
  }
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
    char err[200] = "";
    assert_int_equal(notifier_message(&n, "alex@northwind.example.com", "Hello", "body", bad[i], 0, &b, err,
                                      sizeof(err)), LMP_EINVAL);
    assert_non_null(strstr(err, "Message-ID"));
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
  char err[200] = "";
  assert_int_equal(notifier_message(&n, "alex@northwind.example.com", "Hello from Acme \xe2\x80\x94 Bcc: none",
                                    "line\n.\n", MID, 0, &b, err, sizeof(err)), 0);
  const char *end = strstr(b.data, "\r\n\r\n");
  assert_non_null(end);
  /* The Message-ID is the one given, once, among the headers. */
  const char *mid = strstr(b.data, "\r\nMessage-ID: <" MID ">\r\n");
  assert_non_null(mid);
  assert_true(mid < end);
  assert_null(strstr(mid + 3, "Message-ID"));
  /* Exactly the headers we write, in order; continuation lines start with a space. */
  static const char *const names[] = {"Date: ", "From: ", "To: ", "Subject: ", "Message-ID: ", "MIME-Version: ",
                                      "Content-Type: ", "Content-Transfer-Encoding: "};
  size_t k = 0;
  for (const char *line = b.data; line < end + 2; line = strstr(line, "\r\n") + 2) {
    if (*line == ' ')
      continue;
    assert_true(k < sizeof(names) / sizeof(names[0]));
    if (strncmp(line, names[k], strlen(names[k])) != 0)
      fail_msg("header %zu is not %s: %.40s", k, names[k], line);
    k++;
  }
  assert_int_equal(k, sizeof(names) / sizeof(names[0]));
  assert_non_null(strstr(b.data, "From: =?UTF-8?B?"));
  assert_non_null(strstr(b.data, " <onboarding@lmp.example.com>\r\n"));
  assert_non_null(strstr(b.data, "To: <alex@northwind.example.com>\r\n"));
  assert_non_null(strstr(b.data, "Content-Transfer-Encoding: quoted-printable\r\n"));
  for (size_t i = 0; i < b.len; i++)
    assert_true((unsigned char)b.data[i] < 0x80);
  lines_at_most(b.data, 76);
  lmp_buf_free(&b);
}

/* ---- SMTP settings (notifier_configured) ------------------------------------------- */

/* A file with the given text; its path in path. */
static void write_file(char *path, const char *text) {
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
}

/* What --check-config refuses, each with the setting named: credentials in the URL
 * (the username and password file are the place), another scheme, an unknown TLS
 * mode, a username without a password file, a password where TLS could be stripped,
 * a password or CA file that cannot be read or holds no certificate. */
static void smtp_settings(void **state) {
  char pw[] = "/tmp/test_mail_pw_XXXXXX", empty[] = "/tmp/test_mail_empty_XXXXXX", ca[] = "/tmp/test_mail_ca_XXXXXX",
       notpem[] = "/tmp/test_mail_notpem_XXXXXX";
  write_file(pw, "s3cret\n");
  write_file(empty, "\n");
  write_file(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  write_file(notpem, "-----BEGIN PRIVATE KEY-----\n");
  const struct notifier base = {.from_address = "onboarding@lmp.example.com", .from_name = "LMP",
                                .smtp_url = "smtp://mail.example.com:587", .smtp_tls = "required",
                                .smtp_ca_file = "", .smtp_username = "", .smtp_password_file = ""};
  const struct {
    char *url, *tls, *ca, *user;
    int pw; /* 0 none, 1 the password, 2 an empty file, 3 a missing file */
    const char *want;
  } cases[] = {
      {"smtp://bob:hunter2@mail.example.com:587", "required", "", "", 0, "smtp_url: holds credentials"},
      {"smtp://bob@mail.example.com:587", "required", "", "", 0, "smtp_url: holds credentials"},
      {"http://mail.example.com", "required", "", "", 0, "smtp_url: not an smtp"},
      {"mail.example.com:25", "required", "", "", 0, "smtp_url: not an smtp"},
      {NULL, "maybe", "", "", 0, "smtp_tls: 'maybe' is not"},
      {NULL, "required", "", "lmp-notifier", 0, "go together"},
      {NULL, "required", "", "", 1, "go together"},
      {NULL, "try", "", "lmp-notifier", 1, "a password goes only over TLS"},
      {NULL, "none", "", "lmp-notifier", 1, "a password goes only over TLS"},
      {NULL, "required", "", "lmp-notifier", 2, "is empty"},
      {NULL, "required", "", "lmp-notifier", 3, "smtp_password_file: cannot read"},
      {NULL, "required", "/nonexistent/ca.pem", "", 0, "smtp_ca_file: cannot read"},
      {NULL, "required", notpem, "", 0, "holds no PEM certificate"},
      {NULL, "required", ca, "lmp-notifier", 1, NULL},
      {"smtps://mail.example.com:465", "none", "", "lmp-notifier", 1, NULL},
      {NULL, "try", "", "", 0, NULL},
      {NULL, "none", "", "", 0, NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct notifier n = base;
    n.smtp_url = cases[i].url ? cases[i].url : base.smtp_url;
    n.smtp_tls = cases[i].tls;
    n.smtp_ca_file = cases[i].ca;
    n.smtp_username = cases[i].user;
    n.smtp_password_file = cases[i].pw == 1 ? pw : cases[i].pw == 2 ? empty : cases[i].pw == 3 ? "/nonexistent" : "";
    char err[300] = "";
    int r = notifier_configured(&n, err, sizeof(err));
    if (cases[i].want == NULL && r != 0)
      fail_msg("case %zu refused: %s", i, err);
    if (cases[i].want && (r != LMP_ECONFIG || strstr(err, cases[i].want) == NULL))
      fail_msg("case %zu: %d '%s', want '%s'", i, r, err, cases[i].want);
    assert_null(strstr(err, "hunter2"));
    assert_null(strstr(err, "s3cret"));
  }
  struct notifier n = base;
  assert_int_equal(notifier_configured(&n, (char[200]){0}, 200), 0);
  assert_int_equal(n.use_ssl, CURLUSESSL_ALL); /* the default: TLS or no mail */
  n.smtp_tls = "try";
  assert_int_equal(notifier_configured(&n, (char[200]){0}, 200), 0);
  assert_int_equal(n.use_ssl, CURLUSESSL_TRY);
  n.smtp_tls = "none";
  assert_int_equal(notifier_configured(&n, (char[200]){0}, 200), 0);
  assert_int_equal(n.use_ssl, CURLUSESSL_NONE);
  unlink(pw);
  unlink(empty);
  unlink(ca);
  unlink(notpem);
}

/* ---- What an event may carry (notifier_event_fault) ---------------------------------- */

#define ID "0b7f6c1e-4a57-4c2e-9a54-6f1d7a0c0002"

/* notifier_event_fault on an event given as JSON; why is the reason. */
static int event_fault(const char *type, json_t *event, char *why, size_t whylen) {
  struct lmp_schemas *schemas;
  char err[300];
  assert_int_equal(lmp_schemas_new(&schemas, err, sizeof(err)), 0);
  const struct lmp_schema *s = lmp_schemas_get(schemas, type);
  avro_value_t v;
  assert_int_equal(avro_generic_value_new(s->iface, &v), 0);
  if (lmp_avro_from_json(&v, event, err, sizeof(err)) != 0)
    fail_msg("%s: %s", type, err);
  why[0] = '\0';
  int r = notifier_event_fault(&v, why, whylen);
  avro_value_decref(&v);
  lmp_schemas_free(schemas);
  json_decref(event);
  return r;
}

static json_t *accepted(void) {
  char path[512];
  snprintf(path, sizeof(path), "%s/deploy/examples/physical-complete.json", LMP_SOURCE_DIR);
  json_t *req = json_load_file(path, 0, NULL);
  assert_non_null(req);
  return json_pack("{s:s, s:s, s:s, s:o, s:[], s:i}", "onboarding_id", ID, "customer_id",
                   "6d0f7c6e-0000-4000-8000-000000000001", "account_name", "Maritime Freight", "request", req,
                   "warnings", "accepted_at", 0);
}

static json_t *address(void) {
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "ref", "head-office", "recipient", "IT Department", "line1",
                   "1800 Lower Water St", "city", "Halifax", "postal_code", "B3J 3P5", "country", "CA");
}

static json_t *completed(void) {
  return json_pack("{s:s, s:o, s:[], s:[], s:[], s:i}", "onboarding_id", ID, "onboarding", accepted(), "allocations",
                   "appliances", "shipments", "completed_at", 0);
}

static json_t *failed(void) {
  return json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:s}], s:o, s:i}", "onboarding_id", ID, "partner_id",
                   "partner-northwind", "stage", "shipping", "reasons", "code", "NO_DEFAULT_ADDRESS", "field", "",
                   "message", "Partner has no default shipping address.", "onboarding", accepted(), "failed_at", 0);
}

static json_t *dispatched(void) {
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:[], s:i}", "onboarding_id", ID, "shipment_id",
                   "9c1d7b0a-5e2f-4a11-8b3c-2d4e6f8a0b1c", "partner_id", "partner-northwind", "partner_email",
                   "ops@northwind.example.com", "account_name", "Maritime Freight", "carrier", "Purolator",
                   "tracking_number", "PRL-1", "address", address(), "items", "dispatched_at", 0);
}

/* Sets a string at a dotted path of an event. */
static json_t *with(json_t *event, const char *path, const char *value) {
  char *copy = strdup(path), *save = NULL;
  json_t *node = event;
  for (char *tok = strtok_r(copy, ".", &save), *next; tok; tok = next) {
    next = strtok_r(NULL, ".", &save);
    if (next == NULL)
      json_object_set_new(node, tok, json_string(value));
    else
      node = json_object_get(node, tok);
  }
  free(copy);
  return event;
}

/* Each identifier the notifier reads is checked by its syntax, and every other text
 * for control characters; the reason names the field. The review's payload in an
 * onboarding or partner id, a stage it does not know, a shipment id that is no UUID,
 * an escape sequence in a carrier: each refuses the event. */
static void event_fields(void **state) {
  char why[200];
  assert_int_equal(event_fault("onboarding.shipping-completed", completed(), why, sizeof(why)), 0);
  assert_int_equal(event_fault("onboarding.failed", failed(), why, sizeof(why)), 0);
  assert_int_equal(event_fault("onboarding.shipment-dispatched", dispatched(), why, sizeof(why)), 0);
  static const struct {
    const char *type, *path, *value, *why;
  } bad[] = {
      {"onboarding.shipping-completed", "onboarding_id", PAYLOAD, "onboarding_id is not a UUID"},
      {"onboarding.shipping-completed", "onboarding_id", ID "\r\n", "onboarding_id is not a UUID"},
      {"onboarding.shipping-completed", "onboarding.onboarding_id", "x", "onboarding.onboarding_id is not a UUID"},
      {"onboarding.shipping-completed", "onboarding.customer_id", PAYLOAD, "onboarding.customer_id is not a UUID"},
      {"onboarding.shipping-completed", "onboarding.request.partner_id", "partner-northwind\r\nBcc: eve@evil.example",
       "onboarding.request.partner_id is not a partner id"},
      {"onboarding.shipping-completed", "onboarding.account_name", "Acme" PAYLOAD,
       "onboarding.account_name contains a control character"},
      {"onboarding.shipping-completed", "onboarding.request.customer.portal_admin_email", "a@b.example\r\nBcc: x",
       "onboarding.request.customer.portal_admin_email contains a control character"},
      {"onboarding.failed", "onboarding_id", PAYLOAD, "onboarding_id is not a UUID"},
      {"onboarding.failed", "partner_id", PAYLOAD, "partner_id is not a partner id"},
      {"onboarding.failed", "partner_id", "", "partner_id is not a partner id"},
      {"onboarding.failed", "stage", "billing", "stage is not a stage"},
      {"onboarding.failed", "stage", "shipping\n", "stage is not a stage"},
      {"onboarding.shipment-dispatched", "onboarding_id", PAYLOAD, "onboarding_id is not a UUID"},
      {"onboarding.shipment-dispatched", "shipment_id", "ship-1", "shipment_id is not a UUID"},
      {"onboarding.shipment-dispatched", "partner_id", "partner/../x", "partner_id is not a partner id"},
      {"onboarding.shipment-dispatched", "carrier", "UPS\x1b]8;;http://evil\x1b\\", "carrier contains a control"},
      {"onboarding.shipment-dispatched", "tracking_number", "1Z\r\n.\r\nQUIT", "tracking_number contains a control"},
      {"onboarding.shipment-dispatched", "address.line1", "1 Main St\xc2\x85", "address.line1 contains a control"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    json_t *ev = strcmp(bad[i].type, "onboarding.failed") == 0            ? failed()
                 : strcmp(bad[i].type, "onboarding.shipment-dispatched") == 0 ? dispatched()
                                                                             : completed();
    if (event_fault(bad[i].type, with(ev, bad[i].path, bad[i].value), why, sizeof(why)) != LMP_EREJECT)
      fail_msg("case %zu accepted", i);
    if (strncmp(why, bad[i].why, strlen(bad[i].why)) != 0)
      fail_msg("case %zu: '%s', want '%s...'", i, why, bad[i].why);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(addresses),
      cmocka_unit_test(header_text),
      cmocka_unit_test(one_header_writer),
      cmocka_unit_test(review_payload_in_every_field),
      cmocka_unit_test(body_cannot_end_data),
      cmocka_unit_test(message_ids),
      cmocka_unit_test(whole_message),
      cmocka_unit_test(smtp_settings),
      cmocka_unit_test(event_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
