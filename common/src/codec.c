/* Schemas from schemas/, single-object framing, bounded decoding, JSON conversion. */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lmp/codec.h"
#include "lmp/embed.h"
#include "lmp/error.h"
#include "lmp/text.h"

/* Another version of an event schema, readable into the current one. */
struct lmp_writer {
  uint64_t fingerprint;
  avro_schema_t avro;
  const struct lmp_schema *reader;
  avro_value_iface_t *iface; /* generic values of the writer's schema */
};

struct lmp_schemas {
  size_t n;
  struct lmp_schema *v;
  size_t nw;
  struct lmp_writer *w;
};

static void schema_clear(struct lmp_schema *s) {
  free(s->name);
  free(s->full_name);
  free(s->json);
  free(s->canonical);
  if (s->iface)
    avro_value_iface_decref(s->iface);
  if (s->avro)
    avro_schema_decref(s->avro);
  json_decref(s->defs);
}

void lmp_schemas_free(struct lmp_schemas *s) {
  if (s == NULL)
    return;
  for (size_t i = 0; i < s->n; i++)
    schema_clear(&s->v[i]);
  for (size_t i = 0; i < s->nw; i++) {
    avro_value_iface_decref(s->w[i].iface);
    avro_schema_decref(s->w[i].avro);
  }
  free(s->w);
  free(s->v);
  free(s);
}

static int load_one(struct lmp_schema *out, const char *file, json_t *schema, json_t *defs,
                    char *err, size_t errlen) {
  const char *dot = strstr(file, ".avsc");
  out->name = dot ? strndup(file, (size_t)(dot - file)) : strdup(file);
  json_t *inl = lmp__avro_inline(schema, defs);
  if (out->name == NULL || inl == NULL) {
    json_decref(inl);
    return LMP_ENOMEM;
  }
  out->json = json_dumps(inl, JSON_COMPACT);
  out->defs = json_object();
  if (out->defs)
    lmp__avro_collect_names(inl, "", out->defs);
  struct lmp_buf canon = {0};
  int r = out->json ? lmp_avro_canonical_form_json(inl, &canon, err, errlen) : LMP_ENOMEM;
  json_decref(inl);
  if (r < 0) {
    lmp_buf_free(&canon);
    return r;
  }
  out->canonical = lmp_buf_steal(&canon);
  out->fingerprint = lmp_avro_crc64(out->canonical, strlen(out->canonical));
  if (avro_schema_from_json_length(out->json, strlen(out->json), &out->avro) != 0) {
    snprintf(err, errlen, "%s: %s", file, avro_strerror());
    return LMP_EINVAL;
  }
  const char *n = avro_schema_name(out->avro);
  const char *ns = avro_schema_namespace(out->avro);
  struct lmp_buf full = {0};
  if (lmp__avro_full_name(n ? n : out->name, ns, &full) < 0)
    return LMP_ENOMEM;
  out->full_name = lmp_buf_steal(&full);
  out->iface = avro_generic_class_from_schema(out->avro);
  if (out->iface == NULL) {
    snprintf(err, errlen, "%s: %s", file, avro_strerror());
    return LMP_EINVAL;
  }
  return 0;
}

