/* lmp-shipping: shipments and warehouse dispatches. Parse, configure, run, drain. */
#include "shipping.h"

int main(int argc, char **argv) {
  const struct lmp_service svc = {
      .name = "shipping",
      .routes = shipping_routes,
      .migrations = shipping_migrations,
      .http = shipping_http,
  };
  return lmp_service_main(&svc, argc, argv);
}
