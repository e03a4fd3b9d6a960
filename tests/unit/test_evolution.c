/* Schema evolution: another version of each event schema is read by the current
 * readers and reads the current writers, by Avro's resolution rules, defaults
 * included; incompatible changes are refused with the reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>

#include "avro/internal.h"
#include "lmp/avro/codec.h"
#include "lmp/base/error.h"

static struct lmp_schemas *S;

static int setup(void **state) {
  char err[300];
  return lmp_schemas_new(&S, err, sizeof(err));
}

static int teardown(void **state) {
  lmp_schemas_free(S);
  return 0;
}

/* The current file of an event type, changed by f. */
static char *variant(const struct lmp_schema *s, void (*f)(json_t *)) {
  char path[512];
  snprintf(path, sizeof(path), "%s/schemas/%s.avsc", LMP_SOURCE_DIR, s->name);
  json_t *j = json_load_file(path, 0, NULL);
  assert_non_null(j);
  f(j);
  char *text = json_dumps(j, 0);
  json_decref(j);
  return text;
}

static void add_with_default(json_t *j) {
  json_array_append_new(json_object_get(j, "fields"),
                        json_pack("{s:s, s:s, s:s}", "name", "next_note", "type", "string", "default", "none"));
}
static void add_union_with_default(json_t *j) {
  json_array_append_new(json_object_get(j, "fields"),
                        json_pack("{s:s, s:[s,s], s:n}", "name", "next_ref", "type", "null", "string", "default"));
}
static void add_without_default(json_t *j) {
  json_array_append_new(json_object_get(j, "fields"), json_pack("{s:s, s:s}", "name", "next_note", "type", "string"));
}
static void drop_first_field(json_t *j) { json_array_remove(json_object_get(j, "fields"), 0); }
static void retype_first_field(json_t *j) {
  json_object_set_new(json_array_get(json_object_get(j, "fields"), 0), "type", json_string("boolean"));
}

static void every_event_evolves(void **state) {
  for (size_t i = 0; i < lmp_schemas_count(S); i++) {
    const struct lmp_schema *s = lmp_schemas_at(S, i);
    if (strchr(s->name, '.') == NULL)
      continue; /* shared types evolve with the events that hold them */
    char err[400], *v;
    v = variant(s, add_with_default);
    if (lmp_schemas_check_compat(S, v, err, sizeof(err)) != 0)
      fail_msg("%s + a field with a default: %s", s->name, err);
    free(v);
    v = variant(s, add_union_with_default);
    if (lmp_schemas_check_compat(S, v, err, sizeof(err)) != 0)
      fail_msg("%s + an optional field: %s", s->name, err);
    free(v);
    v = variant(s, add_without_default);
    assert_int_equal(lmp_schemas_check_compat(S, v, err, sizeof(err)), LMP_ESCHEMA);
    assert_non_null(strstr(err, "next_note is not written and has no default"));
    free(v);
    v = variant(s, drop_first_field);
    assert_int_equal(lmp_schemas_check_compat(S, v, err, sizeof(err)), LMP_ESCHEMA);
    free(v);
    v = variant(s, retype_first_field);
    assert_int_equal(lmp_schemas_check_compat(S, v, err, sizeof(err)), LMP_ESCHEMA);
    free(v);
  }
}

/* Every schema as last released must stay compatible both ways with the current one. */
static void released_versions_are_compatible(void **state) {
  char dir[512];
  snprintf(dir, sizeof(dir), "%s/tests/data/schemas-released", LMP_SOURCE_DIR);
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  int checked = 0;
  while ((e = readdir(d)) != NULL) {
    if (strstr(e->d_name, ".avsc") == NULL || strchr(e->d_name, '.') == strstr(e->d_name, ".avsc"))
      continue; /* event files only: <entity>.<event>.avsc */
    char path[1024], err[400];
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    json_t *j = json_load_file(path, 0, NULL);
    char *text = json_dumps(j, 0);
    if (lmp_schemas_check_compat(S, text, err, sizeof(err)) != 0)
      fail_msg("%s: %s", e->d_name, err);
    free(text);
    json_decref(j);
    checked++;
  }
  closedir(d);
  assert_true(checked >= 11);
}

static json_t *example(void) {
  char path[512];
  snprintf(path, sizeof(path), "%s/deploy/examples/physical-complete.json", LMP_SOURCE_DIR);
  json_t *j = json_load_file(path, 0, NULL);
  assert_non_null(j);
  return j;
}

