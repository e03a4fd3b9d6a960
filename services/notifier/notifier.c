/* On shipping-completed, owe the partner a confirmation and the administrator an
 * invitation; on failed, a failure notice; on a dispatch, the tracking. Senders on
 * threads of their own send what is owed as soon as it is committed (send.c); the
 * tick emits confirmed once both onboarding mails are out. */
#include "notifier.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/admin.h"
#include "lmp/codec.h"
#include "lmp/error.h"
#include "lmp/events.h"
#include "lmp/log.h"
#include "lmp/text.h"

#define N(field) offsetof(struct notifier, field)

const struct lmp_conf_entry notifier_conf[] = {
    {"notifier.from_address", LMP_CONF_STR, N(from_address), 3, 254, "onboarding@lmp.example.com", "sender of every mail"},
    {"notifier.from_name", LMP_CONF_STR, N(from_name), 0, 100, "License Management Portal", "sender's display name"},
    {"notifier.max_attempts", LMP_CONF_INT, N(max_attempts), 1, 1000, "10", "attempts at one mail before it is given up as failed"},
    {"notifier.retry_max_s", LMP_CONF_INT, N(retry_max_s), 1, 86400, "300", "longest wait before retrying a mail"},
    {"notifier.smtp_timeout_s", LMP_CONF_INT, N(smtp_timeout_s), 1, 300, "10", "SMTP connect timeout"},
    {"notifier.smtp_url", LMP_CONF_STR, N(smtp_url), 7, 1024, "smtp://127.0.0.1:2525", "SMTP server, smtp://host:port"},
    {"notifier.template_dir", LMP_CONF_STR, N(template_dir), 0, 1024, "", "folder of <kind>.txt mail templates; empty: built in"},
};
const size_t notifier_conf_n = sizeof(notifier_conf) / sizeof(notifier_conf[0]);

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
  return 0;
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
  int r = owe(tx, id, "confirmation", "confirmation", partner_email, vars);
  if (r == 0)
    r = owe(tx, id, "invitation", "invitation", admin, vars);
  json_decref(vars);
  char count[16];
  snprintf(count, sizeof(count), "%zu", nships);
  /* The confirmed event is emitted later, by the tick: it continues this trace. */
  const char *p[] = {id, lmp_av_str(&acc, "customer_id"), lmp_av_str(&req, "partner_id"),
                     lmp_av_str(&acc, "account_name"), count, ev->correlation_id, ev->traceparent, partner_email};
  if (r == 0)
    r = lmp_tx_command(tx, "INSERT INTO confirmations(onboarding_id, customer_id, partner_id, account_name, shipments, "
                           "correlation_id, traceparent, partner_email) "
                           "VALUES ($1, $2, $3, $4, $5::int, $6, $7, $8) ON CONFLICT DO NOTHING", 8, p);
  return r;
}

static int on_failed(struct lmp_tx *tx, const struct lmp_event *ev) {
  avro_value_t acc, req, reasons;
  const char *id = lmp_av_str(ev->value, "onboarding_id");
  if (id == NULL || lmp_av_field(ev->value, "reasons", &reasons) < 0)
    return lmp_tx_reject(tx, "onboarding.failed without onboarding_id or reasons");
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
  int r = owe(tx, id, "failure", "failure", lmp_av_str(&req, "submitted_by"), vars);
  json_decref(vars);
  return r;
}

static int on_dispatched(struct lmp_tx *tx, const struct lmp_event *ev) {
  avro_value_t *in = ev->value, addr, items;
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
  int r = owe(tx, id, kind, "dispatch", lmp_av_str(in, "partner_email"), vars);
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
