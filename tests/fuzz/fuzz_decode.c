/* libFuzzer: any bytes as a framed message. Decoding must fail cleanly or give a
 * value that converts to JSON and encodes again to bytes that decode again. */
#include <stdint.h>
#include <stdlib.h>

#include "lmp/avro/codec.h"

static struct lmp_schemas *S;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[300];
  if (S == NULL && lmp_schemas_new(&S, err, sizeof(err)) != 0)
    abort();
  const struct lmp_schema *schema;
  avro_value_t v;
  if (lmp_avro_decode(S, data, size, &schema, &v, err, sizeof(err)) != 0)
    return 0;
  json_t *j = lmp_avro_to_json(&v);
  json_decref(j);
  struct lmp_buf again = {0};
  if (lmp_avro_encode(schema, &v, &again) != 0)
    abort();
  avro_value_t w;
  const struct lmp_schema *schema2;
  if (lmp_avro_decode(S, again.data, again.len, &schema2, &w, err, sizeof(err)) != 0 || schema2 != schema)
    abort(); /* what we encode, we must read */
  if (!avro_value_equal(&v, &w))
    abort();
  avro_value_decref(&w);
  avro_value_decref(&v);
  lmp_buf_free(&again);
  return 0;
}