int lmp_schemas_new(struct lmp_schemas **out, char *err, size_t errlen) {
  size_t n = 0;
  while (lmp_schema_files[n].name)
    n++;
  struct lmp_schemas *s = calloc(1, sizeof(*s));
  json_t *defs = json_object();
  json_t **parsed = calloc(n ? n : 1, sizeof(*parsed));
  int r = (s && defs && parsed) ? 0 : LMP_ENOMEM;
  if (r == 0 && (s->v = calloc(n ? n : 1, sizeof(*s->v))) == NULL)
    r = LMP_ENOMEM;
  /* First every file's named types, so that any file may refer to any other. */
  for (size_t i = 0; r == 0 && i < n; i++) {
    json_error_t jerr;
    parsed[i] = json_loads(lmp_schema_files[i].text, 0, &jerr);
    if (parsed[i] == NULL) {
      snprintf(err, errlen, "%s: line %d: %s", lmp_schema_files[i].name, jerr.line, jerr.text);
      r = LMP_EINVAL;
    } else if (lmp__avro_collect_names(parsed[i], "", defs) < 0) {
      snprintf(err, errlen, "%s: malformed named type", lmp_schema_files[i].name);
      r = LMP_EINVAL;
    }
  }
  for (size_t i = 0; r == 0 && i < n; i++) {
    r = load_one(&s->v[i], lmp_schema_files[i].name, parsed[i], defs, err, errlen);
    s->n = i + 1;
  }
  for (size_t i = 0; parsed && i < n; i++)
    json_decref(parsed[i]);
  free(parsed);
  json_decref(defs);
  if (r < 0) {
    lmp_schemas_free(s);
    return r;
  }
  *out = s;
  return 0;
}

const struct lmp_schema *lmp_schemas_get(const struct lmp_schemas *s, const char *event_type) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i].name, event_type) == 0)
      return &s->v[i];
  return NULL;
}

const struct lmp_schema *lmp_schemas_by_fingerprint(const struct lmp_schemas *s, uint64_t fp) {
  for (size_t i = 0; i < s->n; i++)
    if (s->v[i].fingerprint == fp)
      return &s->v[i];
  return NULL;
}

size_t lmp_schemas_count(const struct lmp_schemas *s) { return s->n; }
const struct lmp_schema *lmp_schemas_at(const struct lmp_schemas *s, size_t i) {
  return i < s->n ? &s->v[i] : NULL;
}

/* ---- Other versions of the schemas ------------------------------------------------ */

/* Parses a version of a schema: inlines types of schemas/, computes its fingerprint,
 * and finds the current schema of the same full name. */
static int parse_version(const struct lmp_schemas *s, const char *json, avro_schema_t *out, uint64_t *fp,
                         const struct lmp_schema **current, json_t **vdefs, char *err, size_t errlen) {
  json_error_t jerr;
  json_t *j = json_loads(json, 0, &jerr);
  if (j == NULL) {
    snprintf(err, errlen, "not JSON: %s (line %d)", jerr.text, jerr.line);
    return LMP_EINVAL;
  }
  json_t *defs = json_object();
  for (size_t i = 0; lmp_schema_files[i].name; i++) {
    json_t *f = json_loads(lmp_schema_files[i].text, 0, NULL);
    if (f)
      lmp__avro_collect_names(f, "", defs);
    json_decref(f); /* defs keeps its own references */
  }
  /* The version's own types win over the current ones of the same name. */
  json_t *own = json_object();
  lmp__avro_collect_names(j, "", own);
  json_object_update(defs, own);
  json_decref(own);
  json_t *inl = lmp__avro_inline(j, defs);
  json_decref(defs);
  json_decref(j);
  struct lmp_buf canon = {0};
  char *text = inl ? json_dumps(inl, JSON_COMPACT) : NULL;
  int r = text ? lmp_avro_canonical_form_json(inl, &canon, err, errlen) : LMP_ENOMEM;
  *vdefs = json_object();
  if (inl && *vdefs)
    lmp__avro_collect_names(inl, "", *vdefs);
  json_decref(inl);
  if (r == 0 && avro_schema_from_json_length(text, strlen(text), out) != 0) {
    snprintf(err, errlen, "%s", avro_strerror());
    r = LMP_EINVAL;
  }
  free(text);
  if (r < 0) {
    lmp_buf_free(&canon);
    json_decref(*vdefs);
    *vdefs = NULL;
    return r;
  }
  *fp = lmp_avro_crc64(canon.data, canon.len);
  lmp_buf_free(&canon);
  struct lmp_buf full = {0};
  lmp__avro_full_name(avro_schema_name(*out), avro_schema_namespace(*out), &full);
  *current = NULL;
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i].full_name, full.data) == 0)
      *current = &s->v[i];
  if (*current == NULL) {
    snprintf(err, errlen, "no current schema is named %s", full.data);
    lmp_buf_free(&full);
    avro_schema_decref(*out);
    json_decref(*vdefs);
    *vdefs = NULL;
    return LMP_ESCHEMA;
  }
  lmp_buf_free(&full);
  return 0;
}

