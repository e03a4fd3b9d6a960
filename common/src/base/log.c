/* Structured logs: one JSON object per line on stderr. */
#include "lmp/base/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmp/base/error.h"
#include "lmp/base/text.h"

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static char service_name[64] = "lmp";
static enum lmp_log_level min_level = LMP_LOG_INFO;

int lmp_log_level_parse(const char *name, enum lmp_log_level *out) {
  for (int i = 0; i < 4; i++)
    if (strcmp(name, level_names[i]) == 0) {
      *out = (enum lmp_log_level)i;
      return 0;
    }
  return LMP_ECONFIG;
}

int lmp_log_init(const char *service, const char *level) {
  snprintf(service_name, sizeof(service_name), "%s", service);
  return level ? lmp_log_level_parse(level, &min_level) : 0;
}

/* The longest message a line carries, in bytes. */
#define MSG_MAX 2048

void lmp_log(enum lmp_log_level level, const char *request_id, const char *fmt, ...) {
  if (level < min_level)
    return;
  /* Formatted with room to spare, so the cut below, not vsnprintf's, decides where a
   * long message ends: on a character boundary, marked with "...". */
  char raw[2 * MSG_MAX], msg[MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof(raw), fmt, ap);
  va_end(ap);
  /* raw may hold bytes from untrusted input, or a value a caller cut mid-character
   * ("%.200s"): those bytes become U+FFFD, so the line keeps its text (jansson
   * refuses a string that is not UTF-8). */
  char *text = lmp_utf8_sanitize(raw, strlen(raw), NULL);
  lmp_utf8_copy(msg, sizeof(msg), text ? text : "(out of memory)", SIZE_MAX);
  free(text);

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[64];
  snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

  json_t *o = json_pack("{s:s, s:s, s:s}", "ts", when, "level", level_names[level], "service",
                        service_name);
  if (o == NULL)
    return;
  if (request_id && *request_id)
    json_object_set_new(o, "request_id", json_string(request_id));
  json_object_set_new(o, "msg", json_string(msg));
  char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (line) {
    fprintf(stderr, "%s\n", line);
    free(line);
  }
}
