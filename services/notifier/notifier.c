/* On shipping-completed, owe the partner a confirmation and the administrator an
 * invitation and, in the same transaction, confirm the onboarding, naming both; on
 * failed, a failure notice; on a dispatch, the tracking. Senders on threads of their
 * own send what is owed as soon as it is committed (send.c); the tick announces each
 * onboarding mail's fate. */
#include "notifier.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/avro/codec.h"
#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"
#include "lmp/io/admin.h"
#include "lmp/runtime/events.h"

#define N(field) offsetof(struct notifier, field)

const struct lmp_conf_entry notifier_conf[] = {
    {"notifier.from_address", LMP_CONF_STR, N(from_address), 3, 254, "onboarding@lmp.example.com", "sender of every mail"},
    {"notifier.from_name", LMP_CONF_STR, N(from_name), 0, 100, "License Management Portal", "sender's display name"},
    {"notifier.max_attempts", LMP_CONF_INT, N(max_attempts), 1, 1000, "10", "attempts at one mail before it is given up as failed"},
    {"notifier.retry_max_s", LMP_CONF_INT, N(retry_max_s), 1, 86400, "300", "longest wait before retrying a mail"},
    {"notifier.smtp_ca_file", LMP_CONF_STR, N(smtp_ca_file), 0, 1024, "", "PEM CA certificates that verify the SMTP server; empty: the system's"},
    {"notifier.smtp_password_file", LMP_CONF_STR, N(smtp_password_file), 0, 1024, "", "file holding the SMTP password (with smtp_username); read at each attempt"},
    {"notifier.smtp_timeout_s", LMP_CONF_INT, N(smtp_timeout_s), 1, 300, "10", "SMTP connect timeout"},
    {"notifier.smtp_tls", LMP_CONF_STR, N(smtp_tls), 3, 8, "required", "required: TLS (STARTTLS on smtp://, or smtps://) with the certificate verified, or no mail goes; try: STARTTLS when offered; none: plaintext, insecure"},
    {"notifier.smtp_url", LMP_CONF_STR, N(smtp_url), 7, 1024, "smtp://127.0.0.1:2525", "SMTP server, smtp://host:port or smtps://host:port, without credentials"},
    {"notifier.smtp_username", LMP_CONF_STR, N(smtp_username), 0, 255, "", "SMTP AUTH user; empty: no authentication"},
    {"notifier.template_dir", LMP_CONF_STR, N(template_dir), 0, 1024, "", "folder of <kind>.txt mail templates; empty: built in"},
};
const size_t notifier_conf_n = sizeof(notifier_conf) / sizeof(notifier_conf[0]);

/* smtp_url: smtp:// or smtps://, and no credentials in it: a password there would sit
 * in the settings and in every printout of them, where smtp_password_file keeps it in
 * a file of its own. The URL is read by libcurl's own parser, the one that uses it. */
static int check_url(const char *url, int *implicit_tls, char *err, size_t errlen) {
  CURLU *u = curl_url();
  char *scheme = NULL, *user = NULL, *password = NULL;
  int r = 0;
  if (u == NULL)
    return LMP_ENOMEM;
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      (strcmp(scheme, "smtp") != 0 && strcmp(scheme, "smtps") != 0)) {
    snprintf(err, errlen, "notifier.smtp_url: not an smtp:// or smtps:// address");
    r = LMP_ECONFIG;
  } else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
             curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
    snprintf(err, errlen, "notifier.smtp_url: holds credentials; set notifier.smtp_username and "
                          "notifier.smtp_password_file instead");
    r = LMP_ECONFIG;
  } else {
    *implicit_tls = strcmp(scheme, "smtps") == 0;
  }
  if (password)
    explicit_bzero(password, strlen(password));
  curl_free(scheme);
  curl_free(user);
  curl_free(password);
  curl_url_cleanup(u);
  return r;
}

