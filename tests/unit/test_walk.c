/* The bounded walk's work is bounded by the message's length in total, and a writer
 * schema whose array items or map values may take no bytes never enters (M9). The
 * work is measured by the walk's own count of schema nodes visited, not by a clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "avro/internal.h"
#include "lmp/avro/codec.h"
#include "lmp/base/error.h"
#include "runtime/rt.h"

static struct lmp_schemas *S;

static int setup(void **state) {
  char err[300];
  return lmp_schemas_new(&S, err, sizeof(err));
}

static int teardown(void **state) {
  lmp_schemas_free(S);
  return 0;
}

/* Appends v as Avro's zigzag varint. */
static size_t put_long(unsigned char *p, int64_t v) {
  uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
  size_t n = 0;
  do {
    p[n++] = (unsigned char)((u & 0x7f) | (u > 0x7f ? 0x80 : 0));
    u >>= 7;
  } while (u);
  return n;
}

/* The review's hostile array: len bytes of blocks, each claiming as many items as
 * there are bytes left after its own count, then the end of the array. Items of no
 * bytes make every block valid on its own. */
static size_t hostile_blocks(unsigned char *p, size_t len) {
  size_t at = 0;
  while (len - at > 1 + 10) {
    unsigned char count[10];
    size_t n = put_long(count, (int64_t)(len - at - 4));
    memcpy(p + at, count, n);
    at += n;
  }
  while (len - at > 1)
    at += put_long(p + at, 1); /* one item, one byte, to fill the rest */
  p[at++] = 0;
  return at;
}

static avro_schema_t schema_of(const char *json) {
  avro_schema_t s;
  if (avro_schema_from_json_length(json, strlen(json), &s) != 0)
    fail_msg("%s: %s", json, avro_strerror());
  return s;
}

#define MIB (1024 * 1024)

/* (a) On the old walk the 16 KiB case alone visits some 5.0e7 nodes (a 1 MiB one,
 * some 1.8e11: minutes of CPU); now each is refused within its length's worth. */
static void hostile_blocks_bounded_by_length(void **state) {
  static const char *const items[] = {"\"null\"", "{\"type\":\"record\",\"name\":\"Nothing\",\"fields\":[]}",
                                      "{\"type\":\"fixed\",\"name\":\"Zero\",\"size\":0}"};
  static const size_t lens[] = {16 * 1024, MIB};
  unsigned char *body = malloc(MIB);
  assert_non_null(body);
  for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
    char json[200];
    snprintf(json, sizeof(json), "{\"type\":\"array\",\"items\":%s}", items[i]);
    avro_schema_t s = schema_of(json);
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
      size_t len = hostile_blocks(body, lens[l]), visits = 0;
      char err[200] = "";
      int r = lmp__avro_check_counted(s, body, len, &visits, err, sizeof(err));
      if (visits > len + 1)
        fail_msg("%s, %zu bytes: %zu nodes visited, over the length", items[i], len, visits);
      assert_int_equal(r, LMP_EDECODE);
      assert_non_null(strstr(err, "more array and map items than the message has bytes"));
    }
    avro_schema_decref(s);
  }
  free(body);
}

/* The densest honest arrays, an item a byte, flat and nested, fit the budget. */
static void dense_arrays_fit(void **state) {
  unsigned char *body = calloc(1, MIB);
  assert_non_null(body);
  avro_schema_t flat = schema_of("{\"type\":\"array\",\"items\":\"int\"}");
  size_t at = put_long(body, MIB - 4); /* then MIB - 4 zero ints, then the end */
  size_t len = at + MIB - 4 + 1, visits = 0;
  char err[200] = "";
  if (lmp__avro_check_counted(flat, body, len, &visits, err, sizeof(err)) != 0)
    fail_msg("flat: %s", err);
  assert_true(visits <= len + 1);
  avro_schema_decref(flat);
  /* Arrays of arrays of one int: 3 bytes (count, int, end) hold two items. */
  avro_schema_t nested = schema_of("{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":\"int\"}}");
  size_t outer = (MIB - 8) / 3;
  at = put_long(body, (int64_t)outer);
  for (size_t i = 0; i < outer; i++) {
    body[at++] = 0x02; /* one item */
    body[at++] = 0x00; /* the int 0 */
    body[at++] = 0x00; /* end of the inner array */
  }
  body[at++] = 0x00;
  if (lmp__avro_check_counted(nested, body, at, &visits, err, sizeof(err)) != 0)
    fail_msg("nested: %s", err);
  assert_true(visits <= 2 * at);
  avro_schema_decref(nested);
  free(body);
}

