/* Helpers for the admin routes: one transaction per request, JSON in and out. */
#include "lmp/admin.h"

#include <stdio.h>
#include <string.h>

#include "lmp/error.h"

static int error_reply(int code, const char *msg, int *status, struct lmp_buf *out) {
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
  json_t *j = body ? json_loadb(body, len, 0, &e) : NULL;
  if (!json_is_object(j)) {
    char msg[300];
    snprintf(msg, sizeof(msg), "body must be a JSON object%s%s", j || !body ? "" : ": ", j || !body ? "" : e.text);
    json_decref(j);
    error_reply(400, msg, status, out);
    return NULL;
  }
  return j;
}

int lmp_admin_exec(PGconn *db, const char *sql, int n, const char *const *params, char *err, size_t errlen) {
  if (*err)
    return LMP_EDB; /* an earlier statement failed: the transaction is lost anyway */
  PGresult *res = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    snprintf(err, errlen, "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(db));
    size_t l = strlen(err);
    while (l && (err[l - 1] == '\n' || err[l - 1] == ' '))
      err[--l] = '\0';
    PQclear(res);
    return LMP_EDB;
  }
  PQclear(res);
  return 0;
}

int lmp_admin_finish(PGconn *db, const char *err, int *status, struct lmp_buf *out) {
  if (*err) {
    PQclear(PQexec(db, "ROLLBACK"));
    return error_reply(400, err, status, out);
  }
  PGresult *res = PQexec(db, "COMMIT");
  int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
  PQclear(res);
  if (!ok)
    return error_reply(503, PQerrorMessage(db), status, out);
  *status = 200;
  lmp_buf_reset(out);
  return lmp_buf_puts(out, "{\"ok\":true}");
}

int lmp_admin_json(PGconn *db, const char *sql, int n, const char *const *params, int *status,
                   struct lmp_buf *out) {
  PGresult *res = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
  if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
    int r = error_reply(503, res ? PQresultErrorMessage(res) : "database unavailable", status, out);
    PQclear(res);
    return r;
  }
  if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
    PQclear(res);
    return error_reply(404, "not found", status, out);
  }
  *status = 200;
  int r = lmp_buf_puts(out, PQgetvalue(res, 0, 0));
  PQclear(res);
  return r;
}

const char *lmp_admin_str(json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }
