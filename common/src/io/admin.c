/* Helpers for the admin routes: one transaction per request, JSON in and out. The
 * database's own messages go to the log, never to the client. */
#include "lmp/io/admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/db.h"
#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"

int lmp_admin_error(struct lmp_http_call *call, int code, const char *msg) {
  struct lmp_buf *out = call->out;
  json_t *o = json_pack("{s:s}", "error", msg);
  char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  call->status = code;
  lmp_buf_reset(out);
  int r = lmp_buf_puts(out, t ? t : "{\"error\":\"out of memory\"}");
  free(t);
  return r;
}

int lmp_admin_answer(struct lmp_http_call *call, int status, json_t *o) {
  char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (t == NULL)
    return LMP_ENOMEM;
  call->status = status;
  lmp_buf_reset(call->out);
  int r = lmp_buf_puts(call->out, t);
  free(t);
  return r;
}

json_t *lmp_admin_body(struct lmp_http_call *call) {
  json_error_t e;
  const char *body = call->body;
  json_t *j = body ? json_loadb(body, call->body_len, JSON_REJECT_DUPLICATES, &e) : NULL;
  if (!json_is_object(j)) {
    char msg[300];
    snprintf(msg, sizeof(msg), "body must be a JSON object%s%s", j || !body ? "" : ": ", j || !body ? "" : e.text);
    json_decref(j);
    lmp_admin_error(call, 400, msg);
    return NULL;
  }
  return j;
}

/* How a refusal that the database's state caused begins (a deadlock, a lock that
 * could not be had, the server restarting, the connection lost): nothing of the load
 * was kept and the same load may simply be sent again, so lmp_admin_finish answers it
 * 503, not 400. */
#define BUSY "the database could not take it now"

/* What a client may learn of a refusal: the SQLSTATE and the constraint, if any. */
static void refusal(const PGresult *res, PGconn *db, char *err, size_t errlen) {
  const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *con = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
  lmp_warn(NULL, "admin statement refused: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(db));
  if (lmp__db_classify(db, res) == LMP_ERETRY)
    snprintf(err, errlen, BUSY " (SQLSTATE %s): nothing was changed; send it again", st ? st : "none");
  else if (st && strncmp(st, "23", 2) == 0 && con)
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

int lmp_admin_finish(struct lmp_http_call *call, const char *err) {
  PGconn *db = call->db;
  if (*err) {
    PQclear(PQexec(db, "ROLLBACK"));
    return lmp_admin_error(call, strncmp(err, BUSY, strlen(BUSY)) == 0 ? 503 : 400, err);
  }
  PGresult *res = PQexec(db, "COMMIT");
  int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
  if (!ok)
    lmp_warn(NULL, "admin commit failed: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(db));
  PQclear(res);
  if (!ok)
    return lmp_admin_error(call, 503, "the database did not commit; try again");
  call->status = 200;
  lmp_buf_reset(call->out);
  return lmp_buf_puts(call->out, "{\"ok\":true}");
}

int lmp_admin_json(struct lmp_http_call *call, const char *sql, int n, const char *const *params) {
  PGconn *db = call->db;
  PGresult *res = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
  if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
    lmp_warn(NULL, "admin query failed: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(db));
    PQclear(res);
    return lmp_admin_error(call, 503, "database error; try again");
  }
  if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
    PQclear(res);
    return lmp_admin_error(call, 404, "not found");
  }
  call->status = 200;
  int r = lmp_buf_puts(call->out, PQgetvalue(res, 0, 0));
  PQclear(res);
  return r;
}

const char *lmp_admin_str(json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }

/* The first problem wins: later checks do not overwrite it. */
__attribute__((format(printf, 5, 6))) static void problem(char *err, size_t errlen, const char *where,
                                                          const char *key, const char *fmt, ...) {
  if (*err)
    return;
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  snprintf(err, errlen, "%s%s%s: %s", where, key ? "." : "", key ? key : "", what);
}

void lmp_admin_known(json_t *o, const char *const *known, const char *where, char *err, size_t errlen) {
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    const char *const *n = known;
    while (*n && strcmp(*n, k) != 0)
      n++;
    if (*n == NULL) {
      problem(err, errlen, where, NULL, "'%s' is not a field of this data", LMP_Q(k));
      return;
    }
  }
}

json_t *lmp_admin_rows(json_t *o, const char *key, size_t max, const char *where, char *err, size_t errlen) {
  json_t *a = json_object_get(o, key);
  if (a == NULL)
    return NULL;
  if (!json_is_array(a))
    problem(err, errlen, where, key, "must be an array");
  else if (json_array_size(a) > max)
    problem(err, errlen, where, key, "at most %zu rows per load", max);
  else
    return a;
  return NULL;
}

static int id_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-' || c == ':';
}

const char *lmp_admin_value(json_t *v, enum lmp_admin_kind kind, int required, size_t max, const char *where,
                            const char *key, char *err, size_t errlen) {
  if (v == NULL || json_is_null(v)) {
    if (required)
      problem(err, errlen, where, key, "is required");
    return NULL;
  }
  const char *s = json_string_value(v);
  if (s == NULL) {
    problem(err, errlen, where, key, "must be text");
    return NULL;
  }
  size_t n = json_string_length(v);
  enum lmp_text_fault f = lmp_text_check(s, n, 0, NULL);
  if (f != LMP_TEXT_OK) {
    problem(err, errlen, where, key, "%s", lmp_text_fault_str(f));
    return NULL;
  }
  if (n == 0 || n > max) {
    problem(err, errlen, where, key, "must have 1 to %zu bytes", max);
    return NULL;
  }
  if (kind == LMP_ADMIN_ID)
    for (size_t i = 0; i < n; i++)
      if (!id_char((unsigned char)s[i])) {
        problem(err, errlen, where, key, "'%s' may hold only letters, digits, '.', '_', '-' and ':'", LMP_Q(s));
        return NULL;
      }
  if (kind == LMP_ADMIN_COUNTRY && !lmp_country_ok(s)) {
    problem(err, errlen, where, key, "'%s' is not an ISO 3166-1 alpha-2 country code such as CA", LMP_Q(s));
    return NULL;
  }
  return s;
}

const char *lmp_admin_text(json_t *o, const char *key, enum lmp_admin_kind kind, int required, size_t max,
                           const char *where, char *err, size_t errlen) {
  if (!json_is_object(o)) {
    problem(err, errlen, where, NULL, "must be an object");
    return NULL;
  }
  return lmp_admin_value(json_object_get(o, key), kind, required, max, where, key, err, errlen);
}

void lmp_admin_int(json_t *o, const char *key, long long lo, long long hi, const char *where, long long *v,
                   char *err, size_t errlen) {
  json_t *j = json_object_get(o, key);
  *v = json_is_integer(j) ? (long long)json_integer_value(j) : lo - 1;
  if (!json_is_integer(j) || *v < lo || *v > hi) {
    problem(err, errlen, where, key, "must be an integer in %lld..%lld", lo, hi);
    *v = lo;
  }
}
