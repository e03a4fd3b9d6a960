/* lmpctl for the daemons' admin routes: reference data in, operator views out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* Sends each daemon its section of a reference-data file. */
int cmd_admin_load(char **args, int nargs, const struct ctl_opts *o) {
  const char *file = args[0];
  json_error_t e;
  json_t *j = json_load_file(file, 0, &e);
  if (j == NULL)
    die("%s:%d: %s", file, e.line, e.text);
  int rc = 0;
  const char *name;
  json_t *section;
  json_object_foreach(j, name, section) {
    const char *base = service_url(name, 1);
    if (base == NULL)
      die("%s: '%s' is not a daemon with reference data", file, name);
    char url[1200];
    snprintf(url, sizeof(url), "%s/v1/admin/load", base);
    char *body = json_dumps(section, JSON_COMPACT);
    long st;
    json_t *res = http_json(url, body, 1, &st);
    free(body);
    if (st == 200) {
      printf("loaded %s\n", name);
    } else {
      fprintf(stderr, "lmpctl: %s (%s): HTTP %ld %s\n", name, url, st,
              res ? json_string_value(json_object_get(res, "error")) : "(no answer)");
      rc = 1;
    }
    json_decref(res);
  }
  json_decref(j);
  return rc;
}

int cmd_admin_get(char **args, int nargs, const struct ctl_opts *o) {
  const char *service = args[0], *path = args[1];
  const char *base = service_url(service, 1);
  if (base == NULL)
    die("no daemon named %s", service);
  char url[1200];
  snprintf(url, sizeof(url), "%s%s", base, path);
  long st;
  json_t *res = http_json(url, NULL, 1, &st);
  if (res)
    json_dumpf(res, stdout, JSON_INDENT(2));
  putchar('\n');
  json_decref(res);
  return st == 200 ? 0 : 1;
}

