/* Avro values from and to plain JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "avro/internal.h"
#include "lmp/avro/codec.h"
#include "lmp/base/error.h"
#include "lmp/base/text.h"

/* The branch of a union that is null, or -1 (JSON null maps to it; so does a field
 * set to NULL, av.c). */
int lmp__avro_null_branch(avro_schema_t s) {
  if (s == NULL || avro_typeof(s) != AVRO_UNION)
    return -1;
  for (size_t i = 0; i < avro_schema_union_size(s); i++)
    if (avro_typeof(avro_schema_union_branch(s, (int)i)) == AVRO_NULL)
      return (int)i;
  return -1;
}

static int jfail(char *err, size_t errlen, const char *path, const char *what) {
  snprintf(err, errlen, "%s: %s", *path ? path : "(root)", what);
  return LMP_EINVAL;
}

static int from_json(avro_value_t *v, json_t *j, struct lmp_buf *path, char *err, size_t errlen);

/* An integer as JSON Schema has it: a number without a fraction, so 25.0 is 25 (a
 * client that writes every number as a double sends what a schema calls valid). */
static int whole(json_t *j, json_int_t *out) {
  if (json_is_integer(j)) {
    *out = json_integer_value(j);
    return 1;
  }
  double d = json_is_real(j) ? json_real_value(j) : 0.5;
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || (double)(json_int_t)d != d)
    return 0;
  *out = (json_int_t)d;
  return 1;
}

static int branch_matches(avro_schema_t b, json_t *j) {
  switch (avro_typeof(b)) {
  case AVRO_NULL: return json_is_null(j);
  case AVRO_BOOLEAN: return json_is_boolean(j);
  case AVRO_INT32: case AVRO_INT64: return whole(j, &(json_int_t){0});
  case AVRO_FLOAT: case AVRO_DOUBLE: return json_is_number(j);
  case AVRO_STRING: case AVRO_BYTES: case AVRO_ENUM: case AVRO_FIXED: return json_is_string(j);
  case AVRO_RECORD: case AVRO_MAP: return json_is_object(j);
  case AVRO_ARRAY: return json_is_array(j);
  case AVRO_LINK: return branch_matches(avro_schema_link_target(b), j);
  default: return 0;
  }
}

static const char *branch_name(avro_schema_t b) {
  avro_type_t t = avro_typeof(b);
  if (t == AVRO_RECORD || t == AVRO_ENUM || t == AVRO_FIXED)
    return avro_schema_name(b);
  return avro_schema_type_name(b);
}

static int union_from_json(avro_value_t *v, json_t *j, struct lmp_buf *path, char *err,
                           size_t errlen) {
  avro_schema_t s = avro_value_get_schema(v);
  size_t nb = avro_schema_union_size(s);
  avro_value_t branch;
  /* Avro's JSON encoding: {"string": "x"} names the branch. */
  if (json_is_object(j) && json_object_size(j) == 1) {
    const char *key = json_object_iter_key(json_object_iter(j));
    for (size_t i = 0; i < nb; i++) {
      avro_schema_t b = avro_schema_union_branch(s, (int)i);
      const char *bn = branch_name(b);
      if (bn && strcmp(bn, key) == 0 && avro_typeof(b) != AVRO_RECORD) {
        if (avro_value_set_branch(v, (int)i, &branch) != 0)
          return LMP_EINVAL;
        return from_json(&branch, json_object_get(j, key), path, err, errlen);
      }
    }
  }
  for (size_t i = 0; i < nb; i++) {
    if (branch_matches(avro_schema_union_branch(s, (int)i), j)) {
      if (avro_value_set_branch(v, (int)i, &branch) != 0)
        return LMP_EINVAL;
      return from_json(&branch, j, path, err, errlen);
    }
  }
  return jfail(err, errlen, path->data, "value fits no branch of the union");
}


