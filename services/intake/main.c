/* lmp-intake: the entry of the flow. Parse, configure, run, drain. */
#include "intake.h"

/* onboarding.requested: what the front door takes from frontends (door.c). */
static const char *const emits[] = {"onboarding.accepted", "onboarding.rejected", "onboarding.request-conflict",
                                    "onboarding.requested", "customer.users-requested", "customer.users-accepted",
                                    "customer.users-rejected", NULL};

int main(int argc, char **argv) {
  static struct intake in;
  const struct lmp_service svc = {
      .name = "intake",
      .routes = intake_routes,
      .emits = emits,
      .migrations = intake_migrations,
      .conf = intake_conf,
      .conf_n = intake_conf_n,
      .conf_base = &in,
      .configured = intake_configured,
      .http = intake_http,
      .purge = intake_purge,
      .ctx = &in,
  };
  return lmp_service_main(&svc, argc, argv);
}
