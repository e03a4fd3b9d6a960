/* PostgreSQL connections: connect, migrate, prepared statements, failure classes. */
#include "io/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "lmp/base/buf.h"
#include "lmp/base/error.h"

static int put_kv(struct lmp_buf *b, const char *k, const char *v) {
  int r = lmp_buf_printf(b, "%s%s='", b->len ? " " : "", k);
  for (const char *p = v; r == 0 && *p; p++)
    r = (*p == '\'' || *p == '\\') ? lmp_buf_printf(b, "\\%c", *p) : lmp_buf_append(b, p, 1);
  return r ? r : lmp_buf_puts(b, "'");
}

/* The connection string of one role: user, and its password from password_file
 * (named setting in errors) when set, else the inline password. */
static int init_as(struct lmp_db *db, const struct lmp_config *cfg, const char *dbname,
                   const char *application_name, const char *user, const char *setting,
                   const char *password_file, const char *inline_password) {
  memset(db, 0, sizeof(*db));
  struct lmp_buf b = {0};
  char num[16], opts[64];
  int r = put_kv(&b, "host", cfg->pg_host);
  snprintf(num, sizeof(num), "%d", cfg->pg_port);
  if (r == 0) r = put_kv(&b, "port", num);
  if (r == 0) r = put_kv(&b, "user", user);
  char *secret = NULL, why[400];
  if (r == 0 && password_file && *password_file &&
      lmp_config_read_secret(password_file, &secret, why, sizeof(why)) < 0) {
    snprintf(db->err, sizeof(db->err), "%s: %s", setting, why);
    r = LMP_ECONFIG;
  }
  const char *password = secret ? secret : inline_password;
  if (r == 0 && password && *password) r = put_kv(&b, "password", password);
  if (secret)
    explicit_bzero(secret, strlen(secret));
  free(secret);
  if (r == 0 && cfg->pg_sslmode && *cfg->pg_sslmode) r = put_kv(&b, "sslmode", cfg->pg_sslmode);
  if (r == 0 && cfg->pg_sslrootcert && *cfg->pg_sslrootcert) r = put_kv(&b, "sslrootcert", cfg->pg_sslrootcert);
  if (r == 0 && cfg->pg_sslcert && *cfg->pg_sslcert) r = put_kv(&b, "sslcert", cfg->pg_sslcert);
  if (r == 0 && cfg->pg_sslkey && *cfg->pg_sslkey) r = put_kv(&b, "sslkey", cfg->pg_sslkey);
  if (r == 0) r = put_kv(&b, "dbname", dbname);
  snprintf(num, sizeof(num), "%d", cfg->pg_connect_timeout_s);
  if (r == 0) r = put_kv(&b, "connect_timeout", num);
  if (r == 0) r = put_kv(&b, "application_name", application_name);
  /* A statement that runs away holds the batch and every message behind it. */
  snprintf(opts, sizeof(opts), "-c statement_timeout=%d", cfg->pg_statement_timeout_ms);
  if (r == 0) r = put_kv(&b, "options", opts);
  /* Detect a dead server on an idle connection within about a minute. */
  if (r == 0) r = lmp_buf_puts(&b, " keepalives_idle=30 keepalives_interval=10 keepalives_count=3");
  if (r < 0) {
    lmp_buf_free(&b);
    return r;
  }
  db->conninfo = lmp_buf_steal(&b);
  return 0;
}

int lmp__db_init(struct lmp_db *db, const struct lmp_config *cfg, const char *dbname,
                 const char *application_name) {
  return init_as(db, cfg, dbname, application_name, cfg->pg_user, "pg.password_file", cfg->pg_password_file,
                 cfg->pg_password);
}

void lmp__db_close(struct lmp_db *db) {
  if (db->conn)
    PQfinish(db->conn);
  db->conn = NULL;
  db->ncache = 0;
  db->nqueue = 0;
  if (db->conninfo) /* it holds the password */
    explicit_bzero(db->conninfo, strlen(db->conninfo));
  free(db->conninfo);
  db->conninfo = NULL;
}

static void set_err(struct lmp_db *db, const char *what) {
  snprintf(db->err, sizeof(db->err), "%s", what ? what : "unknown error");
  size_t n = strlen(db->err);
  while (n && (db->err[n - 1] == '\n' || db->err[n - 1] == ' '))
    db->err[--n] = '\0';
}

/* Why a statement failed, as logs and dead letters may carry it: the server's primary
 * message and SQLSTATE, never its DETAIL (which quotes the row's values). */
