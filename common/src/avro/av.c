/* Reading and writing an event's fields, walking its strings, copying by structure. */
#include <stdio.h>
#include <string.h>

#include "avro/internal.h"
#include "lmp/avro/av.h"
#include "lmp/base/error.h"
#include "lmp/base/text.h"

static int walk_strings(avro_value_t *v, struct lmp_buf *path, lmp_string_fn fn, void *ctx) {
  size_t n = 0, base = path->len;
  int r = 0;
  switch (avro_value_get_type(v)) {
  case AVRO_STRING: {
    const char *s = NULL;
    avro_value_get_string(v, &s, &n);
    return fn(ctx, path->data ? path->data : "", s ? s : "", n ? n - 1 : 0);
  }
  case AVRO_UNION: {
    avro_value_t b;
    return avro_value_get_current_branch(v, &b) == 0 ? walk_strings(&b, path, fn, ctx) : 0;
  }
  case AVRO_RECORD:
  case AVRO_ARRAY:
  case AVRO_MAP:
    avro_value_get_size(v, &n);
    for (size_t i = 0; r == 0 && i < n; i++) {
      avro_value_t e;
      const char *name = NULL;
      if (avro_value_get_by_index(v, i, &e, &name) != 0)
        continue;
      if (avro_value_get_type(v) == AVRO_ARRAY)
        r = lmp_buf_printf(path, "[%zu]", i);
      else
        r = lmp_buf_printf(path, "%s%s", base ? "." : "", name);
      if (r == 0)
        r = walk_strings(&e, path, fn, ctx);
      path->len = base;
      if (path->data)
        path->data[base] = '\0';
    }
    return r;
  default:
    return 0;
  }
}

int lmp_avro_walk_strings(avro_value_t *value, lmp_string_fn fn, void *ctx) {
  struct lmp_buf path = {0};
  int r = lmp_buf_puts(&path, "");
  if (r == 0)
    r = walk_strings(value, &path, fn, ctx);
  lmp_buf_free(&path);
  return r;
}

struct text_err {
  char *err;
  size_t errlen;
};

/* No string of an event the flow writes holds a control character (a frontend's
 * request is checked by intake's own rules, which say which field is wrong): one that
 * does could end a mail header or a log line, or drive an operator's terminal. */
static int plain_text(void *ctx, const char *path, const char *s, size_t n) {
  struct text_err *t = ctx;
  enum lmp_text_fault f = lmp_text_check(s, n, 0, NULL);
  if (f == LMP_TEXT_OK)
    return 0;
  snprintf(t->err, t->errlen, "%s %s", *path ? path : "(root)", lmp_text_fault_str(f));
  return LMP_EDECODE;
}

int lmp_avro_check_text(avro_value_t *value, char *err, size_t errlen) {
  struct text_err t = {err, errlen};
  return lmp_avro_walk_strings(value, plain_text, &t);
}

/* ---- Structural copy ---------------------------------------------------------------- */

/* A copy is a resolution between two schemas that agree: the same code serves both. */
int lmp_avro_copy(avro_value_t *dst, avro_value_t *src) { return lmp__avro_resolve(dst, src, NULL); }

/* ---- Accessors ------------------------------------------------------------------ */

int lmp_av_field(avro_value_t *rec, const char *field, avro_value_t *out) {
  if (avro_value_get_by_name(rec, field, out, NULL) != 0)
    return LMP_EINVAL;
  if (avro_value_get_type(out) == AVRO_UNION) {
    avro_value_t b;
    if (avro_value_get_current_branch(out, &b) != 0)
      return LMP_EINVAL;
    *out = b;
  }
  return avro_value_get_type(out) == AVRO_NULL ? LMP_EINVAL : 0;
}

const char *lmp_av_str(avro_value_t *rec, const char *field) {
  avro_value_t f;
  const char *s = NULL;
  size_t n;
  if (lmp_av_field(rec, field, &f) < 0 || avro_value_get_type(&f) != AVRO_STRING ||
      avro_value_get_string(&f, &s, &n) != 0)
    return NULL;
  return s;
}

int32_t lmp_av_int(avro_value_t *rec, const char *field) {
  avro_value_t f;
  int32_t i = 0;
  if (lmp_av_field(rec, field, &f) == 0)
    avro_value_get_int(&f, &i);
  return i;
}

int lmp_av_bool(avro_value_t *rec, const char *field) {
  avro_value_t f;
  int b = 0;
  if (lmp_av_field(rec, field, &f) < 0 || avro_value_get_type(&f) != AVRO_BOOLEAN)
    return -1;
  avro_value_get_boolean(&f, &b);
  return b != 0;
}

int lmp_av_enum(avro_value_t *rec, const char *field) {
  avro_value_t f;
  int i = -1;
  if (lmp_av_field(rec, field, &f) < 0 || avro_value_get_type(&f) != AVRO_ENUM ||
      avro_value_get_enum(&f, &i) != 0)
    return -1;
  return i;
}

const char *lmp_av_enum_name(avro_value_t *rec, const char *field) {
  avro_value_t f;
  int i = -1;
  if (lmp_av_field(rec, field, &f) < 0 || avro_value_get_type(&f) != AVRO_ENUM ||
      avro_value_get_enum(&f, &i) != 0)
    return NULL;
  return avro_schema_enum_get(avro_value_get_schema(&f), i);
}

int lmp_av_set_str(avro_value_t *rec, const char *field, const char *s) {
  avro_value_t f, b;
  if (avro_value_get_by_name(rec, field, &f, NULL) != 0)
    return LMP_EINVAL;
  if (avro_value_get_type(&f) == AVRO_UNION) {
    int nb = lmp__avro_null_branch(avro_value_get_schema(&f));
    if (s == NULL)
      return nb >= 0 && avro_value_set_branch(&f, nb, &b) == 0 ? 0 : LMP_EINVAL;
    if (avro_value_set_branch(&f, nb == 0 ? 1 : 0, &b) != 0)
      return LMP_EINVAL;
    f = b;
  }
  return s && avro_value_set_string(&f, s) == 0 ? 0 : LMP_EINVAL;
}

int lmp_av_set_long(avro_value_t *rec, const char *field, int64_t v) {
  avro_value_t f;
  if (avro_value_get_by_name(rec, field, &f, NULL) != 0)
    return LMP_EINVAL;
  return avro_value_set_long(&f, v) == 0 ? 0 : LMP_EINVAL;
}

int lmp_av_set_int(avro_value_t *rec, const char *field, int32_t v) {
  avro_value_t f;
  if (avro_value_get_by_name(rec, field, &f, NULL) != 0)
    return LMP_EINVAL;
  return avro_value_set_int(&f, v) == 0 ? 0 : LMP_EINVAL;
}

int lmp_av_copy_field(avro_value_t *rec, const char *field, avro_value_t *src) {
  avro_value_t f;
  if (avro_value_get_by_name(rec, field, &f, NULL) != 0)
    return LMP_EINVAL;
  return lmp_avro_copy(&f, src);
}