static int record_from_json(avro_value_t *v, json_t *j, struct lmp_buf *path, char *err,
                            size_t errlen) {
  if (!json_is_object(j))
    return jfail(err, errlen, path->data, "expected an object");
  avro_schema_t s = avro_value_get_schema(v);
  size_t base = path->len;
  size_t nf = avro_schema_record_size(s);
  /* Unknown keys are refused: a typo must not silently become a default. */
  const char *key;
  json_t *val;
  json_object_foreach(j, key, val) {
    if (avro_schema_record_field_get_index(s, key) < 0) {
      lmp_buf_printf(path, "%s%s", base ? "." : "", key);
      int r = jfail(err, errlen, path->data, "unknown field");
      path->len = base;
      path->data[base] = '\0';
      return r;
    }
  }
  for (size_t i = 0; i < nf; i++) {
    const char *fname = avro_schema_record_field_name(s, (int)i);
    avro_value_t field;
    if (avro_value_get_by_index(v, i, &field, NULL) != 0)
      return LMP_EINVAL;
    lmp_buf_printf(path, "%s%s", base ? "." : "", fname);
    json_t *fj = json_object_get(j, fname);
    avro_schema_t fs = avro_value_get_schema(&field);
    int r = 0;
    if (fj == NULL) {
      int nb = lmp__avro_null_branch(fs);
      avro_value_t branch;
      if (nb >= 0)
        r = avro_value_set_branch(&field, nb, &branch) ? LMP_EINVAL : 0;
      else if (avro_typeof(fs) == AVRO_ARRAY || avro_typeof(fs) == AVRO_MAP)
        r = 0; /* empty */
      else
        r = jfail(err, errlen, path->data, "missing field");
    } else {
      r = from_json(&field, fj, path, err, errlen);
    }
    path->len = base;
    if (path->data)
      path->data[base] = '\0';
    if (r < 0)
      return r;
  }
  return 0;
}

static int from_json(avro_value_t *v, json_t *j, struct lmp_buf *path, char *err, size_t errlen) {
  avro_schema_t s = avro_value_get_schema(v);
  switch (avro_value_get_type(v)) {
  case AVRO_NULL:
    return json_is_null(j) ? avro_value_set_null(v) : jfail(err, errlen, path->data, "expected null");
  case AVRO_BOOLEAN:
    if (!json_is_boolean(j))
      return jfail(err, errlen, path->data, "expected true or false");
    return avro_value_set_boolean(v, json_is_true(j)) ? LMP_EINVAL : 0;
  case AVRO_INT32: {
    json_int_t n;
    if (!whole(j, &n) || n < INT32_MIN || n > INT32_MAX)
      return jfail(err, errlen, path->data, "expected a 32-bit integer");
    return avro_value_set_int(v, (int32_t)n) ? LMP_EINVAL : 0;
  }
  case AVRO_INT64: {
    json_int_t n;
    if (!whole(j, &n))
      return jfail(err, errlen, path->data, "expected an integer");
    return avro_value_set_long(v, n) ? LMP_EINVAL : 0;
  }
  case AVRO_FLOAT:
    if (!json_is_number(j))
      return jfail(err, errlen, path->data, "expected a number");
    return avro_value_set_float(v, (float)json_number_value(j)) ? LMP_EINVAL : 0;
  case AVRO_DOUBLE:
    if (!json_is_number(j))
      return jfail(err, errlen, path->data, "expected a number");
    return avro_value_set_double(v, json_number_value(j)) ? LMP_EINVAL : 0;
  case AVRO_STRING:
    if (!json_is_string(j))
      return jfail(err, errlen, path->data, "expected a string");
    return avro_value_set_string_len(v, json_string_value(j), json_string_length(j) + 1)
               ? LMP_EINVAL : 0;
  case AVRO_BYTES:
    if (!json_is_string(j))
      return jfail(err, errlen, path->data, "expected a string");
    return avro_value_set_bytes(v, (char *)(uintptr_t)json_string_value(j), json_string_length(j)) ? LMP_EINVAL : 0;
  case AVRO_ENUM: {
    int idx = json_is_string(j) ? avro_schema_enum_get_by_name(s, json_string_value(j)) : -1;
    if (idx < 0)
      return jfail(err, errlen, path->data, "not one of the enum's symbols");
    return avro_value_set_enum(v, idx) ? LMP_EINVAL : 0;
  }
  case AVRO_UNION:
    return union_from_json(v, j, path, err, errlen);
  case AVRO_RECORD:
    return record_from_json(v, j, path, err, errlen);
  case AVRO_ARRAY: {
    if (!json_is_array(j))
      return jfail(err, errlen, path->data, "expected an array");
    size_t i, base = path->len;
    json_t *item;
    json_array_foreach(j, i, item) {
      avro_value_t elem;
      if (avro_value_append(v, &elem, NULL) != 0)
        return LMP_ENOMEM;
      lmp_buf_printf(path, "[%zu]", i);
      int r = from_json(&elem, item, path, err, errlen);
      path->len = base;
      path->data[base] = '\0';
      if (r < 0)
        return r;
    }
    return 0;
  }
  case AVRO_MAP: {
    if (!json_is_object(j))
      return jfail(err, errlen, path->data, "expected an object");
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val) {
      avro_value_t elem;
      if (avro_value_add(v, key, &elem, NULL, NULL) != 0)
        return LMP_ENOMEM;
      int r = from_json(&elem, val, path, err, errlen);
      if (r < 0)
        return r;
    }
    return 0;
  }
  default:
    return jfail(err, errlen, path->data, "unsupported Avro type");
  }
}

