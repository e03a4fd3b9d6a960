/* Avro schema resolution with defaults: Avro-C's resolver cannot fill a reader field
 * the writer lacks from the field's default, so reading another version of a schema
 * is done here, by the specification's rules, on generic values. */
#include <stdio.h>
#include <string.h>

#include "avro/internal.h"
#include "lmp/avro/codec.h"
#include "lmp/base/error.h"

static avro_schema_t target(avro_schema_t s) {
  while (s && avro_typeof(s) == AVRO_LINK)
    s = avro_schema_link_target(s);
  return s;
}

static const char *full_name(avro_schema_t s, char *buf, size_t len) {
  const char *ns = avro_schema_namespace(s), *n = avro_schema_name(s);
  if (ns && *ns && !strchr(n, '.'))
    snprintf(buf, len, "%s.%s", ns, n);
  else
    snprintf(buf, len, "%s", n);
  return buf;
}

/* The JSON definition of a reader's record field, for its default. */
static json_t *field_json(json_t *defs, avro_schema_t record, const char *field) {
  char name[512];
  if (defs == NULL)
    return NULL;
  json_t *fields = json_object_get(json_object_get(defs, full_name(record, name, sizeof(name))), "fields");
  size_t i;
  json_t *f;
  json_array_foreach(fields, i, f) if (strcmp(json_string_value(json_object_get(f, "name")) ?: "", field) == 0) return f;
  return NULL;
}

static int promotable(avro_type_t w, avro_type_t r) {
  return w == r || (w == AVRO_INT32 && (r == AVRO_INT64 || r == AVRO_FLOAT || r == AVRO_DOUBLE)) ||
         (w == AVRO_INT64 && (r == AVRO_FLOAT || r == AVRO_DOUBLE)) || (w == AVRO_FLOAT && r == AVRO_DOUBLE) ||
         (w == AVRO_STRING && r == AVRO_BYTES) || (w == AVRO_BYTES && r == AVRO_STRING);
}

/* ---- Schema-level check ---------------------------------------------------------- */

static int can_read(avro_schema_t r, avro_schema_t w, json_t *defs, int depth, char *err, size_t errlen);

static int union_has_match(avro_schema_t ru, avro_schema_t w, json_t *defs, int depth) {
  char sink[8];
  for (size_t i = 0; i < avro_schema_union_size(ru); i++)
    if (can_read(avro_schema_union_branch(ru, (int)i), w, defs, depth + 1, sink, sizeof(sink)) == 0)
      return 1;
  return 0;
}

