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
    {"notifier.help_center_url", LMP_CONF_STR, N(help_url), 0, 512, "https://help.mdr.example.com/appliances", "the Help Center's chapter on appliances, named in the confirmation of a physical deployment; empty: none"},
    {"notifier.max_attempts", LMP_CONF_INT, N(max_attempts), 1, 1000, "10", "attempts at one mail before it is given up as failed"},
    {"notifier.page_url", LMP_CONF_STR, N(page_url), 0, 512, "", "the partner's portal page (intake's public address, https://host:port); the confirmation links to the onboarding's page there; empty: none"},
    {"notifier.portal_url", LMP_CONF_STR, N(portal_url), 8, 512, "https://portal.mdr.example.com", "the MDR Portal, where the invitation asks the customer's administrator to create their account"},
    {"notifier.retry_max_s", LMP_CONF_INT, N(retry_max_s), 1, 86400, "300", "longest wait before retrying a mail"},
    {"notifier.send_batch", LMP_CONF_INT, N(send_batch), 1, 100, "8", "mails a sender sends in one transaction; a crash re-sends at most these per sender (4 senders), each with its Message-ID"},
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

/* An address a mail may show as a link: http(s), printable ASCII without spaces, so it
 * can neither break the mail's text nor hide another address. */
static int link_ok(const char *s) {
  if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
    return 0;
  for (const char *c = s; *c; c++)
    if (*c <= ' ' || *c >= 0x7f)
      return 0;
  return strlen(s) > 8;
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
  const struct {
    const char *name, *value;
  } urls[] = {{"notifier.portal_url", n->portal_url}, {"notifier.page_url", n->page_url},
              {"notifier.help_center_url", n->help_url}};
  for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
    if (urls[i].value && *urls[i].value && !link_ok(urls[i].value)) {
      snprintf(err, errlen, "%s: '%s' is not an https:// or http:// address without spaces", urls[i].name,
               LMP_SHOWN(urls[i].value));
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
    {"addition_id", lmp_uuid_valid, "a UUID"},
    {"addition.addition_id", lmp_uuid_valid, "a UUID"},
    {"addition.customer_id", lmp_uuid_valid, "a UUID"},
    {"addition.partner_id", lmp_partner_id_valid, "a partner id (1 to 64 of A-Z a-z 0-9 . _ : -)"},
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

/* The batch's mails owed, one statement for all (lmp_tx_add), in the order owed; the
 * first of an onboarding's kind kept. */
static const struct lmp_set mails_set = {
    "INSERT INTO mails(onboarding_id, kind, recipient, subject, body, traceparent) "
    "SELECT id, kind, recipient, subject, body, traceparent FROM unnest($1::text[], $2::text[], $3::text[], "
    "  $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS m(id, kind, recipient, subject, body, traceparent, ord) "
    "ORDER BY ord ON CONFLICT DO NOTHING",
    6};

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
  const char *p[] = {id, kind, to, subject, body, lmp_tx_traceparent(tx)};
  r = lmp_tx_add(tx, &mails_set, p);
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

/* The partner's name as allocation announced it, or its id when none was heard. */
static int name_of(struct lmp_tx *tx, const char *partner, char *out, size_t outlen) {
  const char *p[] = {partner};
  PGresult *res;
  int r = lmp_tx_query(tx, "SELECT name FROM partner_names WHERE partner_id = $1 AND name <> ''", 1, p, &res);
  if (r < 0)
    return r;
  snprintf(out, outlen, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : partner);
  PQclear(res);
  return 0;
}

/* What the confirmation says that depends on the onboarding: tracking is promised only
 * when hardware ships, the Help Center's chapter on appliances is named only then, and
 * the onboarding's page when the portal's address is configured. */
static int confirmation_lines(const struct notifier *n, json_t *vars, const char *id, size_t nships) {
  char page[700] = "", help[700] = "";
  if (n->page_url && *n->page_url)
    snprintf(page, sizeof(page), "\nIts page in the portal: %s/onboardings/%s\n", n->page_url, id);
  if (nships && n->help_url && *n->help_url)
    snprintf(help, sizeof(help), "\nFor general information about our network appliances, visit our Help Center "
                                 "chapter on appliances:\n%s\n", n->help_url);
  const char *note = nships ? "You will receive tracking details when the hardware leaves the warehouse."
                            : "Nothing is shipped for this onboarding.";
  return json_object_set_new(vars, "shipping_note", json_string(note)) ||
                 json_object_set_new(vars, "page_line", json_string(page)) ||
                 json_object_set_new(vars, "help_line", json_string(help))
             ? LMP_ENOMEM
             : 0;
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
  char partner_name[1024];
  if ((r = name_of(tx, lmp_av_str(&req, "partner_id"), partner_name, sizeof(partner_name))) < 0) {
    lmp_buf_free(&users);
    lmp_buf_free(&appl);
    return r;
  }
  struct notifier *n = lmp_tx_ctx(tx);
  json_t *vars = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s}",
                           "onboarding_id", id, "account_name", lmp_av_str(&acc, "account_name"),
                           "customer_id", lmp_av_str(&acc, "customer_id"), "partner_id",
                           lmp_av_str(&req, "partner_id"), "admin_email", admin, "license",
                           license_name(lmp_av_enum_name(&req, "license")), "users", users.data,
                           "appliances", appl.data, "shipments", (json_int_t)nships, "partner_name", partner_name,
                           "portal_url", n->portal_url ? n->portal_url : "");
  lmp_buf_free(&users);
  lmp_buf_free(&appl);
  if (vars == NULL || confirmation_lines(n, vars, id, nships) < 0) {
    json_decref(vars);
    return LMP_ENOMEM;
  }
  r = owe(tx, id, "confirmation", "confirmation", partner_email, vars);
  if (r == 0)
    r = owe(tx, id, "invitation", "invitation", admin, vars);
  json_decref(vars);
  char count[16];
  snprintf(count, sizeof(count), "%zu", nships);
  /* Kept for what follows the confirmation: the mails' fates continue this trace. */
  const char *p[] = {id, lmp_av_str(&acc, "customer_id"), lmp_av_str(&req, "partner_id"),
                     lmp_av_str(&acc, "account_name"), count, ev->correlation_id, ev->traceparent, partner_email};
  /* Its work is done and its mails recorded: confirmed now, whatever the mail server
   * does (a repeat finds it recorded and emits nothing again). */
  PGresult *res = NULL;
  if (r == 0)
    r = lmp_tx_query(tx, "INSERT INTO confirmations(onboarding_id, customer_id, partner_id, account_name, shipments, "
                         "correlation_id, traceparent, partner_email, confirmed_at) "
                         "VALUES ($1, $2, $3, $4, $5::int, $6, $7, $8, now()) ON CONFLICT DO NOTHING RETURNING 1",
                     8, p, &res);
  if (r == 0 && PQntuples(res) == 1)
    r = notifier_confirm_new(tx, id, p[1], p[2], p[3], count, partner_email, admin);
  PQclear(res);
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
  const struct notifier *conf = lmp_tx_ctx(tx);
  char page[700] = "";
  if (conf->page_url && *conf->page_url)
    snprintf(page, sizeof(page), "\nIts page in the portal: %s/onboardings/%s\n", conf->page_url, id);
  json_t *vars = json_pack("{s:s, s:s, s:s, s:s, s:s}", "onboarding_id", id, "account_name",
                           lmp_av_str(&acc, "account_name"), "stage", lmp_av_str(ev->value, "stage"),
                           "reasons", text.data, "page_line", page);
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

/* customer.users-added: the partner who asked is told what was added, once. */
static int on_users_added(struct lmp_tx *tx, const struct lmp_event *ev) {
  avro_value_t add, allocs;
  int r = refuse_faulty(tx, ev);
  if (r < 0)
    return r;
  const char *id = lmp_av_str(ev->value, "addition_id");
  if (id == NULL || lmp_av_field(ev->value, "addition", &add) < 0 ||
      lmp_av_field(ev->value, "allocations", &allocs) < 0 || lmp_av_str(&add, "submitted_by") == NULL)
    return lmp_tx_reject(tx, "customer.users-added without addition_id, addition, its submitter or allocations");
  const char *customer = lmp_av_str(&add, "customer_id");
  size_t n = 0;
  avro_value_get_size(&allocs, &n);
  struct lmp_buf users = {0};
  lmp_buf_puts(&users, "");
  for (size_t i = 0; i < n; i++) {
    avro_value_t a;
    avro_value_get_by_index(&allocs, i, &a, NULL);
    lmp_buf_printf(&users, "%s%d %s", i ? ", " : "", lmp_av_int(&a, "users"),
                   license_name(lmp_av_enum_name(&a, "product")));
  }
  const struct notifier *conf = lmp_tx_ctx(tx);
  char page[700] = "";
  if (conf->page_url && *conf->page_url && customer)
    snprintf(page, sizeof(page), "\nThe customer's page in the portal: %s/customers/%s\n", conf->page_url, customer);
  json_t *vars = json_pack("{s:s, s:s, s:s, s:s, s:s}", "account_name", lmp_av_str(&add, "account_name"),
                           "users", users.data ? users.data : "", "license",
                           license_name(lmp_av_enum_name(&add, "license")), "customer_id", customer ? customer : "",
                           "page_line", page);
  lmp_buf_free(&users);
  if (vars == NULL)
    return LMP_ENOMEM;
  r = owe(tx, id, "users-added", "users-added", lmp_av_str(&add, "submitted_by"), vars);
  json_decref(vars);
  return r;
}

/* partner.balance: only the partner's name is kept, for the mails. A name that is not
 * printable text of at most 200 characters could break a mail: refused. Sub-partners'
 * ids in the same event are checked as every text is, and not kept. */
static int on_balance(struct lmp_tx *tx, const struct lmp_event *ev) {
  int r = refuse_faulty(tx, ev); /* a partner id of its syntax, no control character in any text */
  if (r < 0)
    return r;
  const char *partner = lmp_av_str(ev->value, "partner_id"), *name = lmp_av_str(ev->value, "name");
  avro_value_t f;
  int64_t version = 0;
  size_t chars = 0;
  if (partner == NULL || name == NULL ||
      lmp_av_field(ev->value, "version", &f) < 0 || avro_value_get_long(&f, &version) != 0 || version < 1)
    return lmp_tx_reject(tx, "partner.balance without a partner id, a name or a version >= 1");
  if (lmp_text_check(name, strlen(name), 0, &chars) != LMP_TEXT_OK || chars > 200)
    return lmp_tx_reject(tx, "partner.balance with a name that is not printable text of at most 200 characters");
  char v[24];
  snprintf(v, sizeof(v), "%lld", (long long)version);
  const char *p[] = {partner, name, v};
  return lmp_tx_command(tx, "INSERT INTO partner_names(partner_id, name, version) VALUES ($1, $2, $3::bigint) "
                            "ON CONFLICT (partner_id) DO UPDATE SET name = EXCLUDED.name, version = EXCLUDED.version "
                            "WHERE partner_names.version < EXCLUDED.version", 3, p);
}

const struct lmp_route notifier_routes[] = {
    {"onboarding.shipping-completed", on_completed, NULL, 0},
    {"onboarding.failed", on_failed, NULL, 0},
    {"onboarding.shipment-dispatched", on_dispatched, NULL, 0},
    {"partner.balance", on_balance, NULL, 0},
    {"customer.users-added", on_users_added, NULL, 0},
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
