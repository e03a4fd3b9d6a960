/* lmpctl as a partner's user: login (the device grant for a person at a terminal, the
 * password grant for scripts), logout, whoami, and the access token submit --door
 * sends to intake's front door. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "lmp/base/error.h"
#include "signin.h"

/* Exit statuses of login. */
enum {
  LOGIN_OK = 0,
  LOGIN_FAILED = 1,  /* the issuer did not answer, or not as OAuth says; the token not stored */
  LOGIN_USAGE = 2,   /* the command line or the settings */
  LOGIN_REFUSED = 3, /* a wrong password, or the person declined */
  LOGIN_EXPIRED = 4, /* nobody approved the code in time */
};

#define DEVICE_GRANT "urn:ietf:params:oauth:grant-type:device_code"
#define REFRESH_MARGIN_S 30 /* an access token that expires sooner is renewed first */

static const char *configured_issuer(void) {
  if (cfg.oidc_issuer == NULL || *cfg.oidc_issuer == '\0') {
    fprintf(stderr, "lmpctl: oidc.issuer is not set: name the identity provider partners sign in to in the "
                    "configuration file or LMP_OIDC_ISSUER (deploy/stack env prints it)\n");
    exit(LOGIN_USAGE);
  }
  return cfg.oidc_issuer;
}

/* Whether two issuer addresses are the same, a trailing '/' aside. */
static int same_issuer(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  while (na && a[na - 1] == '/')
    na--;
  while (nb && b[nb - 1] == '/')
    nb--;
  return na == nb && strncmp(a, b, na) == 0;
}

static void token_path(char *path, size_t len) {
  char err[300];
  if (session_path(path, len, err, sizeof(err)) < 0)
    die("%s", err);
}

/* "nora <nora@northwind.example> for partner-northwind", from the access token. */
static const char *identity(const json_t *session, char *buf, size_t len) {
  json_t *c = jwt_claims(json_string_value(json_object_get(session, "access_token")));
  const char *user = json_string_value(json_object_get(c, "preferred_username"));
  const char *email = json_string_value(json_object_get(c, "email"));
  const char *partner = json_string_value(json_object_get(c, cfg.oidc_partner_claim));
  char u[128], e[160], p[160];
  snprintf(buf, len, "%s%s%s%s for %s", printable(user ? user : json_string_value(json_object_get(c, "sub")), u,
                                                  sizeof(u)),
           email ? " <" : "", email ? printable(email, e, sizeof(e)) : "", email ? ">" : "",
           partner ? printable(partner, p, sizeof(p)) : "no partner (the front door takes only a partner's users)");
  json_decref(c);
  return buf;
}

/* Stores the tokens of a grant and says who signed in. */
static int signed_in(const struct idp *p, const json_t *answer, const char *path) {
  char err[1200], who[600], exp[80];
  json_t *s = session_from_answer(p, answer, NULL, err, sizeof(err));
  if (s == NULL) {
    fprintf(stderr, "lmpctl: %s\n", err);
    return LOGIN_FAILED;
  }
  int r = session_write(path, s, err, sizeof(err));
  if (r < 0) {
    fprintf(stderr, "lmpctl: signed in, but the tokens were not kept: %s\n", err);
    json_decref(s);
    return LOGIN_FAILED;
  }
  printf("signed in as %s\n", identity(s, who, sizeof(who)));
  printf("  at %s (client %s); the access token expires %s, renewed as needed\n", p->issuer, p->client_id,
         when(json_integer_value(json_object_get(s, "expires_at")), exp, sizeof(exp)));
  printf("  tokens kept in %s\n", path);
  json_decref(s);
  return LOGIN_OK;
}

/* The exit status for a grant the issuer refused: the person's doing, or not. */
static int refused(const char *code) {
  return strcmp(code, "invalid_grant") == 0 || strcmp(code, "access_denied") == 0 ? LOGIN_REFUSED : LOGIN_FAILED;
}

