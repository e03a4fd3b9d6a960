/* Single-object and registry framing, bounded decoding and JSON conversion of every schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lmp/avro/codec.h"
#include "lmp/avro/registry.h"
#include "lmp/base/config.h"
#include "lmp/base/error.h"

static struct lmp_schemas *S;

static int setup(void **state) {
  char err[300];
  if (lmp_schemas_new(&S, err, sizeof(err)) != 0) {
    fprintf(stderr, "schemas: %s\n", err);
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  lmp_schemas_free(S);
  return 0;
}

static json_t *load_example(const char *name) {
  char path[512];
  snprintf(path, sizeof(path), "%s/deploy/examples/%s", LMP_SOURCE_DIR, name);
  json_error_t e;
  json_t *j = json_load_file(path, 0, &e);
  if (j == NULL)
    fail_msg("%s: %s", path, e.text);
  return j;
}

/* JSON -> Avro -> framed bytes. */
static void encode_json(const char *type, json_t *j, struct lmp_buf *out) {
  const struct lmp_schema *s = lmp_schemas_get(S, type);
  assert_non_null(s);
  avro_value_t v;
  char err[300] = "";
  assert_int_equal(avro_generic_value_new(s->iface, &v), 0);
  if (lmp_avro_from_json(&v, j, err, sizeof(err)) != 0)
    fail_msg("from_json: %s", err);
  assert_int_equal(lmp_avro_encode(s, &v, out), 0);
  avro_value_decref(&v);
}

static void round_trip_examples(void **state) {
  static const char *const files[] = {"virtual-core.json", "physical-complete.json",
                                      "cloud-only.json", "rejected-breach.json"};
  for (size_t i = 0; i < 4; i++) {
    json_t *j = load_example(files[i]);
    struct lmp_buf msg = {0};
    encode_json("onboarding.requested", j, &msg);
    const unsigned char *m = (const unsigned char *)msg.data;
    assert_int_equal(m[0], 0xC3);
    assert_int_equal(m[1], 0x01);
    const struct lmp_schema *schema;
    avro_value_t v;
    char err[300] = "";
    if (lmp_avro_decode(S, msg.data, msg.len, &schema, &v, err, sizeof(err)) != 0)
      fail_msg("%s: %s", files[i], err);
    assert_string_equal(schema->name, "onboarding.requested");
    json_t *back = lmp_avro_to_json(&v);
    /* Every field the example gave comes back; defaults fill the rest. */
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val) {
      json_t *b = json_object_get(back, key);
      if (json_is_object(val)) {
        const char *k2;
        json_t *v2;
        json_object_foreach(val, k2, v2) {
          if (!json_is_array(v2) && !json_equal(v2, json_object_get(b, k2)))
            fail_msg("%s: %s.%s differs", files[i], key, k2);
        }
      } else if (!json_equal(val, b)) {
        fail_msg("%s: %s differs", files[i], key);
      }
    }
    json_decref(back);
    avro_value_decref(&v);
    lmp_buf_free(&msg);
    json_decref(j);
  }
}

static void fingerprint_is_canonical_crc(void **state) {
  for (size_t i = 0; i < lmp_schemas_count(S); i++) {
    const struct lmp_schema *s = lmp_schemas_at(S, i);
    assert_int_equal(s->fingerprint, lmp_avro_crc64(s->canonical, strlen(s->canonical)));
    assert_ptr_equal(lmp_schemas_by_fingerprint(S, s->fingerprint), s);
  }
  /* The accepted event embeds the request record defined in another file. */
  const struct lmp_schema *acc = lmp_schemas_get(S, "onboarding.accepted");
  assert_non_null(strstr(acc->canonical, "\"name\":\"lmp.onboarding.OnboardingRequested\""));
  assert_non_null(strstr(acc->canonical, "\"name\":\"lmp.onboarding.Issue\""));
}

