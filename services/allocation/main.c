/* lmp-allocation: license pools. Parse, configure, run, drain. */
#include "allocation.h"

int main(int argc, char **argv) {
  const struct lmp_service svc = {
      .name = "allocation",
      .routes = allocation_routes,
      .migrations = allocation_migrations,
      .http = allocation_http,
  };
  return lmp_service_main(&svc, argc, argv);
}
