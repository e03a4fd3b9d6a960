/* lmpctl for schemas: print, check a new version, encode a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* Is a proposed version of a schema compatible both ways with the current one? */
int cmd_schema_check(char **args, int nargs, const struct ctl_opts *o) {
  const char *file = args[0];
  FILE *f = fopen(file, "r");
  if (f == NULL)
    die("%s: cannot open", file);
  struct lmp_buf text = {0};
  char chunk[4096], err[600];
  size_t got;
  while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
    lmp_buf_append(&text, chunk, got);
  fclose(f);
  int r = lmp_schemas_check_compat(schemas(), text.data ? text.data : "", err, sizeof(err));
  lmp_buf_free(&text);
  if (r < 0) {
    fprintf(stderr, "lmpctl: %s: incompatible: %s\n", file, err);
    return 1;
  }
  printf("%s: compatible both ways with the current schema\n", file);
  return 0;
}

int cmd_schema(char **args, int nargs, const struct ctl_opts *o) {
  if (nargs > 1)
    die("schema takes at most one event type");
  const char *name = nargs ? args[0] : NULL;
  struct lmp_schemas *s = schemas();
  for (size_t i = 0; i < lmp_schemas_count(s); i++) {
    const struct lmp_schema *sc = lmp_schemas_at(s, i);
    if (name && strcmp(sc->name, name) != 0)
      continue;
    if (name) {
      printf("%s\n", sc->json);
      fprintf(stderr, "canonical: %s\nfingerprint: %016llx\n", sc->canonical,
              (unsigned long long)sc->fingerprint);
      return 0;
    }
    printf("%-24s %016llx %s\n", sc->name, (unsigned long long)sc->fingerprint, sc->full_name);
  }
  if (name)
    die("no schema named %s", name);
  return 0;
}

int cmd_encode(char **args, int nargs, const struct ctl_opts *o) {
  const char *type = args[0], *file = args[1];
  const struct lmp_schema *s = lmp_schemas_get(schemas(), type);
  if (s == NULL)
    die("no schema named %s", type);
  json_error_t jerr;
  json_t *j = json_load_file(file, 0, &jerr);
  if (j == NULL)
    die("cannot read JSON: %s", jerr.text);
  avro_value_t v;
  char err[400];
  avro_generic_value_new(s->iface, &v);
  if (lmp_avro_from_json(&v, j, err, sizeof(err)) < 0)
    die("%s", err);
  struct lmp_buf b = {0};
  lmp_avro_encode(s, &v, &b);
  fwrite(b.data, 1, b.len, stdout);
  lmp_buf_free(&b);
  avro_value_decref(&v);
  json_decref(j);
  return 0;
}

