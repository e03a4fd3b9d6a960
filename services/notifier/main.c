/* lmp-notifier: mails to partners and administrators. Parse, configure, run, drain. */
#include <curl/curl.h>

#include "notifier.h"

static const char *const emits[] = {"onboarding.confirmed", "onboarding.mail-settled", NULL};

int main(int argc, char **argv) {
  static struct notifier n;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct lmp_service svc = {
      .name = "notifier",
      .routes = notifier_routes,
      .emits = emits,
      .migrations = notifier_migrations,
      .conf = notifier_conf,
      .conf_n = notifier_conf_n,
      .conf_base = &n,
      .configured = notifier_configured,
      .http = notifier_http,
      .tick = notifier_tick,
      .purge = notifier_purge,
      .metrics = notifier_metrics,
      .background = notifier_send_next,
      .background_threads = NOTIFIER_SENDERS,
      /* The tick announces mails when the senders ask; the period is a safety net. */
      .tick_ms = 1000,
      .tick_gap_ms = 200, /* the senders wake it per mail: one announcement a burst */
      .ctx = &n,
  };
  int rc = lmp_service_main(&svc, argc, argv);
  curl_global_cleanup();
  return rc;
}
