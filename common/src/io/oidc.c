/* OpenID Connect access tokens: the issuer's keys discovered, cached and fetched again
 * at a bounded rate; signatures checked by cjose; the claims checked here.
 *
 * Only asymmetric signatures are accepted (RS*, PS*, ES*), whatever the token's header
 * says: with `none` anyone could write a token, and with HS* anyone holding the
 * issuer's public key (which is public) could. The header's algorithm must also fit
 * the key it names, so an RSA key is never used as an HMAC secret. */
#include "io/oidc.h"

#include <cjose/cjose.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lmp/base/buf.h"
#include "lmp/base/error.h"
#include "lmp/base/ids.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"

#define DOC_MAX (256 * 1024) /* a discovery document or key set, at most */
#define TOKEN_MAX 16384      /* a longer bearer token is not one we would accept */
#define KEYS_MAX 64

struct key {
  char kid[128];
  cjose_jwk_kty_t kty;
  cjose_jwk_t *jwk; /* retained while a verification uses it */
};

struct lmp_oidc {
  char *issuer, *audience, *partner_claim, *operator_role, *ca_file;
  int skew_s, refetch_s, max_age_s, timeout_ms;
  pthread_mutex_t lock;  /* guards the key set and the times below */
  struct key keys[KEYS_MAX];
  size_t nkeys;
  int64_t fetched_at;    /* the last fetch that succeeded; 0: never */
  int64_t tried_at;      /* the last fetch tried */
  int last_failed;       /* the last fetch did not reach the issuer */
  pthread_mutex_t fetching; /* one fetch at a time */
};

