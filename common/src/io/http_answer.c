/* An answer to a request: its status, its headers (the security ones for pages,
 * Retry-After, WWW-Authenticate) and its body; an error as {"error": msg}. */
#include "io/http_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmp/base/log.h"
#include "lmp/base/text.h"

int64_t lmp__http_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* {"error": msg} as the answer; always well-formed JSON, whatever msg holds. */
void lmp__http_fail(struct req *q, int status, const char *msg) {
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
const char *lmp__http_shown(const char *path, char out[256]) {
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
           lmp__http_shown(q->path, p), q->status, q->body.len);
}

enum MHD_Result lmp__http_answer(struct req *q, const char *type) {
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
