/* The rules of the onboarding form that intake checks without asking anyone; the
 * rules of single fields are fields.c's table, which the page checks too. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fields.h"
#include "lmp/base/error.h"
#include "lmp/base/text.h"
#include "request.h"

int intake_uuid_ok(const char *s) {
  if (s == NULL || strlen(s) != 36)
    return 0;
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-')
        return 0;
    } else if (!isxdigit((unsigned char)s[i])) {
      return 0;
    }
  }
  return 1;
}

char *intake_trim(const char *s) {
  if (s == NULL)
    return strdup("");
  while (isspace((unsigned char)*s))
    s++;
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1]))
    n--;
  return strndup(s, n);
}

static int in_list(char **list, const char *s) {
  for (char **p = list; s && p && *p; p++)
    if (strcmp(*p, s) == 0)
      return 1;
  return 0;
}

void intake_findings_clear(struct intake_findings *f) {
  lmp_reasons_clear(&f->errors);
  lmp_reasons_clear(&f->warnings);
}

struct text_walk {
  struct intake_findings *out;
  int rc;
};

static int text_field(void *ctx, const char *path, const char *s, size_t n) {
  struct text_walk *w = ctx;
  enum lmp_text_fault f = lmp_text_check(s, n, 0, NULL);
  if (f != LMP_TEXT_OK && lmp_reasons_add(&w->out->errors, "INVALID_TEXT", path,
                                          "This field %s; only printable text is accepted.",
                                          lmp_text_fault_str(f)) < 0)
    return w->rc = LMP_ENOMEM;
  return 0;
}

int intake_check_text(avro_value_t *request, struct intake_findings *out) {
  struct text_walk w = {out, 0};
  lmp_avro_walk_strings(request, text_field, &w);
  return w.rc;
}

#define ERR(code, field, ...)                                                             \
  do {                                                                                    \
    if (lmp_reasons_add(&out->errors, code, field, __VA_ARGS__) < 0)                      \
      return LMP_ENOMEM;                                                                  \
  } while (0)
#define FAULT(id, field, fault)                                                           \
  do {                                                                                    \
    if (intake_field_fault(out, rules, id, field, fault) < 0)                             \
      return LMP_ENOMEM;                                                                  \
  } while (0)
#define CHECK(id, field, value)                                                           \
  do {                                                                                    \
    if (intake_field_check(out, rules, id, field, value) < 0)                             \
      return LMP_ENOMEM;                                                                  \
  } while (0)
#define WARN(code, field, ...)                                                            \
  do {                                                                                    \
    if (lmp_reasons_add(&out->warnings, code, field, __VA_ARGS__) < 0)                    \
      return LMP_ENOMEM;                                                                  \
  } while (0)

/* Each count against the license's rules: taken or not, its least, the largest. */
static int check_counts(const struct intake_request *r, const struct intake_rules *rules,
                        struct intake_findings *out) {
  static const char *const field[3] = {"users.tier", "users.cloud", "users.sat"};
  static const char *const what[3] = {"MDR users", "MDR Cloud users", "Beauceron SAT users"};
  static const char *const below[3] = {"TIER_USERS_REQUIRED", "CLOUD_USERS_REQUIRED", NULL};
  static const char *const not_taken[3][2] = {
      {"TIER_USERS_WITH_CLOUD_LICENSE", "An MDR Cloud onboarding has MDR Cloud users only."},
      {NULL, NULL},
      {"SAT_REQUIRES_COMPLETE", "Beauceron SAT users are only available with the MDR Complete service tier."},
  };
  if (r->license < 0 || r->license > LICENSE_CLOUD)
    ERR("BAD_LICENSE", "license", "The license must be MDR_CORE, MDR_COMPLETE or MDR_CLOUD.");
  if (r->license < 0 || r->license > LICENSE_CLOUD)
    return 0;
  const int32_t n[3] = {r->tier_users, r->cloud_users, r->sat_users};
  const struct intake_license_rule *license = &intake_licenses[r->license];
  for (int c = 0; c < 3; c++) {
    char m[200];
    if (n[c] < 0) {
      ERR("NEGATIVE_COUNT", field[c], "%s cannot be negative (%d).", what[c], n[c]);
    } else if (n[c] > rules->max_users) {
      intake_count_message(rules, r->license, c, 1, m, sizeof(m));
      ERR("COUNT_TOO_LARGE", field[c], "%s", m);
    } else if (license->min[c] < 0 && n[c] > 0) {
      ERR(not_taken[c][0], field[c], "%s", not_taken[c][1]);
    } else if (n[c] < license->min[c]) {
      intake_count_message(rules, r->license, c, 0, m, sizeof(m));
      ERR(below[c], field[c], "%s", m);
    }
  }
  return 0;
}

