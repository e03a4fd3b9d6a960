/* The rules of the onboarding form that intake checks without asking anyone. */
#include <ctype.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmp/base/error.h"
#include "lmp/base/text.h"
#include "request.h"

#define FIELD_MAX 200   /* characters, for every free-text field but the legal name */

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

/* A DNS host name: two or more labels of letters, digits and inner hyphens, the
 * last one alphabetic. */
static int hostname_ok(const char *h, size_t n) {
  if (n == 0 || n > 253)
    return 0;
  size_t labels = 0, start = 0, last = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || h[i] == '.') {
      size_t len = i - start;
      if (len == 0 || len > 63 || h[start] == '-' || h[i - 1] == '-')
        return 0;
      labels++;
      last = len;
      if (i == n)
        for (size_t k = start; k < i; k++)
          if (!isalpha((unsigned char)h[k]))
            return 0;
      start = i + 1;
    } else if (!isalnum((unsigned char)h[i]) && h[i] != '-') {
      return 0;
    }
  }
  return labels >= 2 && last >= 2;
}

int intake_email_ok(const char *s) {
  if (s == NULL)
    return 0;
  size_t n = strlen(s);
  const char *at = strrchr(s, '@');
  if (n > 254 || at == NULL || at == s || (size_t)(at - s) > 64)
    return 0;
  static const char special[] = "!#$%&'*+/=?^_`{|}~-.";
  for (const char *p = s; p < at; p++) {
    if (!isalnum((unsigned char)*p) && !strchr(special, *p))
      return 0;
    if (*p == '.' && (p == s || p + 1 == at || p[1] == '.'))
      return 0;
  }
  return hostname_ok(at + 1, strlen(at + 1));
}