/* smtp_ca_file: readable, and holding a PEM certificate (not a key, not DER). */
static int check_pem(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, errlen, "notifier.smtp_ca_file: cannot read %s: %s", path, strerror(errno));
    return LMP_ECONFIG;
  }
  char line[256];
  int found = 0;
  while (!found && fgets(line, sizeof(line), f))
    found = strncmp(line, "-----BEGIN CERTIFICATE-----", 27) == 0;
  fclose(f);
  if (!found) {
    snprintf(err, errlen, "notifier.smtp_ca_file: %s holds no PEM certificate", path);
    return LMP_ECONFIG;
  }
  return 0;
}

/* The TLS settings and the credentials, as the senders will use them. */
static int check_smtp(struct notifier *n, char *err, size_t errlen) {
  int implicit_tls = 0, r = check_url(n->smtp_url, &implicit_tls, err, errlen);
  if (r < 0)
    return r;
  if (strcmp(n->smtp_tls, "required") == 0) {
    n->use_ssl = CURLUSESSL_ALL;
  } else if (strcmp(n->smtp_tls, "try") == 0) {
    n->use_ssl = CURLUSESSL_TRY;
  } else if (strcmp(n->smtp_tls, "none") == 0) {
    n->use_ssl = CURLUSESSL_NONE;
  } else {
    snprintf(err, errlen, "notifier.smtp_tls: '%s' is not required, try or none", n->smtp_tls);
    return LMP_ECONFIG;
  }
  if (*n->smtp_ca_file && (r = check_pem(n->smtp_ca_file, err, errlen)) < 0)
    return r;
  if (!*n->smtp_username != !*n->smtp_password_file) {
    snprintf(err, errlen, "notifier.smtp_username and notifier.smtp_password_file go together");
    return LMP_ECONFIG;
  }
  if (!*n->smtp_password_file)
    return 0;
  /* A password only where TLS cannot be stripped: with try or none, an attacker on
   * the path could answer without STARTTLS and read it. */
  if (!implicit_tls && n->use_ssl != CURLUSESSL_ALL) {
    snprintf(err, errlen, "notifier.smtp_password_file: a password goes only over TLS: set notifier.smtp_tls = "
                          "required, or use smtps://");
    return LMP_ECONFIG;
  }
  char *password = NULL, why[400];
  if ((r = lmp_config_read_secret(n->smtp_password_file, &password, why, sizeof(why))) < 0) {
    snprintf(err, errlen, "notifier.smtp_password_file: %s", why);
    return r;
  }
  if (*password == '\0') {
    snprintf(err, errlen, "notifier.smtp_password_file: %s is empty", n->smtp_password_file);
    r = LMP_ECONFIG;
  }
  explicit_bzero(password, strlen(password));
  free(password);
  return r;
}

int notifier_configured(void *ctx, char *err, size_t errlen) {
  struct notifier *n = ctx;
  if (!notifier_address_ok(n->from_address)) {
    snprintf(err, errlen, "notifier.from_address: '%s' is not a plain address such as onboarding@example.com",
             n->from_address);
    return LMP_ECONFIG;
  }
  if (lmp_text_check(n->from_name, strlen(n->from_name), 0, NULL) != LMP_TEXT_OK) {
    snprintf(err, errlen, "notifier.from_name: must be UTF-8 text without control characters");
    return LMP_ECONFIG;
  }
  return check_smtp(n, err, errlen);
}

/* ---- What an event may carry ----------------------------------------------------------- */

/* Stages that emit onboarding.failed (each daemon's STAGE). */
static int stage_ok(const char *s) {
  return strcmp(s, "allocation") == 0 || strcmp(s, "appliance-fulfilment") == 0 || strcmp(s, "shipping") == 0;
}

/* The identifiers the notifier reads, by their path in an event, and their syntax. */
static const struct {
  const char *path;
  int (*ok)(const char *);
  const char *what;
} ids[] = {
    {"onboarding_id", lmp_uuid_valid, "a UUID"},
    {"shipment_id", lmp_uuid_valid, "a UUID"},
    {"partner_id", lmp_partner_id_valid, "a partner id (1 to 64 of A-Z a-z 0-9 . _ : -)"},
    {"stage", stage_ok, "a stage (allocation, appliance-fulfilment or shipping)"},
    {"onboarding.onboarding_id", lmp_uuid_valid, "a UUID"},
    {"onboarding.customer_id", lmp_uuid_valid, "a UUID"},
    {"onboarding.request.partner_id", lmp_partner_id_valid, "a partner id (1 to 64 of A-Z a-z 0-9 . _ : -)"},
};

