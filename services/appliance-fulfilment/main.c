/* lmp-appliance-fulfilment: appliances for onboardings. Parse, configure, run, drain. */
#include "fulfilment.h"

static const char *const emits[] = {"onboarding.appliances-provisioned", "onboarding.failed", NULL};

int main(int argc, char **argv) {
  const struct lmp_service svc = {
      .name = "appliance-fulfilment",
      .routes = fulfilment_routes,
      .emits = emits,
      .migrations = fulfilment_migrations,
      .http = fulfilment_http,
  };
  return lmp_service_main(&svc, argc, argv);
}