static int decode_err(const void *p, size_t n, char *err, size_t errlen) {
  const struct lmp_schema *schema;
  avro_value_t v;
  int r = lmp_avro_decode(S, p, n, &schema, &v, err, errlen);
  if (r == 0)
    avro_value_decref(&v);
  return r;
}

static void bad_framing(void **state) {
  char err[300];
  assert_int_equal(decode_err(NULL, 0, err, sizeof(err)), LMP_EFRAME);
  assert_int_equal(decode_err("garbage bytes here", 18, err, sizeof(err)), LMP_EFRAME);
  unsigned char unknown[12] = {0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0};
  assert_int_equal(decode_err(unknown, sizeof(unknown), err, sizeof(err)), LMP_ESCHEMA);
  assert_non_null(strstr(err, "0807060504030201"));
  char *big = calloc(1, LMP_MAX_MESSAGE_BYTES + 64);
  assert_int_equal(decode_err(big, LMP_MAX_MESSAGE_BYTES + 64, err, sizeof(err)), LMP_ETOOBIG);
  free(big);
}

/* Registry framing: the id in big-endian after a zero byte; without a registry the
 * id cannot be read, and the error says why. */
static void registry_framing(void **state) {
  const struct lmp_schema *s = lmp_schemas_get(S, "onboarding.requested");
  json_t *j = load_example("virtual-core.json");
  avro_value_t v;
  char err[300] = "";
  assert_int_equal(avro_generic_value_new(s->iface, &v), 0);
  assert_int_equal(lmp_avro_from_json(&v, j, err, sizeof(err)), 0);
  struct lmp_buf msg = {0}, soe = {0};
  assert_int_equal(lmp_avro_encode_id(0x01020304, &v, &msg), 0);
  assert_int_equal(lmp_avro_encode(s, &v, &soe), 0);
  const unsigned char *m = (const unsigned char *)msg.data;
  assert_int_equal(m[0], 0);
  assert_int_equal(m[1], 1);
  assert_int_equal(m[4], 4);
  assert_int_equal(msg.len - LMP_REGISTRY_HEADER_LEN, soe.len - LMP_SOE_HEADER_LEN);
  assert_memory_equal(msg.data + LMP_REGISTRY_HEADER_LEN, soe.data + LMP_SOE_HEADER_LEN, soe.len - LMP_SOE_HEADER_LEN);
  assert_int_equal(decode_err(msg.data, msg.len, err, sizeof(err)), LMP_ESCHEMA);
  assert_non_null(strstr(err, "registry id 16909060, and no schema_registry.url is set"));
  assert_int_equal(decode_err("\0\0\0", 3, err, sizeof(err)), LMP_EFRAME); /* too short for an id */
  avro_value_decref(&v);
  json_decref(j);
  lmp_buf_free(&msg);
  lmp_buf_free(&soe);
}

static void every_truncation_fails(void **state) {
  json_t *j = load_example("physical-complete.json");
  struct lmp_buf msg = {0};
  encode_json("onboarding.requested", j, &msg);
  char err[300];
  for (size_t n = 0; n < msg.len; n++)
    if (decode_err(msg.data, n, err, sizeof(err)) == 0)
      fail_msg("decoded a message truncated to %zu of %zu bytes", n, msg.len);
  /* Trailing garbage is refused too. */
  lmp_buf_append(&msg, "x", 1);
  assert_int_equal(decode_err(msg.data, msg.len, err, sizeof(err)), LMP_EDECODE);
  lmp_buf_free(&msg);
  json_decref(j);
}

