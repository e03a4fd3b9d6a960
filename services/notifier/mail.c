/* Mail: templates, addresses, the message's bytes (RFC 5322, RFC 2047 headers, a
 * quoted-printable body) and SMTP delivery with libcurl. Every header is written by
 * one function, notifier_header, which refuses a CR, an LF or any other byte that is
 * not printable ASCII in a name or a value: nothing can end a header and start
 * another, whatever reaches it. Addresses and the Message-ID must also be plain
 * addr-specs and msg-ids, header text is encoded, and the body travels as
 * quoted-printable, so no CR, LF or lone dot of its own ever reaches the wire. The
 * Message-ID is not taken from an event at all: it is the random value stored with
 * the mail (send.c). */
#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmp/base/buf.h"
#include "lmp/base/config.h"
#include "lmp/base/error.h"
#include "lmp/base/text.h"
#include "notifier.h"

/* ---- Templates ------------------------------------------------------------------- */

static char *read_template(const struct notifier *n, const char *kind) {
  char name[64];
  snprintf(name, sizeof(name), "%s.txt", kind);
  if (n->template_dir && *n->template_dir) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", n->template_dir, name);
    FILE *f = fopen(path, "r");
    if (f) {
      struct lmp_buf b = {0};
      char chunk[4096];
      size_t got;
      while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        lmp_buf_append(&b, chunk, got);
      fclose(f);
      return lmp_buf_steal(&b);
    }
  }
  for (const struct lmp_embedded *t = notifier_templates; t->name; t++)
    if (strcmp(t->name, name) == 0)
      return strdup(t->text);
  return NULL;
}

int notifier_render(const struct notifier *n, const char *kind, json_t *vars, char **subject, char **body) {
  char *t = read_template(n, kind);
  if (t == NULL)
    return LMP_EINVAL;
  struct lmp_buf out = {0};
  lmp_buf_puts(&out, "");
  for (const char *p = t; *p;) {
    const char *open = strstr(p, "{{");
    const char *close = open ? strstr(open, "}}") : NULL;
    if (close == NULL) {
      lmp_buf_puts(&out, p);
      break;
    }
    lmp_buf_append(&out, p, (size_t)(open - p));
    char key[64];
    snprintf(key, sizeof(key), "%.*s", (int)(close - open - 2), open + 2);
    json_t *v = json_object_get(vars, key);
    if (json_is_string(v))
      lmp_buf_puts(&out, json_string_value(v));
    else if (json_is_integer(v))
      lmp_buf_printf(&out, "%lld", (long long)json_integer_value(v));
    p = close + 2;
  }
  free(t);
  /* "Subject: ..." on the first line, a blank line, then the body. */
  char *text = lmp_buf_steal(&out);
  if (text == NULL)
    return LMP_ENOMEM;
  char *nl = strchr(text, '\n');
  if (strncmp(text, "Subject: ", 9) != 0 || nl == NULL) {
    free(text);
    return LMP_EINVAL;
  }
  *subject = strndup(text + 9, (size_t)(nl - text - 9));
  *body = strdup(nl[1] == '\n' ? nl + 2 : nl + 1);
  free(text);
  return *subject && *body ? 0 : LMP_ENOMEM;
}

/* ---- Addresses ---------------------------------------------------------------------- */

/* A DNS host name: labels of letters, digits and inner hyphens, the last alphabetic. */
static int domain_ok(const char *h, size_t n) {
  if (n == 0 || n > 253)
    return 0;
  size_t labels = 0, start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || h[i] == '.') {
      size_t len = i - start;
      if (len == 0 || len > 63 || h[start] == '-' || h[i - 1] == '-')
        return 0;
      labels++;
      if (i == n && (len < 2 || !isalpha((unsigned char)h[start])))
        return 0;
      for (size_t k = start; i == n && k < i; k++)
        if (!isalpha((unsigned char)h[k]))
          return 0;
      start = i + 1;
    } else if (!isalnum((unsigned char)h[i]) && h[i] != '-') {
      return 0;
    }
  }
  return labels >= 2;
}

/* RFC 5322 dot-atom-text: runs of atext (ASCII letters, digits and a few marks)
 * joined by single dots. p holds no NUL (n comes from strlen). */
static int dot_atom_ok(const char *p, size_t n) {
  static const char atext[] = "!#$%&'*+/=?^_`{|}~-";
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '.') {
      if (i == 0 || i + 1 == n || p[i + 1] == '.')
        return 0;
    } else if (!isalnum((unsigned char)p[i]) && !strchr(atext, p[i])) {
      return 0;
    }
  }
  return 1;
}