int lmp_schemas_add_writer(struct lmp_schemas *s, const char *json, char *err, size_t errlen) {
  avro_schema_t w;
  uint64_t fp;
  const struct lmp_schema *cur;
  json_t *wdefs;
  int r = parse_version(s, json, &w, &fp, &cur, &wdefs, err, errlen);
  if (r < 0)
    return r;
  json_decref(wdefs);
  if (lmp_schemas_by_fingerprint(s, fp) != NULL) {
    avro_schema_decref(w);
    return 0; /* the current version itself */
  }
  char why[300];
  if (lmp__avro_can_read(cur->avro, w, cur->defs, why, sizeof(why)) < 0) {
    snprintf(err, errlen, "%s cannot read this version: %s", cur->name, why);
    avro_schema_decref(w);
    return LMP_ESCHEMA;
  }
  avro_value_iface_t *iface = avro_generic_class_from_schema(w);
  struct lmp_writer *nw = iface ? realloc(s->w, (s->nw + 1) * sizeof(*nw)) : NULL;
  if (nw == NULL) {
    if (iface)
      avro_value_iface_decref(iface);
    avro_schema_decref(w);
    return LMP_ENOMEM;
  }
  s->w = nw;
  s->w[s->nw++] = (struct lmp_writer){fp, w, cur, iface};
  return 0;
}

int lmp_schemas_add_writer_dir(struct lmp_schemas *s, const char *dir, char *err, size_t errlen) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    snprintf(err, errlen, "%s: %s", dir, strerror(errno));
    return LMP_EIO;
  }
  int r = 0;
  struct dirent *e;
  while (r == 0 && (e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (l < 6 || strcmp(e->d_name + l - 5, ".avsc") != 0)
      continue;
    char path[4096], why[400];
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "r");
    struct lmp_buf text = {0};
    char chunk[4096];
    size_t got;
    while (f && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
      lmp_buf_append(&text, chunk, got);
    if (f)
      fclose(f);
    r = text.data ? lmp_schemas_add_writer(s, text.data, why, sizeof(why)) : LMP_EIO;
    if (r < 0)
      snprintf(err, errlen, "%s: %s", path, text.data ? why : "cannot read");
    lmp_buf_free(&text);
  }
  closedir(d);
  return r;
}

int lmp_schemas_check_compat(const struct lmp_schemas *s, const char *json, char *err, size_t errlen) {
  avro_schema_t v;
  uint64_t fp;
  const struct lmp_schema *cur;
  json_t *vdefs;
  int r = parse_version(s, json, &v, &fp, &cur, &vdefs, err, errlen);
  if (r < 0)
    return r;
  char why[300];
  if (lmp__avro_can_read(cur->avro, v, cur->defs, why, sizeof(why)) < 0) {
    snprintf(err, errlen, "the current %s cannot read this version: %s", cur->name, why);
    r = LMP_ESCHEMA;
  } else if (lmp__avro_can_read(v, cur->avro, vdefs, why, sizeof(why)) < 0) {
    snprintf(err, errlen, "this version cannot read the current %s: %s", cur->name, why);
    r = LMP_ESCHEMA;
  }
  json_decref(vdefs);
  avro_schema_decref(v);
  return r;
}

/* ---- Bounded walk of an Avro binary body ------------------------------------ */

#define MAX_DEPTH 64

struct cursor {
  const unsigned char *p;
  size_t left;
  char *err;
  size_t errlen;
};

static int fail(struct cursor *c, int code, const char *what) {
  snprintf(c->err, c->errlen, "%s (%zu bytes left)", what, c->left);
  return code;
}

