/* Who sends a request: a token of admin.tokens_file (re-read when it changes), or an
 * access token verified against the identity provider. */
#include "io/http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lmp/base/error.h"
#include "lmp/base/log.h"

/* Equal without telling by its timing how much of it was. */
static int same_secret(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char d = (unsigned char)(la != lb);
  for (size_t i = 0; i < lb; i++)
    d |= (unsigned char)(a[i % (la ? la : 1)] ^ b[i]);
  return d == 0 && la == lb;
}

/* Whether the file is the one last read: same inode, size and times (a chmod changes
 * the ctime, a rewrite the mtime, a replacement the inode). */
static int same_file(const struct stat *a, const struct stat *b) {
  return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Tokens wiped, then freed. */
void lmp__http_free_tokens(struct token *t, size_t n) {
  if (t)
    explicit_bzero(t, n * sizeof(*t));
  free(t);
}

/* No token is in effect any more: the file is gone or unreadable. Said once. */
static void revoke_tokens(struct lmp_http *h, int why) {
  if (h->tokens_errno != why || h->ntokens)
    lmp_warn(NULL, "admin.tokens_file %s: %s: no admin token is in effect", h->tokens_file, strerror(why));
  h->tokens_errno = why;
  lmp__http_free_tokens(h->tokens, h->ntokens);
  h->tokens = NULL;
  h->ntokens = 0;
  h->tokens_read = 0;
}

/* What a token may do on this daemon, from its scopes ("read" or "write", each for
 * every daemon or "<daemon>:" only, comma-separated; none: write on every daemon): 1
 * read, 2 write, 0 nothing here, -1 a scope that is none of these. */
static int token_scope(const struct lmp_http *h, char *scopes) {
  if (scopes == NULL)
    return 2;
  int may = 0;
  char *save = NULL;
  for (char *sc = strtok_r(scopes, ",", &save); sc; sc = strtok_r(NULL, ",", &save)) {
    char *colon = strchr(sc, ':'), *what = colon ? colon + 1 : sc;
    size_t n = strlen(h->service);
    int here = colon == NULL || ((size_t)(colon - sc) == n && strncmp(sc, h->service, n) == 0);
    int level = strcmp(what, "read") == 0 ? 1 : strcmp(what, "write") == 0 ? 2 : -1;
    if (level < 0)
      return -1;
    if (here && level > may)
      may = level;
  }
  return may;
}

/* One "name token [scopes]" line, kept in t when it is one for this daemon; a line
 * that is not one is logged (by its number: it may hold a secret) and left out,
 * never cut to fit. */
static int parse_token(struct lmp_http *h, char *line, size_t lineno, struct token *t) {
  static const char *const blank = " \t\r\n";
  char *save = NULL, *name = strtok_r(line, blank, &save), *secret = name ? strtok_r(NULL, blank, &save) : NULL;
  char *scopes = secret ? strtok_r(NULL, blank, &save) : NULL;
  const char *why = NULL;
  int may = 0;
  if (name == NULL || *name == '#')
    return -1; /* blank, or a comment */
  if (secret == NULL || strtok_r(NULL, blank, &save) != NULL)
    why = "is not 'name token [scopes]'";
  else if ((may = token_scope(h, scopes)) < 0)
    why = "has a scope that is not read, write, <daemon>:read or <daemon>:write";
  else if (strlen(name) >= sizeof(t->name))
    why = "has a name longer than 63 characters";
  else if (strlen(secret) < TOKEN_MIN)
    why = "has a token shorter than 16 characters";
  else if (strlen(secret) > TOKEN_MAX)
    why = "has a token longer than 255 characters";
  if (why) {
    lmp_warn(NULL, "admin.tokens_file %s: line %zu %s: left out", h->tokens_file, lineno, why);
    return -1;
  }
  if (may == 0)
    return -1; /* a token for other daemons */
  snprintf(t->name, sizeof(t->name), "%s", name);
  snprintf(t->secret, sizeof(t->secret), "%s", secret);
  t->writes = may == 2;
  return 0;
}

/* The tokens of admin.tokens_file, read again whenever the file changed: a token is
 * rotated by rewriting the file, and every token is revoked by emptying the file,
 * removing it or making it unreadable. Called with the lock held. */
void lmp__http_load_tokens(struct lmp_http *h) {
  struct stat st;
  if (*h->tokens_file == '\0')
    return;
  if (stat(h->tokens_file, &st) != 0)
    return revoke_tokens(h, errno);
  if (h->tokens_read && same_file(&st, &h->tokens_seen))
    return;
  FILE *f = fopen(h->tokens_file, "r");
  if (f == NULL)
    return revoke_tokens(h, errno);
  struct token *t = NULL;
  size_t n = 0, cap = 0, lineno = 0, len = 0;
  char *line = NULL;
  int failed = 0;
  while (getline(&line, &len, f) > 0) {
    struct token one;
    if (parse_token(h, line, ++lineno, &one) < 0)
      continue;
    if (n == cap) {
      struct token *nt = realloc(t, (cap = cap ? 2 * cap : 8) * sizeof(*nt));
      if (nt == NULL) {
        failed = ENOMEM;
        break;
      }
      t = nt;
    }
    t[n++] = one;
  }
  if (ferror(f))
    failed = errno ? errno : EIO;
  if (line)
    explicit_bzero(line, len);
  free(line);
  fclose(f);
  if (failed) { /* a file read in part is not what the operator wrote */
    lmp__http_free_tokens(t, n);
    return revoke_tokens(h, failed);
  }
  if (n == 0 && h->ntokens)
    lmp_warn(NULL, "admin.tokens_file %s holds no token now: no admin token is in effect", h->tokens_file);
  lmp__http_free_tokens(h->tokens, h->ntokens);
  h->tokens = t;
  h->ntokens = n;
  h->tokens_seen = st;
  h->tokens_read = 1;
  h->tokens_errno = 0;
}

/* An access token is a JWS in compact form: three base64url parts. Anything else
 * needs no worker to be refused. */
int lmp__http_looks_like_jwt(const char *t) {
  size_t n = strlen(t), dots = 0;
  if (n < 16 || n > 16384)
    return 0;
  for (const char *c = t; *c; c++) {
    if (*c == '.')
      dots++;
    else if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
               *c == '_'))
      return 0;
  }
  return dots == 2;
}

