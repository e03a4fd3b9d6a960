/* The tokens kept between runs of lmpctl: a JSON file only its owner may read, in a
 * directory only its owner may change, written whole or not at all, never through a
 * symbolic link. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "lmp/base/error.h"
#include "signin.h"

/* What marks a token file as lmpctl's: a file without it is never read as tokens,
 * replaced or removed. */
#define FORMAT "lmpctl-token/1"
#define FILE_MAX (64 * 1024)
#define JWT_MAX 16384

json_t *session_from_answer(const struct idp *p, const json_t *answer, const json_t *renewed, char *err,
                            size_t errlen) {
  const char *type = json_string_value(json_object_get(answer, "token_type"));
  const char *access = json_string_value(json_object_get(answer, "access_token"));
  const char *refresh = json_string_value(json_object_get(answer, "refresh_token"));
  json_t *expires_in = json_object_get(answer, "expires_in");
  json_t *refresh_in = json_object_get(answer, "refresh_expires_in"); /* Keycloak's */
  long long now = (long long)time(NULL), expires_at = 0, refresh_at = 0;
  if (access == NULL || *access == '\0' || strlen(access) > JWT_MAX || type == NULL ||
      strcasecmp(type, "Bearer") != 0) {
    snprintf(err, errlen, "%s answered without a bearer access token", p->token);
    return NULL;
  }
  if (json_is_integer(expires_in) && json_integer_value(expires_in) > 0) {
    expires_at = now + json_integer_value(expires_in);
  } else {
    /* expires_in is only RECOMMENDED (RFC 6749, 5.1): the token's own exp then. */
    json_t *c = jwt_claims(access);
    expires_at = json_is_integer(json_object_get(c, "exp")) ? json_integer_value(json_object_get(c, "exp")) : now;
    json_decref(c);
  }
  if (refresh && json_is_integer(refresh_in) && json_integer_value(refresh_in) > 0)
    refresh_at = now + json_integer_value(refresh_in);
  if (refresh == NULL && renewed) {
    /* The issuer may keep the refresh token it gave before (RFC 6749, 6). */
    refresh = json_string_value(json_object_get(renewed, "refresh_token"));
    refresh_at = json_integer_value(json_object_get(renewed, "refresh_expires_at"));
  }
  json_t *s = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "format", FORMAT, "issuer", p->issuer, "client_id",
                        p->client_id, "access_token", access, "expires_at", (json_int_t)expires_at, "obtained_at",
                        (json_int_t)now);
  if (s == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (refresh)
    json_object_set_new(s, "refresh_token", json_string(refresh));
  if (refresh && refresh_at)
    json_object_set_new(s, "refresh_expires_at", json_integer(refresh_at));
  const char *id_token = json_string_value(json_object_get(answer, "id_token"));
  const char *scope = json_string_value(json_object_get(answer, "scope"));
  if (id_token)
    json_object_set_new(s, "id_token", json_string(id_token));
  if (scope)
    json_object_set_new(s, "scope", json_string(scope));
  return s;
}

int session_path(char *out, size_t len, char *err, size_t errlen) {
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  int n;
  if (ctl.token_file && *ctl.token_file) {
    n = snprintf(out, len, "%s", ctl.token_file);
  } else if (xdg && xdg[0] == '/') { /* a relative one is to be ignored (XDG Base Directory) */
    n = snprintf(out, len, "%s/lmpctl/token.json", xdg);
  } else {
    if (home == NULL || home[0] != '/') {
      struct passwd *pw = getpwuid(geteuid());
      home = pw ? pw->pw_dir : NULL;
    }
    if (home == NULL) {
      snprintf(err, errlen, "no home directory to keep the token in: set ctl.token_file");
      return LMP_ECONFIG;
    }
    n = snprintf(out, len, "%s/.cache/lmpctl/token.json", home);
  }
  if (n < 0 || (size_t)n >= len) {
    snprintf(err, errlen, "the token file's path is too long");
    return LMP_ECONFIG;
  }
  return 0;
}

/* The directory and the name of path, in dir and *base (pointing into path). */
static void split(const char *path, char *dir, size_t len, const char **base) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL) {
    snprintf(dir, len, ".");
    *base = path;
  } else {
    snprintf(dir, len, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    *base = slash + 1;
  }
}

/* Why a stored session cannot be used, or NULL: the fields lmpctl needs. */
static const char *damage(const json_t *s) {
  const char *access = json_string_value(json_object_get(s, "access_token"));
  json_t *refresh = json_object_get(s, "refresh_token");
  if (access == NULL || *access == '\0')
    return "no access_token";
  if (!json_is_string(json_object_get(s, "issuer")) || !json_is_string(json_object_get(s, "client_id")))
    return "no issuer or client_id";
  if (!json_is_integer(json_object_get(s, "expires_at")))
    return "no expires_at";
  if (refresh && !json_is_string(refresh))
    return "a refresh_token that is not text";
  return NULL;
}