/* onboarding.confirmed (which stands alone) with one more field, of type type. */
static char *confirmed_with(const char *type) {
  char path[512];
  snprintf(path, sizeof(path), "%s/schemas/onboarding.confirmed.avsc", LMP_SOURCE_DIR);
  json_t *j = json_load_file(path, 0, NULL);
  assert_non_null(j);
  json_t *t = json_loads(type, JSON_DECODE_ANY, NULL);
  assert_non_null(t);
  json_array_insert_new(json_object_get(j, "fields"), 6, json_pack("{s:s, s:o}", "name", "pad", "type", t));
  char *text = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  return text;
}

static const char *const zero_size[] = {
    "{\"type\":\"array\",\"items\":\"null\"}",
    "{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"Nothing\",\"fields\":[]}}",
    "{\"type\":\"array\",\"items\":{\"type\":\"fixed\",\"name\":\"Zero\",\"size\":0}}",
    "{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"Hollow\",\"fields\":["
    "{\"name\":\"a\",\"type\":\"null\"},{\"name\":\"b\",\"type\":{\"type\":\"record\",\"name\":\"Inner\","
    "\"fields\":[{\"name\":\"z\",\"type\":{\"type\":\"fixed\",\"name\":\"Z0\",\"size\":0}}]}}]}}",
    "{\"type\":\"map\",\"values\":\"null\"}",
    "[\"null\",{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":\"null\"}}]",
};

static int message_code(const void *msg, size_t len) {
  static struct lmp_config cfg = {.topic_prefix = "lmp."};
  static const struct lmp_route routes[] = {{"onboarding.confirmed", NULL, NULL, 0}, {NULL, NULL, NULL, 0}};
  struct lmp_raw raw = {"lmp.onboarding.confirmed", 0, 1, NULL, 0, msg, len, NULL, NULL, NULL};
  struct lmp_msg x;
  lmp__message_check(S, &cfg, routes, &raw, &x);
  int unknown = x.code && strcmp(x.code, "UNKNOWN_SCHEMA") == 0;
  lmp__message_clear(&x);
  return unknown;
}

/* (b) Such a writer never enters the set, nor passes as compatible; a message framed
 * with it, whatever its body, is the message's fault: UNKNOWN_SCHEMA, dead-lettered. */
static void zero_size_writers_refused(void **state) {
  unsigned char *msg = malloc(LMP_SOE_HEADER_LEN + MIB);
  assert_non_null(msg);
  for (size_t i = 0; i < sizeof(zero_size) / sizeof(zero_size[0]); i++) {
    char *w = confirmed_with(zero_size[i]), err[400] = "";
    assert_int_equal(lmp_schemas_add_writer(S, w, err, sizeof(err)), LMP_ESCHEMA);
    if (strstr(err, "pad is a") == NULL || strstr(err, "take no bytes") == NULL)
      fail_msg("%s: %s", zero_size[i], err);
    assert_int_equal(lmp_schemas_check_compat(S, w, err, sizeof(err)), LMP_ESCHEMA);
    /* The writer's fingerprint, then its fields up to pad, then the hostile array. */
    char *canon;
    assert_int_equal(lmp_avro_canonical_form(w, &canon, err, sizeof(err)), 0);
    uint64_t fp = lmp_avro_crc64(canon, strlen(canon)); /* little-endian host */
    free(canon);
    msg[0] = 0xC3;
    msg[1] = 0x01;
    memcpy(msg + 2, &fp, 8);
    size_t at = LMP_SOE_HEADER_LEN;
    for (int s = 0; s < 4; s++)
      at += put_long(msg + at, 0); /* four empty strings */
    msg[at++] = 0; /* shipments */
    msg[at++] = 0; /* mails: none */
    at += hostile_blocks(msg + at, MIB - 64);
    at += put_long(msg + at, 0); /* confirmed_at */
    const struct lmp_schema *schema;
    avro_value_t v;
    assert_int_equal(lmp_avro_decode(S, msg, at, &schema, &v, err, sizeof(err)), LMP_ESCHEMA);
    assert_true(message_code(msg, at));
    free(w);
  }
  free(msg);
}