/* Lengths and counts that lie are caught before Avro-C allocates for them. */
static void lying_lengths(void **state) {
  const struct lmp_schema *s = lmp_schemas_get(S, "onboarding.requested");
  unsigned char m[32] = {0xC3, 0x01};
  uint64_t fp = s->fingerprint;
  memcpy(m + 2, &fp, 8); /* little-endian host */
  /* request_id string of length 2^62 (zigzag varint). */
  unsigned char huge[] = {0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
  memcpy(m + 10, huge, sizeof(huge));
  char err[300];
  assert_int_equal(decode_err(m, 10 + sizeof(huge), err, sizeof(err)), LMP_EDECODE);
  /* A varint that never ends. */
  memset(m + 10, 0xFF, 12);
  assert_int_equal(decode_err(m, 22, err, sizeof(err)), LMP_EDECODE);
  /* A negative length. */
  m[10] = 0x01;
  assert_int_equal(decode_err(m, 11, err, sizeof(err)), LMP_EDECODE);
}

static void check_walker(void **state) {
  avro_schema_t arr = avro_schema_array(avro_schema_string());
  char err[200];
  /* count 3 with 3 empty strings, then end of array */
  const unsigned char ok[] = {0x06, 0x00, 0x00, 0x00, 0x00};
  assert_int_equal(lmp_avro_check(arr, ok, sizeof(ok), err, sizeof(err)), 0);
  /* count 2^40 of items in a 5 byte message */
  const unsigned char lie[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0x00};
  assert_int_equal(lmp_avro_check(arr, lie, sizeof(lie), err, sizeof(err)), LMP_EDECODE);
  /* negative count: block of 1 item with a byte size that goes past the end */
  const unsigned char blk[] = {0x01, 0x7E, 0x00, 0x00};
  assert_int_equal(lmp_avro_check(arr, blk, sizeof(blk), err, sizeof(err)), LMP_EDECODE);
  avro_schema_decref(arr);
  avro_schema_t u = avro_schema_union();
  avro_schema_union_append(u, avro_schema_null());
  const unsigned char branch[] = {0x04};
  assert_int_equal(lmp_avro_check(u, branch, 1, err, sizeof(err)), LMP_EDECODE);
  avro_schema_decref(u);
  avro_schema_t b = avro_schema_boolean();
  const unsigned char two = 2;
  assert_int_equal(lmp_avro_check(b, &two, 1, err, sizeof(err)), LMP_EDECODE);
  avro_schema_decref(b);
}

static void json_errors(void **state) {
  static const struct {
    const char *json;
    const char *where;
  } cases[] = {
      {"{\"request_id\": 5}", "request_id: expected a string"},
      {"{\"request_id\": \"x\", \"nonsense\": 1}", "nonsense: unknown field"},
      {"{\"request_id\": \"x\"}", "partner_id: missing field"},
      {"[]", "(root): expected an object"},
  };
  const struct lmp_schema *s = lmp_schemas_get(S, "onboarding.requested");
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    json_t *j = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
    avro_value_t v;
    char err[300] = "";
    avro_generic_value_new(s->iface, &v);
    assert_int_equal(lmp_avro_from_json(&v, j, err, sizeof(err)), LMP_EINVAL);
    if (strstr(err, cases[i].where) == NULL)
      fail_msg("case %zu: error '%s' does not name '%s'", i, err, cases[i].where);
    avro_value_decref(&v);
    json_decref(j);
  }
  /* An enum symbol that does not exist, deep inside. */
  json_t *j = load_example("physical-complete.json");
  json_t *app = json_array_get(json_object_get(json_object_get(j, "deployment"), "appliances"), 1);
  json_object_set_new(app, "role", json_string("SPARE"));
  avro_value_t v;
  char err[300] = "";
  avro_generic_value_new(s->iface, &v);
  assert_int_equal(lmp_avro_from_json(&v, j, err, sizeof(err)), LMP_EINVAL);
  assert_non_null(strstr(err, "deployment.appliances[1].role"));
  avro_value_decref(&v);
  json_decref(j);

  /* A count written with a fraction of zero is an integer, as JSON Schema has it; one
   * with a fraction, or past 32 bits, is not. */
  static const struct {
    const char *tier;
    int ok;
  } counts[] = {{"25.0", 1}, {"-0.0", 1}, {"25.5", 0}, {"2147483648.0", 0}, {"1e300", 0}, {"\"25\"", 0}};
  for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
    j = load_example("virtual-core.json");
    json_object_set_new(json_object_get(j, "users"), "tier", json_loads(counts[i].tier, JSON_DECODE_ANY, NULL));
    json_object_set_new(j, "submitted_at", json_real(1796422114162.0));
    avro_generic_value_new(s->iface, &v);
    int r = lmp_avro_from_json(&v, j, err, sizeof(err));
    if (counts[i].ok) {
      assert_int_equal(r, 0);
      avro_value_t users, tier;
      int32_t n = -1;
      int64_t at = 0;
      avro_value_get_by_name(&v, "users", &users, NULL);
      avro_value_get_by_name(&users, "tier", &tier, NULL);
      avro_value_get_int(&tier, &n);
      avro_value_get_by_name(&v, "submitted_at", &users, NULL);
      avro_value_get_long(&users, &at);
      assert_int_equal(n, counts[i].tier[0] == '-' ? 0 : 25);
      assert_true(at == 1796422114162LL);
    } else {
      assert_int_equal(r, LMP_EINVAL);
      assert_non_null(strstr(err, "users.tier"));
    }
    avro_value_decref(&v);
    json_decref(j);
  }
}

