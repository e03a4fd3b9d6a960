/* Helpers shared between the common library's own files; not part of its API. */
#ifndef LMP_INTERNAL_H
#define LMP_INTERNAL_H

#include <jansson.h>

#include "lmp/buf.h"

int lmp__avro_is_primitive(const char *s);
int lmp__avro_full_name(const char *name, const char *ns, struct lmp_buf *out);
int lmp__avro_collect_names(json_t *schema, const char *ns, json_t *defs);
json_t *lmp__avro_inline(json_t *schema, json_t *defs);

#endif