/* (b) Arrays and maps whose items take a byte are read as before. */
static void sized_writers_still_read(void **state) {
  static const struct {
    const char *type;
    unsigned char pad[8];
    size_t n;
  } ok[] = {
      {"{\"type\":\"array\",\"items\":\"string\"}", {0x04, 0x02, 'x', 0x00, 0x00}, 5},
      {"{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"One\",\"fields\":[{\"name\":\"i\","
       "\"type\":\"int\"}]}}", {0x02, 0x54, 0x00}, 3},
      {"{\"type\":\"map\",\"values\":\"long\"}", {0x02, 0x02, 'k', 0x06, 0x00}, 5},
      {"{\"type\":\"array\",\"items\":[\"null\",\"string\"]}", {0x06, 0x00, 0x00, 0x02, 0x00, 0x00}, 6},
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    char *w = confirmed_with(ok[i].type), err[400] = "", *canon;
    if (lmp_schemas_add_writer(S, w, err, sizeof(err)) != 0)
      fail_msg("%s: %s", ok[i].type, err);
    assert_int_equal(lmp_avro_canonical_form(w, &canon, err, sizeof(err)), 0);
    uint64_t fp = lmp_avro_crc64(canon, strlen(canon));
    free(canon);
    unsigned char msg[64] = {0xC3, 0x01};
    memcpy(msg + 2, &fp, 8);
    size_t at = LMP_SOE_HEADER_LEN;
    /* onboarding_id "o1", three one-letter strings, shipments 0, no mails, then pad. */
    static const unsigned char head[] = {0x04, 'o', '1', 0x02, 'c', 0x02, 'p', 0x02, 'a', 0x00, 0x00};
    memcpy(msg + at, head, sizeof(head));
    at += sizeof(head);
    memcpy(msg + at, ok[i].pad, ok[i].n);
    at += ok[i].n;
    msg[at++] = 0x02; /* confirmed_at 1 */
    const struct lmp_schema *schema;
    avro_value_t v;
    if (lmp_avro_decode(S, msg, at, &schema, &v, err, sizeof(err)) != 0)
      fail_msg("%s: %s", ok[i].type, err);
    assert_string_equal(schema->name, "onboarding.confirmed");
    json_t *j = lmp_avro_to_json(&v);
    assert_string_equal(json_string_value(json_object_get(j, "onboarding_id")), "o1");
    assert_int_equal(json_integer_value(json_object_get(j, "confirmed_at")), 1);
    json_decref(j);
    avro_value_decref(&v);
    free(w);
  }
}

/* A value with every array and map three items long, every union on its last branch,
 * so each nested array of a schema holds items. */