static void set_result_err(struct lmp_db *db, const PGresult *res) {
  const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  if (primary == NULL) {
    set_err(db, res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
    return;
  }
  char msg[512];
  snprintf(msg, sizeof(msg), "%s (SQLSTATE %s)", primary, state ? state : "?");
  set_err(db, msg);
}

static long long mono_ms(void) { return (long long)(uv_hrtime() / 1000000); } /* the runtime's clock */

/* Library code does not print: server notices ("already exists, skipping") are dropped. */
static void quiet_notices(void *arg, const char *message) {}

/* Whether a failed connection was turned away rather than not answered: libpq gives
 * no SQLSTATE for it, only its message (in English unless the client's locale says
 * otherwise; then it counts as unreachable, and the log still says why). */
static int refused(const char *msg) {
  static const char *const marks[] = {"authentication failed", "pg_hba.conf", "SSL", "certificate",
                                      "permission denied", "password", "does not exist", NULL};
  for (const char *const *m = marks; *m; m++)
    if (strstr(msg, *m))
      return 1;
  return 0;
}

int lmp__db_ensure(struct lmp_db *db) {
  if (db->conn && PQstatus(db->conn) == CONNECTION_OK)
    return 0;
  if (db->conn)
    PQfinish(db->conn);
  db->ncache = 0; /* prepared statements die with their connection */
  db->nqueue = 0;
  db->conn = PQconnectdb(db->conninfo);
  if (db->conn == NULL) {
    set_err(db, "out of memory");
    return LMP_ENOMEM;
  }
  if (PQstatus(db->conn) != CONNECTION_OK) {
    set_err(db, PQerrorMessage(db->conn));
    db->refused = refused(db->err);
    PQfinish(db->conn);
    db->conn = NULL;
    return LMP_ERETRY;
  }
  PQsetNoticeProcessor(db->conn, quiet_notices, NULL);
  db->cache_ms = mono_ms();
  db->refused = 0;
  return 0;
}

/* SQLSTATE classes the environment causes: connection exceptions (08), insufficient
 * resources (53), operator intervention such as a restart or a statement timeout
 * (57), system errors (58), serialization failure and deadlock (40001, 40P01), and
 * a lock that could not be had (55P03). Everything else is the statement's fault. */
int lmp__db_classify(PGconn *conn, const PGresult *res) {
  if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
    return LMP_ERETRY;
  if (res == NULL)
    return LMP_ENOMEM;
  const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  if (st == NULL)
    return LMP_ERETRY; /* no answer from the server: the connection broke */
  if (strncmp(st, "08", 2) == 0 || strncmp(st, "53", 2) == 0 || strncmp(st, "57", 2) == 0 ||
      strncmp(st, "58", 2) == 0 || strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 ||
      strcmp(st, "55P03") == 0)
    return LMP_ERETRY;
  return LMP_EDB;
}

static unsigned long hash(const char *s) {
  unsigned long h = 5381;
  for (; *s; s++)
    h = h * 33 + (unsigned char)*s;
  return h;
}

static int cached(const struct lmp_db *db, const char *sql) {
  unsigned long h = hash(sql);
  for (int i = 0; i < db->ncache; i++)
    if (db->cache[i].hash == h && strcmp(db->cache[i].sql, sql) == 0)
      return i;
  return -1;
}

/* sql, a literal, is prepared as lmp_<ncache> from now. */
static void cache_add(struct lmp_db *db, const char *sql) {
  db->cache[db->ncache].sql = sql;
  db->cache[db->ncache].hash = hash(sql);
  db->ncache++;
}

/* The name of sql's prepared statement on this connection, preparing it the first
 * time; NULL when the cache is full (the statement then runs unnamed). */
static int prepared(struct lmp_db *db, const char *sql, int n, char name[16], int *rc) {
  *rc = 0;
  int i = cached(db, sql);
  if (i >= 0) {
    snprintf(name, 16, "lmp_%d", i);
    return 1;
  }
  if (db->ncache == LMP_DB_CACHE)
    return 0;
  snprintf(name, 16, "lmp_%d", db->ncache);
  PGresult *res = PQprepare(db->conn, name, sql, n, NULL);
  if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
    set_result_err(db, res);
    *rc = lmp__db_classify(db->conn, res);
    PQclear(res);
    return 0;
  }
  PQclear(res);
  cache_add(db, sql);
  return 1;
}

#define DEALLOCATED (-2) /* the queue's mark of DEALLOCATE ALL */

