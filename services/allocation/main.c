/* lmp-allocation: license pools. Parse, configure, run, drain. */
#include "allocation.h"

static const char *const emits[] = {"onboarding.users-allocated", "onboarding.failed", NULL};

int main(int argc, char **argv) {
  const struct lmp_service svc = {
      .name = "allocation",
      .routes = allocation_routes,
      .emits = emits,
      .migrations = allocation_migrations,
      .http = allocation_http,
  };
  return lmp_service_main(&svc, argc, argv);
}
