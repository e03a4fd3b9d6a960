/* lmp-allocation: license pools. Parse, configure, run, drain. */
#include "allocation.h"

static const char *const emits[] = {"onboarding.users-allocated", "onboarding.failed", "partner.balance",
                                    "customer.users-added", "customer.users-refused", NULL};

int main(int argc, char **argv) {
  const struct lmp_service svc = {
      .name = "allocation",
      .routes = allocation_routes,
      .emits = emits,
      .migrations = allocation_migrations,
      .http = allocation_http,
      /* Balances are announced when a transaction changed one; the period is a safety net. */
      .tick = allocation_tick,
      .tick_ms = 5000,
      .tick_gap_ms = 200, /* a burst of onboardings: one balance a partner, not one a batch */
  };
  return lmp_service_main(&svc, argc, argv);
}
