/* lmp-fulfilment: appliances for onboardings. Parse, configure, run, drain. */
#include "fulfilment.h"

static const char *const consumes[] = {"onboarding.users-allocated", "onboarding.failed", NULL};

int main(int argc, char **argv) {
  const struct lmp_service svc = {
      .name = "fulfilment",
      .consumes = consumes,
      .migrations = fulfilment_migrations,
      .handle = fulfilment_handle,
      .http = fulfilment_http,
  };
  return lmp_service_main(&svc, argc, argv);
}