struct fault {
  char *why;
  size_t len;
};

static int check_string(void *ctx, const char *path, const char *s, size_t n) {
  struct fault *f = ctx;
  for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
    if (strcmp(path, ids[i].path) != 0)
      continue;
    if (strlen(s) == n && ids[i].ok(s))
      return 0;
    snprintf(f->why, f->len, "%s is not %s", path, ids[i].what);
    return LMP_EREJECT;
  }
  enum lmp_text_fault t = lmp_text_check(s, n, 0, NULL);
  if (t == LMP_TEXT_OK)
    return 0;
  snprintf(f->why, f->len, "%s %s", path, lmp_text_fault_str(t));
  return LMP_EREJECT;
}

int notifier_event_fault(avro_value_t *event, char *why, size_t whylen) {
  struct fault f = {why, whylen};
  return lmp_avro_walk_strings(event, check_string, &f) < 0 ? LMP_EREJECT : 0;
}

/* Every string of a consumed event is checked before anything of it is stored or
 * mailed: an id of the wrong syntax, or a control character in any text (a line
 * break, an escape sequence), refuses the event, and the runtime dead-letters it
 * with the reason. No sender of a valid event writes one: intake accepts no control
 * character in a request, and the stages write ids they made. */
static int refuse_faulty(struct lmp_tx *tx, const struct lmp_event *ev) {
  char why[200];
  if (notifier_event_fault(ev->value, why, sizeof(why)) == 0)
    return 0;
  return lmp_tx_reject(tx, "%s", why);
}

/* Owes one mail: rendered now, stored with the state change, sent by a sender. */
static int owe(struct lmp_tx *tx, const char *id, const char *kind, const char *template,
               const char *to, json_t *vars) {
  struct notifier *n = lmp_tx_ctx(tx);
  char *subject = NULL, *body = NULL;
  int r = notifier_render(n, template, vars, &subject, &body);
  if (r < 0) {
    lmp_error(id, "template %s cannot be rendered", template);
    return r;
  }
  const char *p[] = {id, kind, to, subject, body};
  r = lmp_tx_command(tx, "INSERT INTO mails(onboarding_id, kind, recipient, subject, body) "
                         "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", 5, p);
  lmp_tx_wake(tx); /* the senders, once this commits */
  free(subject);
  free(body);
  return r;
}

static const char *license_name(const char *symbol) {
  if (symbol == NULL) return "";
  if (strcmp(symbol, "MDR_CORE") == 0) return "MDR Core";
  if (strcmp(symbol, "MDR_COMPLETE") == 0) return "MDR Complete";
  if (strcmp(symbol, "MDR_CLOUD") == 0) return "MDR Cloud";
  if (strcmp(symbol, "BEAUCERON_SAT") == 0) return "Beauceron SAT";
  return symbol;
}

