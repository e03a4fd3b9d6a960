/* lmp-shipping: shipments and warehouse dispatches. Parse, configure, run, drain. */
#include "shipping.h"

static const char *const emits[] = {"shipment.requested", "onboarding.shipping-completed",
                                    "onboarding.shipment-dispatched", "onboarding.failed", "partner.address",
                                    NULL};

int main(int argc, char **argv) {
  const struct lmp_service svc = {
      .name = "shipping",
      .routes = shipping_routes,
      .emits = emits,
      .migrations = shipping_migrations,
      .http = shipping_http,
      .purge = shipping_purge,
      /* Addresses are announced when a load changed one; the period is a safety net. */
      .tick = shipping_tick,
      .tick_ms = 5000,
  };
  return lmp_service_main(&svc, argc, argv);
}