/* One line of standard input, without its line end; not echoed when it is a terminal.
 * Unbuffered, so that no copy stays in stdio's buffer. */
static char *read_password(const char *user) {
  struct termios old, quiet;
  int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
  setvbuf(stdin, NULL, _IONBF, 0);
  if (tty) {
    fprintf(stderr, "Password for %s: ", user);
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n = getline(&line, &cap, stdin);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fputc('\n', stderr);
  }
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  if (n <= 0) {
    if (line)
      explicit_bzero(line, cap);
    free(line);
    fprintf(stderr, "lmpctl: --password-stdin: standard input held no password (one line is read)\n");
    exit(LOGIN_USAGE);
  }
  return line;
}

static int password_grant(const struct idp *p, const char *user, const char *path) {
  char *password = read_password(user);
  long st;
  json_t *a;
  char err[1200], why[800], shown[128];
  const char *code;
  int r = idp_post(p, p->token, &st, &a, err, sizeof(err), "grant_type", "password", "client_id", p->client_id,
                   "username", user, "password", password, "scope", "openid", NULL);
  explicit_bzero(password, strlen(password));
  free(password);
  if (r < 0) {
    fprintf(stderr, "lmpctl: %s\n", err);
    return LOGIN_FAILED;
  }
  if (st != 200) {
    idp_error(a, st, &code, why, sizeof(why));
    fprintf(stderr, "lmpctl: %s did not sign %s in: %s\n", p->issuer, printable(user, shown, sizeof(shown)), why);
    r = refused(code); /* code lives in a */
    json_decref(a);
    return r;
  }
  r = signed_in(p, a, path);
  json_decref(a);
  return r;
}

static void pause_s(int s) {
  struct timespec ts = {s, 0};
  while (nanosleep(&ts, &ts) < 0)
    ;
}

/* RFC 8628: the person approves a code in a browser, anywhere; lmpctl asks the token
 * endpoint at the interval the issuer gives until they have, or declined, or the code
 * expired. */
