/* Avro Parsing Canonical Form, CRC-64-AVRO fingerprints and cross-file inlining. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro/internal.h"
#include "lmp/avro/codec.h"
#include "lmp/base/error.h"

static const char *const primitives[] = {"null", "boolean", "int",   "long",  "float",
                                         "double", "bytes", "string", NULL};

int lmp__avro_is_primitive(const char *s) {
  for (const char *const *p = primitives; *p; p++)
    if (strcmp(*p, s) == 0)
      return 1;
  return 0;
}

static int is_named_kind(const char *t) {
  return strcmp(t, "record") == 0 || strcmp(t, "error") == 0 || strcmp(t, "enum") == 0 ||
         strcmp(t, "fixed") == 0;
}

/* The full name of name in namespace ns: names with a dot are already full. */
int lmp__avro_full_name(const char *name, const char *ns, struct lmp_buf *out) {
  lmp_buf_reset(out);
  if (strchr(name, '.') || ns == NULL || *ns == '\0')
    return lmp_buf_puts(out, name);
  return lmp_buf_printf(out, "%s.%s", ns, name);
}

/* The namespace part of a full name ("" when there is none), into out. */
static int namespace_of(const char *full, struct lmp_buf *out) {
  lmp_buf_reset(out);
  const char *dot = strrchr(full, '.');
  return dot ? lmp_buf_append(out, full, (size_t)(dot - full)) : lmp_buf_puts(out, "");
}

/* [STRINGS]: UTF-8 as is, escaping only what JSON requires. */
static int put_json_string(struct lmp_buf *out, const char *s) {
  json_t *j = json_string(s);
  if (j == NULL)
    return LMP_EINVAL;
  char *t = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
  json_decref(j);
  if (t == NULL)
    return LMP_ENOMEM;
  int r = lmp_buf_puts(out, t);
  free(t);
  return r;
}

#define TRY(expr)                                                                      \
  do {                                                                                 \
    int r_ = (expr);                                                                   \
    if (r_ < 0)                                                                        \
      return r_;                                                                       \
  } while (0)

static int canon(json_t *s, const char *ns, struct lmp_buf *out, char *err, size_t errlen);

