/* The checks a consumed message passes before its handler, for what a replay carries:
 * on a daemon's replay topic the header source_topic decides which route applies, so
 * a replay without one, or with one that is not a topic name, is poison (BAD_HEADER)
 * and is never handled as whatever the replay topic is; a well-formed one names a
 * topic whose route then applies in full (a topic the daemon does not read, or an
 * event that topic does not carry, is WRONG_TOPIC); elsewhere the header means
 * nothing. (Bodies, keys and the rest: fuzz.message and the integration tests.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "lmp/avro/av.h"
#include "lmp/avro/codec.h"
#include "lmp/base/buf.h"
#include "runtime/rt.h"

static struct lmp_schemas *S;
static struct lmp_config cfg = {.topic_prefix = "lmp.", .replay_topic = "lmp.replay.intake"};
static const struct lmp_route routes[] = {
    {"onboarding.requested", NULL, NULL, 1}, {"onboarding.failed", NULL, NULL, 0}, {NULL, NULL, NULL, 0}};
static struct lmp_buf requested; /* a framed onboarding.requested, deploy/examples/virtual-core.json */

struct header {
  const char *value; /* NULL: absent */
  size_t len;
};

static const void *source_topic(const void *ctx, const char *name, size_t *n) {
  const struct header *h = ctx;
  if (strcmp(name, "source_topic") != 0 || h->value == NULL)
    return NULL;
  *n = h->len;
  return h->value;
}

/* The message on topic with that source_topic header and body (NULL: bytes that are no
 * event): its code (NULL: it passed), and the topic whose route applied in source. */
static const char *check_body(const char *topic, struct header h, const struct lmp_buf *body, char *source,
                              size_t sourcelen) {
  struct lmp_raw raw = {topic, 0, 7, NULL, 0, body ? body->data : "junk", body ? body->len : 4,
                        source_topic, NULL, &h};
  struct lmp_msg x;
  lmp__message_check(S, &cfg, routes, &raw, &x);
  const char *code = x.code;
  snprintf(source, sourcelen, "%s", x.source);
  lmp__message_clear(&x);
  return code;
}

static const char *check(const char *topic, struct header h, char *source, size_t sourcelen) {
  return check_body(topic, h, NULL, source, sourcelen);
}

static int setup(void **state) {
  char err[300];
  if (lmp_schemas_new(&S, err, sizeof(err)) < 0)
    return -1;
  json_t *j = json_load_file(LMP_SOURCE_DIR "/deploy/examples/virtual-core.json", 0, NULL);
  const struct lmp_schema *s = lmp_schemas_get(S, "onboarding.requested");
  avro_value_t v;
  if (j == NULL || s == NULL || avro_generic_value_new(s->iface, &v) != 0)
    return -1;
  int r = lmp_avro_from_json(&v, j, err, sizeof(err)) == 0 && lmp_avro_encode(s, &v, &requested) == 0 ? 0 : -1;
  avro_value_decref(&v);
  json_decref(j);
  return r;
}

static int teardown(void **state) {
  lmp_buf_free(&requested);
  lmp_schemas_free(S);
  return 0;
}

static void replay_without_a_source_is_poison(void **state) {
  char long_name[LMP_TOPIC_MAX + 2];
  memset(long_name, 'a', sizeof(long_name) - 1);
  long_name[sizeof(long_name) - 1] = '\0';
  const struct header bad[] = {
      {NULL, 0},                                   /* absent */
      {"", 0},                                     /* empty */
      {"lmp.onboarding.requested\r\nx", 27},        /* a line break */
      {"lmp.onboarding.\x1b[2Jrequested", 28},     /* a terminal escape */
      {"lmp.onboarding.requested\0evil", 29},      /* a NUL inside */
      {"lmp.onboarding.r\xc3\xa9quested", 25},     /* not ASCII */
      {long_name, sizeof(long_name) - 1},          /* longer than a topic may be */
  };
  char source[LMP_TOPIC_MAX + 1];
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    const char *code = check("lmp.replay.intake", bad[i], source, sizeof(source));
    if (code == NULL || strcmp(code, "BAD_HEADER") != 0)
      fail_msg("case %zu: %s, not BAD_HEADER", i, code ? code : "accepted");
    /* Dead-lettered as coming from the replay topic, not from what it claimed. */
    assert_string_equal(source, "lmp.replay.intake");
  }
}

static void replay_with_a_source_takes_its_route(void **state) {
  char source[LMP_TOPIC_MAX + 1];
  /* The request it names the topic of: handled as read from there. */
  const char *code = check_body("lmp.replay.intake", (struct header){"lmp.onboarding.requested", 24}, &requested,
                                source, sizeof(source));
  if (code != NULL)
    fail_msg("a replayed request: %s", code);
  assert_string_equal(source, "lmp.onboarding.requested");
  /* A topic this daemon reads no event from. */
  code = check_body("lmp.replay.intake", (struct header){"lmp.shipment.dispatched", 23}, &requested, source,
                    sizeof(source));
  assert_non_null(code);
  assert_string_equal(code, "WRONG_TOPIC");
  /* A topic it reads, that carries another event than the one replayed: a failure
   * stage's topic does not carry a request. */
  code = check_body("lmp.replay.intake", (struct header){"lmp.onboarding.failed.shipping", 30}, &requested, source,
                    sizeof(source));
  assert_non_null(code);
  assert_string_equal(code, "WRONG_TOPIC");
  /* The header checked before the body: junk after a good header is the body's fault. */
  code = check("lmp.replay.intake", (struct header){"lmp.onboarding.requested", 24}, source, sizeof(source));
  assert_non_null(code);
  assert_string_equal(code, "BAD_FRAMING");
}

static void source_topic_elsewhere_means_nothing(void **state) {
  char source[LMP_TOPIC_MAX + 1];
  /* A request on its own topic passes whatever its source_topic says. */
  const char *passed = check_body("lmp.onboarding.requested", (struct header){"lmp.shipment.dispatched", 23},
                                  &requested, source, sizeof(source));
  assert_null(passed);
  assert_string_equal(source, "lmp.onboarding.requested");
  const char *code = check("lmp.onboarding.requested", (struct header){"lmp.shipment.dispatched", 23}, source,
                           sizeof(source));
  assert_string_equal(code, "BAD_FRAMING");
  assert_string_equal(source, "lmp.onboarding.requested");
  code = check("lmp.onboarding.requested", (struct header){NULL, 0}, source, sizeof(source));
  assert_string_equal(code, "BAD_FRAMING");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(replay_without_a_source_is_poison),
      cmocka_unit_test(replay_with_a_source_takes_its_route),
      cmocka_unit_test(source_topic_elsewhere_means_nothing),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