/* A web site is an http(s) URL or a bare host name; libcurl parses the URL. */
int intake_web_site_ok(const char *s) {
  if (s == NULL || strlen(s) > 2048)
    return 0;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p <= ' ')
      return 0;
  CURLU *u = curl_url();
  if (u == NULL)
    return 0;
  int ok = 0;
  char *scheme = NULL, *host = NULL;
  if (curl_url_set(u, CURLUPART_URL, s, CURLU_DEFAULT_SCHEME | CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
    int has_scheme = strstr(s, "://") != NULL;
    ok = (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
         (!has_scheme || strncasecmp(s, scheme, strlen(scheme)) == 0) && hostname_ok(host, strlen(host));
  }
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(u);
  return ok;
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

/* Characters of printable UTF-8 text, or -1 (intake_check_text has named the fault). */
static long utf8_chars(const char *s) {
  size_t n;
  return lmp_text_check(s, strlen(s), 0, &n) == LMP_TEXT_OK ? (long)n : -1;
}

static int in_list(char **list, const char *s) {
  for (char **p = list; s && p && *p; p++)
    if (strcmp(*p, s) == 0)
      return 1;
  return 0;
}

static int id_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 64)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
      return 0;
  return 1;
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
#define WARN(code, field, ...)                                                            \
  do {                                                                                    \
    if (lmp_reasons_add(&out->warnings, code, field, __VA_ARGS__) < 0)                    \
      return LMP_ENOMEM;                                                                  \
  } while (0)

static int text_required(struct intake_findings *out, const char *s, const char *field,
                         const char *what) {
  size_t n = 0;
  if (s) {
    const char *p = s;
    while (isspace((unsigned char)*p))
      p++;
    n = strlen(p);
  }
  if (n == 0)
    ERR("REQUIRED", field, "%s is required.", what);
  else if (utf8_chars(s) > FIELD_MAX)
    ERR("TOO_LONG", field, "%s is longer than %d characters.", what, FIELD_MAX);
  else if (utf8_chars(s) < 0)
    ERR("INVALID_TEXT", field, "%s has control characters or is not valid UTF-8.", what);
  return 0;
}

static int text_optional(struct intake_findings *out, const char *s, const char *field,
                         const char *what) {
  if (s && utf8_chars(s) > FIELD_MAX)
    ERR("TOO_LONG", field, "%s is longer than %d characters.", what, FIELD_MAX);
  else if (s && utf8_chars(s) < 0)
    ERR("INVALID_TEXT", field, "%s has control characters or is not valid UTF-8.", what);
  return 0;
}

static int check_count(struct intake_findings *out, int32_t v, const char *field,
                       const char *what, int max) {
  if (v < 0)
    ERR("NEGATIVE_COUNT", field, "%s cannot be negative (%d).", what, v);
  else if (v > max)
    ERR("COUNT_TOO_LARGE", field, "%s of %d is over the limit of %d.", what, v, max);
  return 0;
}

static int check_addresses(const struct intake_request *r, struct intake_findings *out) {
  char f[64];
  for (size_t i = 0; i < r->naddresses; i++) {
    const struct intake_address *a = &r->addresses[i];
    int r2 = 0;
    snprintf(f, sizeof(f), "deployment.addresses[%zu].ref", i);
    if (a->ref == NULL || !id_ok(a->ref))
      ERR("BAD_ADDRESS_REF", f, "Each address needs a ref of letters, digits, '.', '_' or '-'.");
    else if (strcmp(a->ref, INTAKE_PARTNER_DEFAULT) == 0)
      ERR("BAD_ADDRESS_REF", f, "'%s' is reserved for the partner's default address.", INTAKE_PARTNER_DEFAULT);
    for (size_t j = 0; j < i && a->ref; j++)
      if (r->addresses[j].ref && strcmp(r->addresses[j].ref, a->ref) == 0)
        ERR("DUPLICATE_ADDRESS_REF", f, "Address ref '%s' is used twice.", LMP_Q(a->ref));
#define REQ(member, name)                                                                  \
  snprintf(f, sizeof(f), "deployment.addresses[%zu]." #member, i);                        \
  if ((r2 = text_required(out, a->member, f, name)) < 0)                                  \
    return r2;
#define OPT(member, name)                                                                  \
  snprintf(f, sizeof(f), "deployment.addresses[%zu]." #member, i);                        \
  if ((r2 = text_optional(out, a->member, f, name)) < 0)                                  \
    return r2;
    REQ(recipient, "The recipient")
    REQ(line1, "Address line 1")
    OPT(line2, "Address line 2")
    REQ(city, "The city")
    OPT(region, "The region")
    REQ(postal_code, "The postal code")
    OPT(phone, "The phone number")
#undef REQ
#undef OPT
    snprintf(f, sizeof(f), "deployment.addresses[%zu].country", i);
    if (!lmp_country_ok(a->country))
      ERR("BAD_COUNTRY", f, "'%s' is not an ISO 3166-1 alpha-2 country code such as CA or US.",
          LMP_Q(a->country));
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
      ERR("SKU_REQUIRED", f, "Choose a model for %s.", i ? "this additional sensor" : "the primary appliance");
    else if (!in_list(rules->skus, a->sku))
      ERR("UNKNOWN_SKU", f, "'%s' is not a known appliance SKU.", LMP_Q(a->sku));
    snprintf(f, sizeof(f), "deployment.appliances[%zu].ship_to", i);
    if (a->ship_to == NULL || *a->ship_to == '\0') {
      ERR("APPLIANCE_WITHOUT_ADDRESS", f, "Appliance %zu has no shipping address.", i + 1);
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
  return check_addresses(r, out);
}

int intake_validate(const struct intake_request *r, const struct intake_rules *rules,
                    struct intake_findings *out) {
  int rc;
  if (!intake_uuid_ok(r->request_id))
    ERR("BAD_REQUEST_ID", "request_id", "The request id must be a UUID.");
  if (!id_ok(r->partner_id))
    ERR("BAD_PARTNER_ID", "partner_id", "The partner id is missing or malformed.");
  if (!intake_email_ok(r->submitted_by))
    ERR("BAD_EMAIL", "submitted_by", "The submitting user's email address is not valid.");

  /* A customer under attack needs incident response, not onboarding. */
  if (r->breach < 0)
    ERR("BREACH_QUESTION_UNANSWERED", "breach_or_incident",
        "Please confirm whether the customer is experiencing a breach or incident.");
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

  char *name = intake_trim(r->legal_name);
  if (name == NULL)
    return LMP_ENOMEM;
  long chars = utf8_chars(name);
  int empty = *name == '\0';
  free(name);
  if (empty)
    ERR("LEGAL_NAME_REQUIRED", "customer.legal_name", "The customer's legal name is required.");
  else if (chars < 0)
    ERR("LEGAL_NAME_INVALID", "customer.legal_name",
        "The legal name has control characters or is not valid UTF-8.");
  else if (chars > rules->legal_name_max)
    ERR("LEGAL_NAME_TOO_LONG", "customer.legal_name",
        "The legal name is %ld characters; at most %d are allowed.", chars, rules->legal_name_max);

  if (r->web_site && *r->web_site && !intake_web_site_ok(r->web_site))
    ERR("BAD_WEB_SITE", "customer.web_site",
        "The web site must be an http(s) address or a host name such as example.com.");
  if (r->sub_partner_id && *r->sub_partner_id) {
    if (!id_ok(r->sub_partner_id))
      ERR("BAD_SUB_PARTNER", "customer.sub_partner_id", "The sub-partner id is malformed.");
    else if (r->partner_id && strcmp(r->sub_partner_id, r->partner_id) == 0)
      ERR("BAD_SUB_PARTNER", "customer.sub_partner_id",
          "The sub-partner must be another partner account, not the submitting partner.");
  }
  if (!intake_email_ok(r->admin_email))
    ERR("BAD_ADMIN_EMAIL", "customer.portal_admin_email",
        "The MDR Portal administrator's email address is missing or not valid.");

  if ((rc = check_count(out, r->tier_users, "users.tier", "MDR users", rules->max_users)) < 0 ||
      (rc = check_count(out, r->cloud_users, "users.cloud", "MDR Cloud users", rules->max_users)) < 0 ||
      (rc = check_count(out, r->sat_users, "users.sat", "Beauceron SAT users", rules->max_users)) < 0)
    return rc;
  if (r->license == LICENSE_CLOUD) {
    if (r->tier_users > 0)
      ERR("TIER_USERS_WITH_CLOUD_LICENSE", "users.tier",
          "An MDR Cloud onboarding has MDR Cloud users only.");
    if (r->cloud_users < 1)
      ERR("CLOUD_USERS_REQUIRED", "users.cloud", "An MDR Cloud onboarding needs at least one MDR Cloud user.");
  } else if (r->tier_users < 1 && r->tier_users >= 0) {
    ERR("TIER_USERS_REQUIRED", "users.tier", "At least one MDR %s user is required.",
        r->license == LICENSE_CORE ? "Core" : "Complete");
  }
  if (r->sat_users > 0 && r->license != LICENSE_COMPLETE)
    ERR("SAT_REQUIRES_COMPLETE", "users.sat",
        "Beauceron SAT users are only available with the MDR Complete service tier.");

  if (r->license == LICENSE_CLOUD) {
    if (r->has_deployment)
      ERR("CLOUD_HAS_NO_APPLIANCE", "deployment",
          "An MDR Cloud onboarding has no appliance; leave the deployment empty.");
    return 0;
  }
  if (!r->has_deployment) {
    ERR("DEPLOYMENT_REQUIRED", "deployment",
        "Choose a deployment solution: fully virtual or network sensor(s).");
    return 0;
  }
  if (r->deployment == DEPLOY_VIRTUAL) {
    if (r->hosting_region == NULL || *r->hosting_region == '\0')
      ERR("HOSTING_REGION_REQUIRED", "deployment.hosting_region",
          "A fully virtual deployment needs a hosting region.");
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