/* A registry is reached over https:// only, unless schema_registry.allow_http says
 * otherwise (M9): what --check-config and the daemon's start both check. */
static void registry_needs_https(void **state) {
  static struct {
    char *env[3];
    int ok;
  } cases[] = {
      {{"LMP_SCHEMA_REGISTRY_URL=http://127.0.0.1:8080/apis/ccompat/v7", NULL}, 0},
      {{"LMP_SCHEMA_REGISTRY_URL=ftp://127.0.0.1/apis", "LMP_SCHEMA_REGISTRY_ALLOW_HTTP=true", NULL}, 0},
      {{"LMP_SCHEMA_REGISTRY_URL=http://127.0.0.1:8080/apis/ccompat/v7", "LMP_SCHEMA_REGISTRY_ALLOW_HTTP=true",
        NULL}, 1},
      {{"LMP_SCHEMA_REGISTRY_URL=https://127.0.0.1:8443/apis/ccompat/v7", NULL}, 1},
      {{NULL}, 1}, /* no registry */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct lmp_config cfg = {0};
    struct lmp_conf_table t[] = {{lmp_config_entries, lmp_config_entries_n, &cfg}, {NULL, 0, NULL}};
    char err[400] = "";
    assert_int_equal(lmp_config_load(t, NULL, cases[i].env, err, sizeof(err)), 0);
    int r = lmp_registry_check_config(&cfg, err, sizeof(err));
    struct lmp_registry *reg = NULL;
    assert_int_equal(lmp_registry_new(&reg, &cfg, err, sizeof(err)), r);
    if (cases[i].ok) {
      assert_int_equal(r, 0);
      assert_true((reg != NULL) == (cases[i].env[0] != NULL));
    } else {
      assert_int_equal(r, LMP_ECONFIG);
      assert_null(reg);
      assert_non_null(strstr(err, "schema_registry.url"));
      if (i == 0 && strstr(err, "schema_registry.allow_http = true") == NULL)
        fail_msg("the refusal does not name the setting: %s", err);
    }
    lmp_registry_free(reg);
    lmp_config_free(t);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_trip_examples),  cmocka_unit_test(fingerprint_is_canonical_crc),
      cmocka_unit_test(bad_framing),          cmocka_unit_test(every_truncation_fails),
      cmocka_unit_test(lying_lengths),        cmocka_unit_test(check_walker),
      cmocka_unit_test(json_errors),          cmocka_unit_test(registry_framing),
      cmocka_unit_test(registry_needs_https),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
