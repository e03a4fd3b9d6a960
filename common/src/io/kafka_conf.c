/* A librdkafka configuration from the settings, the properties an operator may not
 * set, and which broker answers are final. */
#include "io/kafka_conf.h"

#include <stdio.h>
#include <string.h>

#include "lmp/base/error.h"

int lmp__kafka_permanent(rd_kafka_resp_err_t err) {
  switch (err) {
  case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
  case RD_KAFKA_RESP_ERR_INVALID_MSG:
  case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
  case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
  case RD_KAFKA_RESP_ERR_INVALID_RECORD:
  case RD_KAFKA_RESP_ERR__INVALID_ARG:
    return 1;
  default:
    return 0; /* timeouts, brokers away, authorisation and missing topics may pass */
  }
}

rd_kafka_conf_t *lmp_kafka_conf(const struct lmp_config *cfg, char *err, size_t errlen) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  if (rd_kafka_conf_set(c, "bootstrap.servers", cfg->kafka_brokers, err, errlen) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(c);
    return NULL;
  }
  for (size_t i = 0; i < cfg->kafka_props.n; i++) {
    const struct lmp_kv *p = &cfg->kafka_props.v[i];
    char why[400];
    if (rd_kafka_conf_set(c, p->key, p->value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
      snprintf(err, errlen, "kafka.property.%s: %s", p->key, why);
      rd_kafka_conf_destroy(c);
      return NULL;
    }
  }
  return c;
}

/* Properties the runtime's guarantees rest on: an operator cannot set them. */
static const char *const protected_props[] = {"bootstrap.servers", "group.id", "enable.auto.commit",
                                              "enable.auto.offset.store", "enable.idempotence", "acks",
                                              "message.max.bytes", NULL};

int lmp__kafka_check_props(const struct lmp_kvs *props, char *err, size_t errlen) {
  for (size_t i = 0; i < props->n; i++)
    for (const char *const *p = protected_props; *p; p++)
      if (strcmp(props->v[i].key, *p) == 0) {
        snprintf(err, errlen, "kafka.property.%s: the runtime sets this itself, its guarantees rest on it%s",
                 *p, strcmp(*p, "bootstrap.servers") == 0 ? " (use kafka.brokers)"
                     : strcmp(*p, "group.id") == 0 ? " (use kafka.group_id)" : "");
        return LMP_ECONFIG;
      }
  return 0;
}