/* A next writer's message, framed with its own fingerprint, read by the current reader. */
static void next_writer_current_reader(void **state) {
  const struct lmp_schema *cur = lmp_schemas_get(S, "onboarding.requested");
  char *next = variant(cur, add_with_default), err[400];
  struct lmp_schemas *mine;
  assert_int_equal(lmp_schemas_new(&mine, err, sizeof(err)), 0);
  /* Parse the next version as a writer would, with its own fingerprint. */
  char *canon = NULL;
  json_t *nj = json_loads(next, 0, NULL), *defs = json_object();
  for (size_t i = 0; i < lmp_schemas_count(S); i++) {
    json_t *sj = json_loads(lmp_schemas_at(S, i)->json, 0, NULL);
    lmp__avro_collect_names(sj, "", defs);
    json_decref(sj); /* defs holds what it needs */
  }
  json_t *inl = lmp__avro_inline(nj, defs);
  char *text = json_dumps(inl, JSON_COMPACT);
  assert_int_equal(lmp_avro_canonical_form(text, &canon, err, sizeof(err)), 0);
  avro_schema_t ws;
  assert_int_equal(avro_schema_from_json_length(text, strlen(text), &ws), 0);
  avro_value_iface_t *wi = avro_generic_class_from_schema(ws);
  avro_value_t wv;
  avro_generic_value_new(wi, &wv);
  json_t *ex = example();
  json_object_set_new(ex, "next_note", json_string("from the future"));
  assert_int_equal(lmp_avro_from_json(&wv, ex, err, sizeof(err)), 0);
  size_t size;
  avro_value_sizeof(&wv, &size);
  char *msg = malloc(size + 10);
  msg[0] = (char)0xC3;
  msg[1] = 0x01;
  uint64_t fp = lmp_avro_crc64(canon, strlen(canon));
  memcpy(msg + 2, &fp, 8);
  avro_writer_t w = avro_writer_memory(msg + 10, (int64_t)size);
  avro_value_write(w, &wv);
  avro_writer_free(w);

  const struct lmp_schema *got;
  avro_value_t rv;
  /* Unknown until the set is taught the version. */
  assert_int_equal(lmp_avro_decode(mine, msg, size + 10, &got, &rv, err, sizeof(err)), LMP_ESCHEMA);
  assert_int_equal(lmp_schemas_add_writer(mine, next, err, sizeof(err)), 0);
  if (lmp_avro_decode(mine, msg, size + 10, &got, &rv, err, sizeof(err)) != 0)
    fail_msg("decode: %s", err);
  assert_string_equal(got->name, "onboarding.requested");
  json_t *back = lmp_avro_to_json(&rv);
  json_object_del(ex, "next_note");
  assert_true(json_equal(json_object_get(json_object_get(back, "customer"), "legal_name"),
                         json_object_get(json_object_get(ex, "customer"), "legal_name")));
  assert_true(json_equal(json_object_get(back, "users"), json_object_get(ex, "users")));
  assert_int_equal(json_array_size(json_object_get(json_object_get(back, "deployment"), "appliances")), 3);
  assert_string_equal(json_string_value(json_object_get(back, "request_id")),
                      json_string_value(json_object_get(ex, "request_id")));
  assert_null(json_object_get(back, "next_note"));

  /* And the next reader reads the current writer's value, with the default. */
  avro_value_t cv, nv;
  avro_generic_value_new(cur->iface, &cv);
  assert_int_equal(lmp_avro_from_json(&cv, ex, err, sizeof(err)), 0);
  avro_generic_value_new(wi, &nv);
  json_t *ndefs = json_object();
  lmp__avro_collect_names(inl, "", ndefs);
  assert_int_equal(lmp__avro_resolve(&nv, &cv, ndefs), 0);
  json_t *nj2 = lmp_avro_to_json(&nv);
  assert_string_equal(json_string_value(json_object_get(nj2, "next_note")), "none");
  assert_string_equal(json_string_value(json_object_get(nj2, "request_id")),
                      json_string_value(json_object_get(ex, "request_id")));

  json_decref(nj2);
  json_decref(ndefs);
  avro_value_decref(&nv);
  avro_value_decref(&cv);
  json_decref(back);
  avro_value_decref(&rv);
  free(msg);
  json_decref(ex);
  avro_value_decref(&wv);
  avro_value_iface_decref(wi);
  avro_schema_decref(ws);
  free(text);
  free(canon);
  json_decref(inl);
  json_decref(defs);
  json_decref(nj);
  free(next);
  lmp_schemas_free(mine);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_event_evolves),
      cmocka_unit_test(released_versions_are_compatible),
      cmocka_unit_test(next_writer_current_reader),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