int lmp_avro_from_json(avro_value_t *value, json_t *json, char *err, size_t errlen) {
  struct lmp_buf path = {0};
  if (lmp_buf_puts(&path, "") < 0)
    return LMP_ENOMEM;
  int r = from_json(value, json, &path, err, errlen);
  lmp_buf_free(&path);
  return r;
}

/* JSON text is UTF-8 and PostgreSQL's jsonb holds no NUL: a string that breaks either
 * rule arrives with U+FFFD in place of the bad bytes, never as a missing field. */
static json_t *text_json(const char *s, size_t n) {
  if (lmp_utf8_valid(s, n) && memchr(s, '\0', n) == NULL)
    return json_stringn(s, n);
  size_t len;
  char *clean = lmp_utf8_sanitize(s, n, &len);
  json_t *j = clean ? json_stringn(clean, len) : NULL;
  free(clean);
  return j;
}

json_t *lmp_avro_to_json(avro_value_t *v) {
  switch (avro_value_get_type(v)) {
  case AVRO_NULL: return json_null();
  case AVRO_BOOLEAN: { int b = 0; avro_value_get_boolean(v, &b); return json_boolean(b); }
  case AVRO_INT32: { int32_t i = 0; avro_value_get_int(v, &i); return json_integer(i); }
  case AVRO_INT64: { int64_t i = 0; avro_value_get_long(v, &i); return json_integer(i); }
  case AVRO_FLOAT: { float f = 0; avro_value_get_float(v, &f); return json_real(f); }
  case AVRO_DOUBLE: { double d = 0; avro_value_get_double(v, &d); return json_real(d); }
  case AVRO_STRING: {
    const char *s = NULL;
    size_t n = 0;
    avro_value_get_string(v, &s, &n);
    return text_json(s ? s : "", n ? n - 1 : 0);
  }
  case AVRO_BYTES: {
    const void *b = NULL;
    size_t n = 0;
    avro_value_get_bytes(v, &b, &n);
    return text_json(b ? b : "", n);
  }
  case AVRO_ENUM: {
    int idx = 0;
    avro_value_get_enum(v, &idx);
    const char *sym = avro_schema_enum_get(avro_value_get_schema(v), idx);
    return json_string(sym ? sym : "");
  }
  case AVRO_UNION: {
    avro_value_t b;
    if (avro_value_get_current_branch(v, &b) != 0)
      return json_null();
    return lmp_avro_to_json(&b);
  }
  case AVRO_RECORD: {
    json_t *o = json_object();
    size_t n = 0;
    avro_value_get_size(v, &n);
    for (size_t i = 0; i < n; i++) {
      avro_value_t f;
      const char *name = NULL;
      if (avro_value_get_by_index(v, i, &f, &name) == 0)
        json_object_set_new(o, name, lmp_avro_to_json(&f));
    }
    return o;
  }
  case AVRO_ARRAY: {
    json_t *a = json_array();
    size_t n = 0;
    avro_value_get_size(v, &n);
    for (size_t i = 0; i < n; i++) {
      avro_value_t e;
      if (avro_value_get_by_index(v, i, &e, NULL) == 0)
        json_array_append_new(a, lmp_avro_to_json(&e));
    }
    return a;
  }
  case AVRO_MAP: {
    json_t *o = json_object();
    size_t n = 0;
    avro_value_get_size(v, &n);
    for (size_t i = 0; i < n; i++) {
      avro_value_t e;
      const char *key = NULL;
      if (avro_value_get_by_index(v, i, &e, &key) == 0)
        json_object_set_new(o, key, lmp_avro_to_json(&e));
    }
    return o;
  }
  default:
    return json_null();
  }
}