static int on_completed(struct lmp_tx *tx, const struct lmp_event *ev) {
  avro_value_t *in = ev->value, acc, req, cust, ships, apps, allocs;
  int r = refuse_faulty(tx, ev);
  if (r < 0)
    return r;
  const char *id = lmp_av_str(in, "onboarding_id");
  if (id == NULL || lmp_av_field(in, "onboarding", &acc) < 0 || lmp_av_field(&acc, "request", &req) < 0 ||
      lmp_av_field(&req, "customer", &cust) < 0 || lmp_av_field(in, "shipments", &ships) < 0 ||
      lmp_av_field(in, "appliances", &apps) < 0 || lmp_av_field(in, "allocations", &allocs) < 0)
    return lmp_tx_reject(tx, "shipping-completed without onboarding_id, request, shipments, appliances or allocations");
  const char *partner_email = lmp_av_str(&req, "submitted_by");
  const char *admin = lmp_av_str(&cust, "portal_admin_email");
  size_t nships = 0, napps = 0, nallocs = 0;
  avro_value_get_size(&ships, &nships);
  avro_value_get_size(&apps, &napps);
  avro_value_get_size(&allocs, &nallocs);
  struct lmp_buf users = {0}, appl = {0};
  lmp_buf_puts(&users, "");
  lmp_buf_puts(&appl, napps ? "" : "none");
  for (size_t i = 0; i < nallocs; i++) {
    avro_value_t a;
    avro_value_get_by_index(&allocs, i, &a, NULL);
    lmp_buf_printf(&users, "%s%d %s", i ? ", " : "", lmp_av_int(&a, "users"),
                   license_name(lmp_av_enum_name(&a, "product")));
  }
  for (size_t i = 0; i < napps; i++) {
    avro_value_t a;
    avro_value_get_by_index(&apps, i, &a, NULL);
    const char *serial = lmp_av_str(&a, "serial");
    lmp_buf_printf(&appl, "%s%s %s", i ? ", " : "", lmp_av_str(&a, "sku"),
                   serial ? serial : lmp_av_str(&a, "hosting_region") ? lmp_av_str(&a, "hosting_region") : "");
  }
  json_t *vars = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}",
                           "onboarding_id", id, "account_name", lmp_av_str(&acc, "account_name"),
                           "customer_id", lmp_av_str(&acc, "customer_id"), "partner_id",
                           lmp_av_str(&req, "partner_id"), "admin_email", admin, "license",
                           license_name(lmp_av_enum_name(&req, "license")), "users", users.data,
                           "appliances", appl.data, "shipments", (json_int_t)nships);
  lmp_buf_free(&users);
  lmp_buf_free(&appl);
  if (vars == NULL)
    return LMP_ENOMEM;
  r = owe(tx, id, "confirmation", "confirmation", partner_email, vars);
  if (r == 0)
    r = owe(tx, id, "invitation", "invitation", admin, vars);
  json_decref(vars);
  char count[16];
  snprintf(count, sizeof(count), "%zu", nships);
  /* Kept for what follows the confirmation: the mails' fates continue this trace. */
  const char *p[] = {id, lmp_av_str(&acc, "customer_id"), lmp_av_str(&req, "partner_id"),
                     lmp_av_str(&acc, "account_name"), count, ev->correlation_id, ev->traceparent, partner_email};
  if (r == 0)
    r = lmp_tx_command(tx, "INSERT INTO confirmations(onboarding_id, customer_id, partner_id, account_name, shipments, "
                           "correlation_id, traceparent, partner_email) "
                           "VALUES ($1, $2, $3, $4, $5::int, $6, $7, $8) ON CONFLICT DO NOTHING", 8, p);
  /* Its work is done and its mails recorded: confirmed now, whatever the mail server
   * does (a repeat finds it confirmed and emits nothing again). */
  if (r == 0)
    r = notifier_confirm(tx, id);
  return r;
}

static int on_failed(struct lmp_tx *tx, const struct lmp_event *ev) {
  avro_value_t acc, req, reasons;
  int r = refuse_faulty(tx, ev);
  if (r < 0)
    return r;
  const char *id = lmp_av_str(ev->value, "onboarding_id");
  if (id == NULL || lmp_av_field(ev->value, "reasons", &reasons) < 0)
    return lmp_tx_reject(tx, "onboarding.failed without onboarding_id or reasons");
  /* Shipping completed it (its confirmation is owed): no stage can fail it any more,
   * and the partner is not told otherwise. */
  const char *p[] = {id};
  int done;
  if ((r = lmp_tx_exists(tx, "SELECT 1 FROM confirmations WHERE onboarding_id = $1", 1, p, &done)) < 0)
    return r;
  if (done)
    return lmp_tx_reject(tx, "onboarding.failed for an onboarding whose shipping completed: no failure mail");
  if (lmp_av_field(ev->value, "onboarding", &acc) < 0 || lmp_av_field(&acc, "request", &req) < 0) {
    lmp_warn(id, "failure of an onboarding without its request: nobody to tell");
    return 0;
  }
  struct lmp_buf text = {0};
  size_t n = 0;
  avro_value_get_size(&reasons, &n);
  lmp_buf_puts(&text, "");
  for (size_t i = 0; i < n; i++) {
    avro_value_t it;
    avro_value_get_by_index(&reasons, i, &it, NULL);
    lmp_buf_printf(&text, "  - %s: %s\n", lmp_av_str(&it, "code"), lmp_av_str(&it, "message"));
  }
  json_t *vars = json_pack("{s:s, s:s, s:s, s:s}", "onboarding_id", id, "account_name",
                           lmp_av_str(&acc, "account_name"), "stage", lmp_av_str(ev->value, "stage"),
                           "reasons", text.data);
  lmp_buf_free(&text);
  if (vars == NULL)
    return LMP_ENOMEM;
  r = owe(tx, id, "failure", "failure", lmp_av_str(&req, "submitted_by"), vars);
  json_decref(vars);
  return r;
}