static int can_read(avro_schema_t r, avro_schema_t w, json_t *defs, int depth, char *err, size_t errlen) {
  r = target(r);
  w = target(w);
  if (depth > 64)
    return 0; /* recursive types: what we have checked so far holds */
  if (r == NULL || w == NULL) {
    snprintf(err, errlen, "a schema without a type");
    return LMP_ESCHEMA;
  }
  avro_type_t rt = avro_typeof(r), wt = avro_typeof(w);
  if (wt == AVRO_UNION) {
    for (size_t i = 0; i < avro_schema_union_size(w); i++)
      if (can_read(r, avro_schema_union_branch(w, (int)i), defs, depth + 1, err, errlen) < 0)
        return LMP_ESCHEMA;
    return 0;
  }
  if (rt == AVRO_UNION) {
    if (union_has_match(r, w, defs, depth))
      return 0;
    snprintf(err, errlen, "no branch of the reader's union reads the writer's %s", avro_schema_type_name(w));
    return LMP_ESCHEMA;
  }
  if (!promotable(wt, rt)) {
    snprintf(err, errlen, "the writer's %s cannot be read as %s", avro_schema_type_name(w), avro_schema_type_name(r));
    return LMP_ESCHEMA;
  }
  char rn[512], wn[512];
  if ((rt == AVRO_RECORD || rt == AVRO_ENUM || rt == AVRO_FIXED) &&
      strcmp(full_name(r, rn, sizeof(rn)), full_name(w, wn, sizeof(wn))) != 0) {
    snprintf(err, errlen, "named type %s cannot read %s", rn, wn);
    return LMP_ESCHEMA;
  }
  switch (rt) {
  case AVRO_RECORD:
    for (size_t i = 0; i < avro_schema_record_size(r); i++) {
      const char *fname = avro_schema_record_field_name(r, (int)i);
      /* avro_schema_record_field_get does not say "missing": it returns garbage. */
      int wi = avro_schema_record_field_get_index(w, fname);
      if (wi < 0) {
        json_t *fj = field_json(defs, r, fname);
        if (fj == NULL || json_object_get(fj, "default") == NULL) {
          snprintf(err, errlen, "%s.%s is not written and has no default", rn, fname);
          return LMP_ESCHEMA;
        }
        continue;
      }
      if (can_read(avro_schema_record_field_get_by_index(r, (int)i), avro_schema_record_field_get_by_index(w, wi),
                   defs, depth + 1, err, errlen) < 0)
        return LMP_ESCHEMA;
    }
    return 0;
  case AVRO_ENUM:
    for (int i = 0; i < avro_schema_enum_number_of_symbols(w); i++)
      if (avro_schema_enum_get_by_name(r, avro_schema_enum_get(w, i)) < 0) {
        snprintf(err, errlen, "%s has no symbol %s", rn, avro_schema_enum_get(w, i));
        return LMP_ESCHEMA;
      }
    return 0;
  case AVRO_FIXED:
    return avro_schema_fixed_size(r) == avro_schema_fixed_size(w) ? 0 : LMP_ESCHEMA;
  case AVRO_ARRAY:
    return can_read(avro_schema_array_items(r), avro_schema_array_items(w), defs, depth + 1, err, errlen);
  case AVRO_MAP:
    return can_read(avro_schema_map_values(r), avro_schema_map_values(w), defs, depth + 1, err, errlen);
  default:
    return 0;
  }
}

int lmp__avro_can_read(avro_schema_t reader, avro_schema_t writer, json_t *reader_defs, char *err,
                       size_t errlen) {
  return can_read(reader, writer, reader_defs, 0, err, errlen);
}

/* ---- Value-level resolution ----------------------------------------------------------- */

static int set_default(avro_value_t *dst, json_t *def) {
  char err[200];
  avro_value_t b;
  /* A union's default is a value of its first branch. */
  if (avro_value_get_type(dst) == AVRO_UNION)
    return avro_value_set_branch(dst, 0, &b) ? LMP_EINVAL : lmp_avro_from_json(&b, def, err, sizeof(err));
  return lmp_avro_from_json(dst, def, err, sizeof(err));
}

