/* lmpctl's shared parts: settings, options, errors, clients, the command table. */
#ifndef CTL_H
#define CTL_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "lmp/avro/codec.h"
#include "lmp/base/config.h"

/* Options, wherever they appear on the command line. */
struct ctl_opts {
  int new_id;        /* submit: a fresh request id */
  int wait_s;        /* submit, status: wait this long for a final outcome */
  int partitions;    /* topics create */
  int json;          /* status, dlq: print JSON */
  int dry_run;       /* dlq replay: show the plan, send nothing */
  int yes;           /* dlq replay by filters: send what the plan shows */
  const char *daemon; /* dlq: one daemon's dead letters */
  const char *sets[32]; /* submit: --set path=text */
  int nsets;
  const char *topic, *code, *since; /* dlq list and replay filters */
  int limit;         /* dlq: at most this many (0: not given) */
  const char *groups[16]; /* lag: --group, repeatable (none: every daemon's) */
  int ngroups;
  int door;           /* submit: through intake's front door, as the signed-in partner */
  int password_stdin; /* login: the password grant, the password on standard input */
};

/* lmpctl's own settings (ctl.*). */
struct ctl_settings {
  char *admin_token_file; /* bearer token for the daemons' admin routes */
  char *ca_file;          /* CA certificates of the daemons' HTTPS listeners; empty: the system's */
  char *oidc_client_id;   /* the public client lmpctl login signs in as */
  char *token_file;       /* where login keeps the tokens; empty: the user's cache */
};

/* A command: "topics create", its argument count, what it does. */
struct ctl_command {
  const char *name, *sub;   /* sub may be NULL */
  int nargs;                /* arguments after the name (and sub); -1: any */
  int (*run)(char **args, int nargs, const struct ctl_opts *o);
  const char *usage;        /* arguments and one line of what it does */
};

extern struct lmp_config cfg;
extern struct ctl_settings ctl;

void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* A command line lmpctl cannot take: the reason, and exit status 2. */
void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* The schemas, with the other versions of schemas.extra_dir, loaded on first use. */
struct lmp_schemas *schemas(void);
/* A Kafka client with the configured brokers and kafka.property.* (security). */
rd_kafka_t *kafka_client(rd_kafka_type_t type, const char *group);
/* A daemon's public or admin address (admin requests carry the admin token). */
const char *service_url(const char *daemon, int admin);
/* GET (post NULL) or POST JSON; *status the HTTP status, 0 when no answer. */
json_t *http_json(const char *url, const char *post, int admin, long *status);
/* The same with "Authorization: Bearer <bearer>" (NULL: none). */
json_t *http_json_bearer(const char *url, const char *post, const char *bearer, long *status);
/* The signed-in partner's access token for intake's front door (login.c), renewed
 * when it expires within 30 s; who (may be NULL) says whose. Exits saying "run lmpctl
 * login" when there is none or it cannot be renewed. malloc'd. */
char *door_token(char *who, size_t wholen);

/* Text an event or a daemon supplied (n bytes of s; NULL: ""), as it may be shown on a
 * terminal: invalid UTF-8 and NUL become U+FFFD, and every C0 and C1 control character
 * and DEL becomes '?', so no escape sequence or line break of its own reaches the
 * operator's terminal. malloc'd; exits when out of memory. */
char *ctl_printable(const char *s, size_t n);

int cmd_submit(char **args, int nargs, const struct ctl_opts *o);
int cmd_status(char **args, int nargs, const struct ctl_opts *o);
int cmd_dispatch(char **args, int nargs, const struct ctl_opts *o);
int cmd_topics_create(char **args, int nargs, const struct ctl_opts *o);
int cmd_topics_list(char **args, int nargs, const struct ctl_opts *o);
int cmd_group_copy(char **args, int nargs, const struct ctl_opts *o);
int cmd_acls_apply(char **args, int nargs, const struct ctl_opts *o);
int cmd_admin_load(char **args, int nargs, const struct ctl_opts *o);
int cmd_admin_get(char **args, int nargs, const struct ctl_opts *o);
int cmd_schema(char **args, int nargs, const struct ctl_opts *o);
int cmd_schema_check(char **args, int nargs, const struct ctl_opts *o);
int cmd_encode(char **args, int nargs, const struct ctl_opts *o);
int cmd_dlq_list(char **args, int nargs, const struct ctl_opts *o);
int cmd_dlq_show(char **args, int nargs, const struct ctl_opts *o);
int cmd_dlq_acls(char **args, int nargs, const struct ctl_opts *o);
int cmd_dlq_replay(char **args, int nargs, const struct ctl_opts *o);
int cmd_lag(char **args, int nargs, const struct ctl_opts *o);
int cmd_login(char **args, int nargs, const struct ctl_opts *o);
int cmd_logout(char **args, int nargs, const struct ctl_opts *o);
int cmd_whoami(char **args, int nargs, const struct ctl_opts *o);

#endif