/* The connection answered out of turn, or went: it is dropped (the next transaction
 * connects again), and what was sent on it is forgotten with it. */
static int broken(struct lmp_db *db, int keep_err) {
  if (!keep_err)
    set_err(db, db->conn ? PQerrorMessage(db->conn) : "not connected");
  if (db->conn)
    PQfinish(db->conn);
  db->conn = NULL;
  db->ncache = 0;
  db->nqueue = 0;
  return LMP_ERETRY;
}

int lmp__db_send(struct lmp_db *db, const char *sql, int n, const char *const *params, const int *lengths,
                 const int *formats, int prepare) {
  if (db->conn == NULL) {
    set_err(db, "not connected");
    return LMP_ERETRY;
  }
  if (db->nqueue + 2 > LMP_DB_QUEUE) {
    int r = lmp__db_sync(db);
    if (r < 0)
      return r;
  }
  if (PQpipelineStatus(db->conn) == PQ_PIPELINE_OFF) {
    if (!PQenterPipelineMode(db->conn))
      return broken(db, 0);
    /* A flight starts (a transaction's BEGIN): at most every LMP_DB_REPLAN_MS the
     * prepared statements go first, and each is prepared again, planned for the
     * tables as they are now, in this flight or the next it is used in. */
    long long now = mono_ms();
    if (db->ncache && now - db->cache_ms >= LMP_DB_REPLAN_MS) {
      if (!PQsendQueryParams(db->conn, "DEALLOCATE ALL", 0, NULL, NULL, NULL, NULL, 0))
        return broken(db, 0);
      db->queue[db->nqueue].prepare = 0;
      db->queue[db->nqueue++].idx = DEALLOCATED;
      db->ncache = 0;
      db->cache_ms = now;
    }
  }
  char name[16];
  int idx = prepare ? cached(db, sql) : -1;
  if (prepare && idx < 0 && db->ncache < LMP_DB_CACHE) {
    /* Prepared in the same flight: a failure of it fails the statement after it too. */
    idx = db->ncache;
    snprintf(name, sizeof(name), "lmp_%d", idx);
    if (!PQsendPrepare(db->conn, name, sql, n, NULL))
      return broken(db, 0);
    cache_add(db, sql);
    db->queue[db->nqueue].prepare = 1;
    db->queue[db->nqueue++].idx = idx;
  }
  int ok;
  if (idx >= 0) {
    snprintf(name, sizeof(name), "lmp_%d", idx);
    ok = PQsendQueryPrepared(db->conn, name, n, params, lengths, formats, 0);
  } else {
    ok = PQsendQueryParams(db->conn, sql, n, NULL, params, lengths, formats, 0);
  }
  if (!ok)
    return broken(db, 0);
  db->queue[db->nqueue].prepare = 0;
  db->queue[db->nqueue++].idx = idx;
  return 0;
}

/* One sync for everything sent; each answer read in order. The first failure is the
 * result; the server skipped what came after it (PGRES_PIPELINE_ABORTED), so the
 * statements prepared from there on do not exist and leave the cache. *last, when
 * asked, gets the last statement's result if nothing failed. A DEALLOCATE ALL that
 * failed leaves the server's statements where the cache no longer knows them: the
 * connection goes, and its successor starts with neither. */
static int collect(struct lmp_db *db, PGresult **last) {
  if (!PQpipelineSync(db->conn))
    return broken(db, 0);
  int rc = 0, stale = 0;
  for (int i = 0; i < db->nqueue; i++) {
    PGresult *res = PQgetResult(db->conn);
    if (res == NULL)
      return broken(db, rc < 0);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok && rc == 0) {
      set_result_err(db, res);
      rc = lmp__db_classify(db->conn, res);
    }
    if (!ok && db->queue[i].prepare && db->queue[i].idx < db->ncache)
      db->ncache = db->queue[i].idx;
    stale |= !ok && db->queue[i].idx == DEALLOCATED;
    if (ok && last && i == db->nqueue - 1)
      *last = res;
    else
      PQclear(res);
    if ((res = PQgetResult(db->conn)) != NULL) { /* each answer ends with a NULL */
      PQclear(res);
      return broken(db, rc < 0);
    }
  }
  PGresult *sync = PQgetResult(db->conn);
  int synced = sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
  PQclear(sync);
  if (!synced || !PQexitPipelineMode(db->conn) || stale)
    return broken(db, rc < 0);
  db->nqueue = 0;
  return rc;
}