static int read_long(struct cursor *c, int64_t *v) {
  uint64_t u = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (c->left == 0)
      return fail(c, LMP_EDECODE, "truncated varint");
    unsigned char b = *c->p++;
    c->left--;
    u |= (uint64_t)(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
      return 0;
    }
  }
  return fail(c, LMP_EDECODE, "varint longer than 10 bytes");
}

static int skip(struct cursor *c, int64_t n, const char *what) {
  if (n < 0)
    return fail(c, LMP_EDECODE, what);
  if ((uint64_t)n > c->left)
    return fail(c, LMP_EDECODE, what);
  c->p += n;
  c->left -= (size_t)n;
  return 0;
}

static int walk(avro_schema_t s, struct cursor *c, int depth) {
  int64_t n;
  int r;
  if (depth > MAX_DEPTH)
    return fail(c, LMP_EDECODE, "nesting too deep");
  switch (avro_typeof(s)) {
  case AVRO_NULL:
    return 0;
  case AVRO_BOOLEAN:
    if (c->left < 1)
      return fail(c, LMP_EDECODE, "truncated boolean");
    if (*c->p > 1)
      return fail(c, LMP_EDECODE, "boolean byte not 0 or 1");
    return skip(c, 1, "truncated boolean");
  case AVRO_INT32:
    if ((r = read_long(c, &n)) < 0)
      return r;
    return (n < INT32_MIN || n > INT32_MAX) ? fail(c, LMP_EDECODE, "int out of range") : 0;
  case AVRO_INT64:
    return read_long(c, &n);
  case AVRO_FLOAT:
    return skip(c, 4, "truncated float");
  case AVRO_DOUBLE:
    return skip(c, 8, "truncated double");
  case AVRO_STRING:
  case AVRO_BYTES:
    if ((r = read_long(c, &n)) < 0)
      return r;
    return skip(c, n, "string or bytes length past the end of the message");
  case AVRO_FIXED:
    return skip(c, avro_schema_fixed_size(s), "truncated fixed");
  case AVRO_ENUM:
    if ((r = read_long(c, &n)) < 0)
      return r;
    if (n < 0 || n >= avro_schema_enum_number_of_symbols(s))
      return fail(c, LMP_EDECODE, "enum index out of range");
    return 0;
  case AVRO_UNION:
    if ((r = read_long(c, &n)) < 0)
      return r;
    if (n < 0 || (uint64_t)n >= avro_schema_union_size(s))
      return fail(c, LMP_EDECODE, "union branch out of range");
    return walk(avro_schema_union_branch(s, (int)n), c, depth + 1);
  case AVRO_RECORD:
    for (size_t i = 0; i < avro_schema_record_size(s); i++)
      if ((r = walk(avro_schema_record_field_get_by_index(s, (int)i), c, depth + 1)) < 0)
        return r;
    return 0;
  case AVRO_ARRAY:
  case AVRO_MAP:
    for (;;) {
      if ((r = read_long(c, &n)) < 0)
        return r;
      if (n == 0)
        return 0;
      if (n < 0) {
        int64_t block_bytes;
        if (n == INT64_MIN)
          return fail(c, LMP_EDECODE, "block count out of range");
        n = -n;
        if ((r = read_long(c, &block_bytes)) < 0)
          return r;
        if (block_bytes < 0 || (uint64_t)block_bytes > c->left)
          return fail(c, LMP_EDECODE, "block size past the end of the message");
      }
      /* Every item takes at least one byte in our schemas; a count larger than the
       * bytes left is a lie that would make Avro-C allocate for nothing. */
      if ((uint64_t)n > c->left)
        return fail(c, LMP_EDECODE, "item count larger than the message");
      for (int64_t i = 0; i < n; i++) {
        if (avro_typeof(s) == AVRO_MAP) {
          int64_t klen;
          if ((r = read_long(c, &klen)) < 0 || (r = skip(c, klen, "map key past the end")) < 0)
            return r;
          if ((r = walk(avro_schema_map_values(s), c, depth + 1)) < 0)
            return r;
        } else if ((r = walk(avro_schema_array_items(s), c, depth + 1)) < 0) {
          return r;
        }
      }
    }
  case AVRO_LINK:
    return walk(avro_schema_link_target(s), c, depth + 1);
  default:
    return fail(c, LMP_EDECODE, "unsupported schema type");
  }
}

int lmp_avro_check(avro_schema_t schema, const void *body, size_t len, char *err, size_t errlen) {
  struct cursor c = {body, len, err, errlen};
  int r = walk(schema, &c, 0);
  if (r == 0 && c.left != 0)
    return fail(&c, LMP_EDECODE, "trailing bytes after the value");
  return r;
}

/* ---- Framing ------------------------------------------------------------------ */

int lmp_avro_encode(const struct lmp_schema *schema, avro_value_t *value, struct lmp_buf *out) {
  size_t size = 0;
  if (avro_value_sizeof(value, &size) != 0)
    return LMP_EINVAL;
  int r = lmp_buf_reserve(out, LMP_SOE_HEADER_LEN + size);
  if (r < 0)
    return r;
  unsigned char *h = (unsigned char *)out->data + out->len;
  uint64_t fp = htole64(schema->fingerprint);
  h[0] = 0xC3;
  h[1] = 0x01;
  memcpy(h + 2, &fp, 8);
  avro_writer_t w = avro_writer_memory((char *)h + LMP_SOE_HEADER_LEN, (int64_t)size);
  if (w == NULL)
    return LMP_ENOMEM;
  int wr = avro_value_write(w, value);
  avro_writer_free(w);
  if (wr != 0)
    return LMP_EINVAL;
  out->len += LMP_SOE_HEADER_LEN + size;
  out->data[out->len] = '\0';
  return 0;
}

/* Another version's body, read into a value of the current schema. */
static int decode_resolved(const struct lmp_writer *w, const char *body, size_t blen,
                           const struct lmp_schema **schema, avro_value_t *value, char *err, size_t errlen) {
  char why[200];
  int r = lmp_avro_check(w->avro, body, blen, why, sizeof(why));
  if (r < 0) {
    snprintf(err, errlen, "%s (other version): %s", w->reader->name, why);
    return r;
  }
  avro_value_t wv;
  if (avro_generic_value_new(w->iface, &wv) != 0)
    return LMP_ENOMEM;
  avro_reader_t rd = avro_reader_memory(body, (int64_t)blen);
  int ar = rd ? avro_value_read(rd, &wv) : ENOMEM;
  if (rd)
    avro_reader_free(rd);
  if (ar == 0 && avro_generic_value_new(w->reader->iface, value) != 0)
    ar = ENOMEM;
  if (ar == 0 && lmp__avro_resolve(value, &wv, w->reader->defs) < 0) {
    avro_value_decref(value);
    ar = EINVAL;
  }
  avro_value_decref(&wv);
  if (ar != 0) {
    snprintf(err, errlen, "%s (other version): cannot be read", w->reader->name);
    return LMP_EDECODE;
  }
  *schema = w->reader;
  return 0;
}

int lmp_avro_decode(const struct lmp_schemas *s, const void *msg, size_t len,
                    const struct lmp_schema **schema, avro_value_t *value, char *err,
                    size_t errlen) {
  const unsigned char *m = msg;
  if (len > LMP_SOE_HEADER_LEN + (size_t)LMP_MAX_MESSAGE_BYTES) {
    snprintf(err, errlen, "message of %zu bytes is over the %d byte limit", len,
             LMP_MAX_MESSAGE_BYTES);
    return LMP_ETOOBIG;
  }
  if (m == NULL || len < LMP_SOE_HEADER_LEN || m[0] != 0xC3 || m[1] != 0x01) {
    snprintf(err, errlen, "no single-object marker C3 01 (%zu bytes)", len);
    return LMP_EFRAME;
  }
  uint64_t fp;
  memcpy(&fp, m + 2, 8);
  fp = le64toh(fp);
  const struct lmp_schema *sc = lmp_schemas_by_fingerprint(s, fp);
  const char *body = (const char *)m + LMP_SOE_HEADER_LEN;
  size_t blen = len - LMP_SOE_HEADER_LEN;
  char why[200];
  if (sc == NULL) {
    for (size_t i = 0; i < s->nw; i++)
      if (s->w[i].fingerprint == fp)
        return decode_resolved(&s->w[i], body, blen, schema, value, err, errlen);
    snprintf(err, errlen, "unknown schema fingerprint %016llx", (unsigned long long)fp);
    return LMP_ESCHEMA;
  }
  int r = lmp_avro_check(sc->avro, body, blen, why, sizeof(why));
  if (r < 0) {
    snprintf(err, errlen, "%s: %s", sc->name, why);
    return r;
  }
  if (avro_generic_value_new(sc->iface, value) != 0)
    return LMP_ENOMEM;
  avro_reader_t rd = avro_reader_memory(body, (int64_t)blen);
  if (rd == NULL) {
    avro_value_decref(value);
    return LMP_ENOMEM;
  }
  int ar = avro_value_read(rd, value);
  avro_reader_free(rd);
  if (ar != 0) {
    snprintf(err, errlen, "%s: %s", sc->name, avro_strerror());
    avro_value_decref(value);
    return LMP_EDECODE;
  }
  *schema = sc;
  return 0;
}

/* ---- JSON ------------------------------------------------------------------------ */

static int jfail(char *err, size_t errlen, const char *path, const char *what) {
  snprintf(err, errlen, "%s: %s", *path ? path : "(root)", what);
  return LMP_EINVAL;
}

static int from_json(avro_value_t *v, json_t *j, struct lmp_buf *path, char *err, size_t errlen);

static int branch_matches(avro_schema_t b, json_t *j) {
  switch (avro_typeof(b)) {
  case AVRO_NULL: return json_is_null(j);
  case AVRO_BOOLEAN: return json_is_boolean(j);
  case AVRO_INT32: case AVRO_INT64: return json_is_integer(j);
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

static int has_null_branch(avro_schema_t s) {
  if (s == NULL || avro_typeof(s) != AVRO_UNION)
    return -1;
  for (size_t i = 0; i < avro_schema_union_size(s); i++)
    if (avro_typeof(avro_schema_union_branch(s, (int)i)) == AVRO_NULL)
      return (int)i;
  return -1;
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
      int nb = has_null_branch(fs);
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
  case AVRO_INT32:
    if (!json_is_integer(j) || json_integer_value(j) < INT32_MIN || json_integer_value(j) > INT32_MAX)
      return jfail(err, errlen, path->data, "expected a 32-bit integer");
    return avro_value_set_int(v, (int32_t)json_integer_value(j)) ? LMP_EINVAL : 0;
  case AVRO_INT64:
    if (!json_is_integer(j))
      return jfail(err, errlen, path->data, "expected an integer");
    return avro_value_set_long(v, json_integer_value(j)) ? LMP_EINVAL : 0;
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

/* ---- Text -------------------------------------------------------------------------- */

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

static int utf8_no_nul(void *ctx, const char *path, const char *s, size_t n) {
  struct text_err *t = ctx;
  /* Control characters are the domain's business; these two are every reader's. */
  enum lmp_text_fault f = !lmp_utf8_valid(s, n) ? LMP_TEXT_NOT_UTF8 : memchr(s, '\0', n) ? LMP_TEXT_NUL : LMP_TEXT_OK;
  if (f == LMP_TEXT_OK)
    return 0;
  snprintf(t->err, t->errlen, "%s %s", *path ? path : "(root)", lmp_text_fault_str(f));
  return LMP_EDECODE;
}

int lmp_avro_check_text(avro_value_t *value, char *err, size_t errlen) {
  struct text_err t = {err, errlen};
  return lmp_avro_walk_strings(value, utf8_no_nul, &t);
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
    int nb = has_null_branch(avro_value_get_schema(&f));
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
