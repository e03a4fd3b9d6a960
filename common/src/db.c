/* PostgreSQL connections for worker threads: connect, migrate, classify errors. */
#include "lmp/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/buf.h"
#include "lmp/error.h"

static int put_kv(struct lmp_buf *b, const char *k, const char *v) {
  int r = lmp_buf_printf(b, "%s%s='", b->len ? " " : "", k);
  for (const char *p = v; r == 0 && *p; p++)
    r = (*p == '\'' || *p == '\\') ? lmp_buf_printf(b, "\\%c", *p) : lmp_buf_append(b, p, 1);
  return r ? r : lmp_buf_puts(b, "'");
}

int lmp_db_init(struct lmp_db *db, const char *host, int port, const char *user,
                const char *password, const char *dbname, int connect_timeout_s,
                const char *application_name) {
  memset(db, 0, sizeof(*db));
  struct lmp_buf b = {0};
  char num[16];
  int r = put_kv(&b, "host", host);
  snprintf(num, sizeof(num), "%d", port);
  if (r == 0) r = put_kv(&b, "port", num);
  if (r == 0) r = put_kv(&b, "user", user);
  if (r == 0 && password && *password) r = put_kv(&b, "password", password);
  if (r == 0) r = put_kv(&b, "dbname", dbname);
  snprintf(num, sizeof(num), "%d", connect_timeout_s);
  if (r == 0) r = put_kv(&b, "connect_timeout", num);
  if (r == 0) r = put_kv(&b, "application_name", application_name);
  /* Detect a dead server on an idle connection within about a minute. */
  if (r == 0) r = lmp_buf_puts(&b, " keepalives_idle=30 keepalives_interval=10 keepalives_count=3");
  if (r < 0) {
    lmp_buf_free(&b);
    return r;
  }
  db->conninfo = lmp_buf_steal(&b);
  return 0;
}

void lmp_db_close(struct lmp_db *db) {
  if (db->conn)
    PQfinish(db->conn);
  db->conn = NULL;
  free(db->conninfo);
  db->conninfo = NULL;
}

static void set_err(struct lmp_db *db, const char *what) {
  snprintf(db->err, sizeof(db->err), "%s", what ? what : "unknown error");
  size_t n = strlen(db->err);
  while (n && (db->err[n - 1] == '\n' || db->err[n - 1] == ' '))
    db->err[--n] = '\0';
}

/* Library code does not print: server notices ("already exists, skipping") are dropped. */
static void quiet_notices(void *arg, const char *message) {}

int lmp_db_ensure(struct lmp_db *db) {
  if (db->conn && PQstatus(db->conn) == CONNECTION_OK)
    return 0;
  if (db->conn)
    PQfinish(db->conn);
  db->conn = PQconnectdb(db->conninfo);
  if (db->conn == NULL) {
    set_err(db, "out of memory");
    return LMP_ENOMEM;
  }
  if (PQstatus(db->conn) != CONNECTION_OK) {
    set_err(db, PQerrorMessage(db->conn));
    PQfinish(db->conn);
    db->conn = NULL;
    return LMP_EDB;
  }
  PQsetNoticeProcessor(db->conn, quiet_notices, NULL);
  return 0;
}

/* SQLSTATE classes worth retrying: connection exceptions (08), insufficient
 * resources (53), operator intervention such as a restart (57), serialization
 * failure and deadlock (40001, 40P01). */
static int is_transient(PGconn *conn, const PGresult *res) {
  if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
    return 1;
  const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  if (st == NULL)
    return 1;
  return strncmp(st, "08", 2) == 0 || strncmp(st, "53", 2) == 0 || strncmp(st, "57", 2) == 0 ||
         strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0;
}

PGresult *lmp_db_exec(struct lmp_db *db, const char *sql, int nparams, const char *const *params,
                      int *transient) {
  return lmp_db_exec_fmt(db, sql, nparams, params, NULL, NULL, transient);
}

PGresult *lmp_db_exec_fmt(struct lmp_db *db, const char *sql, int nparams,
                          const char *const *params, const int *lengths, const int *formats,
                          int *transient) {
  *transient = 1;
  if (db->conn == NULL) {
    set_err(db, "not connected");
    return NULL;
  }
  PGresult *res = PQexecParams(db->conn, sql, nparams, NULL, params, lengths, formats, 0);
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
    return res;
  set_err(db, res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
  *transient = is_transient(db->conn, res);
  PQclear(res);
  return NULL;
}

int lmp_db_command(struct lmp_db *db, const char *sql, int *transient) {
  PGresult *res = lmp_db_exec(db, sql, 0, NULL, transient);
  if (res == NULL)
    return LMP_EDB;
  PQclear(res);
  return 0;
}

int lmp_db_migrate(struct lmp_db *db, const char *scope, const struct lmp_embedded *migrations) {
  int transient;
  int r = lmp_db_ensure(db);
  if (r < 0)
    return r;
  if (lmp_db_command(db, "BEGIN", &transient) < 0)
    return LMP_EDB;
  /* One lock for every daemon's migrations: several instances may start at once. */
  r = lmp_db_command(db, "SELECT pg_advisory_xact_lock(7245001)", &transient);
  if (r == 0)
    r = lmp_db_command(db, "CREATE TABLE IF NOT EXISTS lmp_schema_migrations ("
                           "name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                       &transient);
  for (const struct lmp_embedded *m = migrations; r == 0 && m->name; m++) {
    char name[256];
    snprintf(name, sizeof(name), "%s/%s", scope, m->name);
    const char *params[] = {name};
    PGresult *res = lmp_db_exec(db, "INSERT INTO lmp_schema_migrations(name) VALUES ($1) "
                                    "ON CONFLICT DO NOTHING", 1, params, &transient);
    if (res == NULL) {
      r = LMP_EDB;
      break;
    }
    int fresh = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    if (!fresh)
      continue;
    /* Several statements in one string: simple query protocol. */
    res = PQexec(db->conn, m->text);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
      char msg[400];
      snprintf(msg, sizeof(msg), "migration %s: %s", name,
               res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
      set_err(db, msg);
      r = LMP_EDB;
    }
    PQclear(res);
  }
  if (r == 0)
    r = lmp_db_command(db, "COMMIT", &transient);
  else
    PQclear(PQexec(db->conn, "ROLLBACK"));
  return r;
}
