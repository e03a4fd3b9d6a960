/* Parsing Canonical Form and CRC-64-AVRO against the Avro specification's vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lmp/avro/codec.h"

struct vector {
  const char *input;
  const char *canonical;
  int has_fp;
  int64_t fingerprint; /* as the spec lists it: a signed 64-bit integer */
};

/* The cases of the Avro specification's schema test data (share/test/data). */
static const struct vector vectors[] = {
    {"\"null\"", "\"null\"", 1, 7195948357588979594LL},
    {"{\"type\":\"null\"}", "\"null\"", 0, 0},
    {"\"boolean\"", "\"boolean\"", 1, -6970731678124411036LL},
    {"{\"type\":\"boolean\"}", "\"boolean\"", 0, 0},
    {"\"int\"", "\"int\"", 1, 8247732601305521295LL},
    {"{\"type\":\"int\"}", "\"int\"", 0, 0},
    {"\"long\"", "\"long\"", 1, -3434872931120570953LL},
    {"{\"type\":\"long\"}", "\"long\"", 0, 0},
    {"\"float\"", "\"float\"", 1, 5583340709985441680LL},
    {"{\"type\":\"float\"}", "\"float\"", 0, 0},
    {"\"double\"", "\"double\"", 1, -8181574048448539266LL},
    {"{\"type\":\"double\"}", "\"double\"", 0, 0},
    {"\"bytes\"", "\"bytes\"", 1, 5746618253357095269LL},
    {"{\"type\":\"bytes\"}", "\"bytes\"", 0, 0},
    {"\"string\"", "\"string\"", 1, -8142146995180207161LL},
    {"{\"type\":\"string\"}", "\"string\"", 0, 0},
    {"[  ]", "[]", 1, -1241056759729112623LL},
    {"[ \"int\"  ]", "[\"int\"]", 1, -5232228896498058493LL},
    {"[ \"int\" , {\"type\":\"boolean\"} ]", "[\"int\",\"boolean\"]", 1, 5392556393470105090LL},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", 1, -4824392279771201922LL},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}", 1, 5916914534497305771LL},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"a.b.foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}", 1, -4616218487480524110LL},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"Useful info\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", 1, -4824392279771201922LL},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"aliases\":[\"foo\",\"bar\"]}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", 1, -4824392279771201922LL},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"foo\", \"aliases\":[\"foo\",\"bar\"]}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", 1, -4824392279771201922LL},
    {"{\"fields\":[{\"type\":{\"type\":\"boolean\"}, \"name\":\"f1\"}], \"type\":\"record\", \"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"}]}", 1,
     7843277075252814651LL},
    {"{ \"fields\":[{\"type\":\"boolean\", \"aliases\":[], \"name\":\"f1\", \"default\":\"true\"},\n"
     "            {\"order\":\"descending\",\"name\":\"f2\",\"doc\":\"Hello\",\"type\":\"int\"}],\n"
     "  \"type\":\"record\", \"name\":\"foo\"\n}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"},{\"name\":\"f2\",\"type\":\"int\"}]}",
     1, -4860222112080293046LL},
    {"{\"type\":\"enum\", \"name\":\"foo\", \"symbols\":[\"A1\"]}",
     "{\"name\":\"foo\",\"type\":\"enum\",\"symbols\":[\"A1\"]}", 1, -6342190197741309591LL},
    {"{\"namespace\":\"x.y.z\", \"type\":\"enum\", \"name\":\"foo\", \"doc\":\"foo bar\", \"symbols\":[\"A1\", \"A2\"]}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}", 1, -4448647247586288245LL},
    {"{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}", "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}",
     1, 1756455273707447556LL},
    {"{\"namespace\":\"x.y.z\", \"type\":\"fixed\", \"name\":\"foo\", \"doc\":\"foo bar\", \"size\":32}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}", 1, -3064184465700546786LL},
    {"{ \"items\":{\"type\":\"null\"}, \"type\":\"array\"}", "{\"type\":\"array\",\"items\":\"null\"}", 1,
     -589620603366471059LL},
    {"{ \"values\":\"string\", \"type\":\"map\"}", "{\"type\":\"map\",\"values\":\"string\"}", 1,
     -8732877298790414990LL},
    {"  {\"name\":\"PigValue\",\"type\":\"record\",\n"
     "   \"fields\":[{\"name\":\"value\", \"type\":[\"null\", \"int\", \"long\", \"PigValue\"]}]}",
     "{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":[\"null\",\"int\",\"long\",\"PigValue\"]}]}",
     1, -1759257747318642341LL},
};

static void spec_vectors(void **state) {
  for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
    char *out = NULL, err[200] = "";
    int r = lmp_avro_canonical_form(vectors[i].input, &out, err, sizeof(err));
    if (r != 0)
      fail_msg("vector %zu: %s", i, err);
    if (strcmp(out, vectors[i].canonical) != 0)
      fail_msg("vector %zu: got %s, want %s", i, out, vectors[i].canonical);
    if (vectors[i].has_fp)
      assert_int_equal((int64_t)lmp_avro_crc64(out, strlen(out)), vectors[i].fingerprint);
    free(out);
  }
}

static void namespaces_and_references(void **state) {
  /* A nested type inherits the enclosing namespace; references become full names;
   * logicalType is not part of the canonical form; UTF-8 stays unescaped. */
  const char *in = "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"a.b\",\"fields\":["
                   "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"\\u00e9\"]}},"
                   "{\"name\":\"e2\",\"type\":\"E\"},"
                   "{\"name\":\"t\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}]}";
  char *out = NULL, err[200];
  assert_int_equal(lmp_avro_canonical_form(in, &out, err, sizeof(err)), 0);
  assert_string_equal(out, "{\"name\":\"a.b.R\",\"type\":\"record\",\"fields\":["
                           "{\"name\":\"e\",\"type\":{\"name\":\"a.b.E\",\"type\":\"enum\",\"symbols\":[\"\xc3\xa9\"]}},"
                           "{\"name\":\"e2\",\"type\":\"a.b.E\"},{\"name\":\"t\",\"type\":\"long\"}]}");
  free(out);
}

static void malformed_schemas(void **state) {
  static const char *const bad[] = {"", "{", "42", "{\"type\":\"record\",\"fields\":[]}",
                                    "{\"type\":\"record\",\"name\":\"x\"}",
                                    "{\"type\":\"enum\",\"name\":\"x\"}",
                                    "{\"type\":\"fixed\",\"name\":\"x\",\"size\":-1}",
                                    "{\"type\":\"array\"}", "{\"type\":\"map\"}", "{\"name\":\"x\"}",
                                    "{\"type\":\"record\",\"name\":\"x\",\"fields\":[{\"name\":\"a\"}]}"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char *out = NULL, err[200] = "";
    if (lmp_avro_canonical_form(bad[i], &out, err, sizeof(err)) == 0)
      fail_msg("accepted malformed schema %s as %s", bad[i], out);
    assert_true(strlen(err) > 0);
  }
}

static void crc_of_nothing(void **state) {
  assert_int_equal(lmp_avro_crc64("", 0), 0xc15d213aa4d7a795ULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(spec_vectors),
      cmocka_unit_test(namespaces_and_references),
      cmocka_unit_test(malformed_schemas),
      cmocka_unit_test(crc_of_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