static void fill(avro_value_t *v) {
  avro_value_t c;
  size_t n = 0;
  switch (avro_value_get_type(v)) {
  case AVRO_RECORD:
    avro_value_get_size(v, &n);
    for (size_t i = 0; i < n; i++)
      if (avro_value_get_by_index(v, i, &c, NULL) == 0)
        fill(&c);
    break;
  case AVRO_ARRAY:
    for (int i = 0; i < 3; i++)
      if (avro_value_append(v, &c, NULL) == 0)
        fill(&c);
    break;
  case AVRO_MAP:
    for (const char *k = "abc"; *k; k++)
      if (avro_value_add(v, ((char[]){*k, '\0'}), &c, NULL, NULL) == 0)
        fill(&c);
    break;
  case AVRO_UNION:
    n = avro_schema_union_size(avro_value_get_schema(v));
    if (avro_value_set_branch(v, (int)n - 1, &c) == 0)
      fill(&c);
    break;
  case AVRO_STRING:
    avro_value_set_string(v, "x");
    break;
  case AVRO_INT32:
    avro_value_set_int(v, 7);
    break;
  case AVRO_INT64:
    avro_value_set_long(v, 7);
    break;
  default:
    break; /* enums at their first symbol, booleans false */
  }
}

/* (c) Our own schemas hold no array of empty items, and their nested arrays decode:
 * each event with every array filled, and a request of thousands of appliances. */
static void our_schemas_still_decode(void **state) {
  char err[400] = "";
  for (size_t i = 0; i < lmp_schemas_count(S); i++)
    if (lmp__avro_items_sized(lmp_schemas_at(S, i)->avro, err, sizeof(err)) != 0)
      fail_msg("%s: %s", lmp_schemas_at(S, i)->name, err);
  for (size_t i = 0; i < lmp_schemas_count(S); i++) {
    const struct lmp_schema *s = lmp_schemas_at(S, i);
    avro_value_t v, back;
    assert_int_equal(avro_generic_value_new(s->iface, &v), 0);
    fill(&v);
    struct lmp_buf msg = {0};
    assert_int_equal(lmp_avro_encode(s, &v, &msg), 0);
    const struct lmp_schema *got;
    if (lmp_avro_decode(S, msg.data, msg.len, &got, &back, err, sizeof(err)) != 0)
      fail_msg("%s: %s", s->name, err);
    assert_true(avro_value_equal(&v, &back));
    avro_value_decref(&back);
    avro_value_decref(&v);
    lmp_buf_free(&msg);
  }

  char dir[512];
  snprintf(dir, sizeof(dir), "%s/deploy/examples/physical-complete.json", LMP_SOURCE_DIR);
  json_t *req = json_load_file(dir, 0, NULL);
  assert_non_null(req);
  json_t *dep = json_object_get(req, "deployment");
  json_t *apps = json_object_get(dep, "appliances"), *addrs = json_object_get(dep, "addresses");
  for (int i = 0; i < 4000; i++) {
    json_array_append(apps, json_array_get(apps, 1));
    json_array_append(addrs, json_array_get(addrs, 1));
  }
  const struct lmp_schema *s = lmp_schemas_get(S, "onboarding.requested");
  avro_value_t v, back;
  assert_int_equal(avro_generic_value_new(s->iface, &v), 0);
  if (lmp_avro_from_json(&v, req, err, sizeof(err)) != 0)
    fail_msg("%s", err);
  struct lmp_buf msg = {0};
  assert_int_equal(lmp_avro_encode(s, &v, &msg), 0);
  assert_true(msg.len > 256 * 1024);
  const struct lmp_schema *got;
  if (lmp_avro_decode(S, msg.data, msg.len, &got, &back, err, sizeof(err)) != 0)
    fail_msg("%zu bytes: %s", msg.len, err);
  assert_true(avro_value_equal(&v, &back));
  avro_value_decref(&back);
  avro_value_decref(&v);
  lmp_buf_free(&msg);
  json_decref(req);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hostile_blocks_bounded_by_length),
      cmocka_unit_test(dense_arrays_fit),
      cmocka_unit_test(zero_size_writers_refused),
      cmocka_unit_test(sized_writers_still_read),
      cmocka_unit_test(our_schemas_still_decode),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
