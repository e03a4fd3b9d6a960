/* The HTTP server's insides, shared by its files and no one else:
 *   http.c         the server: its listeners (plain or HTTPS), start and stop
 *   http_conn.c    a connection on a listener's thread: headers, body, probes
 *   http_route.c   the routes: finding one, the workers that run them, long polls
 *   http_auth.c    who calls: admin tokens and access tokens
 *   http_answer.c  an answer: its status, headers and body
 * Each uses only those below it in this list. */
#ifndef LMP_HTTP_INTERNAL_H
#define LMP_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include "io/http.h"
#include "io/oidc.h"

#define MAX_PATH 1024
#define WAKE_EVERY_MS 200 /* a long poll runs again on a commit at most this often */
#define TOKEN_MIN 16  /* characters of an admin token, at least */
#define TOKEN_MAX 255 /* and at most */

struct lmp_http;

struct token {
  char name[64];
  char secret[TOKEN_MAX + 1];
  int writes; /* may POST; else GET and HEAD only */
};

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
  struct token *tokens;
  size_t ntokens;
  pthread_t *workers;
  int nworkers;
  const struct lmp_http_host *host;
  struct lmp_oidc *oidc;    /* verifies access tokens; NULL: nobody signs in */
  char issuer[1025];        /* oidc.issuer, for the pages that sign in */
  char issuer_origin[1025]; /* its scheme://host[:port], for their Content-Security-Policy */
};

/* http_answer.c */
int64_t lmp__http_now_ms(void);
/* {"error": msg} as q's answer, with status. */
void lmp__http_fail(struct req *q, int status, const char *msg);
/* A path as a log line shows it. */
const char *lmp__http_shown(const char *path, char out[256]);
/* q's answer queued on its connection, with the headers its status and type call for. */
enum MHD_Result lmp__http_answer(struct req *q, const char *type);

/* http_auth.c */
/* Reads admin.tokens_file again if it changed; called with h->lock held. */
void lmp__http_load_tokens(struct lmp_http *h);
void lmp__http_free_tokens(struct token *t, size_t n);
int lmp__http_looks_like_jwt(const char *t);
const char *lmp__http_bearer(struct req *q);
int lmp__http_authenticate_admin(struct lmp_http *h, struct req *q, const char *path);
int lmp__http_authenticate_token(struct lmp_http *h, struct req *q, const char *path);

/* http_route.c */
/* Finds q's route; answers 404 or 405 when there is none. */
void lmp__http_route(struct lmp_http *h, struct req *q);
void lmp__http_forget_ticket(struct lmp_http *h, struct req *q);
/* A worker thread's body (arg: the server). */
void *lmp__http_worker(void *arg);

/* http_conn.c: libmicrohttpd's callbacks (cls: the listener). */
enum MHD_Result lmp__http_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *data, size_t *data_size, void **con_cls);
void lmp__http_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe);

#endif
