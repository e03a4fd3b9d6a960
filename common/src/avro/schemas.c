/* The schema set: every schema of schemas/, references between files inlined, each
 * with its Parsing Canonical Form and fingerprint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro/internal.h"
#include "lmp/avro/codec.h"
#include "lmp/base/embed.h"
#include "lmp/base/error.h"

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
  if (s->ids) {
    for (size_t i = 0; i < s->ids->n; i++) {
      struct lmp_by_id *b = s->ids->v[i];
      if (b->current == NULL) {
        avro_value_iface_decref(b->writer.iface);
        avro_schema_decref(b->writer.avro);
      }
      free(b);
    }
    free(s->ids->v);
    pthread_mutex_destroy(&s->ids->lock);
    free(s->ids);
  }
  free(s);
}

void lmp_schemas_use_registry(struct lmp_schemas *s, struct lmp_registry *r) { s->ids->registry = r; }

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
  int r = (s && defs && parsed && (s->ids = calloc(1, sizeof(*s->ids)))) ? 0 : LMP_ENOMEM;
  if (r == 0)
    pthread_mutex_init(&s->ids->lock, NULL);
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
