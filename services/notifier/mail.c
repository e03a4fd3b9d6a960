/* Mail templates and SMTP delivery with libcurl. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmp/buf.h"
#include "lmp/error.h"
#include "notifier.h"

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
  for (char *c = *subject; c && *c; c++)
    if (*c == '\r' || *c == '\n')
      *c = ' '; /* no header injection through a value */
  return *subject && *body ? 0 : LMP_ENOMEM;
}

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

/* Converts bare LF to CRLF, as SMTP wants. */
static void put_crlf(struct lmp_buf *b, const char *text) {
  for (const char *s = text; *s; s++) {
    if (*s == '\n' && (s == text || s[-1] != '\r'))
      lmp_buf_append(b, "\r", 1);
    lmp_buf_append(b, s, 1);
  }
}

int notifier_send(struct notifier *n, const char *to, const char *subject, const char *body,
                  const char *message_id, char *err, size_t errlen) {
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
  struct lmp_buf msg = {0};
  lmp_buf_printf(&msg,
                 "Date: %s\r\nFrom: %s <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\n"
                 "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Transfer-Encoding: 8bit\r\n\r\n",
                 date, n->from_name, n->from_address, to, subject, message_id);
  put_crlf(&msg, body);
  if (msg.data == NULL)
    return LMP_ENOMEM;

  /* One handle for the notifier's life: curl_easy_reset keeps its live connection,
   * so consecutive mails share one SMTP session. Ticks never run concurrently. */
  CURL *c = n->curl;
  if (c == NULL && (c = n->curl = curl_easy_init()) == NULL) {
    lmp_buf_free(&msg);
    return LMP_ENOMEM;
  }
  curl_easy_reset(c);
  char from[300], rcpt[330];
  snprintf(from, sizeof(from), "<%s>", n->from_address);
  snprintf(rcpt, sizeof(rcpt), "<%s>", to);
  struct curl_slist *rcpts = curl_slist_append(NULL, rcpt);
  struct upload up = {msg.data, msg.len, 0};
  char cerr[CURL_ERROR_SIZE] = "";
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
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK)
    snprintf(err, errlen, "%s", *cerr ? cerr : curl_easy_strerror(rc));
  curl_slist_free_all(rcpts);
  lmp_buf_free(&msg);
  return rc == CURLE_OK ? 0 : LMP_EIO;
}
