/* Small helpers for the admin routes each daemon serves over HTTP for its own
 * reference data: one transaction per request, JSON in, JSON out. */
#ifndef LMP_ADMIN_H
#define LMP_ADMIN_H

#include <jansson.h>
#include <libpq-fe.h>

#include "lmp/buf.h"

/* An error answer {"error": msg} with the status; always well-formed JSON. */
int lmp_admin_error(int code, const char *msg, int *status, struct lmp_buf *out);
/* Parses a JSON object body; on failure fills status 400 and out. */
json_t *lmp_admin_body(const char *body, size_t len, int *status, struct lmp_buf *out);
/* Runs one statement; on failure returns LMP_EDB and writes to err what a client may
 * read of it (the SQLSTATE and the constraint broken; the server's text is logged). */
int lmp_admin_exec(PGconn *db, const char *sql, int n, const char *const *params, char *err, size_t errlen);
/* Ends the transaction begun with lmp_admin_exec(db, "BEGIN"...): COMMIT when err is
 * empty, else ROLLBACK and a 400 carrying err. */
int lmp_admin_finish(PGconn *db, const char *err, int *status, struct lmp_buf *out);
/* A query whose single row and column is a JSON text: 200 with it, or 404 when no row. */
int lmp_admin_json(PGconn *db, const char *sql, int n, const char *const *params, int *status,
                   struct lmp_buf *out);
/* The string value of key in o, or NULL. */
const char *lmp_admin_str(json_t *o, const char *key);

#endif
