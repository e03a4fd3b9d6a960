/* Topic names: an event type's topic under the configured prefix, the topics of event
 * types several daemons write, each daemon's dead-letter and replay topics. */
#ifndef LMP_TOPICS_H
#define LMP_TOPICS_H

#include <stddef.h>

#include "lmp/base/config.h"

/* Topic of an event type under the configured prefix. */
void lmp_topic_name(const struct lmp_config *cfg, const char *event_type, char *out, size_t outlen);

/* An event type that several daemons write goes to a topic per writer,
 * <prefix><event type>.<writer>, so that the broker's ACLs say who wrote an event,
 * and the event's field naming its writer must name that one. */
struct lmp_writers {
  const char *event_type;
  const char *field;          /* the event's field that names its writer */
  const char *const *writers; /* the daemons that write it, NULL-ended */
};
/* The writers of an event type several daemons write, or NULL (one topic). */
const struct lmp_writers *lmp_event_writers(const char *event_type);

/* The longest topic name the runtime makes, with its NUL. */
#define LMP_TOPIC_NAME_MAX 300
/* The topics an event type is read from: its one topic, or one per writer. At most
 * max are written to out; returns how many there are. */
size_t lmp_event_topics(const struct lmp_config *cfg, const char *event_type, char (*out)[LMP_TOPIC_NAME_MAX],
                        size_t max);
/* The topic a daemon writes an event type to. */
void lmp_emit_topic(const struct lmp_config *cfg, const char *event_type, const char *service, char *out,
                    size_t outlen);

/* A daemon's own dead-letter topic, <prefix>dead-letter.<service>. Only that daemon's
 * principal may write it, so the topic a dead letter is on says which daemon wrote
 * it: no header does. */
void lmp_dead_letter_topic(const struct lmp_config *cfg, const char *service, char *out, size_t outlen);

/* Where lmpctl dlq replay sends a daemon's dead letters back, <prefix>replay.<service>:
 * read by that daemon alone, written by the replay principal alone. A message there
 * is handled by the route of its source_topic header, among the daemon's own. */
void lmp_replay_topic(const struct lmp_config *cfg, const char *service, char *out, size_t outlen);

#endif
