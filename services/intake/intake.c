/* On onboarding.requested: check the text, deduplicate, validate, reserve the
 * customer account, record, then emit accepted or rejected. */
#include "intake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"
#include "lmp/runtime/events.h"

#define I(field) offsetof(struct intake, field)

const struct lmp_conf_entry intake_conf[] = {
    {"intake.appliance_skus", LMP_CONF_LIST, I(rules.skus), 1, 100, "NS-100,NS-500,NS-1000",
     "appliance SKUs a request may name"},
    {"intake.appliance_names", LMP_CONF_LIST, I(appliance_names), 0, 100,
     "NS-100=NS-100 network sensor (small office),NS-500=NS-500 network sensor (mid-size site),"
     "NS-1000=NS-1000 network sensor (large site or data centre)",
     "what the page calls each appliance model, as SKU=name; a model without one is shown by its SKU"},
    {"intake.hosting_region_names", LMP_CONF_LIST, I(region_names), 0, 100,
     "ca-central-1=Canada (Central),us-east-1=US East (N. Virginia),us-west-2=US West (Oregon),"
     "eu-west-1=Europe (Ireland),eu-central-1=Europe (Frankfurt),ap-southeast-2=Asia Pacific (Sydney)",
     "what the page calls each hosting region, as code=name; a region without one is shown by its code"},
    {"intake.hosting_regions", LMP_CONF_LIST, I(rules.regions), 1, 100,
     "ca-central-1,us-east-1,us-west-2,eu-west-1,eu-central-1,ap-southeast-2",
     "hosting regions for a fully virtual deployment"},
    {"intake.incident_response", LMP_CONF_STR, I(rules.incident_response), 0, 300,
     "call +1 888 555 0100 (24/7) or write to incident-response@mdr.example.com",
     "how a customer experiencing a breach or incident reaches incident response, said on the form and in the refusal"},
    {"intake.legal_name_max", LMP_CONF_INT, I(rules.legal_name_max), 1, 1000, "200",
     "longest legal name, in characters"},
    {"intake.max_appliances", LMP_CONF_INT, I(rules.max_appliances), 1, 1000, "50",
     "most appliances (and shipping addresses) in one request"},
    {"intake.max_users", LMP_CONF_INT, I(rules.max_users), 1, 100000000, "1000000",
     "largest user count in one request"},
    {"intake.portal_client_id", LMP_CONF_STR, I(portal_client_id), 1, 255, "lmp-portal",
     "the identity provider's public client the onboarding page signs partners in with"},
    {"intake.submissions_per_address_per_min", LMP_CONF_INT, I(address_per_min), 1, 1000000, "300",
     "submissions one client address may make per minute (a burst of as many); past it 429"},
    {"intake.submissions_per_partner_per_min", LMP_CONF_INT, I(partner_per_min), 1, 1000000, "300",
     "submissions one partner may make per minute (a burst of as many); past it 429"},
};
const size_t intake_conf_n = sizeof(intake_conf) / sizeof(intake_conf[0]);

/* A list of "code=name" entries: both parts there, the name printable text. */
static int names_ok(char **list, const char *setting, char *err, size_t errlen) {
  for (char **e = list; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    if (eq == NULL || eq == *e || eq[1] == '\0' || lmp_text_check(eq + 1, strlen(eq + 1), 0, NULL) != LMP_TEXT_OK) {
      snprintf(err, errlen, "%s: '%s' is not code=name", setting, LMP_SHOWN(*e));
      return LMP_ECONFIG;
    }
  }
  return 0;
}

int intake_configured(void *ctx, char *err, size_t errlen) {
  const struct intake *in = ctx;
  if (names_ok(in->region_names, "intake.hosting_region_names", err, errlen) < 0 ||
      names_ok(in->appliance_names, "intake.appliance_names", err, errlen) < 0)
    return LMP_ECONFIG;
  const char *ir = in->rules.incident_response;
  if (ir && lmp_text_check(ir, strlen(ir), 0, NULL) != LMP_TEXT_OK) {
    snprintf(err, errlen, "intake.incident_response: must be UTF-8 text without control characters");
    return LMP_ECONFIG;
  }
  return 0;
}

