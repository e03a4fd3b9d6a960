/* The schema registry client: the Confluent REST API over libcurl. */
#include "lmp/avro/registry.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/base/buf.h"
#include "lmp/base/error.h"
#include "lmp/base/text.h"

struct lmp_registry {
  char *url, *ca, *user, *password;
  const char *protocols; /* what libcurl may speak: https only, unless allow_http */
  long timeout_ms;
};

/* Registry answers are small; a larger one is not a registry's. */
#define ANSWER_MAX (4 * 1024 * 1024)

/* The registry says how every consumed event is read: in clear, anyone on the path
 * could hand the daemons a schema of their choosing. */
int lmp_registry_check_config(const struct lmp_config *cfg, char *err, size_t errlen) {
  const char *url = cfg->registry_url;
  if (url == NULL || *url == '\0' || strncmp(url, "https://", 8) == 0)
    return 0;
  if (strncmp(url, "http://", 7) != 0) {
    snprintf(err, errlen, "schema_registry.url: '%s' is not an https:// address", LMP_SHOWN(url));
    return LMP_ECONFIG;
  }
  if (!cfg->registry_allow_http) {
    snprintf(err, errlen, "schema_registry.url: '%s' is plain http://; use https://, or set "
             "schema_registry.allow_http = true for a registry on a trusted network", url);
    return LMP_ECONFIG;
  }
  return 0;
}

int lmp_registry_new(struct lmp_registry **out, const struct lmp_config *cfg, char *err, size_t errlen) {
  *out = NULL;
  if (cfg->registry_url == NULL || *cfg->registry_url == '\0')
    return 0;
  int rc = lmp_registry_check_config(cfg, err, errlen);
  if (rc < 0)
    return rc;
  struct lmp_registry *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return LMP_ENOMEM;
  size_t n = strlen(cfg->registry_url);
  while (n && cfg->registry_url[n - 1] == '/')
    n--; /* paths are appended with their own slash */
  r->url = strndup(cfg->registry_url, n);
  r->ca = cfg->registry_ca_file && *cfg->registry_ca_file ? strdup(cfg->registry_ca_file) : NULL;
  r->user = cfg->registry_username && *cfg->registry_username ? strdup(cfg->registry_username) : NULL;
  r->timeout_ms = cfg->registry_timeout_ms;
  r->protocols = cfg->registry_allow_http ? "http,https" : "https";
  rc = r->url ? 0 : LMP_ENOMEM;
  if (rc == 0 && cfg->registry_password_file && *cfg->registry_password_file) {
    char why[400];
    if ((rc = lmp_config_read_secret(cfg->registry_password_file, &r->password, why, sizeof(why))) < 0)
      snprintf(err, errlen, "schema_registry.password_file: %s", why);
  }
  if (rc < 0) {
    lmp_registry_free(r);
    return rc;
  }
  *out = r;
  return 0;
}

void lmp_registry_free(struct lmp_registry *r) {
  if (r == NULL)
    return;
  free(r->url);
  free(r->ca);
  free(r->user);
  if (r->password) {
    memset(r->password, 0, strlen(r->password));
    free(r->password);
  }
  free(r);
}

const char *lmp_registry_url(const struct lmp_registry *r) { return r->url; }

static size_t collect(char *p, size_t size, size_t n, void *b) {
  struct lmp_buf *out = b;
  if (out->len + size * n > ANSWER_MAX || lmp_buf_append(out, p, size * n) < 0)
    return 0; /* ends the transfer */
  return size * n;
}

/* One call: *status the HTTP status (0: no answer), *answer its JSON (NULL when none). */
static int call(struct lmp_registry *r, const char *method, const char *path, const char *body, long *status,
                json_t **answer, char *err, size_t errlen) {
  *status = 0;
  *answer = NULL;
  CURL *c = curl_easy_init();
  if (c == NULL)
    return LMP_ENOMEM;
  char url[2048], cerr[CURL_ERROR_SIZE] = "";
  snprintf(url, sizeof(url), "%s%s", r->url, path);
  struct lmp_buf out = {0};
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/vnd.schemaregistry.v1+json");
  h = curl_slist_append(h, "Accept: application/vnd.schemaregistry.v1+json, application/json");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, r->protocols);
  if (body)
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  if (r->ca)
    curl_easy_setopt(c, CURLOPT_CAINFO, r->ca);
  if (r->user) {
    curl_easy_setopt(c, CURLOPT_USERNAME, r->user);
    curl_easy_setopt(c, CURLOPT_PASSWORD, r->password ? r->password : "");
  }
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  else
    snprintf(err, errlen, "schema registry %s: %s", r->url, *cerr ? cerr : curl_easy_strerror(rc));
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  if (rc == CURLE_OK && out.len)
    *answer = json_loadb(out.data, out.len, 0, NULL);
  if (rc == CURLE_OK && (*status < 200 || *status >= 300)) {
    const char *m = json_string_value(json_object_get(*answer, "message"));
    snprintf(err, errlen, "schema registry answered %ld: %.300s", *status, m ? m : "(no message)");
  }
  lmp_buf_free(&out);
  return rc == CURLE_OK ? 0 : LMP_ERETRY;
}