static int canon_named(json_t *s, const char *kind, const char *ns, struct lmp_buf *out,
                       char *err, size_t errlen) {
  const char *name = json_string_value(json_object_get(s, "name"));
  if (name == NULL) {
    snprintf(err, errlen, "%s without a name", kind);
    return LMP_EINVAL;
  }
  const char *own_ns = json_string_value(json_object_get(s, "namespace"));
  struct lmp_buf full = {0}, inner_ns = {0};
  int r = lmp__avro_full_name(name, own_ns ? own_ns : ns, &full);
  if (r == 0)
    r = namespace_of(full.data, &inner_ns);
  if (r == 0)
    r = lmp_buf_puts(out, "{\"name\":");
  if (r == 0)
    r = put_json_string(out, full.data);
  if (r == 0)
    r = lmp_buf_printf(out, ",\"type\":\"%s\"", kind);
  if (r == 0 && (strcmp(kind, "record") == 0 || strcmp(kind, "error") == 0)) {
    json_t *fields = json_object_get(s, "fields");
    if (!json_is_array(fields)) {
      snprintf(err, errlen, "record %s without a fields array", full.data);
      r = LMP_EINVAL;
    }
    if (r == 0)
      r = lmp_buf_puts(out, ",\"fields\":[");
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f) {
      if (r < 0)
        break;
      const char *fname = json_string_value(json_object_get(f, "name"));
      json_t *ftype = json_object_get(f, "type");
      if (fname == NULL || ftype == NULL) {
        snprintf(err, errlen, "record %s: field %zu needs a name and a type", full.data, i);
        r = LMP_EINVAL;
        break;
      }
      r = lmp_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
      if (r == 0)
        r = put_json_string(out, fname);
      if (r == 0)
        r = lmp_buf_puts(out, ",\"type\":");
      if (r == 0)
        r = canon(ftype, inner_ns.data, out, err, errlen);
      if (r == 0)
        r = lmp_buf_puts(out, "}");
    }
    if (r == 0)
      r = lmp_buf_puts(out, "]");
  } else if (r == 0 && strcmp(kind, "enum") == 0) {
    json_t *symbols = json_object_get(s, "symbols");
    if (!json_is_array(symbols)) {
      snprintf(err, errlen, "enum %s without a symbols array", full.data);
      r = LMP_EINVAL;
    }
    if (r == 0)
      r = lmp_buf_puts(out, ",\"symbols\":[");
    size_t i;
    json_t *sym;
    json_array_foreach(symbols, i, sym) {
      if (r < 0)
        break;
      if (!json_is_string(sym)) {
        snprintf(err, errlen, "enum %s: symbol %zu is not a string", full.data, i);
        r = LMP_EINVAL;
        break;
      }
      if (i)
        r = lmp_buf_puts(out, ",");
      if (r == 0)
        r = put_json_string(out, json_string_value(sym));
    }
    if (r == 0)
      r = lmp_buf_puts(out, "]");
  } else if (r == 0) { /* fixed */
    json_t *size = json_object_get(s, "size");
    if (!json_is_integer(size) || json_integer_value(size) < 0) {
      snprintf(err, errlen, "fixed %s without a valid size", full.data);
      r = LMP_EINVAL;
    } else {
      r = lmp_buf_printf(out, ",\"size\":%lld", (long long)json_integer_value(size));
    }
  }
  if (r == 0)
    r = lmp_buf_puts(out, "}");
  lmp_buf_free(&full);
  lmp_buf_free(&inner_ns);
  return r;
}

static int canon(json_t *s, const char *ns, struct lmp_buf *out, char *err, size_t errlen) {
  if (json_is_string(s)) {
    const char *t = json_string_value(s);
    if (lmp__avro_is_primitive(t))
      return lmp_buf_printf(out, "\"%s\"", t);
    struct lmp_buf full = {0};
    int r = lmp__avro_full_name(t, ns, &full); /* [FULLNAMES] for references */
    if (r == 0)
      r = put_json_string(out, full.data);
    lmp_buf_free(&full);
    return r;
  }
  if (json_is_array(s)) { /* a union */
    TRY(lmp_buf_puts(out, "["));
    size_t i;
    json_t *b;
    json_array_foreach(s, i, b) {
      if (i)
        TRY(lmp_buf_puts(out, ","));
      TRY(canon(b, ns, out, err, errlen));
    }
    return lmp_buf_puts(out, "]");
  }
  if (!json_is_object(s)) {
    snprintf(err, errlen, "a schema must be a string, an array or an object");
    return LMP_EINVAL;
  }
  json_t *type = json_object_get(s, "type");
  if (json_is_object(type) || json_is_array(type))
    return canon(type, ns, out, err, errlen);
  const char *t = json_string_value(type);
  if (t == NULL) {
    snprintf(err, errlen, "schema object without a type");
    return LMP_EINVAL;
  }
  if (lmp__avro_is_primitive(t)) /* [PRIMITIVES], dropping logicalType and the like */
    return lmp_buf_printf(out, "\"%s\"", t);
  if (is_named_kind(t))
    return canon_named(s, t, ns, out, err, errlen);
  if (strcmp(t, "array") == 0) {
    json_t *items = json_object_get(s, "items");
    if (items == NULL) {
      snprintf(err, errlen, "array without items");
      return LMP_EINVAL;
    }
    TRY(lmp_buf_puts(out, "{\"type\":\"array\",\"items\":"));
    TRY(canon(items, ns, out, err, errlen));
    return lmp_buf_puts(out, "}");
  }
  if (strcmp(t, "map") == 0) {
    json_t *values = json_object_get(s, "values");
    if (values == NULL) {
      snprintf(err, errlen, "map without values");
      return LMP_EINVAL;
    }
    TRY(lmp_buf_puts(out, "{\"type\":\"map\",\"values\":"));
    TRY(canon(values, ns, out, err, errlen));
    return lmp_buf_puts(out, "}");
  }
  /* A named type referenced through {"type": "Name"}. */
  return canon(type, ns, out, err, errlen);
}

