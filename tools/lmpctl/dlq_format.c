/* lmpctl dlq's output: dead letters as text for a terminal, where nothing a dead letter
 * carries may reach the terminal as a control character, and as JSON; a line of list's
 * table and the page show prints. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlq.h"
#include "lmp/base/text.h"
#include "lmp/runtime/service.h"

/* The bytes of an undecodable body that show prints. */
#define DUMP_BYTES 256
/* The start of an error message in list's table. */
#define MESSAGE_CHARS 60

/* Header values, keys and error messages carry bytes from whoever wrote the original:
 * printed, they are valid UTF-8 without control characters (ctl_printable), so nothing
 * in a dead letter can drive the operator's terminal. */
void dlq_print_text(FILE *f, const char *s, size_t n) {
  char *t = ctl_printable(s, n);
  fputs(t, f);
  free(t);
}

const char *dlq_or_dash(const char *s) { return s && *s ? s : "-"; }

/* A header's text on stdout, made printable; "-" when absent. */
void dlq_put(const char *s) { dlq_print_text(stdout, dlq_or_dash(s), strlen(dlq_or_dash(s))); }

void dlq_print_key(const struct dl *d) {
  if (d->key)
    dlq_print_text(stdout, d->key, d->keylen);
  else
    printf("(none)");
}

/* RFC 3339 in UTC with milliseconds. */
static void rfc3339(int64_t ms, char out[32]) {
  if (ms < 0) {
    snprintf(out, 32, "-");
    return;
  }
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  size_t k = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + k, 32 - k, ".%03dZ", (int)(ms % 1000));
}

/* JSON text of bytes that may not be UTF-8: bad bytes as U+FFFD. */
static json_t *json_text(const char *s, size_t n) {
  if (s == NULL)
    return json_null();
  char *t = lmp_utf8_sanitize(s, n, NULL);
  json_t *j = t ? json_string(t) : NULL;
  free(t);
  if (j == NULL)
    die("out of memory");
  return j;
}

static json_t *json_meta(const struct dl *d, const char *name) {
  const char *v = dlq_meta(d, name);
  return json_text(v, v ? strlen(v) : 0);
}

/* source_partition and source_offset: -1 for a parked event, which has none. */
static json_t *json_position(const char *s) {
  int64_t v = dlq_decimal(s && *s == '-' ? s + 1 : s);
  return v < 0 ? json_null() : json_integer(*s == '-' ? -v : v);
}

void dlq_print_json(json_t *j) {
  json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  putchar('\n');
  json_decref(j);
}

/* A dead letter's position as list shows it and selectors take it: DAEMON/PARTITION:OFFSET. */
void dlq_position(const struct dl *d, char *out, size_t n) {
  snprintf(out, n, "%s/%d:%" PRId64, d->daemon, (int)d->partition, d->offset);
}

json_t *dlq_list_json(const struct dl *d) {
  char t[32];
  rfc3339(d->ts_ms, t);
  return json_pack("{s:s, s:i, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "daemon", d->daemon, "partition", (int)d->partition,
                   "offset", (json_int_t)d->offset, "time", t, "dlq_event_id", json_meta(d, "dlq_event_id"),
                   "source_topic", json_meta(d, "source_topic"), "source_partition",
                   json_position(dlq_meta(d, "source_partition")), "source_offset",
                   json_position(dlq_meta(d, "source_offset")), "error_code", json_meta(d, "error_code"),
                   "error_message", json_meta(d, "error_message"), "source_service",
                   json_meta(d, "source_service"), "key", json_text(d->key, d->keylen));
}

void dlq_list_line(const struct dl *d) {
  char t[32], where[80], msg[4 * MESSAGE_CHARS + 8];
  rfc3339(d->ts_ms, t);
  dlq_position(d, where, sizeof(where));
  char *text = ctl_printable(dlq_meta(d, "error_message"),
                             dlq_meta(d, "error_message") ? strlen(dlq_meta(d, "error_message")) : 0);
  lmp_utf8_copy(msg, sizeof(msg), text, MESSAGE_CHARS);
  free(text);
  const char *fields[] = {dlq_meta(d, "source_topic"), dlq_meta(d, "source_partition"), dlq_meta(d, "source_offset"),
                          dlq_meta(d, "error_code")};
  char *p[4];
  for (int i = 0; i < 4; i++)
    p[i] = ctl_printable(dlq_or_dash(fields[i]), strlen(dlq_or_dash(fields[i])));
  printf("%-32s %-24s %-40s %3s:%-8s %-20s %s\n", where, t, p[0], p[1], p[2], p[3], msg);
  for (int i = 0; i < 4; i++)
    free(p[i]);
}

