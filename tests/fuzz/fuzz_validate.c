/* libFuzzer: bytes as an onboarding.requested body, through intake's reader and
 * every rule of the form. Nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "intake.h"
#include "lmp/avro/codec.h"

static struct lmp_schemas *S;
static char *regions[] = {"ca-central-1", "us-east-1", NULL};
static char *skus[] = {"NS-100", "NS-500", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[300];
  if (S == NULL && lmp_schemas_new(&S, err, sizeof(err)) != 0)
    abort();
  const struct lmp_schema *req = lmp_schemas_get(S, "onboarding.requested");
  uint8_t *msg = malloc(size + LMP_SOE_HEADER_LEN);
  if (msg == NULL)
    return 0;
  msg[0] = 0xC3;
  msg[1] = 0x01;
  uint64_t fp = req->fingerprint;
  memcpy(msg + 2, &fp, 8);
  memcpy(msg + LMP_SOE_HEADER_LEN, data, size);
  const struct lmp_schema *schema;
  avro_value_t v;
  if (lmp_avro_decode(S, msg, size + LMP_SOE_HEADER_LEN, &schema, &v, err, sizeof(err)) == 0) {
    struct intake_rules rules = {regions, skus, 200, 1000000, 50, NULL};
    struct intake_request r;
    struct intake_findings f = {0};
    if (intake_request_read(&v, &r) == 0 && intake_check_text(&v, &f) == 0 && f.errors.n == 0)
      intake_validate(&r, &rules, &f);
    intake_findings_clear(&f);
    intake_request_clear(&r);
    avro_value_decref(&v);
  }
  free(msg);
  return 0;
}
