/* PostgreSQL connections for worker threads: connect, migrate, classify errors. */
#ifndef LMP_DB_H
#define LMP_DB_H

#include <libpq-fe.h>

#include "lmp/embed.h"

struct lmp_db {
  char *conninfo;  /* libpq keyword/value string */
  PGconn *conn;    /* NULL until connected */
  char err[512];   /* why the last call failed */
};

/* Builds conninfo from its parts; values are quoted as libpq requires. */
int lmp_db_init(struct lmp_db *db, const char *host, int port, const char *user,
                const char *password, const char *dbname, int connect_timeout_s,
                const char *application_name);
void lmp_db_close(struct lmp_db *db);
/* Connects when there is no healthy connection; LMP_EDB when the server is away. */
int lmp_db_ensure(struct lmp_db *db);
/* Applies each migration of tables not yet applied, in order, under an advisory
 * lock so several instances can start together. scope prefixes the names. */
int lmp_db_migrate(struct lmp_db *db, const char *scope, const struct lmp_embedded *migrations);
/* Runs a statement with text parameters. Returns NULL and sets db->err on failure;
 * *transient says whether retrying later may succeed (connection lost, deadlock,
 * serialization failure, shutdown). */
PGresult *lmp_db_exec(struct lmp_db *db, const char *sql, int nparams, const char *const *params,
                      int *transient);
/* The same with per-parameter lengths and formats (1 = binary, for bytea). */
PGresult *lmp_db_exec_fmt(struct lmp_db *db, const char *sql, int nparams,
                          const char *const *params, const int *lengths, const int *formats,
                          int *transient);
int lmp_db_command(struct lmp_db *db, const char *sql, int *transient);

extern const struct lmp_embedded lmp_runtime_migrations[];

#endif
