/* The identity provider as lmpctl's public OAuth client sees it: discovery, forms
 * posted to its endpoints, its error answers in words. */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "lmp/base/buf.h"
#include "lmp/base/error.h"
#include "signin.h"

#define ANSWER_MAX (256 * 1024) /* a discovery document or token answer, at most */
/* A person waits at a terminal, and a password grant may hash for a while on a busy
 * provider: longer than oidc.timeout_ms, which bounds the daemons' key fetches. */
#define IDP_TIMEOUT_MS 30000L

static size_t collect(char *data, size_t size, size_t n, void *b) {
  struct lmp_buf *out = b;
  if (out->len + size * n > ANSWER_MAX || lmp_buf_append(out, data, size * n) < 0)
    return 0; /* ends the transfer */
  return size * n;
}

/* One call: GET (form NULL) or POST the form. 0 when answered; else err holds why
 * not, in curl's words. */
static int call(const char *url, const char *form, long *status, json_t **answer, char *err, size_t errlen) {
  *status = 0;
  *answer = NULL;
  CURL *c = curl_easy_init();
  if (c == NULL)
    return LMP_ENOMEM;
  struct lmp_buf out = {0};
  char cerr[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, IDP_TIMEOUT_MS);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  if (cfg.oidc_ca_file && *cfg.oidc_ca_file)
    curl_easy_setopt(c, CURLOPT_CAINFO, cfg.oidc_ca_file);
  struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  if (form)
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, form); /* application/x-www-form-urlencoded */
  CURLcode cr = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  int r = 0;
  if (cr != CURLE_OK) {
    snprintf(err, errlen, "%s", *cerr ? cerr : curl_easy_strerror(cr));
    r = LMP_ERETRY;
  } else {
    json_t *j = json_loadb(out.data ? out.data : "", out.len, 0, NULL);
    if (json_is_object(j))
      *answer = j;
    else
      json_decref(j);
  }
  /* A token answer holds secrets: the buffer is wiped before it is freed. */
  if (out.data)
    explicit_bzero(out.data, out.len);
  lmp_buf_free(&out);
  return r;
}

/* An endpoint of the document: an https address (http only when the issuer is
 * http, as in a plaintext local stack), else NULL. A password or refresh token never
 * goes in clear to an issuer that speaks TLS. */
static const char *endpoint(const json_t *doc, const char *name, int http_ok) {
  const char *u = json_string_value(json_object_get(doc, name));
  return u && (strncmp(u, "https://", 8) == 0 || (http_ok && strncmp(u, "http://", 7) == 0)) ? u : NULL;
}

int idp_discover(struct idp *p, const char *issuer, const char *client_id, char *err, size_t errlen) {
  memset(p, 0, sizeof(*p));
  size_t n = strlen(issuer);
  while (n && issuer[n - 1] == '/')
    n--;
  char url[2048];
  if (snprintf(url, sizeof(url), "%.*s/.well-known/openid-configuration", (int)n, issuer) >= (int)sizeof(url)) {
    snprintf(err, errlen, "oidc.issuer is too long");
    return LMP_ECONFIG;
  }
  int http_ok = strncmp(issuer, "http://", 7) == 0;
  long status;
  json_t *doc;
  char why[1200];
  if (call(url, NULL, &status, &doc, why, sizeof(why)) < 0) {
    snprintf(err, errlen, "the issuer %s does not answer: %s", issuer, why);
    return LMP_ERETRY;
  }
  const char *iss = json_string_value(json_object_get(doc, "issuer"));
  char shown[256];
  if (status != 200 || doc == NULL) {
    snprintf(err, errlen, "the issuer %s has no discovery document: %s answered HTTP %ld%s", issuer, url, status,
             doc ? "" : " without JSON");
  } else if (iss == NULL || strlen(iss) != n || strncmp(iss, issuer, n) != 0) {
    /* OpenID Connect Discovery 1.0, 4.3: the document must name the issuer asked. */
    snprintf(err, errlen, "%s names the issuer '%s', not %s", url, printable(iss ? iss : "", shown, sizeof(shown)),
             issuer);
  } else if (endpoint(doc, "token_endpoint", http_ok) == NULL) {
    snprintf(err, errlen, "%s names no %s token_endpoint", url, http_ok ? "http(s)" : "https");
  } else {
    p->doc = doc;
    p->issuer = iss;
    p->token = endpoint(doc, "token_endpoint", http_ok);
    p->device = endpoint(doc, "device_authorization_endpoint", http_ok);
    p->revocation = endpoint(doc, "revocation_endpoint", http_ok);
    p->end_session = endpoint(doc, "end_session_endpoint", http_ok);
    p->client_id = client_id;
    return 0;
  }
  json_decref(doc);
  return LMP_ERETRY;
}

void idp_clear(struct idp *p) {
  json_decref(p->doc);
  memset(p, 0, sizeof(*p));
}

int idp_post(const struct idp *p, const char *url, long *status, json_t **answer, char *err, size_t errlen, ...) {
  *status = 0;
  *answer = NULL;
  struct lmp_buf form = {0};
  va_list ap;
  va_start(ap, errlen);
  int r = 0;
  for (const char *name; r == 0 && (name = va_arg(ap, const char *)) != NULL;) {
    const char *value = va_arg(ap, const char *);
    if (value == NULL)
      continue;
    char *v = curl_easy_escape(NULL, value, 0);
    if (v == NULL || lmp_buf_printf(&form, "%s%s=%s", form.len ? "&" : "", name, v) < 0)
      r = LMP_ENOMEM;
    if (v)
      explicit_bzero(v, strlen(v)); /* may be a password or a refresh token */
    curl_free(v);
  }
  va_end(ap);
  char why[CURL_ERROR_SIZE + 64];
  if (r == 0 && (r = call(url, form.data ? form.data : "", status, answer, why, sizeof(why))) < 0)
    snprintf(err, errlen, "%s does not answer: %s", url, why);
  if (form.data)
    explicit_bzero(form.data, form.len);
  lmp_buf_free(&form);
  return r;
}

const char *idp_error(const json_t *answer, long status, const char **code, char *buf, size_t len) {
  const char *e = json_string_value(json_object_get(answer, "error"));
  const char *d = json_string_value(json_object_get(answer, "error_description"));
  char ce[128], cd[512];
  if (code)
    *code = e ? e : "";
  if (e && d)
    snprintf(buf, len, "%s (%s)", printable(d, cd, sizeof(cd)), printable(e, ce, sizeof(ce)));
  else if (e)
    snprintf(buf, len, "%s", printable(e, ce, sizeof(ce)));
  else
    snprintf(buf, len, "HTTP %ld without an OAuth error", status);
  return buf;
}

const char *printable(const char *s, char *buf, size_t len) {
  snprintf(buf, len, "%s", s ? s : "");
  for (char *c = buf; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7F)
      *c = '?';
  return buf;
}