/* RFC 5322 addr-spec with a dot-atom local part and a host-name domain: what a
 * partner's or an administrator's address is. No quoted local parts, no literals,
 * so nothing of it can be read as CR, LF, NUL, '<', '>' or a second address. */
int notifier_address_ok(const char *s) {
  if (s == NULL)
    return 0;
  size_t n = strlen(s);
  const char *at = strrchr(s, '@');
  if (n > 254 || at == NULL || at == s || (size_t)(at - s) > 64)
    return 0;
  return dot_atom_ok(s, (size_t)(at - s)) && domain_ok(at + 1, strlen(at + 1));
}

/* RFC 5322 msg-id without its angle brackets, in its strict form: dot-atom-text,
 * '@', dot-atom-text. The notifier writes only the stored random value, but the
 * builder checks it all the same, so no value can end the header or add one. */
int notifier_message_id_ok(const char *s) {
  if (s == NULL)
    return 0;
  size_t n = strlen(s);
  const char *at = strchr(s, '@');
  if (n > 250 || at == NULL)
    return 0;
  return dot_atom_ok(s, (size_t)(at - s)) && dot_atom_ok(at + 1, strlen(at + 1));
}

/* ---- Headers -------------------------------------------------------------------------- */

/* Why a header value cannot be written as it is: the first byte that is not printable
 * ASCII (a CR or LF would end the header and start another, or the body), or NULL. */
static const char *value_fault(const char *v, char *why, size_t whylen) {
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    if (*p >= 0x20 && *p < 0x7F)
      continue;
    snprintf(why, whylen, "%s 0x%02X at byte %zu", *p < 0x20 || *p == 0x7F ? "a control character" : "a non-ASCII byte",
             *p, (size_t)(p - (const unsigned char *)v));
    return why;
  }
  return NULL;
}

/* Folds at a space once a line would pass 76 characters (RFC 5322 2.2.3 asks for 78,
 * RFC 2047 for 76 where a line holds an encoded word): the CRLF goes before the space,
 * so unfolding gives the value back. A run of more than 998 characters without a
 * space cannot be a header line. */
static int put_folded(struct lmp_buf *out, const char *name, const char *value) {
  size_t col = strlen(name) + 2;
  int r = lmp_buf_printf(out, "%s: ", name);
  for (const char *p = value; r == 0 && *p;) {
    size_t word = strcspn(p + 1, " ") + 1; /* a space and the word after it, or the first word */
    if (*p == ' ' && col + word > 76) {
      r = lmp_buf_puts(out, "\r\n");
      col = 0;
    }
    if (col + word > 998)
      return LMP_EINVAL;
    if (r == 0)
      r = lmp_buf_append(out, p, word);
    col += word;
    p += word;
  }
  return r ? r : lmp_buf_puts(out, "\r\n");
}

int notifier_header(struct lmp_buf *out, const char *name, const char *value, char *err, size_t errlen) {
  char why[80];
  size_t n = strlen(name);
  if (n == 0 || strspn(name, "!\"#$%&'()*+,-./0123456789;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                           "abcdefghijklmnopqrstuvwxyz{|}~") != n) {
    snprintf(err, errlen, "a header name must be printable ASCII without ':' or space");
    return LMP_EINVAL;
  }
  if (value_fault(value, why, sizeof(why))) {
    snprintf(err, errlen, "the %s header: %s; a header value is one line of printable ASCII", name, why);
    return LMP_EINVAL;
  }
  size_t mark = out->len;
  int r = put_folded(out, name, value);
  if (r == LMP_EINVAL) {
    out->len = mark; /* nothing of the refused header stays */
    out->data[mark] = '\0';
    snprintf(err, errlen, "the %s header: a word longer than a header line", name);
  }
  return r;
}

/* ---- Header text (RFC 2047) ---------------------------------------------------------- */

static void base64(struct lmp_buf *out, const unsigned char *p, size_t n) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    char q[4] = {t[v >> 18 & 63], t[v >> 12 & 63], i + 1 < n ? t[v >> 6 & 63] : '=', i + 2 < n ? t[v & 63] : '='};
    lmp_buf_append(out, q, 4);
  }
}