static const char *const license_names[] = {"MDR_CORE", "MDR_COMPLETE", "MDR_CLOUD"};
static const char *license_title(int license) {
  static const char *const titles[] = {"MDR Core", "MDR Complete", "MDR Cloud"};
  return license >= 0 && license < 3 ? titles[license] : "volume";
}

static int set_reasons(avro_value_t *rec, const char *field, const struct lmp_reasons *rs) {
  avro_value_t arr;
  if (avro_value_get_by_name(rec, field, &arr, NULL) != 0)
    return LMP_EINVAL;
  return lmp_av_set_reasons(&arr, rs->v, rs->n);
}

static int emit_rejected(struct lmp_tx *tx, const char *id, const char *partner, const struct lmp_reasons *rs) {
  avro_value_t v;
  int r = lmp_tx_value(tx, "onboarding.rejected", &v);
  if (r < 0)
    return r;
  if ((r = lmp_av_set_str(&v, "onboarding_id", id)) == 0 && (r = lmp_av_set_str(&v, "partner_id", partner)) == 0 &&
      (r = set_reasons(&v, "reasons", rs)) == 0 && (r = lmp_av_set_long(&v, "rejected_at", lmp_now_ms())) == 0)
    r = lmp_tx_emit(tx, "onboarding.rejected", id, &v);
  if (r == 0)
    lmp_tx_span_fail(tx, "intake rejected it: %s", rs->n ? rs->v[0].message : "no reason given");
  avro_value_decref(&v);
  return r;
}

/* The accepted event, built before anything is recorded: one whose encoding would be
 * over what an event may carry is a reason to reject (the rules keep every field
 * bounded; this holds whatever the rules allow). */
static int build_accepted(struct lmp_tx *tx, avro_value_t *v, const char *id, const char *customer_id,
                          const char *account_name, avro_value_t *request, const struct lmp_reasons *warnings,
                          int *too_big) {
  avro_value_t req;
  int r = lmp_tx_value(tx, "onboarding.accepted", v);
  if (r < 0)
    return r;
  if ((r = lmp_av_set_str(v, "onboarding_id", id)) == 0 && (r = lmp_av_set_str(v, "customer_id", customer_id)) == 0 &&
      (r = lmp_av_set_str(v, "account_name", account_name)) == 0 &&
      (r = avro_value_get_by_name(v, "request", &req, NULL) ? LMP_EINVAL : 0) == 0 &&
      (r = lmp_avro_copy(&req, request)) == 0 && (r = set_reasons(v, "warnings", warnings)) == 0)
    r = lmp_av_set_long(v, "accepted_at", lmp_now_ms());
  size_t size = 0;
  if (r == 0 && avro_value_sizeof(v, &size) != 0)
    r = LMP_EINVAL;
  /* Every later event carries this one, with a few kilobytes of its own. */
  *too_big = size > LMP_MAX_EVENT_BYTES - 64 * 1024;
  if (r < 0)
    avro_value_decref(v);
  return r;
}

/* Same id seen before: identical content is a harmless resubmission; different
 * content is refused without touching the original, and answered on a topic of its
 * own so that nobody following the onboarding reads it as its outcome. Returns 1
 * when handled. */