int lmp__db_sync(struct lmp_db *db) {
  if (db->nqueue == 0)
    return 0;
  if (db->conn == NULL)
    return broken(db, 0);
  return collect(db, NULL);
}

void lmp__db_rollback(struct lmp_db *db) {
  lmp__db_sync(db); /* its failure is the one being rolled back, or a connection gone */
  if (db->conn && PQstatus(db->conn) == CONNECTION_OK)
    PQclear(PQexec(db->conn, "ROLLBACK"));
}

int lmp__db_query(struct lmp_db *db, const char *sql, int n, const char *const *params,
                  const int *lengths, const int *formats, int prepare, PGresult **out) {
  if (out)
    *out = NULL;
  if (db->conn == NULL) {
    set_err(db, "not connected");
    return LMP_ERETRY;
  }
  if (db->nqueue) { /* sent with what waits for its answer, in one round trip */
    PGresult *res = NULL;
    int r = lmp__db_send(db, sql, n, params, lengths, formats, prepare);
    if (r == 0)
      r = collect(db, &res);
    if (r == 0 && out)
      *out = res;
    else
      PQclear(res);
    return r;
  }
  char name[16];
  int rc = 0;
  PGresult *res;
  if (prepare && prepared(db, sql, n, name, &rc))
    res = PQexecPrepared(db->conn, name, n, params, lengths, formats, 0);
  else if (rc < 0)
    return rc;
  else
    res = PQexecParams(db->conn, sql, n, NULL, params, lengths, formats, 0);
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    if (out)
      *out = res;
    else
      PQclear(res);
    return 0;
  }
  set_result_err(db, res);
  rc = lmp__db_classify(db->conn, res);
  PQclear(res);
  return rc;
}

/* Several statements in one string (simple query protocol); a failure says what was
 * being done, and is classified as any statement's. */
static int exec_script(struct lmp_db *db, const char *sql, const char *what) {
  PGresult *res = PQexec(db->conn, sql);
  int r = 0;
  if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
    char msg[400];
    snprintf(msg, sizeof(msg), "%s: %s", what, res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
    set_err(db, msg);
    r = lmp__db_classify(db->conn, res);
  }
  PQclear(res);
  return r;
}

/* Lets role read and write the rows of every table and sequence there is, in the
 * migration's transaction: tables a migration created belong to the migrating role. */
static int grant_rows(struct lmp_db *db, const char *role) {
  char *id = PQescapeIdentifier(db->conn, role, strlen(role));
  if (id == NULL) {
    set_err(db, PQerrorMessage(db->conn));
    return LMP_ENOMEM;
  }
  struct lmp_buf b = {0};
  /* The ledger of migrations it may read, never change: a row it deleted or added
   * would make the owner apply a migration again, or skip one. */
  int r = lmp_buf_printf(&b,
                         "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %s; "
                         "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %s; "
                         "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON lmp_schema_migrations FROM %s",
                         id, id, id);
  PQfreemem(id);
  if (r < 0)
    return r;
  char what[128];
  snprintf(what, sizeof(what), "granting %.63s its rows", role);
  r = exec_script(db, b.data, what);
  lmp_buf_free(&b);
  return r;
}

/* Every table and sequence there is belongs to the role migrating: one that does not
 * own a table can neither change it nor grant on it (a mere warning), and its owner
 * keeps every right. The tables of a database made before the roles were apart are
 * the daemon's own role's until REASSIGN OWNED gives them over. */
static int owned(struct lmp_db *db) {
  PGresult *res;
  int r = lmp__db_query(db, "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
                            "JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S') "
                            "AND pg_get_userbyid(c.relowner) <> current_user LIMIT 1",
                        0, NULL, NULL, NULL, 0, &res);
  if (r < 0)
    return r;
  if (PQntuples(res) == 1) {
    char msg[400];
    snprintf(msg, sizeof(msg), "table %.63s belongs to %.63s, not to the role that migrates: give it over "
             "(REASSIGN OWNED BY %.63s TO the migrating role, in this database)", PQgetvalue(res, 0, 0),
             PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 1));
    set_err(db, msg);
    r = LMP_EDB;
  }
  PQclear(res);
  return r;
}

int lmp__db_migrate(struct lmp_db *db, const char *scope, const struct lmp_embedded *migrations) {
  return lmp__db_migrate_grant(db, scope, migrations, NULL);
}

