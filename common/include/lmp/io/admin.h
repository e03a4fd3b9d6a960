/* Small helpers for the admin routes each daemon serves over HTTP for its own
 * reference data: one transaction per request, JSON in, JSON out. */
#ifndef LMP_ADMIN_H
#define LMP_ADMIN_H

#include <jansson.h>
#include <libpq-fe.h>

#include "lmp/base/buf.h"
#include "lmp/io/http.h"

/* An error answer {"error": msg} with the status; always well-formed JSON. */
int lmp_admin_error(struct lmp_http_call *call, int code, const char *msg);
/* The answer o (its reference taken) with the status; LMP_ENOMEM when o is NULL. */
int lmp_admin_answer(struct lmp_http_call *call, int status, json_t *o);
/* Parses a JSON object body; on failure fills status 400 and out. */
json_t *lmp_admin_body(struct lmp_http_call *call);
/* Runs one statement; on failure returns LMP_EDB and writes to err what a client may
 * read of it (the SQLSTATE and the constraint broken; the server's text is logged). */
int lmp_admin_exec(PGconn *db, const char *sql, int n, const char *const *params, char *err, size_t errlen);
/* Ends the transaction begun with lmp_admin_exec(db, "BEGIN"...): COMMIT when err is
 * empty, else ROLLBACK and err answered: 503 (Retry-After) when the database's state
 * refused a statement (a deadlock, a lock not had, a restart), 400 otherwise. */
int lmp_admin_finish(struct lmp_http_call *call, const char *err);
/* A query whose single row and column is a JSON text: 200 with it, or 404 when no row. */
int lmp_admin_json(struct lmp_http_call *call, const char *sql, int n, const char *const *params);
/* The string value of key in o, or NULL. */
const char *lmp_admin_str(json_t *o, const char *key);

/* Reference data is checked before it is written; the first problem found goes to
 * err (when err is still empty) naming the field, e.g. "pools[3].total: ...", and
 * lmp_admin_finish answers it with 400. */
enum lmp_admin_kind {
  LMP_ADMIN_TEXT,    /* UTF-8 without control characters */
  LMP_ADMIN_ID,      /* letters, digits, '.', '_', '-', ':' */
  LMP_ADMIN_COUNTRY, /* an ISO 3166-1 alpha-2 code */
};
/* Refuses any key of the object o that known (NULL-ended) does not list; where names o. */
void lmp_admin_known(json_t *o, const char *const *known, const char *where, char *err, size_t errlen);
/* The array o[key], absent meaning none: at most max rows, each an object. */
json_t *lmp_admin_rows(json_t *o, const char *key, size_t max, const char *where, char *err, size_t errlen);
/* The text o[key] of the kind, 1..max bytes; NULL when absent (refused if required). */
const char *lmp_admin_text(json_t *o, const char *key, enum lmp_admin_kind kind, int required, size_t max,
                           const char *where, char *err, size_t errlen);
/* The same for a value v itself, key (may be NULL) naming it after where. */
const char *lmp_admin_value(json_t *v, enum lmp_admin_kind kind, int required, size_t max, const char *where,
                            const char *key, char *err, size_t errlen);
/* The integer o[key] within lo..hi (required); *v gets it. */
void lmp_admin_int(json_t *o, const char *key, long long lo, long long hi, const char *where, long long *v,
                   char *err, size_t errlen);

#endif