static int seen_before(struct lmp_tx *tx, const char *id, const char *request_id, const char *partner,
                       const char *json, int *rc) {
  const char *p[] = {id, json};
  PGresult *res;
  if ((*rc = lmp_tx_query(tx, "SELECT request = $2::jsonb FROM onboardings WHERE onboarding_id = $1 FOR UPDATE",
                          2, p, &res)) < 0)
    return 1;
  int found = PQntuples(res) == 1, same = found && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  PQclear(res);
  if (!found)
    return 0;
  if (same) {
    lmp_info(id, "duplicate submission ignored");
    *rc = lmp_tx_command(tx, "UPDATE onboardings SET duplicates = duplicates + 1, updated_at = now() "
                             "WHERE onboarding_id = $1", 1, p);
    return 1;
  }
  lmp_warn(id, "request id reused with different content: refused");
  struct lmp_reasons rs = {0};
  avro_value_t v;
  *rc = lmp_reasons_add(&rs, "REQUEST_ID_CONFLICT", "request_id",
                        "This request id was already used for a different onboarding request; "
                        "submit a new request with a new id.");
  if (*rc == 0)
    *rc = lmp_tx_command(tx, "UPDATE onboardings SET conflicts = conflicts + 1, updated_at = now() "
                             "WHERE onboarding_id = $1", 1, p);
  if (*rc == 0 && (*rc = lmp_tx_value(tx, "onboarding.request-conflict", &v)) == 0) {
    if ((*rc = lmp_av_set_str(&v, "request_id", request_id)) == 0 &&
        (*rc = lmp_av_set_str(&v, "partner_id", partner)) == 0 &&
        (*rc = set_reasons(&v, "reasons", &rs)) == 0 && (*rc = lmp_av_set_long(&v, "refused_at", lmp_now_ms())) == 0)
      *rc = lmp_tx_emit(tx, "onboarding.request-conflict", id, &v);
    avro_value_decref(&v);
  }
  lmp_reasons_clear(&rs);
  return 1;
}

/* The request and partner ids name the onboarding (intake_onboarding_id); they are
 * kept as printable text (a request with a bad one is rejected, and the rejection
 * still needs a key). */
static void reply_id(const char *raw, char out[LMP_ID_CHARS * 4 + 4]) {
  char *clean = lmp_utf8_sanitize(raw ? raw : "", raw ? strlen(raw) : 0, NULL);
  lmp_utf8_copy(out, LMP_ID_CHARS * 4 + 4, clean ? clean : "", LMP_ID_CHARS);
  free(clean);
}