static int check_addresses(const struct intake_request *r, const struct intake_rules *rules,
                           struct intake_findings *out) {
  char f[64];
  for (size_t i = 0; i < r->naddresses; i++) {
    const struct intake_address *a = &r->addresses[i];
    int r2 = 0;
    snprintf(f, sizeof(f), "deployment.addresses[%zu].ref", i);
    if (a->ref == NULL || !intake_id_ok(a->ref))
      ERR("BAD_ADDRESS_REF", f, "Each address needs a ref of letters, digits, '.', '_' or '-'.");
    else if (strcmp(a->ref, INTAKE_PARTNER_DEFAULT) == 0)
      ERR("BAD_ADDRESS_REF", f, "'%s' is reserved for the partner's default address.", INTAKE_PARTNER_DEFAULT);
    for (size_t j = 0; j < i && a->ref; j++)
      if (r->addresses[j].ref && strcmp(r->addresses[j].ref, a->ref) == 0)
        ERR("DUPLICATE_ADDRESS_REF", f, "Address ref '%s' is used twice.", LMP_Q(a->ref));
    static const struct {
      size_t offset;
      enum intake_field_id id;
      const char *name;
    } parts[] = {
        {offsetof(struct intake_address, recipient), F_RECIPIENT, "recipient"},
        {offsetof(struct intake_address, line1), F_LINE1, "line1"},
        {offsetof(struct intake_address, line2), F_LINE2, "line2"},
        {offsetof(struct intake_address, city), F_CITY, "city"},
        {offsetof(struct intake_address, region), F_REGION, "region"},
        {offsetof(struct intake_address, postal_code), F_POSTAL_CODE, "postal_code"},
        {offsetof(struct intake_address, country), F_COUNTRY, "country"},
        {offsetof(struct intake_address, phone), F_PHONE, "phone"},
    };
    for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++) {
      snprintf(f, sizeof(f), "deployment.addresses[%zu].%s", i, parts[k].name);
      const char *value = *(const char *const *)((const char *)a + parts[k].offset);
      if ((r2 = intake_field_check(out, rules, parts[k].id, f, value)) < 0)
        return r2;
    }
    snprintf(f, sizeof(f), "deployment.addresses[%zu]", i);
    int used = 0;
    for (size_t k = 0; k < r->nappliances && a->ref; k++)
      used |= r->appliances[k].ship_to && strcmp(r->appliances[k].ship_to, a->ref) == 0;
    if (!used && a->ref)
      WARN("ADDRESS_UNUSED", f, "Address '%s' is not assigned to any appliance.", LMP_Q(a->ref));
  }
  return 0;
}

static int check_appliances(const struct intake_request *r, const struct intake_rules *rules,
                            struct intake_findings *out) {
  char f[64];
  size_t primaries = 0;
  if (r->nappliances > (size_t)rules->max_appliances)
    ERR("TOO_MANY_APPLIANCES", "deployment.appliances",
        "%zu appliances is over the limit of %d.", r->nappliances, rules->max_appliances);
  for (size_t i = 0; i < r->nappliances; i++) {
    const struct intake_appliance *a = &r->appliances[i];
    primaries += a->role == ROLE_PRIMARY;
    snprintf(f, sizeof(f), "deployment.appliances[%zu].sku", i);
    if (a->sku == NULL || *a->sku == '\0')
      FAULT(F_SKU, f, FAULT_REQUIRED);
    else if (!in_list(rules->skus, a->sku))
      ERR("UNKNOWN_SKU", f, "'%s' is not a known appliance SKU.", LMP_Q(a->sku));
    snprintf(f, sizeof(f), "deployment.appliances[%zu].ship_to", i);
    if (a->ship_to == NULL || *a->ship_to == '\0') {
      FAULT(F_SHIP_TO, f, FAULT_REQUIRED);
    } else if (strcmp(a->ship_to, INTAKE_PARTNER_DEFAULT) != 0) {
      int found = 0;
      for (size_t k = 0; k < r->naddresses; k++)
        found |= r->addresses[k].ref && strcmp(r->addresses[k].ref, a->ship_to) == 0;
      if (!found)
        ERR("UNKNOWN_ADDRESS_REF", f, "Appliance %zu is assigned to address '%s', which the "
            "request does not contain.", i + 1, LMP_Q(a->ship_to));
    }
  }
  if (primaries == 0)
    ERR("PRIMARY_APPLIANCE_REQUIRED", "deployment.appliances",
        "A network sensor deployment needs one primary appliance for the first location.");
  else if (primaries > 1)
    ERR("MULTIPLE_PRIMARY_APPLIANCES", "deployment.appliances",
        "Only one appliance can be the primary; the others are additional network sensors.");
  return check_addresses(r, rules, out);
}

