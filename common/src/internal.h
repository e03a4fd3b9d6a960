/* Helpers shared between the common library's own files; not part of its API. */
#ifndef LMP_INTERNAL_H
#define LMP_INTERNAL_H

#include <jansson.h>

#include "lmp/buf.h"

int lmp__avro_is_primitive(const char *s);
int lmp__avro_full_name(const char *name, const char *ns, struct lmp_buf *out);
int lmp__avro_collect_names(json_t *schema, const char *ns, json_t *defs);
json_t *lmp__avro_inline(json_t *schema, json_t *defs);

#include <avro.h>
/* Whether reader can read what writer wrote, by the specification's resolution rules;
 * reader_defs maps the reader's named types to their JSON (for field defaults). */
int lmp__avro_can_read(avro_schema_t reader, avro_schema_t writer, json_t *reader_defs, char *err, size_t errlen);
/* Reads a writer's value into a reader's value, filling defaults. */
int lmp__avro_resolve(avro_value_t *reader_value, avro_value_t *writer_value, json_t *reader_defs);

#endif
