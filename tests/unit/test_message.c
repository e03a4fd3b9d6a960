/* The checks a consumed message passes before its handler, for what a replay carries:
 * on a daemon's replay topic the header source_topic decides which route applies, so
 * a replay without one, or with one that is not a topic name, is poison (BAD_HEADER)
 * and is never handled as whatever the replay topic is; elsewhere the header means
 * nothing. (Bodies, keys and the rest: fuzz.message and the integration tests.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/src/rt.h"
#include "lmp/av.h"

static struct lmp_schemas *S;
static struct lmp_config cfg = {.topic_prefix = "lmp.", .replay_topic = "lmp.replay.intake"};
static const struct lmp_route routes[] = {{"onboarding.requested", NULL, NULL, 1}, {NULL, NULL, NULL, 0}};

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

/* The message on topic with that source_topic header and a body that is no event:
 * its code, and the topic whose route it was checked against in source. */
static const char *check(const char *topic, struct header h, char *source, size_t sourcelen) {
  struct lmp_raw raw = {topic, 0, 7, NULL, 0, "junk", 4, source_topic, NULL, &h};
  struct lmp_msg x;
  lmp__message_check(S, &cfg, routes, &raw, &x);
  const char *code = x.code;
  snprintf(source, sourcelen, "%s", x.source);
  lmp__message_clear(&x);
  return code;
}

static int setup(void **state) {
  char err[300];
  return lmp_schemas_new(&S, err, sizeof(err));
}

static int teardown(void **state) {
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
  const char *code = check("lmp.replay.intake", (struct header){"lmp.onboarding.requested", 24}, source,
                           sizeof(source));
  /* Past the header, to the body (which is junk). */
  assert_non_null(code);
  assert_string_equal(code, "BAD_FRAMING");
  assert_string_equal(source, "lmp.onboarding.requested");
}

static void source_topic_elsewhere_means_nothing(void **state) {
  char source[LMP_TOPIC_MAX + 1];
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