static int device_grant(const struct idp *p, const char *path) {
  char err[1200], why[800];
  const char *code;
  if (p->device == NULL) {
    fprintf(stderr, "lmpctl: %s offers no sign-in from a device (no device_authorization_endpoint); "
                    "sign in with lmpctl login USERNAME --password-stdin\n", p->issuer);
    return LOGIN_FAILED;
  }
  long st;
  json_t *d;
  if (idp_post(p, p->device, &st, &d, err, sizeof(err), "client_id", p->client_id, "scope", "openid", NULL) < 0) {
    fprintf(stderr, "lmpctl: %s\n", err);
    return LOGIN_FAILED;
  }
  if (st != 200) {
    idp_error(d, st, &code, why, sizeof(why));
    fprintf(stderr, "lmpctl: %s refused a sign-in from a device for client %s: %s\n", p->issuer, p->client_id, why);
    json_decref(d);
    return LOGIN_FAILED;
  }
  const char *device_code = json_string_value(json_object_get(d, "device_code"));
  const char *user_code = json_string_value(json_object_get(d, "user_code"));
  const char *uri = json_string_value(json_object_get(d, "verification_uri"));
  const char *complete = json_string_value(json_object_get(d, "verification_uri_complete"));
  json_int_t expires_in = json_integer_value(json_object_get(d, "expires_in"));
  json_t *iv = json_object_get(d, "interval");
  if (device_code == NULL || user_code == NULL || uri == NULL || expires_in <= 0) {
    fprintf(stderr, "lmpctl: %s answered without device_code, user_code, verification_uri and expires_in\n",
            p->device);
    json_decref(d);
    return LOGIN_FAILED;
  }
  /* 5 s when the issuer names no interval (RFC 8628, 3.2). */
  int interval = json_is_integer(iv) ? (int)json_integer_value(iv) : 5;
  if (interval < 1 || interval > 60)
    interval = 5;
  char u[1100], c[64], uc[1100];
  if (complete)
    fprintf(stderr, "To sign in, open %s\nor open %s and enter the code %s\n", printable(complete, uc, sizeof(uc)),
            printable(uri, u, sizeof(u)), printable(user_code, c, sizeof(c)));
  else
    fprintf(stderr, "To sign in, open %s and enter the code %s\n", printable(uri, u, sizeof(u)),
            printable(user_code, c, sizeof(c)));
  fprintf(stderr, "Waiting for the sign-in (the code expires in %lld minutes)...\n", (long long)(expires_in + 59) / 60);

  time_t deadline = time(NULL) + (time_t)expires_in;
  int rc = -1;
  while (rc < 0 && time(NULL) + interval < deadline) {
    pause_s(interval);
    json_t *a;
    if (idp_post(p, p->token, &st, &a, err, sizeof(err), "grant_type", DEVICE_GRANT, "device_code", device_code,
                 "client_id", p->client_id, NULL) < 0) {
      /* RFC 8628, 3.5: back off while the issuer does not answer. */
      interval = interval * 2 > 60 ? 60 : interval * 2;
      fprintf(stderr, "lmpctl: %s; asking again in %d s\n", err, interval);
      continue;
    }
    if (st == 200) {
      rc = signed_in(p, a, path);
    } else {
      idp_error(a, st, &code, why, sizeof(why));
      if (strcmp(code, "authorization_pending") == 0) {
        /* not yet */
      } else if (strcmp(code, "slow_down") == 0) {
        interval += 5; /* RFC 8628, 3.5: for this and every later request */
      } else if (strcmp(code, "access_denied") == 0) {
        fprintf(stderr, "lmpctl: the sign-in was declined at %s\n", p->issuer);
        rc = LOGIN_REFUSED;
      } else if (strcmp(code, "expired_token") == 0) {
        fprintf(stderr, "lmpctl: the code %s expired before anybody approved it: run lmpctl login again\n",
                printable(user_code, c, sizeof(c)));
        rc = LOGIN_EXPIRED;
      } else {
        fprintf(stderr, "lmpctl: %s did not sign you in: %s\n", p->issuer, why);
        rc = refused(code);
      }
    }
    json_decref(a);
  }
  if (rc < 0) {
    fprintf(stderr, "lmpctl: the code %s expired before anybody approved it: run lmpctl login again\n",
            printable(user_code, c, sizeof(c)));
    rc = LOGIN_EXPIRED;
  }
  json_decref(d);
  return rc;
}

int cmd_login(char **args, int nargs, const struct ctl_opts *o) {
  if (nargs > 1)
    die_usage("login takes at most one argument, the USERNAME");
  if (nargs == 1 && !o->password_stdin)
    die_usage("login USERNAME reads the password from standard input: add --password-stdin "
              "(without a USERNAME, lmpctl login signs in with a browser)");
  if (nargs == 0 && o->password_stdin)
    die_usage("--password-stdin needs the USERNAME: lmpctl login USERNAME --password-stdin");
  const char *issuer = configured_issuer();
  char path[4096], err[1600];
  token_path(path, sizeof(path));
  /* A file that is not lmpctl's is never replaced by one. */
  json_t *old;
  int r = session_read(path, 1, &old, err, sizeof(err));
  json_decref(old);
  if (r == LMP_EINVAL || r == LMP_EIO || session_writable(path, err, sizeof(err)) < 0) {
    fprintf(stderr, "lmpctl: %s\n", err);
    return LOGIN_FAILED;
  }
  struct idp p;
  if (idp_discover(&p, issuer, ctl.oidc_client_id, err, sizeof(err)) < 0) {
    fprintf(stderr, "lmpctl: %s\n", err);
    return LOGIN_FAILED;
  }
  r = nargs == 1 ? password_grant(&p, args[0], path) : device_grant(&p, path);
  idp_clear(&p);
  return r;
}

/* Ends the session at the issuer: RFC 7009's revocation of the refresh token, else
 * the end-session endpoint with it. 0 ended; -1 not (err says why); 1 the issuer
 * offers neither. */