int notifier_header_text(const char *text, struct lmp_buf *out) {
  /* A control character is refused, not hidden: encoded, a CR or LF would still reach
   * the reader's screen as a line break of a one-line field. */
  size_t n = strlen(text);
  if (lmp_text_check(text, n, 0, NULL) != LMP_TEXT_OK)
    return LMP_EINVAL;
  int plain = strstr(text, "=?") == NULL && n <= 900;
  for (const unsigned char *p = (const unsigned char *)text; *p && plain; p++)
    plain = *p < 0x80;
  if (plain)
    return lmp_buf_puts(out, text);
  /* Encoded words of at most 39 bytes of text each (64 characters encoded), cut at
   * character boundaries, separated by spaces where the header builder folds: each
   * line that holds one stays within the 76 characters RFC 2047 allows, the first
   * one's header name included. */
  for (size_t at = 0; at < n;) {
    size_t take = lmp_utf8_cut(text + at, n - at, 39);
    if (take == 0)
      take = 1; /* cannot happen with checked text; never loops */
    lmp_buf_puts(out, at ? " =?UTF-8?B?" : "=?UTF-8?B?");
    base64(out, (const unsigned char *)text + at, take);
    lmp_buf_puts(out, "?=");
    at += take;
  }
  return out->data ? 0 : LMP_ENOMEM;
}

/* ---- Body (quoted-printable, RFC 2045) --------------------------------------------- */

static void qp_line(struct lmp_buf *out, const unsigned char *p, size_t n) {
  size_t col = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = p[i];
    char enc[4];
    int literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && i + 1 < n);
    /* A dot that starts a line could end the SMTP data: never literal there. */
    if (c == '.' && col == 0)
      literal = 0;
    size_t w = literal ? 1 : 3;
    if (col + w > 75) {
      lmp_buf_puts(out, "=\r\n");
      col = 0;
      if (c == '.')
        literal = 0, w = 3;
    }
    if (literal) {
      lmp_buf_append(out, &c, 1);
    } else {
      snprintf(enc, sizeof(enc), "=%02X", c);
      lmp_buf_append(out, enc, 3);
    }
    col += w;
  }
  lmp_buf_puts(out, "\r\n");
}

int notifier_qp(const char *body, struct lmp_buf *out) {
  const char *p = body;
  for (;;) {
    size_t n = strcspn(p, "\r\n");
    qp_line(out, (const unsigned char *)p, n);
    p += n;
    if (*p == '\0')
      break;
    p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1; /* any line break is one CRLF */
    if (*p == '\0')
      break;
  }
  return out->data ? 0 : LMP_ENOMEM;
}

/* A header whose value is text: encoded (RFC 2047) before it goes to the builder. */
static int text_header(struct lmp_buf *out, const char *name, const char *text, const char *suffix, char *err,
                       size_t errlen) {
  struct lmp_buf v = {0};
  int r = notifier_header_text(text, &v);
  if (r == LMP_EINVAL)
    snprintf(err, errlen, "the %s header: its text holds a control character or is not UTF-8", name);
  if (r == 0 && (r = lmp_buf_puts(&v, suffix)) == 0)
    r = notifier_header(out, name, v.data, err, errlen);
  lmp_buf_free(&v);
  return r;
}

/* A header whose value is an address or an id between angle brackets, such as
 * <a@b.example>: its syntax keeps it one token (no second address, no comment). */
static int angle_header(struct lmp_buf *out, const char *name, const char *value, int (*ok)(const char *),
                        char *err, size_t errlen) {
  if (!ok(value)) {
    snprintf(err, errlen, "the %s header: %s", name,
             ok == notifier_address_ok ? "not a plain address such as a@example.com" : "not a plain msg-id");
    return LMP_EINVAL;
  }
  char v[300];
  snprintf(v, sizeof(v), "<%s>", value);
  return notifier_header(out, name, v, err, errlen);
}

int notifier_message(const struct notifier *n, const char *to, const char *subject, const char *body,
                     const char *message_id, time_t now, struct lmp_buf *out, char *err, size_t errlen) {
  char date[64];
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
  int r = notifier_header(out, "Date", date, err, errlen);
  if (r == 0 && *n->from_name) {
    /* The display name, then the address: each checked as its own kind. */
    if (!notifier_address_ok(n->from_address)) {
      snprintf(err, errlen, "the From header: not a plain address such as a@example.com");
      r = LMP_EINVAL;
    } else {
      char addr[300];
      snprintf(addr, sizeof(addr), " <%s>", n->from_address);
      r = text_header(out, "From", n->from_name, addr, err, errlen);
    }
  } else if (r == 0) {
    r = angle_header(out, "From", n->from_address, notifier_address_ok, err, errlen);
  }
  if (r == 0) r = angle_header(out, "To", to, notifier_address_ok, err, errlen);
  if (r == 0) r = text_header(out, "Subject", subject, "", err, errlen);
  if (r == 0) r = angle_header(out, "Message-ID", message_id, notifier_message_id_ok, err, errlen);
  if (r == 0) r = notifier_header(out, "MIME-Version", "1.0", err, errlen);
  if (r == 0) r = notifier_header(out, "Content-Type", "text/plain; charset=utf-8", err, errlen);
  if (r == 0) r = notifier_header(out, "Content-Transfer-Encoding", "quoted-printable", err, errlen);
  if (r == 0) r = lmp_buf_puts(out, "\r\n");
  if (r == 0) r = notifier_qp(body, out);
  if (r < 0)
    lmp_buf_free(out); /* nothing of a refused message is left to send */
  if (r == LMP_ENOMEM)
    snprintf(err, errlen, "out of memory");
  return r;
}