static int on_dispatched(struct lmp_tx *tx, const struct lmp_event *ev) {
  avro_value_t *in = ev->value, addr, items;
  int r = refuse_faulty(tx, ev);
  if (r < 0)
    return r;
  const char *id = lmp_av_str(in, "onboarding_id"), *sid = lmp_av_str(in, "shipment_id");
  if (id == NULL || sid == NULL || lmp_av_field(in, "address", &addr) < 0 || lmp_av_field(in, "items", &items) < 0)
    return lmp_tx_reject(tx, "shipment-dispatched without onboarding_id, shipment_id, address or items");
  struct lmp_buf where = {0}, what = {0};
  lmp_buf_printf(&where, "%s, %s, %s %s, %s", lmp_av_str(&addr, "recipient"), lmp_av_str(&addr, "line1"),
                 lmp_av_str(&addr, "city"), lmp_av_str(&addr, "postal_code"), lmp_av_str(&addr, "country"));
  size_t n = 0;
  avro_value_get_size(&items, &n);
  lmp_buf_puts(&what, "");
  for (size_t i = 0; i < n; i++) {
    avro_value_t it;
    avro_value_get_by_index(&items, i, &it, NULL);
    lmp_buf_printf(&what, "%s%s %s", i ? ", " : "", lmp_av_str(&it, "sku"), lmp_av_str(&it, "serial"));
  }
  json_t *vars = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "account_name", lmp_av_str(in, "account_name"),
                           "carrier", lmp_av_str(in, "carrier"), "tracking_number",
                           lmp_av_str(in, "tracking_number"), "address", where.data, "items", what.data,
                           "onboarding_id", id);
  lmp_buf_free(&where);
  lmp_buf_free(&what);
  if (vars == NULL)
    return LMP_ENOMEM;
  char kind[80];
  snprintf(kind, sizeof(kind), "dispatch:%s", sid);
  r = owe(tx, id, kind, "dispatch", lmp_av_str(in, "partner_email"), vars);
  json_decref(vars);
  return r;
}

const struct lmp_route notifier_routes[] = {
    {"onboarding.shipping-completed", on_completed, NULL, 0},
    {"onboarding.failed", on_failed, NULL, 0},
    {"onboarding.shipment-dispatched", on_dispatched, NULL, 0},
    {NULL, NULL, NULL, 0},
};

/* An onboarding's mails for operators; message_id is what the Message-ID header
 * carries (<message_id@lmp-onboarding>), to match a received mail to its row. */
static int mails(void *ctx, struct lmp_http_call *call) {
  const char *p[] = {call->path + strlen("/v1/onboardings/")};
  return lmp_admin_json(call, "SELECT json_agg(json_build_object('kind', kind, 'recipient', recipient, "
                            "'status', status, 'attempts', attempts, 'last_error', last_error, "
                            "'sent_at', sent_at, 'message_id', message_id) "
                            "ORDER BY created_at)::text "
                            "FROM mails WHERE onboarding_id = $1",
                        1, p);
}

const struct lmp_http_route notifier_http[] = {
    {"GET", "/v1/onboardings/{}", mails, 0, 1, 0},
    {NULL, NULL, NULL, 0, 0, 0},
};
