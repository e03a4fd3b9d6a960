/* librdkafka client settings from the configuration, for the daemons and the tools. */
#ifndef LMP_KAFKA_H
#define LMP_KAFKA_H

#include <librdkafka/rdkafka.h>

#include "lmp/base/config.h"

/* A new librdkafka configuration with kafka.brokers and every kafka.property.* of cfg
 * (security, tuning). NULL, with the reason in err, when librdkafka refuses one. The
 * caller owns it until rd_kafka_new takes it. */
rd_kafka_conf_t *lmp_kafka_conf(const struct lmp_config *cfg, char *err, size_t errlen);

#endif
