/* lmp-shipping: shipments and warehouse dispatches. Parse, configure, run, drain. */
#include "shipping.h"

static const char *const consumes[] = {"onboarding.appliances-provisioned", "shipment.dispatched", NULL};

int main(int argc, char **argv) {
  const struct lmp_service svc = {
      .name = "shipping",
      .consumes = consumes,
      .migrations = shipping_migrations,
      .handle = shipping_handle,
      .http = shipping_http,
  };
  return lmp_service_main(&svc, argc, argv);
}