int lmp__db_migrate_grant(struct lmp_db *db, const char *scope, const struct lmp_embedded *migrations,
                          const char *grant_to) {
  int r = lmp__db_ensure(db);
  if (r < 0)
    return r;
  if ((r = lmp__db_query(db, "BEGIN", 0, NULL, NULL, NULL, 0, NULL)) < 0)
    return r;
  /* One lock for every daemon's migrations: several instances may start at once. */
  r = lmp__db_query(db, "SELECT pg_advisory_xact_lock(7245001)", 0, NULL, NULL, NULL, 0, NULL);
  if (r == 0 && grant_to)
    r = owned(db);
  /* Created when missing only: CREATE ... IF NOT EXISTS needs the right to create
   * even when the table is there, which a role that only writes rows lacks. */
  if (r == 0)
    r = lmp__db_query(db, "DO $$ BEGIN IF to_regclass('lmp_schema_migrations') IS NULL THEN "
                          "CREATE TABLE lmp_schema_migrations (name text PRIMARY KEY, "
                          "applied_at timestamptz NOT NULL DEFAULT now()); END IF; END $$",
                      0, NULL, NULL, NULL, 0, NULL);
  for (const struct lmp_embedded *m = migrations; r == 0 && m->name; m++) {
    char name[256];
    snprintf(name, sizeof(name), "%s/%s", scope, m->name);
    const char *params[] = {name};
    PGresult *res;
    r = lmp__db_query(db, "INSERT INTO lmp_schema_migrations(name) VALUES ($1) ON CONFLICT DO NOTHING",
                      1, params, NULL, NULL, 0, &res);
    if (r < 0)
      break;
    int fresh = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    if (!fresh)
      continue;
    char what[300];
    snprintf(what, sizeof(what), "migration %s", name);
    r = exec_script(db, m->text, what);
  }
  if (r == 0 && grant_to)
    r = grant_rows(db, grant_to);
  if (r == 0)
    r = lmp__db_query(db, "COMMIT", 0, NULL, NULL, NULL, 0, NULL);
  else if (db->conn && PQstatus(db->conn) == CONNECTION_OK)
    PQclear(PQexec(db->conn, "ROLLBACK"));
  return r;
}

int lmp__db_pending(struct lmp_db *db, const char *scope, const struct lmp_embedded *migrations, char *first,
                    size_t firstlen) {
  int r = lmp__db_ensure(db);
  if (r < 0)
    return r;
  PGresult *res;
  r = lmp__db_query(db, "SELECT to_regclass('lmp_schema_migrations') IS NOT NULL", 0, NULL, NULL, NULL, 0, &res);
  if (r < 0)
    return r;
  int table = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  PQclear(res);
  int pending = 0;
  for (const struct lmp_embedded *m = migrations; m->name; m++) {
    char name[256];
    snprintf(name, sizeof(name), "%s/%s", scope, m->name);
    int applied = 0;
    if (table) {
      const char *params[] = {name};
      if ((r = lmp__db_query(db, "SELECT 1 FROM lmp_schema_migrations WHERE name = $1", 1, params, NULL, NULL, 0,
                             &res)) < 0)
        return r;
      applied = PQntuples(res) == 1;
      PQclear(res);
    }
    if (!applied && pending++ == 0)
      snprintf(first, firstlen, "%s", name);
  }
  return pending;
}

int lmp__db_migrate_all(struct lmp_db *db, const struct lmp_config *cfg, const char *dbname, const char *service,
                        const struct lmp_embedded *migrations) {
  if (!*cfg->pg_migrate_user) {
    int r = lmp__db_migrate(db, "runtime", lmp_runtime_migrations);
    return r < 0 ? r : lmp__db_migrate(db, service, migrations);
  }
  /* The owner's connection lives as long as the migration: the daemon's own role
   * reads and writes rows and can change no table. */
  struct lmp_db own;
  char app[96];
  snprintf(app, sizeof(app), "lmp-%s-migrate", service);
  int r = init_as(&own, cfg, dbname, app, cfg->pg_migrate_user, "pg.migrate_password_file",
                  cfg->pg_migrate_password_file, NULL);
  /* Each transaction grants what it made: a table is never there without its grant. */
  if (r == 0 && (r = lmp__db_migrate_grant(&own, "runtime", lmp_runtime_migrations, cfg->pg_user)) == 0)
    r = lmp__db_migrate_grant(&own, service, migrations, cfg->pg_user);
  if (r < 0) {
    snprintf(db->err, sizeof(db->err), "as %.63s: %.400s", cfg->pg_migrate_user, own.err);
    db->refused = own.refused;
  }
  lmp__db_close(&own);
  return r;
}
