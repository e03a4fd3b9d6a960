/* Text files compiled into the binaries (schemas, migrations). */
#ifndef LMP_EMBED_H
#define LMP_EMBED_H

struct lmp_embedded {
  const char *name; /* file name, e.g. "001_init.sql"; NULL ends a table */
  const char *text; /* NUL-terminated contents */
};

/* The Avro schemas of schemas/, in file-name order. */
extern const struct lmp_embedded lmp_schema_files[];

#endif