static int on_request(struct lmp_tx *tx, const struct lmp_event *ev) {
  struct intake *in = lmp_tx_ctx(tx);
  struct intake_request req = {0};
  struct intake_findings f = {0};
  char *account = NULL, *json = NULL, *reasons = NULL, *warnings = NULL;
  avro_value_t accepted;
  int have_accepted = 0, too_big = 0;
  int r = intake_request_trim(ev->value);
  if (r == 0)
    r = intake_request_read(ev->value, &req);
  char request_id[LMP_ID_CHARS * 4 + 4], partner[LMP_ID_CHARS * 4 + 4], customer_id[37] = "", id[37];
  reply_id(req.request_id, request_id);
  reply_id(req.partner_id, partner);
  lmp_onboarding_id(partner, request_id, id); /* scoped to the partner */
  json_t *j = lmp_avro_to_json(ev->value); /* text made valid: jsonb takes it */
  json = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  /* Stored and quoted, so made text even when the request's is not (then refused). */
  char *raw = intake_trim(req.legal_name);
  account = raw ? lmp_utf8_sanitize(raw, strlen(raw), NULL) : NULL;
  free(raw);
  if (r == 0 && (json == NULL || account == NULL))
    r = LMP_ENOMEM;
  if (r < 0 || seen_before(tx, id, request_id, partner, json, &r))
    goto out;
  /* Text that is not text is refused on that alone: no rule quotes it. */
  if ((r = intake_check_text(ev->value, &f)) < 0 || (f.errors.n == 0 && (r = intake_validate(&req, &in->rules, &f)) < 0))
    goto out;

  if (f.errors.n == 0) {
    uuid_t u;
    uuid_generate(u);
    uuid_unparse_lower(u, customer_id);
    if ((r = build_accepted(tx, &accepted, id, customer_id, account, ev->value, &f.warnings, &too_big)) < 0)
      goto out;
    have_accepted = 1;
    if (too_big && (r = lmp_reasons_add(&f.errors, "REQUEST_TOO_LARGE", "",
                                         "The request is too large to be carried through onboarding.")) < 0)
      goto out;
  }
  const char *license = req.license >= 0 && req.license < 3 ? license_names[req.license] : "";
  if (f.errors.n == 0) {
    int taken;
    if ((r = intake_account_reserve(tx, customer_id, partner, license, account, id, &taken)) < 0)
      goto out;
    if (taken && (r = lmp_reasons_add(&f.errors, "LEGAL_NAME_TAKEN", "customer.legal_name",
                                      "You already have a customer named '%s' on your %s license.",
                                      lmp_utf8_copy((char[512]){0}, 512, account, 100),
                                      license_title(req.license))) < 0)
      goto out;
  }
  int ok = f.errors.n == 0;
  reasons = lmp_reasons_json(f.errors.v, f.errors.n);
  warnings = lmp_reasons_json(f.warnings.v, f.warnings.n);
  if (reasons == NULL || warnings == NULL) {
    r = LMP_ENOMEM;
    goto out;
  }
  const struct intake_stage *st = &intake_stages[ok ? INTAKE_ACCEPTED : INTAKE_REJECTED];
  char rank[16];
  snprintf(rank, sizeof(rank), "%d", intake_status_rank(st));
  /* The onboarding and its first stage (accepted or rejected, happening now). */
  json_t *detail = ok ? json_pack("{s:o}", "warnings", lmp_reasons_to_json(f.warnings.v, f.warnings.n))
                      : json_pack("{s:o}", "reasons", lmp_reasons_to_json(f.errors.v, f.errors.n));
  char *d = detail ? json_dumps(detail, JSON_COMPACT) : NULL, place[16];
  json_decref(detail);
  snprintf(place, sizeof(place), "%d", st->place);
  const char *p[] = {id, partner, license, account, st->status, reasons, warnings, json,
                     ok ? customer_id : NULL, rank, st->name, d, ev->event_id, place};
  r = d ? lmp_tx_send(tx, "WITH onboarding AS (INSERT INTO onboardings(onboarding_id, partner_id, license, "
                          "account_name, status, reasons, warnings, request, customer_id, status_rank) "
                          "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9::uuid, $10::int)) "
                          "INSERT INTO onboarding_stages(onboarding_id, stage, detail, event_id, place) "
                          "VALUES ($1, $11, $12::jsonb, $13, $14::int)", 14, p)
        : LMP_ENOMEM;
  free(d);
  if (r < 0)
    goto out;
  if (ok) {
    lmp_info(id, "accepted for partner %s (%zu notes)", partner, f.warnings.n);
    r = lmp_tx_emit(tx, "onboarding.accepted", id, &accepted);
  } else {
    lmp_info(id, "rejected: %zu reasons, first %s", f.errors.n, f.errors.v[0].code);
    r = emit_rejected(tx, id, partner, &f.errors);
  }
out:
  if (have_accepted)
    avro_value_decref(&accepted);
  free(account);
  free(json);
  free(reasons);
  free(warnings);
  intake_findings_clear(&f);
  intake_request_clear(&req);
  return r;
}

const struct lmp_route intake_routes[] = {
    {"onboarding.requested", on_request, NULL, 1},
    {"onboarding.users-allocated", intake_on_lifecycle, &intake_stages[INTAKE_USERS_ALLOCATED], 0},
    {"onboarding.appliances-provisioned", intake_on_lifecycle, &intake_stages[INTAKE_APPLIANCES_PROVISIONED], 0},
    {"onboarding.shipping-completed", intake_on_lifecycle, &intake_stages[INTAKE_SHIPPING_ARRANGED], 0},
    {"onboarding.confirmed", intake_on_lifecycle, &intake_stages[INTAKE_CONFIRMED], 0},
    {"onboarding.failed", intake_on_lifecycle, &intake_stages[INTAKE_FAILED], 0},
    {"onboarding.shipment-dispatched", intake_on_lifecycle, &intake_stages[INTAKE_SHIPMENT_DISPATCHED], 0},
    {"onboarding.mail-settled", intake_on_mail_settled, NULL, 0},
    {"partner.balance", intake_on_balance, NULL, 0},
    {"partner.address", intake_on_address, NULL, 0},
    {"customer.users-requested", intake_on_users_requested, NULL, 0},
    {"customer.users-added", intake_on_users_settled, "added", 0},
    {"customer.users-refused", intake_on_users_settled, NULL, 0},
    {NULL, NULL, NULL, 0},
};