int session_read(const char *path, int lenient, json_t **out, char *err, size_t errlen) {
  *out = NULL;
  /* O_NONBLOCK: a FIFO put in its place does not hang lmpctl; it is refused below. */
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0 && errno == ENOENT)
    return 1;
  if (fd < 0 && errno == ELOOP) {
    snprintf(err, errlen, "%s is a symbolic link: lmpctl does not follow one to its tokens", path);
    return LMP_EINVAL;
  }
  if (fd < 0) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return LMP_EIO;
  }
  struct stat st;
  int r = 0;
  char *text = NULL;
  ssize_t n = 0;
  if (fstat(fd, &st) < 0) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    r = LMP_EIO;
  } else if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
    snprintf(err, errlen, "%s is not an lmpctl token file (%s); lmpctl leaves it alone", path,
             S_ISREG(st.st_mode) ? "it belongs to another user" : "not a regular file");
    r = LMP_EINVAL;
  } else if (st.st_size > FILE_MAX) {
    snprintf(err, errlen, "%s is not an lmpctl token file (%lld bytes); lmpctl leaves it alone", path,
             (long long)st.st_size);
    r = LMP_EINVAL;
  } else if ((text = malloc((size_t)st.st_size + 1)) == NULL) {
    r = LMP_ENOMEM;
  } else {
    for (ssize_t k; n < st.st_size && (k = read(fd, text + n, (size_t)(st.st_size - n))) != 0; n += k)
      if (k < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        r = LMP_EIO;
        break;
      }
  }
  close(fd);
  json_error_t je;
  json_t *s = r == 0 ? json_loadb(text, (size_t)n, JSON_REJECT_DUPLICATES, &je) : NULL;
  if (text)
    explicit_bzero(text, (size_t)n);
  free(text);
  if (r < 0)
    return r;
  const char *why;
  if (s == NULL) {
    snprintf(err, errlen, "%s is not an lmpctl token file (not JSON: line %d: %s); lmpctl leaves it alone: "
             "remove it if it is a damaged token file", path, je.line, je.text);
    return LMP_EINVAL;
  }
  if (!json_is_object(s) || !json_is_string(json_object_get(s, "format")) ||
      strcmp(json_string_value(json_object_get(s, "format")), FORMAT) != 0) {
    snprintf(err, errlen, "%s is not an lmpctl token file (no \"format\": \"%s\"); lmpctl leaves it alone", path,
             FORMAT);
    r = LMP_EINVAL;
  } else if ((why = damage(s)) != NULL) {
    snprintf(err, errlen, "%s is a damaged lmpctl token file (%s): run lmpctl login", path, why);
    r = LMP_EREJECT;
  } else if ((st.st_mode & 077) && !lenient) {
    snprintf(err, errlen, "%s may be read by others (mode %04o): its tokens are not used; "
             "run lmpctl logout to end its session, then lmpctl login", path, (unsigned)(st.st_mode & 07777));
    r = LMP_EREJECT;
  }
  if (r < 0) {
    json_decref(s);
    return r;
  }
  *out = s;
  return 0;
}

/* Makes the missing directories of dir, each 0700. */
static int make_dirs(const char *dir, char *err, size_t errlen) {
  char p[4096];
  snprintf(p, sizeof(p), "%s", dir);
  for (char *c = p + 1;; c++) {
    if (*c != '/' && *c != '\0')
      continue;
    char end = *c;
    *c = '\0';
    if (mkdir(p, 0700) < 0 && errno != EEXIST) {
      snprintf(err, errlen, "cannot make the directory %s: %s", p, strerror(errno));
      return LMP_EIO;
    }
    if (end == '\0')
      return 0;
    *c = end;
  }
}

/* The directory of the token file, opened: it must be a directory of the user that
 * only they may change, or a file in it could be swapped for another. */
static int open_dir(const char *dir, int create, char *err, size_t errlen) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && create) {
    int r = make_dirs(dir, err, errlen);
    if (r < 0)
      return r;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  if (fd < 0) {
    snprintf(err, errlen, "cannot open the directory %s: %s", dir, strerror(errno));
    return LMP_EIO;
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022)) {
    snprintf(err, errlen, "the directory %s may be changed by others (%s, mode %04o): lmpctl keeps tokens only "
             "in a directory of yours that others cannot write to (such as one of mode 0700)", dir,
             st.st_uid != geteuid() ? "another user's" : "writable", (unsigned)(st.st_mode & 07777));
    close(fd);
    return LMP_EINVAL;
  }
  return fd;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

