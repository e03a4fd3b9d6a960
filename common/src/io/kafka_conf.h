/* The Kafka client's configuration and its answers, below the runtime (which runs the
 * consumer and the producer, kafka.c). Private to common/. */
#ifndef LMP_KAFKA_CONF_H
#define LMP_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>

#include "lmp/base/config.h"
#include "lmp/io/kafka.h"

/* kafka.property.* names no property the runtime's guarantees rest on. */
int lmp__kafka_check_props(const struct lmp_kvs *props, char *err, size_t errlen);
/* The broker will never take this message. */
int lmp__kafka_permanent(rd_kafka_resp_err_t err);

#endif
