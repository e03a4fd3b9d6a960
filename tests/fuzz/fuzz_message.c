/* libFuzzer: any key, any headers and any body as a consumed message, through the
 * checks that decide, before the database, whether it is poison. Nothing may crash,
 * leak or read out of bounds; whatever passes has a printable id, a text key and
 * headers, its topic's event type and text that is UTF-8 without NUL.
 *
 * Input: byte 0 picks the topic, byte 1 the key's length (255: no key), then that
 * many key bytes, byte n the count of headers, each as name length, name, value
 * length (two bytes, little-endian), value; the rest is the payload. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/avro/av.h"
#include "lmp/base/text.h"
#include "runtime/rt.h"

static struct lmp_schemas *S;
static struct lmp_config cfg = {.topic_prefix = "lmp.", .replay_topic = "lmp.replay.intake"};
static int handle(struct lmp_tx *tx, const struct lmp_event *ev) { return 0; }
static const struct lmp_route routes[] = {
    {"onboarding.requested", handle, NULL, 1},
    {"onboarding.accepted", handle, NULL, 0},
    {"onboarding.failed", handle, NULL, 0},
    {"shipment.dispatched", handle, NULL, 0},
    {NULL, NULL, NULL, 0},
};
/* The replay topic's route is its header source_topic's. */
static const char *const topics[] = {"lmp.onboarding.requested", "lmp.onboarding.accepted", "lmp.onboarding.failed",
                                     "lmp.shipment.dispatched", "lmp.other", "lmp.replay.intake"};
#define NTOPICS (sizeof(topics) / sizeof(topics[0]))

#define MAX_HEADERS 8

struct hdrs {
  size_t n;
  char name[MAX_HEADERS][64];
  const uint8_t *value[MAX_HEADERS];
  size_t len[MAX_HEADERS];
};

static const void *header(const void *ctx, const char *name, size_t *n) {
  const struct hdrs *h = ctx;
  const void *v = NULL;
  for (size_t i = 0; i < h->n; i++) /* the last one wins, as with Kafka headers */
    if (strcmp(h->name[i], name) == 0) {
      v = h->value[i] ? h->value[i] : (const void *)"";
      *n = h->len[i];
    }
  return v;
}

static int string_ok(void *ctx, const char *path, const char *s, size_t n) {
  if (!lmp_utf8_valid(s, n) || memchr(s, 0, n))
    abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[300];
  if (S == NULL && lmp_schemas_new(&S, err, sizeof(err)) != 0)
    abort();
  size_t at = 0;
  if (size < 3)
    return 0;
  struct lmp_raw raw = {topics[data[at++] % NTOPICS], 1, 42, NULL, 0, NULL, 0, header, NULL, NULL};
  size_t klen = data[at++];
  if (klen != 255) {
    if (at + klen > size)
      return 0;
    raw.key = data + at;
    raw.keylen = klen;
    at += klen;
  }
  struct hdrs h = {0};
  size_t nh = at < size ? data[at++] % (MAX_HEADERS + 1) : 0;
  for (size_t i = 0; i < nh && at < size; i++) {
    size_t nl = data[at++] % 63;
    if (at + nl + 2 > size)
      return 0;
    memcpy(h.name[i], data + at, nl);
    h.name[i][nl] = '\0'; /* a name with a NUL inside is only shorter */
    at += nl;
    size_t vl = data[at] | (size_t)data[at + 1] << 8;
    at += 2;
    if (at + vl > size)
      return 0;
    h.value[i] = data + at;
    h.len[i] = vl;
    at += vl;
    h.n++;
  }
  raw.hctx = &h;
  raw.payload = data + at;
  raw.len = size - at;

  struct lmp_msg x;
  lmp__message_check(S, &cfg, routes, &raw, &x);
  if (x.code == NULL) {
    /* It passed: everything the handler and the inbox will see is well formed. */
    if (!x.decoded || x.route == NULL || strcmp(x.route->event_type, x.schema->name) != 0)
      abort();
    for (const char *p = x.id; *p; p++)
      if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7F)
        if (strchr(x.id, '/') == NULL)
          abort();
    if (lmp_text_check(x.key, strlen(x.key), 0, NULL) != LMP_TEXT_OK)
      abort();
    if (!x.route->checks_text)
      lmp_avro_walk_strings(&x.value, string_ok, NULL);
  } else if (x.decoded && strcmp(x.code, "WRONG_TOPIC") != 0 && strcmp(x.code, "EVENT_TYPE_MISMATCH") != 0 &&
             strcmp(x.code, "BAD_TEXT") != 0 && strcmp(x.code, "BAD_ID") != 0) {
    abort(); /* a message refused before decoding holds no value */
  }
  lmp__message_clear(&x);
  return 0;
}
