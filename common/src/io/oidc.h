/* Who calls an HTTP route: OpenID Connect access tokens verified against the
 * issuer's keys. */
#ifndef LMP_OIDC_H
#define LMP_OIDC_H

#include <stddef.h>
#include <stdint.h>

#include "lmp/io/http.h"

/* What the verifier is told (the oidc.* settings). */
struct lmp_oidc_conf {
  const char *issuer;        /* the exact `iss`; its discovery document names the keys */
  const char *audience;      /* `aud` (or `azp`) must name it */
  const char *partner_claim; /* the claim that says which partner a user acts for */
  const char *operator_role; /* the realm role of operators */
  const char *ca_file;       /* CA certificates for the issuer's HTTPS; empty: the system's */
  int skew_s;                /* clock skew allowed on exp, nbf and iat */
  int refetch_s;             /* an unknown key fetches the keys at most this often */
  int max_age_s;             /* the keys are fetched again when older than this */
  int timeout_ms;            /* one call to the issuer at most */
};

struct lmp_oidc;

/* NULL conf->issuer or "" makes no verifier: *out is NULL and every token is refused. */
int lmp_oidc_new(struct lmp_oidc **out, const struct lmp_oidc_conf *conf);
void lmp_oidc_free(struct lmp_oidc *o);

/* Verifies a compact JWS access token and fills who from its claims. Returns 0;
 * LMP_EREJECT when the token is not one this issuer gave for this audience, or no
 * longer valid (why says which check failed: a 401); LMP_ERETRY when the keys that
 * could verify it cannot be fetched now (the identity provider is away: a 503). Safe
 * to call from several threads at once; may block for up to timeout_ms while it
 * fetches the keys. now is seconds since the epoch (time(NULL)), a parameter so that
 * tests can move the clock. */
int lmp_oidc_verify(struct lmp_oidc *o, const char *token, int64_t now, struct lmp_caller *who, char *why,
                    size_t whylen);

#endif
