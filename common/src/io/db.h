/* PostgreSQL connections of the runtime: connect, migrate, run statements, classify
 * failures as the environment's (retry) or the statement's (final). Private to common/. */
#ifndef LMP_DB_H
#define LMP_DB_H

#include <libpq-fe.h>

#include "lmp/base/config.h"
#include "lmp/base/embed.h"

#define LMP_DB_CACHE 128 /* prepared statements kept per connection */
#define LMP_DB_QUEUE 16  /* statements sent ahead of their answers (pipeline mode) */
/* Prepared statements are made again this often. PostgreSQL keeps a statement's
 * generic plan until an ANALYZE invalidates it, and one planned while a table was
 * small scans it whole once it has grown (a fresh database under a burst: the
 * notifier's update of the mails it sent took 10 ms a call at 40,000 rows). */
#define LMP_DB_REPLAN_MS 30000

struct lmp_db {
  char *conninfo;              /* libpq keyword/value string, owned */
  PGconn *conn;                /* NULL until connected */
  char err[512];               /* why the last call failed */
  int refused;                 /* the last connection failed on credentials, TLS or rights */
  struct {
    const char *sql;           /* the statement's text, owned by the caller (a literal) */
    unsigned long hash;
  } cache[LMP_DB_CACHE];       /* prepared as lmp_<index> on this connection */
  int ncache;
  long long cache_ms;          /* when the cache was started (monotonic ms) */
  struct {
    int prepare;               /* the preparation of cache entry idx, else a statement */
    int idx;
  } queue[LMP_DB_QUEUE];       /* sent, their answers not read yet, in order */
  int nqueue;
};

/* Builds the connection string from the settings; application_name names the daemon
 * and the role of the connection. statement_timeout bounds every statement. */
int lmp__db_init(struct lmp_db *db, const struct lmp_config *cfg, const char *dbname,
                 const char *application_name);
void lmp__db_close(struct lmp_db *db);
/* Connects when there is no healthy connection: 0, LMP_ERETRY (server away, with the
 * reason in err) or LMP_ENOMEM. */
int lmp__db_ensure(struct lmp_db *db);
/* Runs a statement with parameters (lengths and formats may be NULL: text). With
 * prepare, the statement is prepared once per connection and reused (pass literals
 * only). Returns 0 with *out set (the caller PQclear's it; out may be NULL to drop
 * the result), LMP_ERETRY for a fault of the environment (connection lost, deadlock,
 * serialization failure, statement timeout, server shutting down, out of resources),
 * LMP_EDB when the server refused the statement itself, LMP_ENOMEM. */
int lmp__db_query(struct lmp_db *db, const char *sql, int n, const char *const *params,
                  const int *lengths, const int *formats, int prepare, PGresult **out);
/* Sends a statement without waiting for its answer (libpq's pipeline mode): the next
 * lmp__db_query, or lmp__db_sync, sends its own with it and reads every answer in
 * order. A failure of a statement sent so surfaces there, with its own message, as
 * the failure of the call that read it; the server skips what was sent after it. For
 * statements whose answer nobody reads but whose failure fails the transaction
 * (BEGIN, a delete, the outbox's insert before COMMIT). Returns 0, or LMP_ERETRY when
 * the connection is gone. */
int lmp__db_send(struct lmp_db *db, const char *sql, int n, const char *const *params, const int *lengths,
                 const int *formats, int prepare);
/* Reads the answers of what was sent: 0, or the first failure as lmp__db_query's. */
int lmp__db_sync(struct lmp_db *db);
/* Ends the transaction with ROLLBACK, whatever was sent before it; quiet, for the
 * failure paths (a connection that is gone has nothing to roll back). */
void lmp__db_rollback(struct lmp_db *db);
/* The classification above for a failed result of any libpq call on conn. */
int lmp__db_classify(PGconn *conn, const PGresult *res);
/* Applies each migration of a table not yet applied, in order, under an advisory lock
 * so several instances can start together. scope prefixes the names. */
int lmp__db_migrate(struct lmp_db *db, const char *scope, const struct lmp_embedded *migrations);
/* The same, and in its transaction grants grant_to (when not NULL) reading and
 * writing the rows of every table and sequence. */
int lmp__db_migrate_grant(struct lmp_db *db, const char *scope, const struct lmp_embedded *migrations,
                          const char *grant_to);
/* A daemon's migrations, the runtime's and then its own (service names their scope):
 * over db itself, or, when pg.migrate_user is set, over a connection of that role
 * opened and closed here, which then grants pg.user the rows. Errors are in db->err. */
int lmp__db_migrate_all(struct lmp_db *db, const struct lmp_config *cfg, const char *dbname, const char *service,
                        const struct lmp_embedded *migrations);
/* How many of the migrations are not applied (0: all are), the first of them in
 * first; or a negative error. Reads only: for a role that cannot migrate. */
int lmp__db_pending(struct lmp_db *db, const char *scope, const struct lmp_embedded *migrations, char *first,
                    size_t firstlen);

extern const struct lmp_embedded lmp_runtime_migrations[];

#endif
