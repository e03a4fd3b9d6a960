/* lmp-shipping: shipments and warehouse dispatches. Parse, configure, run, drain. */
#include "shipping.h"

static const char *const emits[] = {"shipment.requested", "onboarding.shipping-completed", "onboarding.shipment-dispatched", "onboarding.failed", NULL};

int main(int argc, char **argv) {
  const struct lmp_service svc = {
      .name = "shipping",
      .routes = shipping_routes,
      .emits = emits,
      .migrations = shipping_migrations,
      .http = shipping_http,
      .purge = shipping_purge,
  };
  return lmp_service_main(&svc, argc, argv);
}
