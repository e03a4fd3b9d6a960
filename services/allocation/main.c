/* lmp-allocation: license pools. Parse, configure, run, drain. */
#include "allocation.h"

static const char *const consumes[] = {"onboarding.accepted", "onboarding.failed", NULL};

int main(int argc, char **argv) {
  const struct lmp_service svc = {
      .name = "allocation",
      .consumes = consumes,
      .migrations = allocation_migrations,
      .handle = allocation_handle,
      .http = allocation_http,
  };
  return lmp_service_main(&svc, argc, argv);
}