/* An answer's error: the registry's refusal (4xx but auth) is the schema's fault;
 * anything else may pass. */
static int refusal(long status) {
  return status >= 400 && status < 500 && status != 401 && status != 403 && status != 408 && status != 429
             ? LMP_ESCHEMA
             : LMP_ERETRY;
}

/* Subjects are topic names plus "-value": only these characters reach the path. */
static int subject_ok(const char *s) {
  return *s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == strlen(s);
}

/* The body that names a schema, {"schema": "<its JSON>"}, or NULL (no memory). */
static char *schema_body(const char *schema_json) {
  json_t *req = json_pack("{s:s}", "schema", schema_json);
  char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  return body;
}

/* A registry answer's schema id, when it has one in range. */
static int answer_id(json_t *a, int32_t *id) {
  json_t *jid = json_object_get(a, "id");
  if (!json_is_integer(jid) || json_integer_value(jid) < 0 || json_integer_value(jid) > INT32_MAX)
    return 0;
  *id = (int32_t)json_integer_value(jid);
  return 1;
}

int lmp_registry_register(struct lmp_registry *r, const char *subject, const char *schema_json, int32_t *id,
                          char *err, size_t errlen) {
  if (!subject_ok(subject)) {
    snprintf(err, errlen, "'%.200s' is not a subject name", subject);
    return LMP_EINVAL;
  }
  char path[600];
  long status;
  json_t *a;
  snprintf(path, sizeof(path), "/config/%s", subject);
  int rc = call(r, "PUT", path, "{\"compatibility\":\"BACKWARD\"}", &status, &a, err, errlen);
  json_decref(a);
  if (rc == 0 && (status < 200 || status >= 300))
    rc = refusal(status);
  if (rc < 0)
    return rc;
  char *body = schema_body(schema_json);
  if (body == NULL)
    return LMP_ENOMEM;
  snprintf(path, sizeof(path), "/subjects/%s/versions", subject);
  rc = call(r, "POST", path, body, &status, &a, err, errlen);
  free(body);
  if (rc == 0 && !(status >= 200 && status < 300 && answer_id(a, id))) {
    if (status >= 200 && status < 300)
      snprintf(err, errlen, "schema registry answered %ld without an id", status);
    rc = status >= 200 && status < 300 ? LMP_ERETRY : refusal(status);
  }
  json_decref(a);
  return rc;
}

int lmp_registry_lookup(struct lmp_registry *r, const char *subject, const char *schema_json, int32_t *id,
                        char *err, size_t errlen) {
  if (!subject_ok(subject)) {
    snprintf(err, errlen, "'%.200s' is not a subject name", subject);
    return LMP_EINVAL;
  }
  char *body = schema_body(schema_json);
  if (body == NULL)
    return LMP_ENOMEM;
  char path[600];
  long status;
  json_t *a;
  snprintf(path, sizeof(path), "/subjects/%s", subject);
  int rc = call(r, "POST", path, body, &status, &a, err, errlen);
  free(body);
  if (rc == 0 && status == 200 && answer_id(a, id)) {
    rc = 0; /* found */
  } else if (rc == 0 && status == 404) {
    snprintf(err, errlen, "this schema is not registered under %s: register it first (lmp-<daemon> "
             "--register-schemas, as a client that may write)", subject);
    rc = LMP_ESCHEMA;
  } else if (rc == 0) {
    if (*err == '\0')
      snprintf(err, errlen, "schema registry answered %ld", status);
    rc = status == 200 ? LMP_ERETRY : refusal(status);
  }
  json_decref(a);
  return rc;
}

int lmp_registry_schema(struct lmp_registry *r, int32_t id, char **json, char *err, size_t errlen) {
  char path[64];
  long status;
  json_t *a;
  snprintf(path, sizeof(path), "/schemas/ids/%d", (int)id);
  int rc = call(r, "GET", path, NULL, &status, &a, err, errlen);
  const char *s = json_string_value(json_object_get(a, "schema"));
  const char *type = json_string_value(json_object_get(a, "schemaType"));
  if (rc == 0 && status == 200 && s && (type == NULL || strcmp(type, "AVRO") == 0)) {
    *json = strdup(s);
    rc = *json ? 0 : LMP_ENOMEM;
  } else if (rc == 0) {
    if (status == 200)
      snprintf(err, errlen, "schema registry id %d is not an Avro schema", (int)id);
    rc = status == 200 ? LMP_ESCHEMA : refusal(status);
  }
  json_decref(a);
  return rc;
}
