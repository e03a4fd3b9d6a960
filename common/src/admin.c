/* Helpers for the admin routes: one transaction per request, JSON in and out. The
 * database's own messages go to the log, never to the client. */
#include "lmp/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/error.h"
#include "lmp/log.h"

int lmp_admin_error(int code, const char *msg, int *status, struct lmp_buf *out) {
  json_t *o = json_pack("{s:s}", "error", msg);
  char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  *status = code;
  lmp_buf_reset(out);
  int r = lmp_buf_puts(out, t ? t : "{\"error\":\"out of memory\"}");
  free(t);
  return r;
}

json_t *lmp_admin_body(const char *body, size_t len, int *status, struct lmp_buf *out) {
  json_error_t e;
  json_t *j = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &e) : NULL;
  if (!json_is_object(j)) {
    char msg[300];
    snprintf(msg, sizeof(msg), "body must be a JSON object%s%s", j || !body ? "" : ": ", j || !body ? "" : e.text);
    json_decref(j);
    lmp_admin_error(400, msg, status, out);
    return NULL;
  }
  return j;
}

/* What a client may learn of a refusal: the SQLSTATE and the constraint, if any. */
static void refusal(const PGresult *res, PGconn *db, char *err, size_t errlen) {
  const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *con = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
  lmp_warn(NULL, "admin statement refused: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(db));
  if (st && strncmp(st, "23", 2) == 0 && con)
    snprintf(err, errlen, "refused by the database: the data breaks rule %s", con);
  else if (st && strncmp(st, "22", 2) == 0)
    snprintf(err, errlen, "refused by the database: a value is out of range or malformed (SQLSTATE %s)", st);
  else
    snprintf(err, errlen, "refused by the database (SQLSTATE %s)", st ? st : "unknown");
}

int lmp_admin_exec(PGconn *db, const char *sql, int n, const char *const *params, char *err, size_t errlen) {
  if (*err)
    return LMP_EDB; /* an earlier statement failed: the transaction is lost anyway */
  PGresult *res = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    refusal(res, db, err, errlen);
    PQclear(res);
    return LMP_EDB;
  }
  PQclear(res);
  return 0;
}

int lmp_admin_finish(PGconn *db, const char *err, int *status, struct lmp_buf *out) {
  if (*err) {
    PQclear(PQexec(db, "ROLLBACK"));
    return lmp_admin_error(400, err, status, out);
  }
  PGresult *res = PQexec(db, "COMMIT");
  int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
  if (!ok)
    lmp_warn(NULL, "admin commit failed: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(db));
  PQclear(res);
  if (!ok)
    return lmp_admin_error(503, "the database did not commit; try again", status, out);
  *status = 200;
  lmp_buf_reset(out);
  return lmp_buf_puts(out, "{\"ok\":true}");
}

int lmp_admin_json(PGconn *db, const char *sql, int n, const char *const *params, int *status,
                   struct lmp_buf *out) {
  PGresult *res = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
  if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
    lmp_warn(NULL, "admin query failed: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(db));
    PQclear(res);
    return lmp_admin_error(503, "database error; try again", status, out);
  }
  if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
    PQclear(res);
    return lmp_admin_error(404, "not found", status, out);
  }
  *status = 200;
  int r = lmp_buf_puts(out, PQgetvalue(res, 0, 0));
  PQclear(res);
  return r;
}

const char *lmp_admin_str(json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }
