/* Other versions of the event schemas: read into the current ones by Avro's
 * resolution rules, and checked for compatibility both ways. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro/internal.h"
#include "lmp/avro/codec.h"
#include "lmp/base/embed.h"
#include "lmp/base/error.h"

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
  } else if (r == 0 && (r = lmp__avro_items_sized(*out, err, errlen)) < 0) {
    /* Array items of no bytes would let a short message claim items without end
     * (walk.c): such a version never enters, from a folder or from the registry. */
    avro_schema_decref(*out);
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

/* How the set reads a version: *is_current when it is a current schema itself, else
 * a writer resolved into the current one (the caller owns its schema and iface). */
static int reading_of(const struct lmp_schemas *s, const char *json, struct lmp_writer *out,
                      const struct lmp_schema **is_current, char *err, size_t errlen) {
  avro_schema_t w;
  uint64_t fp;
  const struct lmp_schema *cur;
  json_t *wdefs;
  int r = parse_version(s, json, &w, &fp, &cur, &wdefs, err, errlen);
  if (r < 0)
    return r;
  json_decref(wdefs);
  if ((*is_current = lmp_schemas_by_fingerprint(s, fp)) != NULL) {
    avro_schema_decref(w);
    return 0;
  }
  char why[300];
  if (lmp__avro_can_read(cur->avro, w, cur->defs, why, sizeof(why)) < 0) {
    snprintf(err, errlen, "%s cannot read this version: %s", cur->name, why);
    avro_schema_decref(w);
    return LMP_ESCHEMA;
  }
  avro_value_iface_t *iface = avro_generic_class_from_schema(w);
  if (iface == NULL) {
    avro_schema_decref(w);
    return LMP_ENOMEM;
  }
  *out = (struct lmp_writer){fp, w, cur, iface};
  return 0;
}

int lmp_schemas_add_writer(struct lmp_schemas *s, const char *json, char *err, size_t errlen) {
  struct lmp_writer w;
  const struct lmp_schema *same;
  int r = reading_of(s, json, &w, &same, err, errlen);
  if (r < 0 || same)
    return r; /* a current version needs nothing more */
  struct lmp_writer *nw = realloc(s->w, (s->nw + 1) * sizeof(*nw));
  if (nw == NULL) {
    avro_value_iface_decref(w.iface);
    avro_schema_decref(w.avro);
    return LMP_ENOMEM;
  }
  s->w = nw;
  s->w[s->nw++] = w;
  return 0;
}

static const struct lmp_by_id *cached(struct lmp_idcache *c, int32_t id) {
  for (size_t i = 0; i < c->n; i++)
    if (c->v[i]->id == id)
      return c->v[i];
  return NULL;
}

int lmp__schemas_by_id(const struct lmp_schemas *s, int32_t id, const struct lmp_by_id **out, char *err,
                       size_t errlen) {
  struct lmp_idcache *c = s->ids;
  pthread_mutex_lock(&c->lock);
  *out = cached(c, id);
  pthread_mutex_unlock(&c->lock);
  if (*out)
    return 0;
  if (c->registry == NULL) {
    snprintf(err, errlen, "framed with schema registry id %d, and no schema_registry.url is set", (int)id);
    return LMP_ESCHEMA;
  }
  /* Asked without the lock: two threads may ask for the same id; the first kept wins. */
  char *json = NULL, why[400] = "";
  struct lmp_by_id *b = NULL;
  int r = lmp_registry_schema(c->registry, id, &json, why, sizeof(why));
  if (r == 0 && (b = calloc(1, sizeof(*b))) == NULL)
    r = LMP_ENOMEM;
  if (r == 0 && (r = reading_of(s, json, &b->writer, &b->current, why, sizeof(why))) < 0 && r != LMP_ENOMEM)
    r = LMP_ESCHEMA;
  free(json);
  if (r < 0 || b == NULL) {
    snprintf(err, errlen, "schema registry id %d: %s", (int)id, why);
    free(b);
    return r < 0 ? r : LMP_ENOMEM;
  }
  b->id = id;
  pthread_mutex_lock(&c->lock);
  const struct lmp_by_id *other = cached(c, id);
  struct lmp_by_id **nv = other || c->n < c->cap ? c->v : realloc(c->v, (c->cap * 2 + 8) * sizeof(*nv));
  if (other == NULL && nv) {
    if (nv != c->v) {
      c->v = nv;
      c->cap = c->cap * 2 + 8;
    }
    c->v[c->n++] = b;
  }
  pthread_mutex_unlock(&c->lock);
  if (other || nv == NULL) {
    if (b->current == NULL) {
      avro_value_iface_decref(b->writer.iface);
      avro_schema_decref(b->writer.avro);
    }
    free(b);
    if (nv == NULL)
      return LMP_ENOMEM;
  }
  *out = other ? other : b;
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