static int end_session(const json_t *s, char *err, size_t errlen) {
  const char *issuer = json_string_value(json_object_get(s, "issuer"));
  const char *client = json_string_value(json_object_get(s, "client_id"));
  const char *refresh = json_string_value(json_object_get(s, "refresh_token"));
  const char *access = json_string_value(json_object_get(s, "access_token"));
  struct idp p;
  if (idp_discover(&p, issuer, client, err, errlen) < 0)
    return -1;
  long st = 0;
  json_t *a = NULL;
  int r = 1;
  char why[800];
  if (p.revocation)
    r = idp_post(&p, p.revocation, &st, &a, err, errlen, "token", refresh ? refresh : access, "token_type_hint",
                 refresh ? "refresh_token" : "access_token", "client_id", client, NULL);
  else if (p.end_session && refresh)
    r = idp_post(&p, p.end_session, &st, &a, err, errlen, "client_id", client, "refresh_token", refresh, NULL);
  if (r == 0 && st != 200 && st != 204) {
    snprintf(err, errlen, "%s: %s", p.revocation ? p.revocation : p.end_session, idp_error(a, st, NULL, why,
                                                                                         sizeof(why)));
    r = -1;
  }
  json_decref(a);
  idp_clear(&p);
  return r < 0 ? -1 : r;
}

int cmd_logout(char **args, int nargs, const struct ctl_opts *o) {
  char path[4096], err[1600];
  token_path(path, sizeof(path));
  json_t *s;
  int r = session_read(path, 1, &s, err, sizeof(err));
  if (r == 1) {
    printf("not signed in (no %s)\n", path);
    return 0;
  }
  if (r == LMP_EINVAL || r == LMP_EIO) {
    fprintf(stderr, "lmpctl: %s\n", err);
    return 1;
  }
  int ended = -1;
  const char *issuer = "";
  if (r == LMP_EREJECT) {
    fprintf(stderr, "lmpctl: %s; its session is left to expire\n", err);
  } else {
    issuer = json_string_value(json_object_get(s, "issuer"));
    ended = end_session(s, err, sizeof(err));
    if (ended < 0)
      fprintf(stderr, "lmpctl: the session at %s was not ended: %s\n", issuer, err);
  }
  if (session_delete(path, err, sizeof(err)) < 0) {
    fprintf(stderr, "lmpctl: %s\n", err);
    json_decref(s);
    return 1;
  }
  if (ended == 0)
    printf("signed out: the session at %s is ended; %s removed\n", issuer, path);
  else if (ended == 1)
    printf("signed out: %s removed (%s offers no way to end the session; it expires by itself)\n", path, issuer);
  else
    printf("%s removed\n", path);
  json_decref(s);
  return ended < 0 ? 1 : 0;
}