int lmp_avro_canonical_form_json(json_t *schema, struct lmp_buf *out, char *err, size_t errlen) {
  lmp_buf_reset(out);
  int r = canon(schema, "", out, err, errlen);
  if (r == 0 && out->data == NULL)
    r = lmp_buf_puts(out, "");
  return r;
}

int lmp_avro_canonical_form(const char *schema_json, char **out, char *err, size_t errlen) {
  json_error_t jerr;
  json_t *j = json_loads(schema_json, JSON_DECODE_ANY, &jerr);
  if (j == NULL) {
    snprintf(err, errlen, "schema is not JSON: %s (line %d)", jerr.text, jerr.line);
    return LMP_EINVAL;
  }
  struct lmp_buf b = {0};
  int r = lmp_avro_canonical_form_json(j, &b, err, errlen);
  json_decref(j);
  if (r < 0) {
    lmp_buf_free(&b);
    return r;
  }
  *out = lmp_buf_steal(&b);
  return 0;
}

/* The spec's 64-bit Rabin fingerprint: reflected CRC with this empty value. */
#define CRC64_AVRO_EMPTY 0xc15d213aa4d7a795ULL

uint64_t lmp_avro_crc64(const void *p, size_t n) {
  static uint64_t table[256];
  static int ready; /* benign race: every thread computes the same table */
  if (!ready) {
    for (int i = 0; i < 256; i++) {
      uint64_t fp = (uint64_t)i;
      for (int j = 0; j < 8; j++)
        fp = (fp >> 1) ^ (CRC64_AVRO_EMPTY & (0 - (fp & 1)));
      table[i] = fp;
    }
    __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
  }
  const unsigned char *b = p;
  uint64_t fp = CRC64_AVRO_EMPTY;
  for (size_t i = 0; i < n; i++)
    fp = (fp >> 8) ^ table[(fp ^ b[i]) & 0xff];
  return fp;
}

/* ---- Inlining named types defined in other files --------------------------- */

/* Records in defs every named type that s defines, by full name (borrowed refs). */
int lmp__avro_collect_names(json_t *s, const char *ns, json_t *defs) {
  if (json_is_array(s)) {
    size_t i;
    json_t *b;
    json_array_foreach(s, i, b) TRY(lmp__avro_collect_names(b, ns, defs));
    return 0;
  }
  if (!json_is_object(s))
    return 0;
  json_t *type = json_object_get(s, "type");
  if (json_is_object(type) || json_is_array(type))
    return lmp__avro_collect_names(type, ns, defs);
  const char *t = json_string_value(type);
  if (t == NULL)
    return LMP_EINVAL;
  if (strcmp(t, "array") == 0)
    return lmp__avro_collect_names(json_object_get(s, "items"), ns, defs);
  if (strcmp(t, "map") == 0)
    return lmp__avro_collect_names(json_object_get(s, "values"), ns, defs);
  if (!is_named_kind(t))
    return 0;
  const char *name = json_string_value(json_object_get(s, "name"));
  const char *own_ns = json_string_value(json_object_get(s, "namespace"));
  if (name == NULL)
    return LMP_EINVAL;
  struct lmp_buf full = {0}, inner = {0};
  int r = lmp__avro_full_name(name, own_ns ? own_ns : ns, &full);
  if (r == 0)
    r = namespace_of(full.data, &inner);
  if (r == 0)
    r = json_object_set(defs, full.data, s);
  json_t *fields = json_object_get(s, "fields");
  size_t i;
  json_t *f;
  json_array_foreach(fields, i, f) {
    if (r < 0)
      break;
    r = lmp__avro_collect_names(json_object_get(f, "type"), inner.data, defs);
  }
  lmp_buf_free(&full);
  lmp_buf_free(&inner);
  return r;
}