int intake_validate(const struct intake_request *r, const struct intake_rules *rules,
                    struct intake_findings *out) {
  int rc;
  if (!intake_uuid_ok(r->request_id))
    ERR("BAD_REQUEST_ID", "request_id", "The request id must be a UUID.");
  if (!intake_id_ok(r->partner_id))
    ERR("BAD_PARTNER_ID", "partner_id", "The partner id is missing or malformed.");
  if (!intake_email_ok(r->submitted_by) || strlen(r->submitted_by) > 254)
    ERR("BAD_EMAIL", "submitted_by", "The submitting user's email address is not valid.");

  /* A customer under attack needs incident response, not onboarding. */
  if (r->breach < 0)
    FAULT(F_BREACH, "breach_or_incident", FAULT_REQUIRED);
  else if (r->breach == 1 && rules->incident_response && *rules->incident_response)
    ERR("BREACH_OR_INCIDENT", "breach_or_incident",
        "A customer experiencing a breach or incident cannot be onboarded through this form; "
        "contact incident response for immediate help: %s.", rules->incident_response);
  else if (r->breach == 1)
    ERR("BREACH_OR_INCIDENT", "breach_or_incident",
        "A customer experiencing a breach or incident cannot be onboarded through this form; "
        "contact incident response for immediate help.");
  if (!r->confirmed)
    ERR("NOT_CONFIRMED", "confirmed", "The confirmation box must be checked before submitting.");

  CHECK(F_LEGAL_NAME, "customer.legal_name", r->legal_name);
  CHECK(F_WEB_SITE, "customer.web_site", r->web_site);
  CHECK(F_SUB_PARTNER, "customer.sub_partner_id", r->sub_partner_id);
  if (r->sub_partner_id && *r->sub_partner_id && r->partner_id && strcmp(r->sub_partner_id, r->partner_id) == 0)
    ERR("BAD_SUB_PARTNER", "customer.sub_partner_id",
        "The sub-partner must be another partner account, not the submitting partner.");
  CHECK(F_ADMIN_EMAIL, "customer.portal_admin_email", r->admin_email);

  if ((rc = check_counts(r, rules, out)) < 0)
    return rc;

  if (r->license == LICENSE_CLOUD) {
    if (r->has_deployment)
      ERR("CLOUD_HAS_NO_APPLIANCE", "deployment",
          "An MDR Cloud onboarding has no appliance; leave the deployment empty.");
    return 0;
  }
  if (!r->has_deployment) {
    FAULT(F_DEPLOYMENT, "deployment", FAULT_REQUIRED);
    return 0;
  }
  if (r->deployment == DEPLOY_VIRTUAL) {
    if (r->hosting_region == NULL || *r->hosting_region == '\0')
      FAULT(F_HOSTING_REGION, "deployment.hosting_region", FAULT_REQUIRED);
    else if (!in_list(rules->regions, r->hosting_region))
      ERR("UNKNOWN_HOSTING_REGION", "deployment.hosting_region",
          "'%s' is not a known hosting region.", LMP_Q(r->hosting_region));
    if (r->nappliances)
      ERR("VIRTUAL_HAS_NO_APPLIANCES", "deployment.appliances",
          "A fully virtual deployment ships no appliance.");
    /* Refused rather than carried: every later event carries the request, and a
     * fully virtual deployment ships nothing. */
    if (r->naddresses)
      ERR("ADDRESSES_NOT_APPLICABLE", "deployment.addresses",
          "A fully virtual deployment ships nothing; leave the shipping addresses empty.");
    if (r->tier_users >= 10)
      WARN("VIRTUAL_FOR_LARGE_CUSTOMER", "deployment.kind",
           "The fully virtual solution suits customers with fewer than 10 users or no need for "
           "network packet analysis; consider a network sensor.");
    return 0;
  }
  if (r->hosting_region && *r->hosting_region)
    WARN("HOSTING_REGION_IGNORED", "deployment.hosting_region",
         "A hosting region only applies to a fully virtual deployment.");
  /* The article's advice: a small customer is usually best served virtually. */
  if (r->tier_users > 0 && r->tier_users < 10)
    WARN("VIRTUAL_RECOMMENDED", "deployment.kind",
         "With fewer than 10 users the fully virtual solution is recommended, unless the customer "
         "needs network packet analysis.");
  if (r->naddresses > (size_t)rules->max_appliances)
    ERR("TOO_MANY_ADDRESSES", "deployment.addresses",
        "%zu shipping addresses is over the limit of %d.", r->naddresses, rules->max_appliances);
  return check_appliances(r, rules, out);
}
