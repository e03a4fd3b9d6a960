/* lmp-intake: the entry of the flow. Parse, configure, run, drain. */
#include "intake.h"

static const char *const consumes[] = {
    "onboarding.requested",          "onboarding.users-allocated", "onboarding.appliances-provisioned",
    "onboarding.shipping-completed", "onboarding.shipment-dispatched", "onboarding.confirmed",
    "onboarding.failed",             NULL};

int main(int argc, char **argv) {
  static struct intake in;
  const struct lmp_service svc = {
      .name = "intake",
      .consumes = consumes,
      .migrations = intake_migrations,
      .handle = intake_handle,
      .conf = intake_conf,
      .conf_n = intake_conf_n,
      .conf_base = &in.rules,
      .configured = intake_configured,
      .http = intake_http,
      .ctx = &in,
  };
  return lmp_service_main(&svc, argc, argv);
}
