/* libFuzzer: the first byte picks an event type, the rest is its Avro body behind a
 * valid header, so the fuzzer spends its time inside the bounded decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/avro/codec.h"

static struct lmp_schemas *S;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[300];
  if (S == NULL && lmp_schemas_new(&S, err, sizeof(err)) != 0)
    abort();
  if (size < 1)
    return 0;
  const struct lmp_schema *pick = lmp_schemas_at(S, data[0] % lmp_schemas_count(S));
  uint8_t *msg = malloc(size - 1 + LMP_SOE_HEADER_LEN);
  if (msg == NULL)
    return 0;
  msg[0] = 0xC3;
  msg[1] = 0x01;
  uint64_t fp = pick->fingerprint; /* little-endian host */
  memcpy(msg + 2, &fp, 8);
  memcpy(msg + LMP_SOE_HEADER_LEN, data + 1, size - 1);
  const struct lmp_schema *schema;
  avro_value_t v;
  if (lmp_avro_decode(S, msg, size - 1 + LMP_SOE_HEADER_LEN, &schema, &v, err, sizeof(err)) == 0) {
    json_decref(lmp_avro_to_json(&v));
    avro_value_decref(&v);
  }
  free(msg);
  return 0;
}
