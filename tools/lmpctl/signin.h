/* Signing a partner's user in: the identity provider as a public OAuth client sees it
 * (idp.c), and the tokens kept between runs (session.c). */
#ifndef SIGNIN_H
#define SIGNIN_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

/* The issuer's endpoints, from its discovery document. */
struct idp {
  json_t *doc;             /* the discovery document; the strings below live in it */
  const char *issuer;      /* as the document names it, equal to the one asked for */
  const char *token;       /* token_endpoint */
  const char *device;      /* device_authorization_endpoint; NULL: not offered */
  const char *revocation;  /* revocation_endpoint (RFC 7009); NULL: not offered */
  const char *end_session; /* end_session_endpoint; NULL: not offered */
  const char *client_id;   /* the public client lmpctl signs in as */
};

/* GETs <issuer>/.well-known/openid-configuration. 0; LMP_ERETRY when the issuer did
 * not answer with a discovery document of its own, err saying why. */
int idp_discover(struct idp *p, const char *issuer, const char *client_id, char *err, size_t errlen);
void idp_clear(struct idp *p);

/* POSTs a form (name, value pairs, then NULL; a NULL value leaves its pair out) to
 * one of the issuer's endpoints. 0 when the issuer answered: *status its HTTP status,
 * *answer its JSON object or NULL. LMP_ERETRY when it did not answer, err saying why. */
int idp_post(const struct idp *p, const char *url, long *status, json_t **answer, char *err, size_t errlen, ...)
    __attribute__((sentinel));

/* An OAuth error answer in words: "Invalid user credentials (invalid_grant)". The
 * error code alone in *code (may be NULL); "" when the answer carries none. */
const char *idp_error(const json_t *answer, long status, const char **code, char *buf, size_t len);

/* The tokens of a session, as stored: from a token answer (and the session it renews,
 * whose refresh token stays when the answer brings none). NULL, err saying why, when
 * the answer is not a bearer token answer. */
json_t *session_from_answer(const struct idp *p, const json_t *answer, const json_t *renewed, char *err,
                            size_t errlen);

/* The token file: ctl.token_file, else $XDG_CACHE_HOME/lmpctl/token.json, else
 * ~/.cache/lmpctl/token.json. */
int session_path(char *out, size_t len, char *err, size_t errlen);
/* Reads the stored session: 0; 1 when there is none; LMP_EINVAL when the file is not
 * an lmpctl token file (it is then never replaced or removed), LMP_EREJECT when it is
 * one that cannot be used (damaged, or open to others unless lenient), LMP_EIO when it
 * cannot be read. */
int session_read(const char *path, int lenient, json_t **out, char *err, size_t errlen);
/* Stores a session: mode 0600 in a directory only its owner may change (made 0700 when
 * missing), written to a new file and renamed over the old. */
int session_write(const char *path, const json_t *session, char *err, size_t errlen);
/* Whether session_write could write there: its directory made when missing, and one
 * that others cannot change. Asked before signing in, so no session is left unkept. */
int session_writable(const char *path, char *err, size_t errlen);
int session_delete(const char *path, char *err, size_t errlen);

/* The claims of a JWT, decoded for display only: nothing is verified here. NULL when
 * the token is not a JWT with a JSON payload. */
json_t *jwt_claims(const char *token);
/* A string of a server's answer fit for the terminal: control characters as '?'. */
const char *printable(const char *s, char *buf, size_t len);
/* "2026-12-04 08:45:12 UTC (in 4m 58s)" or "(3m 2s ago)". */
const char *when(long long t, char *buf, size_t len);

#endif