/* Returns a copy of s where each reference to a type not defined earlier in this walk
 * is replaced by its definition from defs (renamed to its full name). */
static json_t *inline_refs(json_t *s, const char *ns, json_t *defs, json_t *seen) {
  if (json_is_string(s)) {
    const char *t = json_string_value(s);
    if (lmp__avro_is_primitive(t))
      return json_incref(s);
    struct lmp_buf full = {0};
    if (lmp__avro_full_name(t, ns, &full) < 0)
      return NULL;
    json_t *res = NULL;
    json_t *def = json_object_get(defs, full.data);
    if (def != NULL && json_object_get(seen, full.data) == NULL) {
      json_t *copy = json_deep_copy(def);
      if (copy != NULL) {
        json_object_set_new(copy, "name", json_string(full.data));
        json_object_del(copy, "namespace");
        res = inline_refs(copy, "", defs, seen);
        json_decref(copy);
      }
    } else {
      res = json_string(full.data);
    }
    lmp_buf_free(&full);
    return res;
  }
  if (json_is_array(s)) {
    json_t *a = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(s, i, b) {
      json_t *c = inline_refs(b, ns, defs, seen);
      if (c == NULL || json_array_append_new(a, c) < 0) {
        json_decref(a);
        return NULL;
      }
    }
    return a;
  }
  if (!json_is_object(s))
    return json_incref(s);
  json_t *o = json_copy(s);
  if (o == NULL)
    return NULL;
  json_t *type = json_object_get(s, "type");
  const char *t = json_string_value(type);
  if (json_is_object(type) || json_is_array(type) || (t && !lmp__avro_is_primitive(t) &&
      !is_named_kind(t) && strcmp(t, "array") != 0 && strcmp(t, "map") != 0)) {
    json_object_set_new(o, "type", inline_refs(type, ns, defs, seen));
    return o;
  }
  if (t && strcmp(t, "array") == 0) {
    json_object_set_new(o, "items", inline_refs(json_object_get(s, "items"), ns, defs, seen));
  } else if (t && strcmp(t, "map") == 0) {
    json_object_set_new(o, "values", inline_refs(json_object_get(s, "values"), ns, defs, seen));
  } else if (t && is_named_kind(t)) {
    const char *name = json_string_value(json_object_get(s, "name"));
    const char *own_ns = json_string_value(json_object_get(s, "namespace"));
    struct lmp_buf full = {0}, inner = {0};
    if (name == NULL || lmp__avro_full_name(name, own_ns ? own_ns : ns, &full) < 0 ||
        namespace_of(full.data, &inner) < 0) {
      lmp_buf_free(&full);
      json_decref(o);
      return NULL;
    }
    json_object_set_new(seen, full.data, json_true());
    json_t *fields = json_object_get(s, "fields");
    if (json_is_array(fields)) {
      json_t *nf = json_array();
      size_t i;
      json_t *f;
      json_array_foreach(fields, i, f) {
        json_t *fc = json_copy(f);
        json_object_set_new(fc, "type", inline_refs(json_object_get(f, "type"), inner.data, defs, seen));
        json_array_append_new(nf, fc);
      }
      json_object_set_new(o, "fields", nf);
    }
    lmp_buf_free(&full);
    lmp_buf_free(&inner);
  }
  return o;
}

json_t *lmp__avro_inline(json_t *schema, json_t *defs) {
  json_t *seen = json_object();
  json_t *r = seen ? inline_refs(schema, "", defs, seen) : NULL;
  json_decref(seen);
  return r;
}
