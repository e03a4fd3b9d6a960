/* HTTP over libmicrohttpd: probes and metrics on the I/O thread, the service's
 * routes on a pool of workers with database connections of their own. */
#include "io/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "lmp/error.h"
#include "lmp/log.h"
#include "lmp/text.h"
#include "io/oidc.h"

#define MAX_PATH 1024
#define WAKE_EVERY_MS 200 /* a long poll runs again on a commit at most this often */
#define TOKEN_MIN 16  /* characters of an admin token, at least */
#define TOKEN_MAX 255 /* and at most */

struct lmp_http;

/* Body bytes one client address holds on a listener. */
struct holder {
  char peer[64];
  size_t bytes;
};

/* A listener: the public one (probes, metrics, public routes), the admin one (admin
 * routes, each request authenticated by a bearer token) or the probe one (probes and
 * metrics only). Each has its own body budget, so uploads on one never refuse
 * another's. */
struct listener {
  struct MHD_Daemon *d;
  struct lmp_http *h;
  int admin;
  int probe;                /* serves /healthz, /readyz and /metrics and nothing else */
  char *tls_cert, *tls_key; /* PEM, kept while the daemon serves (wiped at the end) */
  char mhd_err[256];        /* libmicrohttpd's last message, for why a start failed */
  size_t budget;            /* http.body_budget_bytes */
  size_t per_address;       /* http.body_budget_per_address_bytes */
  /* Guarded by h->lock: */
  size_t buffered;          /* body bytes held by this listener's requests */
  struct holder *holders;   /* addresses holding body bytes; a slot with 0 is free */
  size_t nholders, maxholders; /* each holder has a connection: at most http.max_connections */
};

/* One request, from its first byte to its answer. */
struct req {
  struct MHD_Connection *c;
  struct listener *l;
  char peer[64];            /* the client's address */
  char *bearer;             /* the Authorization header's token, kept for a worker to verify */
  int verify;               /* the bearer is an access token a worker verifies before the route */
  struct lmp_caller caller; /* who, once authenticated */
  int authenticated;
  int retry_after;          /* seconds, for 429 and 503 */
  const char *challenge;    /* the WWW-Authenticate error of a 401, or NULL */
  const struct lmp_http_route *route;
  char method[8];
  char *path, *query;
  struct lmp_buf body;
  size_t budgeted;          /* bytes of the body budget this request holds */
  unsigned long long announced, received; /* the body's Content-Length (0: none) and bytes so far */
  int64_t window_ms;        /* when the current window of the minimum rate began */
  unsigned long long window_from; /* received when it began */
  int status;               /* set once the answer is known */
  struct lmp_buf out;
  const char *type;         /* the route's Content-Type, or NULL for JSON */
  char location[256];       /* the route's Location header, or empty */
  char allow[64];           /* for 405 */
  char traceparent[64], ctype[128], accept[256]; /* headers a route may read */
  int queued;               /* with the workers; the connection is suspended */
  int64_t first_ms;         /* when a worker first ran the route */
  int64_t due_ms;           /* a long poll: when to run the route again */
  int64_t ran_ms;           /* when a worker last ran the route */
  int waiting;              /* counted in the long polls held */
  uint64_t ticket;          /* lmp_http_ticket's, 0: none; the request is then in h->ticketed */
  int resumed;              /* lmp_http_resume came (perhaps while its route still ran): due now */
  void *state;              /* the route's, between its runs (lmp_http_call.state) */
  void (*state_free)(void *state);
  struct req *next;
  struct req *next_ticketed;
};