/* The request's bearer token, kept; NULL when it has none. */
const char *lmp__http_bearer(struct req *q) {
  const char *auth = MHD_lookup_connection_value(q->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
    return NULL;
  auth += 7;
  while (*auth == ' ')
    auth++;
  if (*auth == '\0' || (q->bearer = strdup(auth)) == NULL)
    return NULL;
  return q->bearer;
}

/* Who sends an admin request, before anything else about it is answered or read: a
 * token of admin.tokens_file, or an access token of an operator, verified here on the
 * admin listener's own thread (a fetch of the issuer's keys may hold it for up to
 * oidc.timeout_ms; probes are on the other listener). 0, or -1 with the request
 * answered. */
int lmp__http_authenticate_admin(struct lmp_http *h, struct req *q, const char *path) {
  const char *token = lmp__http_bearer(q);
  if (token == NULL)
    return -1;
  pthread_mutex_lock(&h->lock);
  lmp__http_load_tokens(h);
  int found = -1, writes = 0;
  for (size_t i = 0; i < h->ntokens; i++)
    if (same_secret(h->tokens[i].secret, token) && found < 0) {
      snprintf(q->caller.name, sizeof(q->caller.name), "token:%.60s", h->tokens[i].name);
      q->caller.operator_role = 1;
      writes = h->tokens[i].writes;
      found = 0;
    }
  pthread_mutex_unlock(&h->lock);
  if (found == 0 && !writes && strcmp(q->method, "GET") != 0 && strcmp(q->method, "HEAD") != 0) {
    char p[256];
    lmp_warn(NULL, "admin: %s %s from %s refused: %s may only read", q->method, lmp__http_shown(path, p), q->peer,
             q->caller.name);
    lmp__http_fail(q, 403, "this token may only read");
    return -1;
  }
  if (found == 0) {
    q->authenticated = 1;
    return 0;
  }
  if (h->oidc && lmp__http_looks_like_jwt(token))
    return lmp__http_authenticate_token(h, q, path);
  return -1;
}

/* The access token verified, and who it says. 0, or -1 with the request answered
 * (401, 403 or 503). */
int lmp__http_authenticate_token(struct lmp_http *h, struct req *q, const char *path) {
  char why[256], p[256];
  int r = lmp_oidc_verify(h->oidc, q->bearer, time(NULL), &q->caller, why, sizeof(why));
  if (r == LMP_ERETRY) {
    lmp_warn(NULL, "%s: %s %s from %s: %s", q->l->admin ? "admin" : "http", q->method, lmp__http_shown(path, p), q->peer, why);
    q->retry_after = 5;
    lmp__http_fail(q, 503, "the identity provider cannot be reached; try again");
    return -1;
  }
  if (r < 0) {
    lmp_warn(NULL, "%s: %s %s from %s refused: %s", q->l->admin ? "admin" : "http", q->method, lmp__http_shown(path, p),
             q->peer, why);
    q->challenge = "invalid_token";
    lmp__http_fail(q, 401, why);
    return -1;
  }
  if (q->l->admin && !q->caller.operator_role) {
    lmp_warn(NULL, "admin: %s %s from %s refused: %s is not an operator", q->method, lmp__http_shown(path, p), q->peer,
             q->caller.name);
    lmp__http_fail(q, 403, "the operator role is required");
    return -1;
  }
  q->authenticated = 1;
  return 0;
}

size_t lmp_http_tokens(struct lmp_http *h) {
  pthread_mutex_lock(&h->lock);
  lmp__http_load_tokens(h);
  size_t n = h->ntokens;
  pthread_mutex_unlock(&h->lock);
  return n;
}