int cmd_whoami(char **args, int nargs, const struct ctl_opts *o) {
  char path[4096], err[1600], who[600], exp[80], rexp[80];
  token_path(path, sizeof(path));
  json_t *s;
  int r = session_read(path, 0, &s, err, sizeof(err));
  if (r == 1) {
    fprintf(stderr, "lmpctl: not signed in (no %s): run lmpctl login\n", path);
    return 1;
  }
  if (r < 0) {
    fprintf(stderr, "lmpctl: %s\n", err);
    return 1;
  }
  const char *issuer = json_string_value(json_object_get(s, "issuer"));
  long long expires = json_integer_value(json_object_get(s, "expires_at"));
  json_t *rx = json_object_get(s, "refresh_expires_at");
  int has_refresh = json_is_string(json_object_get(s, "refresh_token"));
  if (o->json) {
    json_t *c = jwt_claims(json_string_value(json_object_get(s, "access_token")));
    json_t *out = json_pack("{s:O?, s:O?, s:O?, s:O, s:O, s:O, s:O?, s:s}", "username",
                            json_object_get(c, "preferred_username"), "email", json_object_get(c, "email"),
                            "partner_id", json_object_get(c, cfg.oidc_partner_claim), "issuer",
                            json_object_get(s, "issuer"), "client_id", json_object_get(s, "client_id"), "expires_at",
                            json_object_get(s, "expires_at"), "refresh_expires_at", rx, "token_file", path);
    json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(out);
    json_decref(c);
  } else {
    printf("%s\n", identity(s, who, sizeof(who)));
    printf("  issuer         %s (client %s)\n", issuer, json_string_value(json_object_get(s, "client_id")));
    printf("  access token   %s %s\n", expires > (long long)time(NULL) ? "expires" : "expired",
           when(expires, exp, sizeof(exp)));
    if (has_refresh && json_is_integer(rx))
      printf("  refresh token  until %s\n", when(json_integer_value(rx), rexp, sizeof(rexp)));
    else if (has_refresh)
      printf("  refresh token  held\n");
    printf("  token file     %s\n", path);
  }
  if (cfg.oidc_issuer && *cfg.oidc_issuer && !same_issuer(cfg.oidc_issuer, issuer))
    fprintf(stderr, "lmpctl: note: oidc.issuer is now %s, not the issuer signed in to: run lmpctl login\n",
            cfg.oidc_issuer);
  json_decref(s);
  return 0;
}

/* Renews the session with its refresh token; dies saying to sign in again when it
 * cannot. The renewed session replaces *s. */
static void renew(const char *path, json_t **s) {
  const char *refresh = json_string_value(json_object_get(*s, "refresh_token"));
  char err[1600], why[800], exp[80];
  if (refresh == NULL)
    die("the sign-in expired %s and holds no refresh token: run lmpctl login",
        when(json_integer_value(json_object_get(*s, "expires_at")), exp, sizeof(exp)));
  struct idp p;
  if (idp_discover(&p, json_string_value(json_object_get(*s, "issuer")),
                   json_string_value(json_object_get(*s, "client_id")), err, sizeof(err)) < 0)
    die("the access token could not be renewed: %s: run lmpctl login", err);
  long st;
  json_t *a;
  if (idp_post(&p, p.token, &st, &a, err, sizeof(err), "grant_type", "refresh_token", "refresh_token", refresh,
               "client_id", p.client_id, NULL) < 0)
    die("the access token could not be renewed: %s: run lmpctl login", err);
  if (st != 200)
    die("the access token could not be renewed: %s: run lmpctl login", idp_error(a, st, NULL, why, sizeof(why)));
  json_t *fresh = session_from_answer(&p, a, *s, err, sizeof(err));
  json_decref(a);
  idp_clear(&p);
  if (fresh == NULL)
    die("the access token could not be renewed: %s: run lmpctl login", err);
  if (session_write(path, fresh, err, sizeof(err)) < 0)
    die("renewed the access token, but could not keep it: %s", err);
  json_decref(*s);
  *s = fresh;
}

char *door_token(char *who, size_t wholen) {
  char path[4096], err[1600];
  token_path(path, sizeof(path));
  json_t *s;
  int r = session_read(path, 0, &s, err, sizeof(err));
  if (r == 1)
    die("not signed in (no %s): run lmpctl login; the front door takes a partner's access token", path);
  if (r < 0)
    die("%s", err);
  const char *issuer = json_string_value(json_object_get(s, "issuer"));
  if (cfg.oidc_issuer && *cfg.oidc_issuer && !same_issuer(cfg.oidc_issuer, issuer))
    die("signed in at %s, but oidc.issuer is %s: run lmpctl login", issuer, cfg.oidc_issuer);
  if (json_integer_value(json_object_get(s, "expires_at")) - (long long)time(NULL) < REFRESH_MARGIN_S)
    renew(path, &s);
  if (who)
    identity(s, who, wholen);
  char *token = strdup(json_string_value(json_object_get(s, "access_token")));
  json_decref(s);
  if (token == NULL)
    die("out of memory");
  return token;
}
