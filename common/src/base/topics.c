/* Topic names: an event type's topic under the configured prefix, one per writer for
 * the event types several daemons write, each daemon's dead-letter and replay topics. */
#include "lmp/base/topics.h"

#include <stdio.h>
#include <string.h>

/* onboarding.failed: a stage fails only its own part, and says which in "stage". */
static const char *const failing_stages[] = {"allocation", "appliance-fulfilment", "shipping", NULL};
static const struct lmp_writers several[] = {{"onboarding.failed", "stage", failing_stages}};

const struct lmp_writers *lmp_event_writers(const char *event_type) {
  for (size_t i = 0; i < sizeof(several) / sizeof(several[0]); i++)
    if (strcmp(several[i].event_type, event_type) == 0)
      return &several[i];
  return NULL;
}

void lmp_topic_name(const struct lmp_config *cfg, const char *event_type, char *out, size_t outlen) {
  snprintf(out, outlen, "%s%s", cfg->topic_prefix, event_type);
}

size_t lmp_event_topics(const struct lmp_config *cfg, const char *event_type, char (*out)[LMP_TOPIC_NAME_MAX],
                        size_t max) {
  const struct lmp_writers *w = lmp_event_writers(event_type);
  if (w == NULL) {
    if (max)
      lmp_topic_name(cfg, event_type, out[0], LMP_TOPIC_NAME_MAX);
    return 1;
  }
  size_t n = 0;
  for (; w->writers[n]; n++)
    if (n < max)
      snprintf(out[n], LMP_TOPIC_NAME_MAX, "%s%s.%s", cfg->topic_prefix, event_type, w->writers[n]);
  return n;
}

void lmp_emit_topic(const struct lmp_config *cfg, const char *event_type, const char *service, char *out,
                    size_t outlen) {
  if (lmp_event_writers(event_type))
    snprintf(out, outlen, "%s%s.%s", cfg->topic_prefix, event_type, service);
  else
    lmp_topic_name(cfg, event_type, out, outlen);
}

void lmp_dead_letter_topic(const struct lmp_config *cfg, const char *service, char *out, size_t outlen) {
  snprintf(out, outlen, "%sdead-letter.%s", cfg->topic_prefix, service);
}

void lmp_replay_topic(const struct lmp_config *cfg, const char *service, char *out, size_t outlen) {
  snprintf(out, outlen, "%sreplay.%s", cfg->topic_prefix, service);
}
