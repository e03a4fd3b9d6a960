/* The codec's shared insides (schemas.c, versions.c, frame.c, resolve.c, canonical.c,
 * av.c); not part of liblmp's API. */
#ifndef LMP_INTERNAL_H
#define LMP_INTERNAL_H

#include <jansson.h>

#include "lmp/base/buf.h"

int lmp__avro_is_primitive(const char *s);
int lmp__avro_full_name(const char *name, const char *ns, struct lmp_buf *out);
int lmp__avro_collect_names(json_t *schema, const char *ns, json_t *defs);
json_t *lmp__avro_inline(json_t *schema, json_t *defs);

#include <avro.h>
/* Whether reader can read what writer wrote, by the specification's resolution rules;
 * reader_defs maps the reader's named types to their JSON (for field defaults). */
int lmp__avro_can_read(avro_schema_t reader, avro_schema_t writer, json_t *reader_defs, char *err, size_t errlen);
/* lmp_avro_check, saying in *visits how many schema nodes it walked (its work). */
int lmp__avro_check_counted(avro_schema_t schema, const void *body, size_t len, size_t *visits, char *err,
                            size_t errlen);
/* 0 when every array item and map value of s takes at least one byte, which the walk's
 * bound needs; else LMP_ESCHEMA with the field in err. */
int lmp__avro_items_sized(avro_schema_t s, char *err, size_t errlen);
/* The index of a union's null branch, or -1. */
int lmp__avro_null_branch(avro_schema_t s);
/* Reads a writer's value into a reader's value, filling defaults. */
int lmp__avro_resolve(avro_value_t *reader_value, avro_value_t *writer_value, json_t *reader_defs);

#include <pthread.h>
#include <stdint.h>

#include "lmp/avro/codec.h"
#include "lmp/avro/registry.h"

/* Another version of an event schema, readable into the current one. */
struct lmp_writer {
  uint64_t fingerprint;
  avro_schema_t avro;
  const struct lmp_schema *reader;
  avro_value_iface_t *iface; /* generic values of the writer's schema */
};

/* A schema registry id met in a message, and how to read what it frames. */
struct lmp_by_id {
  int32_t id;
  const struct lmp_schema *current; /* the registry's schema is this current one */
  struct lmp_writer writer;         /* else another version of it (writer.reader) */
};

/* Registry ids met so far. Decoding runs on several threads and fills it as it
 * meets ids, so it has a lock; entries never move once made. */
struct lmp_idcache {
  pthread_mutex_t lock;
  struct lmp_by_id **v;
  size_t n, cap;
  struct lmp_registry *registry; /* resolves an id not met yet; NULL: none */
};

/* The schema set: the current schemas, the other versions they read, and the
 * registry ids met. */
struct lmp_schemas {
  size_t n;
  struct lmp_schema *v;
  size_t nw;
  struct lmp_writer *w;
  struct lmp_idcache *ids;
};

/* The reading of a registry id: from the cache, or from the registry. LMP_ESCHEMA
 * when the id is unknown or unreadable, LMP_ERETRY when the registry did not answer. */
int lmp__schemas_by_id(const struct lmp_schemas *s, int32_t id, const struct lmp_by_id **out, char *err,
                       size_t errlen);

#endif