/* The original body as JSON, or NULL with the reason it does not decode. */
static json_t *decoded(const struct dl *d, const char **type, char *why, size_t whylen) {
  const struct lmp_schema *s;
  avro_value_t v;
  *type = NULL;
  if (lmp_avro_decode(schemas(), d->value, d->len, &s, &v, why, whylen) < 0)
    return NULL;
  json_t *j = lmp_avro_to_json(&v);
  avro_value_decref(&v);
  *type = s->name;
  return j;
}

static void hex_dump(const char *p, size_t n) {
  for (size_t i = 0; i < n; i += 16) {
    printf("  %04zx ", i);
    for (size_t k = i; k < i + 16; k++) {
      if (k < n)
        printf(" %02x", (unsigned char)p[k]);
      else
        printf("   ");
    }
    printf("  |");
    for (size_t k = i; k < i + 16 && k < n; k++)
      putchar(p[k] >= 0x20 && p[k] < 0x7F ? p[k] : '.');
    printf("|\n");
  }
}

static char *hex(const char *p, size_t n) {
  char *out = malloc(2 * n + 1);
  if (out == NULL)
    die("out of memory");
  for (size_t i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", (unsigned char)p[i]);
  out[2 * n] = '\0';
  return out;
}

void dlq_show_json(const struct dl *d) {
  char why[500];
  const char *type;
  json_t *hs = json_array();
  for (size_t i = 0; i < d->nh; i++)
    json_array_append_new(hs, json_pack("{s:o, s:o}", "name", json_text(d->h[i].name, strlen(d->h[i].name)),
                                        "value", json_text(d->h[i].value, d->h[i].len)));
  json_t *j = dlq_list_json(d), *body = decoded(d, &type, why, sizeof(why));
  json_object_set_new(j, "headers", hs);
  json_object_set_new(j, "value_bytes", json_integer((json_int_t)d->len));
  json_object_set_new(j, "event_type", type ? json_string(type) : json_null());
  json_object_set_new(j, "value", body ? body : json_null());
  if (body == NULL) {
    char *h = hex(d->value, d->len < DUMP_BYTES ? d->len : DUMP_BYTES);
    json_object_set_new(j, "value_error", json_text(why, strlen(why)));
    json_object_set_new(j, "value_hex", json_string(h));
    free(h);
  }
  dlq_print_json(j);
}

void dlq_show_text(const struct dl *d) {
  char t[32], why[500];
  const char *type;
  rfc3339(d->ts_ms, t);
  char where[80], topic[300];
  dlq_position(d, where, sizeof(where));
  lmp_dead_letter_topic(&cfg, d->daemon, topic, sizeof(topic));
  printf("dead letter %s (%s), %s\n", where, topic, t);
  printf("error    ");
  dlq_put(dlq_meta(d, "error_code"));
  printf(": ");
  dlq_put(dlq_meta(d, "error_message"));
  printf("\nsource   ");
  dlq_put(dlq_meta(d, "source_topic"));
  putchar('[');
  dlq_put(dlq_meta(d, "source_partition"));
  printf("]@");
  dlq_put(dlq_meta(d, "source_offset"));
  printf(", dead-lettered by %s", d->daemon);
  putchar('\n');
  printf("key      ");
  dlq_print_key(d);
  printf("\nheaders  (%zu of the original, then %zu of the dead letter)\n", d->norig, d->nh - d->norig);
  for (size_t i = 0; i < d->nh; i++) {
    printf("  ");
    dlq_print_text(stdout, d->h[i].name, strlen(d->h[i].name));
    printf(" = ");
    dlq_print_text(stdout, d->h[i].value, d->h[i].len);
    putchar('\n');
  }
  json_t *body = decoded(d, &type, why, sizeof(why));
  if (body) {
    printf("value    %zu bytes, %s:\n", d->len, type);
    json_dumpf(body, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(body);
  } else {
    printf("value    %zu bytes, does not decode: %s\n", d->len, why);
    hex_dump(d->value, d->len < DUMP_BYTES ? d->len : DUMP_BYTES);
    if (d->len > DUMP_BYTES)
      printf("  ... %zu bytes more\n", d->len - DUMP_BYTES);
  }
}