struct lmp_http {
  struct listener pub, adm, prb; /* prb: on probe.bind, or none (d NULL) */
  char service[64];
  struct lmp_metrics *m;
  const struct lmp_http_route *routes;
  void *route_ctx;
  int (*svc_metrics)(void *ctx, const char *service, struct lmp_buf *out);
  char *conninfo;
  size_t min_rate;          /* http.min_bytes_per_s; 0: any rate */
  int64_t rate_window_ms;   /* http.min_rate_window_s */
  pthread_mutex_t lock;     /* guards the fields below */
  pthread_cond_t cond;
  struct req *head, *tail;  /* requests waiting for a worker */
  struct req *sleepers;     /* long polls waiting to run again */
  int nwaiting, max_waiting; /* long polls held; past the most, one is answered at once */
  struct req *ticketed;     /* requests with a ticket, until they are over */
  uint64_t last_ticket;
  int quit;
  char *tokens_file;        /* admin tokens, re-read when the file changes */
  struct stat tokens_seen;  /* the file as last read (its inode, size and times) */
  int tokens_read;          /* tokens_seen is the file's; 0: read it again */
  int tokens_errno;         /* why the file could not be read last (0: it could), logged once */
  struct token {
    char name[64];
    char secret[TOKEN_MAX + 1];
    int writes;             /* may POST; else GET and HEAD only */
  } *tokens;
  size_t ntokens;
  pthread_t *workers;
  int nworkers;
  const struct lmp_http_host *host;
  struct lmp_oidc *oidc;    /* verifies access tokens; NULL: nobody signs in */
  char issuer[1025];        /* oidc.issuer, for the pages that sign in */
  char issuer_origin[1025]; /* its scheme://host[:port], for their Content-Security-Policy */
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* {"error": msg} as the answer; always well-formed JSON, whatever msg holds. */
static void fail(struct req *q, int status, const char *msg) {
  q->status = status;
  lmp_buf_reset(&q->out);
  json_t *o = json_pack("{s:s}", "error", msg);
  char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
  lmp_buf_puts(&q->out, t ? t : "{\"error\":\"out of memory\"}");
  free(t);
  json_decref(o);
}

/* A path as a log line shows it: valid UTF-8 (what is not, replaced), at most 200
 * characters, cut between characters; "-" for none. */
static const char *shown(const char *path, char out[256]) {
  char *clean = path ? lmp_utf8_sanitize(path, strlen(path), NULL) : NULL;
  lmp_utf8_copy(out, 256, clean ? clean : "-", 200);
  free(clean);
  return out;
}

/* Who did what, from where, when (the line's time): every admin request its caller
 * was authenticated for is audited as it is answered, whatever the answer (reads,
 * 404s, refused bodies too); the ones refused for want of a valid token are logged as
 * refused where they are. */
static void audit(const struct req *q) {
  char p[256];
  lmp_info(NULL, "audit: %s from %s: %s %s -> %d (%zu bytes in)", q->caller.name, q->peer, q->method,
           shown(q->path, p), q->status, q->body.len);
}

static enum MHD_Result answer(struct req *q, const char *type) {
  if (q->l->admin && q->authenticated)
    audit(q);
  struct MHD_Response *res = MHD_create_response_from_buffer(q->out.len, q->out.data ? q->out.data : (char *)"",
                                                             MHD_RESPMEM_MUST_COPY);
  if (res == NULL)
    return MHD_NO;
  MHD_add_response_header(res, "Content-Type", type);
  MHD_add_response_header(res, "Cache-Control", "no-store");
  if (q->status == 405)
    MHD_add_response_header(res, "Allow", q->allow);
  if (q->status == 401) {
    /* RFC 6750: a request that had no token learns only that one is needed. */
    char v[128];
    snprintf(v, sizeof(v), "Bearer realm=\"%s\"%s%s%s", q->l->admin ? "lmp-admin" : "lmp",
             q->challenge ? ", error=\"" : "", q->challenge ? q->challenge : "", q->challenge ? "\"" : "");
    MHD_add_response_header(res, "WWW-Authenticate", v);
  }
  if (q->location[0])
    MHD_add_response_header(res, "Location", q->location);
  if (q->status == 503 || q->status == 429) {
    char v[16];
    snprintf(v, sizeof(v), "%d", q->retry_after > 0 ? q->retry_after : 1);
    MHD_add_response_header(res, "Retry-After", v);
  }
  /* Pages the daemon serves load nothing from elsewhere and cannot be framed. */
  if (strncmp(type, "text/html", 9) == 0) {
    /* The page signs in at the identity provider: it may fetch from the issuer's
     * origin (its token endpoint), and nowhere else. */
    char csp[1400];
    snprintf(csp, sizeof(csp),
             "default-src 'self'; connect-src 'self'%s%s; frame-ancestors 'none'; form-action 'self'; "
             "base-uri 'none'",
             q->l->h->issuer_origin[0] ? " " : "", q->l->h->issuer_origin);
    MHD_add_response_header(res, "Content-Security-Policy", csp);
    MHD_add_response_header(res, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(res, "Referrer-Policy", "no-referrer");
  }
  enum MHD_Result r = MHD_queue_response(q->c, (unsigned)q->status, res);
  MHD_destroy_response(res);
  return r;
}

/* "/v1/pools/{}" against a path: {} takes one non-empty segment. */
static int match(const char *pattern, const char *path) {
  while (*pattern && *path) {
    if (pattern[0] == '{' && pattern[1] == '}') {
      const char *end = strchr(path, '/');
      if (end == path)
        return 0;
      path = end ? end : path + strlen(path);
      pattern += 2;
    } else if (*pattern++ != *path++) {
      return 0;
    }
  }
  return *pattern == '\0' && *path == '\0';
}

static const char *const builtin[] = {"/healthz", "/readyz", "/metrics", NULL};

/* Finds the route; fills 404 or 405 (with Allow) when there is none for the method. */
static void route(struct lmp_http *h, struct req *q) {
  int path_known = 0;
  for (const char *const *b = builtin; !q->l->admin && *b; b++)
    if (strcmp(q->path, *b) == 0) {
      if (strcmp(q->method, "GET") == 0 || strcmp(q->method, "HEAD") == 0)
        return;
      snprintf(q->allow, sizeof(q->allow), "GET, HEAD");
      return fail(q, 405, "method not allowed");
    }
  if (q->l->probe)
    return fail(q, 404, "not found");
  for (const struct lmp_http_route *r = h->routes; r && r->method; r++) {
    if (!r->admin != !q->l->admin || !match(r->pattern, q->path))
      continue;
    size_t n = strlen(q->allow);
    snprintf(q->allow + n, sizeof(q->allow) - n, "%s%s%s", n ? ", " : "", r->method,
             strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
    path_known = 1;
    if (strcmp(r->method, q->method) == 0 || (strcmp(q->method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
      q->route = r;
      return;
    }
  }
  if (path_known)
    return fail(q, 405, "method not allowed");
  fail(q, 404, "not found");
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  struct lmp_buf *b = cls;
  lmp_buf_printf(b, "%s%s=%s", b->len ? "&" : "", key, value ? value : "");
  return MHD_YES;
}

static int reserve(struct lmp_http *h, struct req *q, size_t n);

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
static void free_tokens(struct token *t, size_t n) {
  if (t)
    explicit_bzero(t, n * sizeof(*t));
  free(t);
}

/* No token is in effect any more: the file is gone or unreadable. Said once. */
static void revoke_tokens(struct lmp_http *h, int why) {
  if (h->tokens_errno != why || h->ntokens)
    lmp_warn(NULL, "admin.tokens_file %s: %s: no admin token is in effect", h->tokens_file, strerror(why));
  h->tokens_errno = why;
  free_tokens(h->tokens, h->ntokens);
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
static void load_tokens(struct lmp_http *h) {
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
    free_tokens(t, n);
    return revoke_tokens(h, failed);
  }
  if (n == 0 && h->ntokens)
    lmp_warn(NULL, "admin.tokens_file %s holds no token now: no admin token is in effect", h->tokens_file);
  free_tokens(h->tokens, h->ntokens);
  h->tokens = t;
  h->ntokens = n;
  h->tokens_seen = st;
  h->tokens_read = 1;
  h->tokens_errno = 0;
}

/* An access token is a JWS in compact form: three base64url parts. Anything else
 * needs no worker to be refused. */
static int looks_like_jwt(const char *t) {
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
static const char *bearer(struct req *q) {
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

static int authenticate_token(struct lmp_http *h, struct req *q, const char *path);

/* Who sends an admin request, before anything else about it is answered or read: a
 * token of admin.tokens_file, or an access token of an operator, verified here on the
 * admin listener's own thread (a fetch of the issuer's keys may hold it for up to
 * oidc.timeout_ms; probes are on the other listener). 0, or -1 with the request
 * answered. */
static int authenticate_admin(struct lmp_http *h, struct req *q, const char *path) {
  const char *token = bearer(q);
  if (token == NULL)
    return -1;
  pthread_mutex_lock(&h->lock);
  load_tokens(h);
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
    lmp_warn(NULL, "admin: %s %s from %s refused: %s may only read", q->method, shown(path, p), q->peer,
             q->caller.name);
    fail(q, 403, "this token may only read");
    return -1;
  }
  if (found == 0) {
    q->authenticated = 1;
    return 0;
  }
  if (h->oidc && looks_like_jwt(token))
    return authenticate_token(h, q, path);
  return -1;
}

/* The access token verified, and who it says. 0, or -1 with the request answered
 * (401, 403 or 503). */
static int authenticate_token(struct lmp_http *h, struct req *q, const char *path) {
  char why[256], p[256];
  int r = lmp_oidc_verify(h->oidc, q->bearer, time(NULL), &q->caller, why, sizeof(why));
  if (r == LMP_ERETRY) {
    lmp_warn(NULL, "%s: %s %s from %s: %s", q->l->admin ? "admin" : "http", q->method, shown(path, p), q->peer, why);
    q->retry_after = 5;
    fail(q, 503, "the identity provider cannot be reached; try again");
    return -1;
  }
  if (r < 0) {
    lmp_warn(NULL, "%s: %s %s from %s refused: %s", q->l->admin ? "admin" : "http", q->method, shown(path, p),
             q->peer, why);
    q->challenge = "invalid_token";
    fail(q, 401, why);
    return -1;
  }
  if (q->l->admin && !q->caller.operator_role) {
    lmp_warn(NULL, "admin: %s %s from %s refused: %s is not an operator", q->method, shown(path, p), q->peer,
             q->caller.name);
    fail(q, 403, "the operator role is required");
    return -1;
  }
  q->authenticated = 1;
  return 0;
}

/* The first call for a request: everything decided before any body is read. */
/* A header a route may read, kept while the connection is ours; text only. */
static void keep_header(struct req *q, const char *name, char *out, size_t outlen) {
  const char *v = MHD_lookup_connection_value(q->c, MHD_HEADER_KIND, name);
  if (v && strlen(v) < outlen && lmp_text_check(v, strlen(v), 0, NULL) == LMP_TEXT_OK)
    snprintf(out, outlen, "%s", v);
}

static void begin(struct lmp_http *h, struct req *q, const char *url, const char *method) {
  snprintf(q->method, sizeof(q->method), "%s", method);
  keep_header(q, "traceparent", q->traceparent, sizeof(q->traceparent));
  keep_header(q, MHD_HTTP_HEADER_CONTENT_TYPE, q->ctype, sizeof(q->ctype));
  keep_header(q, MHD_HTTP_HEADER_ACCEPT, q->accept, sizeof(q->accept));
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(q->c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, q->peer, sizeof(q->peer));
  else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, q->peer, sizeof(q->peer));
  if (q->l->admin && authenticate_admin(h, q, url) < 0) {
    if (q->status)
      return; /* answered: 401, 403 or 503 */
    char p[256];
    lmp_warn(NULL, "admin: %s %s from %s refused: no valid bearer token", method, shown(url, p), q->peer);
    return fail(q, 401, "a valid bearer token is required");
  }
  size_t n = strlen(url);
  if (n > MAX_PATH || lmp_text_check(url, n, 0, NULL) != LMP_TEXT_OK)
    return fail(q, 400, "the path must be UTF-8 text without control characters, at most 1024 bytes");
  q->path = strdup(url);
  struct lmp_buf args = {0};
  MHD_get_connection_values(q->c, MHD_GET_ARGUMENT_KIND, collect_arg, &args);
  if (args.len && lmp_text_check(args.data, args.len, 0, NULL) != LMP_TEXT_OK) {
    lmp_buf_free(&args);
    return fail(q, 400, "the query must be UTF-8 text without control characters");
  }
  q->query = lmp_buf_steal(&args);
  if (q->path == NULL)
    return fail(q, 503, "out of memory");
  route(h, q);
  if (q->status)
    return;
  /* A route for signed-in callers: no token, or one that is not a JWT, is refused
   * before any body is read; a worker verifies the rest before the route runs (the
   * issuer's keys may have to be fetched, which this thread, the probes', must not
   * wait for). */
  if (q->route && q->route->signed_in && !q->l->admin) {
    const char *token = bearer(q);
    if (token == NULL)
      return fail(q, 401, "sign in: this route needs an access token (Authorization: Bearer)");
    if (!looks_like_jwt(token)) {
      q->challenge = "invalid_token";
      return fail(q, 401, "the bearer token is not an access token (a signed JWT)");
    }
    q->verify = 1;
  }
  size_t max = q->route ? q->route->max_body : 0;
  const char *cl = MHD_lookup_connection_value(q->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  unsigned long long announced = cl ? strtoull(cl, NULL, 10) : 0;
  if (announced > max) {
    char msg[80];
    snprintf(msg, sizeof(msg), "the body may have at most %zu bytes", max);
    return fail(q, 413, msg);
  }
  /* The announced body takes its share of the budget now, and its buffer once. */
  q->announced = announced;
  if (announced && reserve(h, q, (size_t)announced) == 0 && lmp_buf_reserve(&q->body, (size_t)announced) < 0)
    fail(q, 503, "out of memory");
}

/* The slot of the address of q on its listener: its own, else a free one; NULL when
 * every slot is taken (cannot be: one per connection). Called with the lock held. */
static struct holder *holder_of(struct listener *l, const char *peer) {
  struct holder *free_slot = NULL;
  for (size_t i = 0; i < l->nholders; i++) {
    if (strcmp(l->holders[i].peer, peer) == 0)
      return &l->holders[i];
    if (l->holders[i].bytes == 0 && free_slot == NULL)
      free_slot = &l->holders[i];
  }
  if (free_slot == NULL && l->nholders < l->maxholders)
    free_slot = &l->holders[l->nholders++];
  if (free_slot)
    snprintf(free_slot->peer, sizeof(free_slot->peer), "%s", peer);
  return free_slot;
}

/* Takes n more bytes of its listener's body budget for q: within the listener's
 * budget, and within the share one address may hold, so that one client stalling
 * uploads cannot refuse everyone else's. 0, or -1 with q answered (503: the listener
 * is full; 429: this address holds its share). */
static int reserve(struct lmp_http *h, struct req *q, size_t n) {
  struct listener *l = q->l;
  pthread_mutex_lock(&h->lock);
  struct holder *who = holder_of(l, q->peer);
  int full = l->buffered + n > l->budget, greedy = who == NULL || who->bytes + n > l->per_address;
  if (!full && !greedy) {
    l->buffered += n;
    who->bytes += n;
    q->budgeted += n;
  }
  pthread_mutex_unlock(&h->lock);
  if (greedy) {
    q->retry_after = 5;
    fail(q, 429, "too many uploads from your address at once; try again");
  } else if (full) {
    fail(q, 503, "too many uploads at once; try again");
  }
  return full || greedy ? -1 : 0;
}

/* Gives back what q holds of its listener's body budget. */
static void release(struct lmp_http *h, struct req *q) {
  struct listener *l = q->l;
  if (q->budgeted == 0)
    return;
  pthread_mutex_lock(&h->lock);
  l->buffered -= q->budgeted;
  struct holder *who = holder_of(l, q->peer);
  if (who)
    who->bytes -= q->budgeted;
  pthread_mutex_unlock(&h->lock);
  q->budgeted = 0;
}

/* Whether the body comes slower than http.min_bytes_per_s: counted over windows of
 * http.min_rate_window_s, each of which must bring the rate's bytes or the rest of the
 * body. The idle timeout alone would keep a client that sends a byte now and then;
 * this runs as each piece arrives, so such a client is dropped within two windows. */
static int too_slow(const struct lmp_http *h, struct req *q, size_t n) {
  q->received += n;
  int64_t now = now_ms(), took = now - q->window_ms;
  if (h->min_rate == 0 || took < h->rate_window_ms)
    return 0;
  unsigned long long due = (unsigned long long)h->min_rate * (unsigned long long)took / 1000;
  if (q->announced && q->announced - q->window_from < due)
    due = q->announced - q->window_from; /* all the body lacked */
  if (q->received - q->window_from < due)
    return 1;
  q->window_ms = now;
  q->window_from = q->received;
  return 0;
}

/* A piece of the body: kept while within the route's limit and its listener's budget. */
static void take_body(struct lmp_http *h, struct req *q, const char *data, size_t n) {
  if (q->status)
    return; /* answered already; the rest is read and dropped */
  size_t max = q->route ? q->route->max_body : 0;
  if (q->body.len + n > max) {
    char msg[80];
    snprintf(msg, sizeof(msg), "the body may have at most %zu bytes", max);
    return fail(q, 413, msg);
  }
  if (q->body.len + n > q->budgeted && reserve(h, q, q->body.len + n - q->budgeted) < 0)
    return;
  if (lmp_buf_append(&q->body, data, n) < 0)
    fail(q, 503, "out of memory");
}

static void probe(struct lmp_http *h, struct req *q, const char **type) {
  struct lmp_metrics *m = h->m;
  if (strcmp(q->path, "/healthz") == 0) {
    /* Alive means the event loop still ticks. */
    int ok = now_ms() - atomic_load(&m->heartbeat_ms) < 5000;
    q->status = ok ? 200 : 503;
    lmp_buf_puts(&q->out, ok ? "ok\n" : "event loop stalled\n");
    *type = "text/plain";
  } else if (strcmp(q->path, "/readyz") == 0) {
    int db = atomic_load(&m->db_up), kafka = atomic_load(&m->kafka_up);
    int draining = atomic_load(&m->draining), mig = atomic_load(&m->migrated);
    int refused = atomic_load(&m->consumer_refused), r = atomic_load(&m->producer_refused);
    if (r > refused)
      refused = r;
    int ok = lmp_metrics_ready(m);
    q->status = ok ? 200 : 503;
    /* Why not, in a word: the log has the details. */
    const char *ks = refused == LMP_KAFKA_UNAUTHENTICATED ? "unauthenticated"
                     : refused == LMP_KAFKA_DENIED        ? "denied"
                     : kafka                              ? "up"
                                                          : "unreachable";
    lmp_buf_printf(&q->out, "{\"ready\":%s,\"database\":\"%s\",\"kafka\":\"%s\",\"draining\":%s}\n",
                   ok ? "true" : "false",
                   db ? (mig ? "up" : "migrating") : atomic_load(&m->db_refused) ? "refused" : "unreachable", ks,
                   draining ? "true" : "false");
  } else {
    q->status = 200;
    lmp_metrics_render(m, h->service, &q->out);
    if (h->svc_metrics)
      h->svc_metrics(h->route_ctx, h->service, &q->out);
    *type = "text/plain; version=0.0.4";
  }
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *data_size, void **con_cls) {
  struct listener *l = cls;
  struct lmp_http *h = l->h;
  struct req *q = *con_cls;
  if (q == NULL) {
    if ((q = calloc(1, sizeof(*q))) == NULL)
      return MHD_NO;
    q->c = c;
    q->l = l;
    q->window_ms = now_ms(); /* the body's rate is measured from the end of the headers */
    *con_cls = q;
    begin(h, q, url, method);
    return MHD_YES;
  }
  if (*data_size) {
    if (too_slow(h, q, *data_size)) {
      char p[256];
      lmp_warn(NULL, "%s: %s %s from %s dropped: its body came slower than %zu bytes/s", l->admin ? "admin" : "http",
               q->method, shown(q->path, p), q->peer, h->min_rate);
      return MHD_NO;
    }
    take_body(h, q, data, *data_size);
    *data_size = 0;
    return MHD_YES;
  }
  const char *type = q->type ? q->type : "application/json";
  if (q->status)
    return answer(q, type); /* an error, or a route's answer after the workers */
  if (q->route == NULL) {
    probe(h, q, &type);
    return answer(q, type);
  }
  /* A route: to the workers, and the connection waits suspended. */
  pthread_mutex_lock(&h->lock);
  if (h->quit) {
    pthread_mutex_unlock(&h->lock);
    fail(q, 503, "shutting down");
    return answer(q, type);
  }
  q->queued = 1;
  if (h->tail)
    h->tail->next = q;
  else
    h->head = q;
  h->tail = q;
  MHD_suspend_connection(c);
  pthread_cond_signal(&h->cond);
  pthread_mutex_unlock(&h->lock);
  return MHD_YES;
}

/* A request that is over no longer takes lmp_http_resume. */
static void forget_ticket(struct lmp_http *h, struct req *q) {
  if (q->ticket == 0)
    return;
  pthread_mutex_lock(&h->lock);
  for (struct req **p = &h->ticketed; *p; p = &(*p)->next_ticketed)
    if (*p == q) {
      *p = q->next_ticketed;
      break;
    }
  pthread_mutex_unlock(&h->lock);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
  struct lmp_http *h = ((const struct listener *)cls)->h;
  struct req *q = *con_cls;
  if (q) {
    release(h, q);
    forget_ticket(h, q);
    if (q->state_free)
      q->state_free(q->state);
    lmp_buf_free(&q->body);
    lmp_buf_free(&q->out);
    free(q->path);
    free(q->query);
    free(q->bearer);
    free(q);
  }
  *con_cls = NULL;
}

/* The next request for a worker: a new one first, else a long poll that is due; NULL
 * when the workers stop. Called with the lock held; *wait_ms says how long to sleep
 * when there is nothing (-1: until signalled). */
static struct req *next_request(struct lmp_http *h, int64_t *wait_ms) {
  *wait_ms = -1;
  struct req *q = h->head;
  if (q) {
    h->head = q->next;
    if (h->head == NULL)
      h->tail = NULL;
    return q;
  }
  int64_t now = now_ms();
  for (struct req **p = &h->sleepers; *p; p = &(*p)->next) {
    if (h->quit || (*p)->resumed || (*p)->due_ms <= now) {
      q = *p;
      *p = q->next;
      q->resumed = 0;
      return q;
    }
    if (*wait_ms < 0 || (*p)->due_ms - now < *wait_ms)
      *wait_ms = (*p)->due_ms - now;
  }
  return NULL;
}

static void sleep_until(struct lmp_http *h, int64_t wait_ms) {
  if (wait_ms < 0) {
    pthread_cond_wait(&h->cond, &h->lock);
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += wait_ms / 1000;
  ts.tv_nsec += (wait_ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  pthread_cond_timedwait(&h->cond, &h->lock, &ts);
}

/* Runs the route; 1 when it asked to run again later (a long poll). */
static int run_route(struct lmp_http *h, struct req *q, PGconn *db, int last) {
  int64_t now = now_ms();
  if (q->first_ms == 0)
    q->first_ms = now;
  q->ran_ms = now;
  lmp_buf_reset(&q->out);
  if (q->verify && !q->authenticated && authenticate_token(h, q, q->path) < 0)
    return 0;
  /* A long poll runs its route again and again: the token must still be valid. */
  if (q->authenticated && q->caller.expires_at && time(NULL) > q->caller.expires_at) {
    q->challenge = "invalid_token";
    fail(q, 401, "the token has expired");
    return 0;
  }
  struct lmp_http_call call = {.db = db, .method = q->route->method, .path = q->path, .query = q->query,
                               .body = q->body.data, .body_len = q->body.len, .waited_ms = now - q->first_ms,
                               .last = last, .status = 500, .out = &q->out, .runtime = h,
                               .caller = q->authenticated ? &q->caller : NULL, .peer = q->peer,
                               .state = q->state, .state_free = q->state_free};
  call.priv = q;
  int r = q->route->fn(h->route_ctx, &call);
  q->state = call.state; /* the route's, whatever it answered: freed when the request is over */
  q->state_free = call.state_free;
  if (r < 0) {
    fail(q, 503, "out of memory");
    return 0;
  }
  if (call.again_ms > 0 && !last) {
    q->due_ms = now + call.again_ms;
    return 1;
  }
  q->status = call.status;
  q->type = call.type;
  q->retry_after = call.retry_after_s;
  snprintf(q->location, sizeof(q->location), "%s", call.location);
  if (q->out.len == 0 && strcmp(q->method, "HEAD") != 0 && q->status != 204)
    fail(q, 500, "no answer");
  return 0;
}

/* A worker: runs routes one at a time on its own database connection. */
static void *worker(void *arg) {
  struct lmp_http *h = arg;
  struct lmp_db db = {0};
  db.conninfo = h->conninfo; /* shared, read-only; not freed here */
  pthread_mutex_lock(&h->lock);
  for (;;) {
    int64_t wait_ms;
    struct req *q = next_request(h, &wait_ms);
    if (q == NULL) {
      if (h->quit)
        break;
      sleep_until(h, wait_ms);
      continue;
    }
    int quit = h->quit, full = !q->waiting && h->nwaiting >= h->max_waiting;
    pthread_mutex_unlock(&h->lock);
    int again = 0;
    if (quit && q->first_ms == 0) {
      fail(q, 503, "shutting down");
    } else if (lmp__db_ensure(&db) < 0) {
      lmp_warn(NULL, "http: database unavailable: %s", db.err);
      fail(q, 503, "database unavailable");
    } else {
      again = run_route(h, q, db.conn, quit || full);
    }
    pthread_mutex_lock(&h->lock);
    if (again) {
      h->nwaiting += !q->waiting;
      q->waiting = 1;
      atomic_store(&h->m->long_polls, h->nwaiting);
      q->next = h->sleepers;
      h->sleepers = q;
    } else {
      h->nwaiting -= q->waiting;
      q->waiting = 0;
      atomic_store(&h->m->long_polls, h->nwaiting);
      MHD_resume_connection(q->c);
    }
  }
  pthread_mutex_unlock(&h->lock);
  if (db.conn)
    PQfinish(db.conn);
  return NULL;
}

void lmp_http_wake(struct lmp_http *h) {
  if (h == NULL)
    return;
  pthread_mutex_lock(&h->lock);
  if (h->sleepers) {
    /* Every long poll's query runs again, but not on every commit: at most every
     * WAKE_EVERY_MS, so a busy daemon's commits do not multiply its queries. */
    int64_t now = now_ms();
    for (struct req *q = h->sleepers; q; q = q->next) {
      int64_t soonest = q->ran_ms + WAKE_EVERY_MS > now ? q->ran_ms + WAKE_EVERY_MS : now;
      if (soonest < q->due_ms)
        q->due_ms = soonest;
    }
    pthread_cond_broadcast(&h->cond);
  }
  pthread_mutex_unlock(&h->lock);
}

uint64_t lmp_http_ticket(struct lmp_http_call *call) {
  struct lmp_http *h = call->runtime;
  struct req *q = call->priv;
  pthread_mutex_lock(&h->lock);
  if (q->ticket == 0) {
    q->ticket = ++h->last_ticket;
    q->next_ticketed = h->ticketed;
    h->ticketed = q;
  }
  uint64_t t = q->ticket;
  pthread_mutex_unlock(&h->lock);
  return t;
}

void lmp_http_resume(void *runtime, uint64_t ticket) {
  struct lmp_http *h = runtime;
  pthread_mutex_lock(&h->lock);
  for (struct req *q = h->ticketed; q; q = q->next_ticketed)
    if (q->ticket == ticket) {
      q->resumed = 1; /* due at once, even if its route still runs and then sleeps */
      pthread_cond_broadcast(&h->cond);
      break;
    }
  pthread_mutex_unlock(&h->lock);
}

const char *lmp_http_header(const struct lmp_http_call *call, const char *name) {
  const struct req *q = call->priv;
  const char *v = strcasecmp(name, "traceparent") == 0    ? q->traceparent
                  : strcasecmp(name, "content-type") == 0 ? q->ctype
                  : strcasecmp(name, "accept") == 0       ? q->accept
                                                          : "";
  return *v ? v : NULL;
}

const char *lmp_http_issuer(const struct lmp_http_call *call) {
  const struct lmp_http *h = call->runtime;
  return h->issuer[0] ? h->issuer : NULL;
}

int lmp_http_value(struct lmp_http_call *call, const char *event_type, avro_value_t *out) {
  struct lmp_http *h = call->runtime;
  return h->host && h->host->value ? h->host->value(h->host->rt, event_type, out) : LMP_EINVAL;
}

int lmp_http_publish(struct lmp_http_call *call, const char *event_type, const char *key, avro_value_t *value,
                     struct lmp_http_pending **pending, char *err, size_t errlen) {
  struct lmp_http *h = call->runtime;
  *pending = NULL;
  if (h->host == NULL || h->host->publish == NULL) {
    snprintf(err, errlen, "this daemon publishes nothing from HTTP");
    return LMP_EINVAL;
  }
  return h->host->publish(h->host->rt, event_type, key, value, lmp_http_header(call, "traceparent"), h,
                          lmp_http_ticket(call), pending, err, errlen);
}

/* What libmicrohttpd says, kept: its reason is the one a failed start reports. */
__attribute__((format(printf, 2, 0))) static void mhd_said(void *cls, const char *fmt, va_list ap) {
  struct listener *l = cls;
  vsnprintf(l->mhd_err, sizeof(l->mhd_err), fmt, ap);
  l->mhd_err[strcspn(l->mhd_err, "\n")] = '\0';
}

/* The certificate chain and key a listener serves HTTPS with, read once at start. A
 * key that others may read is refused: anyone on the host could speak as the daemon. */
static int read_tls(struct listener *l, const char *prefix, const char *cert_file, const char *key_file, char *err,
                    size_t errlen) {
  char why[400];
  struct stat st;
  if (stat(key_file, &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH))) {
    snprintf(err, errlen, "%s.tls_key_file: %s may be read or written by others (mode %04o); chmod o-rwx it", prefix,
             key_file, (unsigned)(st.st_mode & 07777));
    return LMP_ECONFIG;
  }
  if (lmp_config_read_secret(cert_file, &l->tls_cert, why, sizeof(why)) < 0) {
    snprintf(err, errlen, "%s.tls_cert_file: %s", prefix, why);
    return LMP_ECONFIG;
  }
  if (lmp_config_read_secret(key_file, &l->tls_key, why, sizeof(why)) < 0) {
    snprintf(err, errlen, "%s.tls_key_file: %s", prefix, why);
    return LMP_ECONFIG;
  }
  if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
    snprintf(err, errlen, "%s.tls_cert_file: this libmicrohttpd has no TLS", prefix);
    return LMP_ECONFIG;
  }
  /* GnuTLS, as libmicrohttpd will, reads the pair now: its reason (not PEM, a key
   * that is not the certificate's) is clearer than the listener's "cannot start". */
  gnutls_certificate_credentials_t creds;
  if (gnutls_certificate_allocate_credentials(&creds) < 0)
    return LMP_ENOMEM;
  const gnutls_datum_t c = {(unsigned char *)l->tls_cert, (unsigned)strlen(l->tls_cert)},
                       k = {(unsigned char *)l->tls_key, (unsigned)strlen(l->tls_key)};
  int r = gnutls_certificate_set_x509_key_mem2(creds, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
  gnutls_certificate_free_credentials(creds);
  if (r < 0) {
    snprintf(err, errlen, "%s.tls_cert_file %s and %s.tls_key_file %s: %s", prefix, cert_file, prefix, key_file,
             gnutls_strerror(r));
    return LMP_ECONFIG;
  }
  return 0;
}

/* Where a listener listens and how: its settings' prefix ("http", "admin"). */
struct listen_spec {
  const char *prefix, *bind;
  int port;
  const char *cert_file, *key_file; /* both empty: plain HTTP */
  int probe;                        /* probes and metrics only, no body */
};

static int listen_on(struct lmp_http *h, struct listener *l, int admin, const struct lmp_config *cfg,
                     const struct listen_spec *sp, char *err, size_t errlen) {
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sp->port)};
  if (inet_pton(AF_INET, sp->bind, &addr.sin_addr) != 1) {
    snprintf(err, errlen, "%s.bind: '%s' is not an IPv4 address", sp->prefix, sp->bind);
    return LMP_ECONFIG;
  }
  l->h = h;
  l->admin = admin;
  l->probe = sp->probe;
  l->budget = sp->probe ? 0 : (size_t)cfg->http_body_budget;
  l->per_address = (size_t)cfg->http_body_budget_per_address;
  l->maxholders = sp->probe ? 0 : (size_t)cfg->http_max_connections;
  if (!sp->probe && (l->holders = calloc(l->maxholders, sizeof(*l->holders))) == NULL)
    return LMP_ENOMEM;
  int tls = *sp->cert_file || *sp->key_file, r;
  if (tls && (r = read_tls(l, sp->prefix, sp->cert_file, sp->key_file, err, errlen)) < 0)
    return r;
  /* TLS 1.2 and 1.3 only, GnuTLS's choice of ciphers among them. */
  struct MHD_OptionItem opts[] = {
      {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_said, l},
      {MHD_OPTION_SOCK_ADDR, 0, &addr},
      {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, l},
      {MHD_OPTION_CONNECTION_TIMEOUT, cfg->http_timeout_s, NULL},
      {MHD_OPTION_CONNECTION_LIMIT, cfg->http_max_connections, NULL},
      {MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->http_max_connections_per_ip, NULL},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 32768, NULL},
      {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, l->tls_cert},
      {MHD_OPTION_HTTPS_MEM_KEY, 0, l->tls_key},
      {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
      {MHD_OPTION_END, 0, NULL}};
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  l->d = MHD_start_daemon(flags | (tls ? MHD_USE_TLS : 0), (uint16_t)sp->port, NULL, NULL, handle, l,
                          MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
  if (l->d == NULL) {
    if (tls)
      snprintf(err, errlen, "cannot serve HTTPS on %s:%d with %s.tls_cert_file and %s.tls_key_file: %s", sp->bind,
               sp->port, sp->prefix, sp->prefix, l->mhd_err[0] ? l->mhd_err : "refused");
    else
      snprintf(err, errlen, "cannot listen on %s:%d: %s", sp->bind, sp->port,
               l->mhd_err[0] ? l->mhd_err : "port taken?");
    return LMP_EIO;
  }
  return 0;
}

/* A listener stopped, its key wiped. */
static void listener_stop(struct listener *l) {
  if (l->d)
    MHD_stop_daemon(l->d);
  if (l->tls_key)
    explicit_bzero(l->tls_key, strlen(l->tls_key));
  free(l->tls_key);
  free(l->tls_cert);
  free(l->holders);
}

int lmp_http_start(struct lmp_http **out, const struct lmp_config *cfg, const struct lmp_http_app *app,
                   struct lmp_metrics *metrics, const char *conninfo, const struct lmp_http_host *host, char *err,
                   size_t errlen) {
  const struct lmp_http_route *routes = app->routes;
  struct lmp_http *h = calloc(1, sizeof(*h));
  if (h == NULL || (h->conninfo = strdup(conninfo)) == NULL ||
      (h->workers = calloc((size_t)cfg->http_workers, sizeof(pthread_t))) == NULL) {
    if (h)
      free(h->conninfo);
    free(h);
    return LMP_ENOMEM;
  }
  snprintf(h->service, sizeof(h->service), "%s", app->name);
  h->m = metrics;
  h->routes = routes;
  h->route_ctx = app->ctx;
  h->host = host;
  h->svc_metrics = app->metrics;
  h->min_rate = (size_t)cfg->http_min_bytes_per_s;
  h->rate_window_ms = (int64_t)cfg->http_min_rate_window_s * 1000;
  /* Long polls hold connections: at most half of them, so probes and new requests
   * always find one. */
  h->max_waiting = cfg->http_max_connections / 2;
  pthread_mutex_init(&h->lock, NULL);
  /* Long polls wait on the monotonic clock: a change of the wall clock moves no deadline. */
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&h->cond, &ca);
  pthread_condattr_destroy(&ca);
  for (int i = 0; routes && i < cfg->http_workers; i++)
    if (pthread_create(&h->workers[h->nworkers], NULL, worker, h) == 0)
      h->nworkers++;
  h->tokens_file = strdup(cfg->admin_tokens_file);
  if (h->tokens_file == NULL) {
    lmp_http_stop(h);
    return LMP_ENOMEM;
  }
  load_tokens(h);
  const struct lmp_oidc_conf oc = {cfg->oidc_issuer,        cfg->oidc_audience,       cfg->oidc_partner_claim,
                                   cfg->oidc_operator_role, cfg->oidc_ca_file,        cfg->oidc_clock_skew_s,
                                   cfg->oidc_jwks_refetch_s, cfg->oidc_jwks_max_age_s, cfg->oidc_timeout_ms};
  snprintf(h->issuer, sizeof(h->issuer), "%s", cfg->oidc_issuer);
  /* The origin is the issuer up to the first '/' after "scheme://"; a character
   * that could end the header's directive keeps it out. */
  const char *authority = strstr(h->issuer, "://");
  if (authority && strcspn(h->issuer, " ;,'\"") == strlen(h->issuer)) {
    size_t n = (size_t)(authority + 3 - h->issuer) + strcspn(authority + 3, "/");
    snprintf(h->issuer_origin, sizeof(h->issuer_origin), "%.*s", (int)n, h->issuer);
  }
  int r = lmp_oidc_new(&h->oidc, &oc);
  const struct listen_spec pub = {"http", cfg->http_bind, cfg->http_port, cfg->http_tls_cert_file,
                                   cfg->http_tls_key_file, 0},
                           adm = {"admin", cfg->admin_bind, cfg->admin_port, cfg->admin_tls_cert_file,
                                  cfg->admin_tls_key_file, 0},
                           prb = {"probe", cfg->probe_bind, cfg->probe_port, "", "", 1};
  if (r == 0)
    r = listen_on(h, &h->pub, 0, cfg, &pub, err, errlen);
  if (r == 0)
    r = listen_on(h, &h->adm, 1, cfg, &adm, err, errlen);
  /* Probes on a listener of their own, which public traffic cannot fill: kubelets and
   * Prometheus go there (they are still served on http.port too, for what points
   * there). */
  if (r == 0 && *cfg->probe_bind && (r = listen_on(h, &h->prb, 0, cfg, &prb, err, errlen)) == 0)
    lmp_info(NULL, "probes on %s:%d", cfg->probe_bind, lmp_http_port(h, 2));
  if (r == 0 && routes && h->nworkers == 0) {
    snprintf(err, errlen, "cannot start the HTTP workers");
    r = LMP_EIO;
  }
  if (r < 0) {
    lmp_http_stop(h);
    return r;
  }
  *out = h;
  return 0;
}

void lmp_http_stop(struct lmp_http *h) {
  if (h == NULL)
    return;
  /* No new connections; queued requests are answered 503 and resumed by the workers,
   * so none is left suspended when the daemon stops. */
  if (h->pub.d)
    MHD_quiesce_daemon(h->pub.d);
  if (h->adm.d)
    MHD_quiesce_daemon(h->adm.d);
  if (h->prb.d)
    MHD_quiesce_daemon(h->prb.d);
  pthread_mutex_lock(&h->lock);
  h->quit = 1;
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
  for (int i = 0; i < h->nworkers; i++)
    pthread_join(h->workers[i], NULL);
  listener_stop(&h->pub);
  listener_stop(&h->adm);
  listener_stop(&h->prb);
  free_tokens(h->tokens, h->ntokens);
  free(h->tokens_file);
  lmp_oidc_free(h->oidc);
  pthread_mutex_destroy(&h->lock);
  pthread_cond_destroy(&h->cond);
  free(h->workers);
  free(h->conninfo);
  free(h);
}

int lmp_http_port(const struct lmp_http *h, int which) {
  struct MHD_Daemon *d = which == 2 ? h->prb.d : which ? h->adm.d : h->pub.d;
  const union MHD_DaemonInfo *i = d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
  return i ? (int)i->port : -1;
}

size_t lmp_http_tokens(struct lmp_http *h) {
  pthread_mutex_lock(&h->lock);
  load_tokens(h);
  size_t n = h->ntokens;
  pthread_mutex_unlock(&h->lock);
  return n;
}