/* ---- SMTP ---------------------------------------------------------------------------- */

struct upload {
  const char *data;
  size_t len, pos;
};

static size_t read_cb(char *dst, size_t size, size_t nmemb, void *arg) {
  struct upload *u = arg;
  size_t n = size * nmemb;
  if (n > u->len - u->pos)
    n = u->len - u->pos;
  memcpy(dst, u->data + u->pos, n);
  u->pos += n;
  return n;
}

/* TLS and authentication as the settings say (notifier_configured checked them):
 * only SMTP, TLS required unless smtp_tls says otherwise, the server's certificate
 * verified (libcurl's default, never turned off), and the password read from its file
 * for this attempt only, so a new one is used without a restart. *password is the
 * caller's to zero and free. 0, or LMP_EIO with why in err. */
static int secure(const struct notifier *n, CURL *c, char **password, char *err, size_t errlen) {
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(c, CURLOPT_USE_SSL, n->use_ssl);
  if (n->smtp_ca_file && *n->smtp_ca_file)
    curl_easy_setopt(c, CURLOPT_CAINFO, n->smtp_ca_file);
  if (n->smtp_username == NULL || *n->smtp_username == '\0')
    return 0;
  char why[400];
  if (lmp_config_read_secret(n->smtp_password_file, password, why, sizeof(why)) < 0) {
    snprintf(err, errlen, "notifier.smtp_password_file: %s", why);
    return LMP_EIO;
  }
  curl_easy_setopt(c, CURLOPT_USERNAME, n->smtp_username);
  curl_easy_setopt(c, CURLOPT_PASSWORD, *password);
  return 0;
}

int notifier_send(struct notifier *n, void **handle, const char *to, const char *subject, const char *body,
                  const char *message_id, char *err, size_t errlen) {
  if (!notifier_address_ok(to)) {
    snprintf(err, errlen, "the recipient is not a usable address");
    return LMP_EREJECT;
  }
  struct lmp_buf msg = {0};
  int built = notifier_message(n, to, subject, body, message_id, time(NULL), &msg, err, errlen);
  if (built < 0)
    return built == LMP_ENOMEM ? LMP_ENOMEM : LMP_EREJECT; /* a message that cannot be written never goes */
  /* One handle per sender, kept: curl_easy_reset keeps its live connection, so
   * consecutive mails share one SMTP session. */
  CURL *c = *handle;
  if (c == NULL && (c = *handle = curl_easy_init()) == NULL) {
    lmp_buf_free(&msg);
    return LMP_ENOMEM;
  }
  curl_easy_reset(c);
  char from[300], rcpt[300];
  snprintf(from, sizeof(from), "<%s>", n->from_address);
  snprintf(rcpt, sizeof(rcpt), "<%s>", to);
  struct curl_slist *rcpts = curl_slist_append(NULL, rcpt);
  struct upload up = {msg.data, msg.len, 0};
  char cerr[CURL_ERROR_SIZE] = "", *password = NULL;
  curl_easy_setopt(c, CURLOPT_URL, n->smtp_url);
  curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpts);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
  curl_easy_setopt(c, CURLOPT_READDATA, &up);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)n->smtp_timeout_s);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)n->smtp_timeout_s * 3);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  int r = secure(n, c, &password, err, errlen);
  CURLcode rc = r == 0 ? curl_easy_perform(c) : CURLE_OK;
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  if (password) {
    curl_easy_setopt(c, CURLOPT_PASSWORD, NULL); /* libcurl's copy goes now too */
    explicit_bzero(password, strlen(password));
    free(password);
  }
  curl_slist_free_all(rcpts);
  lmp_buf_free(&msg);
  if (r < 0)
    return r;
  if (rc == CURLE_OK)
    return 0;
  snprintf(err, errlen, "%s (SMTP %ld)", *cerr ? cerr : curl_easy_strerror(rc), code);
  /* 5xx: the server refuses this mail for good; anything else may pass. A refused
   * login (535) or a server that wants one (530) is the notifier's setup, not the
   * mail's: the mail waits for the operator as for a server that is down. */
  if (rc == CURLE_LOGIN_DENIED || code == 530 || code == 535)
    return LMP_EIO;
  return code >= 500 && code < 600 ? LMP_EREJECT : LMP_EIO;
}