int session_writable(const char *path, char *err, size_t errlen) {
  char dir[4096];
  const char *base;
  split(path, dir, sizeof(dir), &base);
  int dfd = open_dir(dir, 1, err, errlen);
  if (dfd < 0)
    return dfd;
  close(dfd);
  return 0;
}

int session_write(const char *path, const json_t *session, char *err, size_t errlen) {
  char dir[4096], tmp[300];
  const char *base;
  split(path, dir, sizeof(dir), &base);
  if (*base == '\0' || strlen(base) > 200) {
    snprintf(err, errlen, "ctl.token_file %s does not name a file", path);
    return LMP_ECONFIG;
  }
  int dfd = open_dir(dir, 1, err, errlen);
  if (dfd < 0)
    return dfd;
  /* A new file of a random name, made here (O_EXCL: never one that exists, nor a link
   * to one), then renamed over the old: a reader sees the old tokens or the new. */
  int fd = -1;
  for (int tries = 0; fd < 0 && tries < 8; tries++) {
    unsigned char rnd[6];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
      break;
    snprintf(tmp, sizeof(tmp), ".%s.%02x%02x%02x%02x%02x%02x", base, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
             rnd[5]);
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST)
      break;
  }
  if (fd < 0) {
    snprintf(err, errlen, "cannot write in %s: %s", dir, strerror(errno));
    close(dfd);
    return LMP_EIO;
  }
  char *text = json_dumps(session, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  int ok = text && fchmod(fd, 0600) == 0 && write_all(fd, text, strlen(text)) == 0 && write_all(fd, "\n", 1) == 0 &&
           fsync(fd) == 0;
  int e = errno;
  if (text)
    explicit_bzero(text, strlen(text));
  free(text);
  if (close(fd) < 0 && ok) {
    ok = 0;
    e = errno;
  }
  if (ok && renameat(dfd, tmp, dfd, base) < 0) {
    ok = 0;
    e = errno;
  }
  if (!ok) {
    unlinkat(dfd, tmp, 0);
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
    close(dfd);
    return LMP_EIO;
  }
  fsync(dfd); /* the rename itself, on disk */
  close(dfd);
  return 0;
}

int session_delete(const char *path, char *err, size_t errlen) {
  char dir[4096];
  const char *base;
  split(path, dir, sizeof(dir), &base);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  /* unlink removes a name, never what a link points to. */
  if (dfd < 0 || (unlinkat(dfd, base, 0) < 0 && errno != ENOENT)) {
    snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
    if (dfd >= 0)
      close(dfd);
    return LMP_EIO;
  }
  fsync(dfd);
  close(dfd);
  return 0;
}

/* base64url (RFC 4648, 5) without padding, as a JWT's parts are. */
static int b64u(int c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  return c == '-' ? 62 : c == '_' ? 63 : -1;
}

json_t *jwt_claims(const char *token) {
  const char *p = token ? strchr(token, '.') : NULL;
  const char *end = p ? strchr(p + 1, '.') : NULL;
  if (end == NULL || end - p > JWT_MAX)
    return NULL;
  char out[JWT_MAX];
  size_t n = 0;
  unsigned bits = 0, nbits = 0;
  for (const char *c = p + 1; c < end; c++) {
    int v = b64u((unsigned char)*c);
    if (v < 0)
      return NULL;
    bits = (bits << 6) | (unsigned)v;
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out[n++] = (char)((bits >> nbits) & 0xFF);
    }
  }
  json_t *j = json_loadb(out, n, 0, NULL);
  if (!json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

const char *when(long long t, char *buf, size_t len) {
  time_t tt = (time_t)t;
  struct tm tm;
  char at[40];
  if (gmtime_r(&tt, &tm) == NULL || strftime(at, sizeof(at), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) {
    snprintf(buf, len, "at %lld (not a time)", t);
    return buf;
  }
  long long d = t - (long long)time(NULL), a = d < 0 ? -d : d;
  char span[40];
  if (a >= 86400)
    snprintf(span, sizeof(span), "%lldd %lldh", a / 86400, a % 86400 / 3600);
  else if (a >= 3600)
    snprintf(span, sizeof(span), "%lldh %lldm", a / 3600, a % 3600 / 60);
  else if (a >= 60)
    snprintf(span, sizeof(span), "%lldm %llds", a / 60, a % 60);
  else
    snprintf(span, sizeof(span), "%llds", a);
  snprintf(buf, len, "%s (%s%s%s)", at, d < 0 ? "" : "in ", span, d < 0 ? " ago" : "");
  return buf;
}