static int resolve(avro_value_t *dst, avro_value_t *src, json_t *defs) {
  avro_type_t st = avro_value_get_type(src), dt = avro_value_get_type(dst);
  if (st == AVRO_UNION) {
    avro_value_t sb;
    return avro_value_get_current_branch(src, &sb) ? LMP_EINVAL : resolve(dst, &sb, defs);
  }
  if (dt == AVRO_UNION) {
    avro_schema_t u = avro_value_get_schema(dst), ss = target(avro_value_get_schema(src));
    char sink[8], sn[512], bn[512];
    /* The branch of the very type first: a copy between agreeing schemas needs no more,
     * and this runs for every event that carries another. */
    for (size_t i = 0; i < avro_schema_union_size(u); i++) {
      avro_schema_t b = target(avro_schema_union_branch(u, (int)i));
      if (avro_typeof(b) != avro_typeof(ss))
        continue;
      int named = avro_typeof(b) == AVRO_RECORD || avro_typeof(b) == AVRO_ENUM || avro_typeof(b) == AVRO_FIXED;
      if (named && strcmp(full_name(b, bn, sizeof(bn)), full_name(ss, sn, sizeof(sn))) != 0)
        continue;
      avro_value_t db;
      return avro_value_set_branch(dst, (int)i, &db) ? LMP_EINVAL : resolve(&db, src, defs);
    }
    /* Otherwise the first branch that can read it (int into a long branch, say). */
    for (size_t i = 0; i < avro_schema_union_size(u); i++) {
      if (can_read(avro_schema_union_branch(u, (int)i), avro_value_get_schema(src), defs, 0, sink, sizeof(sink)) == 0) {
        avro_value_t db;
        return avro_value_set_branch(dst, (int)i, &db) ? LMP_EINVAL : resolve(&db, src, defs);
      }
    }
    return LMP_EINVAL;
  }
  switch (dt) {
  case AVRO_RECORD: {
    avro_schema_t rs = target(avro_value_get_schema(dst));
    size_t n = avro_schema_record_size(rs);
    for (size_t i = 0; i < n; i++) {
      avro_value_t df, sf;
      const char *name = avro_schema_record_field_name(rs, (int)i);
      if (avro_value_get_by_index(dst, i, &df, NULL))
        return LMP_EINVAL;
      int r = avro_value_get_by_name(src, name, &sf, NULL) == 0 ? resolve(&df, &sf, defs)
                                                                 : set_default(&df, json_object_get(field_json(defs, rs, name), "default"));
      if (r < 0)
        return r;
    }
    return 0;
  }
  case AVRO_ARRAY: {
    size_t n = 0;
    avro_value_get_size(src, &n);
    avro_value_reset(dst);
    for (size_t i = 0; i < n; i++) {
      avro_value_t se, de;
      if (avro_value_get_by_index(src, i, &se, NULL) || avro_value_append(dst, &de, NULL))
        return LMP_ENOMEM;
      int r = resolve(&de, &se, defs);
      if (r < 0)
        return r;
    }
    return 0;
  }
  case AVRO_MAP: {
    size_t n = 0;
    avro_value_get_size(src, &n);
    avro_value_reset(dst);
    for (size_t i = 0; i < n; i++) {
      avro_value_t se, de;
      const char *key = NULL;
      if (avro_value_get_by_index(src, i, &se, &key) || avro_value_add(dst, key, &de, NULL, NULL))
        return LMP_ENOMEM;
      int r = resolve(&de, &se, defs);
      if (r < 0)
        return r;
    }
    return 0;
  }
  case AVRO_INT64: {
    int32_t i = 0;
    int64_t l = 0;
    if (st == AVRO_INT32 && avro_value_get_int(src, &i) == 0)
      return avro_value_set_long(dst, i) ? LMP_EINVAL : 0;
    return avro_value_get_long(src, &l) || avro_value_set_long(dst, l) ? LMP_EINVAL : 0;
  }
  case AVRO_FLOAT:
  case AVRO_DOUBLE: {
    if (st == dt)
      return avro_value_copy(dst, src) == 0 ? 0 : LMP_EINVAL;
    json_t *j = lmp_avro_to_json(src); /* int, long or float, promoted */
    int r = (dt == AVRO_FLOAT ? avro_value_set_float(dst, (float)json_number_value(j))
                              : avro_value_set_double(dst, json_number_value(j))) ? LMP_EINVAL : 0;
    json_decref(j);
    return r;
  }
  case AVRO_STRING:
  case AVRO_BYTES:
    if (st != dt) {
      const void *p = NULL;
      size_t n = 0;
      if (st == AVRO_STRING) {
        const char *sp = NULL;
        avro_value_get_string(src, &sp, &n);
        return avro_value_set_bytes(dst, (char *)(uintptr_t)sp, n ? n - 1 : 0) ? LMP_EINVAL : 0;
      }
      avro_value_get_bytes(src, &p, &n);
      return avro_value_set_string_len(dst, (const char *)p, n + 1) ? LMP_EINVAL : 0;
    }
    return avro_value_copy(dst, src) == 0 ? 0 : LMP_EINVAL;
  case AVRO_ENUM: {
    int idx = 0;
    avro_value_get_enum(src, &idx);
    const char *sym = avro_schema_enum_get(avro_value_get_schema(src), idx);
    int di = sym ? avro_schema_enum_get_by_name(avro_value_get_schema(dst), sym) : -1;
    return di >= 0 && avro_value_set_enum(dst, di) == 0 ? 0 : LMP_EINVAL;
  }
  default:
    /* The same primitive or fixed on both sides: the library's own copy. */
    return st == dt && avro_value_copy(dst, src) == 0 ? 0 : LMP_EINVAL;
  }
}

int lmp__avro_resolve(avro_value_t *reader_value, avro_value_t *writer_value, json_t *reader_defs) {
  return resolve(reader_value, writer_value, reader_defs);
}