__attribute__((format(printf, 3, 4))) static int refuse(char *why, size_t whylen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
  return LMP_EREJECT;
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

int lmp_oidc_new(struct lmp_oidc **out, const struct lmp_oidc_conf *conf) {
  *out = NULL;
  if (conf->issuer == NULL || *conf->issuer == '\0')
    return 0;
  struct lmp_oidc *o = calloc(1, sizeof(*o));
  if (o == NULL)
    return LMP_ENOMEM;
  o->issuer = dup_or_empty(conf->issuer);
  o->audience = dup_or_empty(conf->audience);
  o->partner_claim = dup_or_empty(conf->partner_claim);
  o->operator_role = dup_or_empty(conf->operator_role);
  o->ca_file = dup_or_empty(conf->ca_file);
  o->skew_s = conf->skew_s;
  o->refetch_s = conf->refetch_s;
  o->max_age_s = conf->max_age_s;
  o->timeout_ms = conf->timeout_ms;
  pthread_mutex_init(&o->lock, NULL);
  pthread_mutex_init(&o->fetching, NULL);
  if (!o->issuer || !o->audience || !o->partner_claim || !o->operator_role || !o->ca_file) {
    lmp_oidc_free(o);
    return LMP_ENOMEM;
  }
  *out = o;
  return 0;
}

static void clear_keys(struct key *keys, size_t n) {
  for (size_t i = 0; i < n; i++)
    cjose_jwk_release(keys[i].jwk);
}

void lmp_oidc_free(struct lmp_oidc *o) {
  if (o == NULL)
    return;
  clear_keys(o->keys, o->nkeys);
  pthread_mutex_destroy(&o->lock);
  pthread_mutex_destroy(&o->fetching);
  free(o->issuer);
  free(o->audience);
  free(o->partner_claim);
  free(o->operator_role);
  free(o->ca_file);
  free(o);
}

/* ---- the issuer's keys -------------------------------------------------------------- */

static size_t collect(char *p, size_t size, size_t n, void *b) {
  struct lmp_buf *out = b;
  if (out->len + size * n > DOC_MAX || lmp_buf_append(out, p, size * n) < 0)
    return 0; /* ends the transfer */
  return size * n;
}

/* GET url as JSON; LMP_ERETRY with err when the issuer did not answer with JSON. */
static int get_json(const struct lmp_oidc *o, const char *url, json_t **doc, char *err, size_t errlen) {
  *doc = NULL;
  CURL *c = curl_easy_init();
  if (c == NULL)
    return LMP_ENOMEM;
  struct lmp_buf out = {0};
  char cerr[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (*o->ca_file)
    curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
  CURLcode cr = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  int r = LMP_ERETRY;
  if (cr != CURLE_OK) {
    snprintf(err, errlen, "%s: %s", url, *cerr ? cerr : curl_easy_strerror(cr));
  } else if (status != 200) {
    snprintf(err, errlen, "%s: HTTP %ld", url, status);
  } else if ((*doc = json_loadb(out.data ? out.data : "", out.len, 0, NULL)) == NULL || !json_is_object(*doc)) {
    json_decref(*doc);
    *doc = NULL;
    snprintf(err, errlen, "%s: not a JSON object", url);
  } else {
    r = 0;
  }
  lmp_buf_free(&out);
  return r;
}

/* The signing keys of a JWKS document; keys without a kid, of another use or of a
 * type we do not verify with are left out. */
static size_t read_keys(json_t *jwks, struct key *keys) {
  size_t n = 0, i;
  json_t *k;
  json_array_foreach(json_object_get(jwks, "keys"), i, k) {
    const char *kid = json_string_value(json_object_get(k, "kid"));
    const char *use = json_string_value(json_object_get(k, "use"));
    if (n == KEYS_MAX || kid == NULL || strlen(kid) >= sizeof(keys[n].kid) || (use && strcmp(use, "sig") != 0))
      continue;
    cjose_err e;
    cjose_jwk_t *jwk = cjose_jwk_import_json((cjose_header_t *)k, &e);
    if (jwk == NULL)
      continue;
    cjose_jwk_kty_t kty = cjose_jwk_get_kty(jwk, &e);
    if (kty != CJOSE_JWK_KTY_RSA && kty != CJOSE_JWK_KTY_EC) {
      cjose_jwk_release(jwk);
      continue;
    }
    snprintf(keys[n].kid, sizeof(keys[n].kid), "%s", kid);
    keys[n].kty = kty;
    keys[n++].jwk = jwk;
  }
  return n;
}

/* Discovery, then the key set; the new set replaces the old whole. */
static int fetch_keys(struct lmp_oidc *o, char *err, size_t errlen) {
  char url[2048];
  snprintf(url, sizeof(url), "%s/.well-known/openid-configuration", o->issuer);
  json_t *disc, *jwks = NULL;
  int r = get_json(o, url, &disc, err, errlen);
  if (r < 0)
    return r;
  const char *iss = json_string_value(json_object_get(disc, "issuer"));
  const char *uri = json_string_value(json_object_get(disc, "jwks_uri"));
  if (iss == NULL || strcmp(iss, o->issuer) != 0) {
    snprintf(err, errlen, "the discovery document names issuer '%.200s', not '%s'", iss ? iss : "", o->issuer);
    r = LMP_ERETRY;
  } else if (uri == NULL || (strncmp(uri, "https://", 8) != 0 && strncmp(o->issuer, "http://", 7) != 0)) {
    snprintf(err, errlen, "the discovery document has no https jwks_uri");
    r = LMP_ERETRY;
  } else {
    r = get_json(o, uri, &jwks, err, errlen);
  }
  json_decref(disc);
  if (r < 0)
    return r;
  struct key fresh[KEYS_MAX];
  size_t n = read_keys(jwks, fresh);
  json_decref(jwks);
  if (n == 0) {
    /* A set without one key we can use is a fault of the issuer's: the keys we have
     * stay, and tokens they do not cover wait for a better answer (503). */
    snprintf(err, errlen, "%s: no RSA or EC signing key with a kid", uri);
    return LMP_ERETRY;
  }
  pthread_mutex_lock(&o->lock);
  clear_keys(o->keys, o->nkeys);
  memcpy(o->keys, fresh, n * sizeof(fresh[0]));
  o->nkeys = n;
  pthread_mutex_unlock(&o->lock);
  lmp_info(NULL, "oidc: %zu signing keys of %s", n, o->issuer);
  return 0;
}

/* The key named kid, retained for the caller; NULL when the set has none. */
static cjose_jwk_t *find_key(struct lmp_oidc *o, const char *kid, cjose_jwk_kty_t *kty) {
  cjose_jwk_t *jwk = NULL;
  pthread_mutex_lock(&o->lock);
  for (size_t i = 0; i < o->nkeys && jwk == NULL; i++)
    if (strcmp(o->keys[i].kid, kid) == 0) {
      jwk = o->keys[i].jwk;
      *kty = o->keys[i].kty;
      cjose_jwk_retain(jwk, &(cjose_err){0});
    }
  pthread_mutex_unlock(&o->lock);
  return jwk;
}

/* Gives back a key find_key lent. cjose counts its references without atomics, so
 * every count changes under the lock. */
static void put_key(struct lmp_oidc *o, cjose_jwk_t *jwk) {
  if (jwk == NULL)
    return;
  pthread_mutex_lock(&o->lock);
  cjose_jwk_release(jwk);
  pthread_mutex_unlock(&o->lock);
}

/* The key for kid, fetching the set again when it does not have it (at most once
 * every refetch_s seconds) or when it is older than max_age_s. LMP_ERETRY when the
 * key is not known and the issuer could not be asked; LMP_EREJECT when it was asked
 * (now or lately) and has no such key. */
static int key_for(struct lmp_oidc *o, const char *kid, int64_t now, cjose_jwk_t **jwk, cjose_jwk_kty_t *kty,
                   char *why, size_t whylen) {
  *jwk = find_key(o, kid, kty);
  pthread_mutex_lock(&o->lock);
  int stale = o->fetched_at == 0 || now - o->fetched_at >= o->max_age_s;
  int may = o->tried_at == 0 || now - o->tried_at >= o->refetch_s;
  pthread_mutex_unlock(&o->lock);
  if ((*jwk == NULL || stale) && may) {
    pthread_mutex_lock(&o->fetching);
    pthread_mutex_lock(&o->lock);
    may = o->tried_at == 0 || now - o->tried_at >= o->refetch_s; /* another thread may just have */
    if (may)
      o->tried_at = now;
    pthread_mutex_unlock(&o->lock);
    if (may) {
      char err[512];
      int r = fetch_keys(o, err, sizeof(err));
      pthread_mutex_lock(&o->lock);
      o->last_failed = r < 0;
      if (r == 0)
        o->fetched_at = now;
      pthread_mutex_unlock(&o->lock);
      if (r < 0)
        lmp_warn(NULL, "oidc: the issuer's keys could not be fetched: %s", err);
    }
    pthread_mutex_unlock(&o->fetching);
    if (*jwk == NULL)
      *jwk = find_key(o, kid, kty);
  } else if (*jwk == NULL) {
    /* Another thread may be fetching the keys right now (a daemon's first requests
     * come together): wait for it before answering from what it fetched. */
    pthread_mutex_lock(&o->fetching);
    pthread_mutex_unlock(&o->fetching);
    *jwk = find_key(o, kid, kty);
  }
  if (*jwk)
    return 0; /* a cached key still verifies while the issuer is away */
  pthread_mutex_lock(&o->lock);
  int failed = o->last_failed || o->fetched_at == 0;
  pthread_mutex_unlock(&o->lock);
  if (failed) {
    snprintf(why, whylen, "the identity provider cannot be reached to verify the token");
    return LMP_ERETRY;
  }
  return refuse(why, whylen, "the token is signed with a key the issuer does not have");
}

/* ---- the token ---------------------------------------------------------------------- */

/* The algorithms we verify, with the key type each needs. */
static const struct {
  const char *alg;
  cjose_jwk_kty_t kty;
} algs[] = {{"RS256", CJOSE_JWK_KTY_RSA}, {"RS384", CJOSE_JWK_KTY_RSA}, {"RS512", CJOSE_JWK_KTY_RSA},
            {"PS256", CJOSE_JWK_KTY_RSA}, {"PS384", CJOSE_JWK_KTY_RSA}, {"PS512", CJOSE_JWK_KTY_RSA},
            {"ES256", CJOSE_JWK_KTY_EC},  {"ES384", CJOSE_JWK_KTY_EC},  {"ES512", CJOSE_JWK_KTY_EC}};

/* The protected header, decoded by us before cjose sees the token, so that a refused
 * algorithm is refused for that reason and never reaches a verifier. */
static json_t *header_of(const char *token) {
  const char *dot = strchr(token, '.');
  if (dot == NULL)
    return NULL;
  uint8_t *raw = NULL;
  size_t n = 0;
  cjose_err e;
  if (!cjose_base64url_decode(token, (size_t)(dot - token), &raw, &n, &e))
    return NULL;
  json_t *h = json_loadb((const char *)raw, n, 0, NULL);
  cjose_get_dealloc()(raw);
  if (h && !json_is_object(h)) {
    json_decref(h);
    h = NULL;
  }
  return h;
}

/* The audience must be named in aud (RFC 9068). azp is not enough: it names the
 * client that asked for the token, not the service it is for. */
static int audience_ok(const struct lmp_oidc *o, json_t *claims) {
  json_t *aud = json_object_get(claims, "aud");
  if (json_is_string(aud) && strcmp(json_string_value(aud), o->audience) == 0)
    return 1;
  size_t i;
  json_t *a;
  json_array_foreach(aud, i, a) if (json_is_string(a) && strcmp(json_string_value(a), o->audience) == 0) return 1;
  return 0;
}

/* A claim kept in a field of the caller: text without control characters that fits. */
static int copy_claim(json_t *claims, const char *name, char *out, size_t outlen) {
  json_t *v = json_object_get(claims, name);
  if (v == NULL || json_is_null(v))
    return 0;
  const char *s = json_string_value(v);
  if (s == NULL || strlen(s) >= outlen || lmp_text_check(s, strlen(s), 0, NULL) != LMP_TEXT_OK)
    return -1;
  snprintf(out, outlen, "%s", s);
  return 0;
}

static int has_role(json_t *claims, const char *role) {
  size_t i;
  json_t *r;
  json_array_foreach(json_object_get(json_object_get(claims, "realm_access"), "roles"), i, r) {
    if (json_is_string(r) && strcmp(json_string_value(r), role) == 0)
      return 1;
  }
  return 0;
}

/* The claims' checks, in the order of RFC 9068 section 4; fills who. */
static int check_claims(const struct lmp_oidc *o, json_t *claims, int64_t now, struct lmp_caller *who, char *why,
                        size_t whylen) {
  const char *iss = json_string_value(json_object_get(claims, "iss"));
  if (iss == NULL || strcmp(iss, o->issuer) != 0)
    return refuse(why, whylen, "the token is from another issuer");
  if (!audience_ok(o, claims))
    return refuse(why, whylen, "the token is not meant for this service (aud)");
  const char *typ = json_string_value(json_object_get(claims, "typ"));
  if (typ && strcasecmp(typ, "Bearer") != 0)
    return refuse(why, whylen, "the token is not an access token");
  json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
  json_t *iat = json_object_get(claims, "iat");
  if (!json_is_number(exp))
    return refuse(why, whylen, "the token has no expiry");
  if (now > (int64_t)json_number_value(exp) + o->skew_s)
    return refuse(why, whylen, "the token has expired");
  if (nbf && (!json_is_number(nbf) || now + o->skew_s < (int64_t)json_number_value(nbf)))
    return refuse(why, whylen, "the token is not valid yet");
  if (iat && (!json_is_number(iat) || now + o->skew_s < (int64_t)json_number_value(iat)))
    return refuse(why, whylen, "the token was issued in the future");
  memset(who, 0, sizeof(*who));
  if (copy_claim(claims, "sub", who->subject, sizeof(who->subject)) < 0 ||
      copy_claim(claims, "preferred_username", who->name, sizeof(who->name)) < 0 ||
      copy_claim(claims, "email", who->email, sizeof(who->email)) < 0 ||
      copy_claim(claims, o->partner_claim, who->partner_id, sizeof(who->partner_id)) < 0)
    return refuse(why, whylen, "the token has a claim that is not short text");
  if (who->partner_id[0] && !lmp_partner_id_valid(who->partner_id))
    return refuse(why, whylen, "the token's %s is not a partner id", o->partner_claim);
  if (who->name[0] == '\0')
    snprintf(who->name, sizeof(who->name), "%.127s", who->subject[0] ? who->subject : "unnamed");
  who->operator_role = *o->operator_role && has_role(claims, o->operator_role);
  who->email_verified = json_is_true(json_object_get(claims, "email_verified"));
  who->expires_at = (int64_t)json_number_value(exp) + o->skew_s;
  return 0;
}

int lmp_oidc_verify(struct lmp_oidc *o, const char *token, int64_t now, struct lmp_caller *who, char *why,
                    size_t whylen) {
  if (o == NULL)
    return refuse(why, whylen, "sign-in is not configured (oidc.issuer)");
  size_t n = strlen(token);
  if (n == 0 || n > TOKEN_MAX)
    return refuse(why, whylen, "the token is empty or too long");
  json_t *h = header_of(token);
  if (h == NULL)
    return refuse(why, whylen, "the token is not a signed JWT");
  const char *alg = json_string_value(json_object_get(h, "alg"));
  const char *kid = json_string_value(json_object_get(h, "kid"));
  size_t a = 0;
  while (alg && a < sizeof(algs) / sizeof(algs[0]) && strcmp(algs[a].alg, alg) != 0)
    a++;
  int r;
  if (alg == NULL || a == sizeof(algs) / sizeof(algs[0])) {
    r = refuse(why, whylen, "the token's algorithm is refused: only RS*, PS* and ES* are accepted");
  } else if (kid == NULL || strlen(kid) >= 128) {
    r = refuse(why, whylen, "the token names no key (kid)");
  } else {
    cjose_jwk_t *jwk = NULL;
    cjose_jwk_kty_t kty = CJOSE_JWK_KTY_OCT; /* a kind no algorithm here takes */
    r = key_for(o, kid, now, &jwk, &kty, why, whylen);
    if (r == 0 && kty != algs[a].kty)
      r = refuse(why, whylen, "the token's algorithm does not fit its key");
    cjose_err e;
    cjose_jws_t *jws = r == 0 ? cjose_jws_import(token, n, &e) : NULL;
    uint8_t *plain = NULL;
    size_t plen = 0;
    json_t *claims = NULL;
    if (r < 0) {
      /* said already */
    } else if (jws == NULL) {
      r = refuse(why, whylen, "the token is not a well-formed JWS");
    } else if (!cjose_jws_verify(jws, jwk, &e)) {
      r = refuse(why, whylen, "the token's signature does not verify");
    } else if (!cjose_jws_get_plaintext(jws, &plain, &plen, &e) ||
               (claims = json_loadb((const char *)plain, plen, 0, NULL)) == NULL || !json_is_object(claims)) {
      r = refuse(why, whylen, "the token's claims are not a JSON object");
    } else {
      r = check_claims(o, claims, now, who, why, whylen);
    }
    json_decref(claims);
    cjose_jws_release(jws);
    put_key(o, jwk);
  }
  json_decref(h);
  return r;
}
