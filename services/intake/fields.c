/* The form's field rules, checked here and published to the page. A format is a list
 * of regular expressions that must all match; they are written in the part of the
 * syntax that PCRE2 and JavaScript read the same way (no backslash, no class names),
 * so the page runs the very patterns intake runs. */
#include "fields.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"

#define TEXT_MAX 200 /* characters, for every free-text field but the legal name */

/* A DNS host name: labels of letters, digits and inner hyphens, the last alphabetic. */
#define HOST "([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?[.])+[A-Za-z]{2,63}"
/* A port, 0 to 65535. */
#define PORT "([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
#define LOCAL_CHAR "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
/* The white space trimmed from every value (C's isspace): a value is checked trimmed,
 * and the patterns allow it around, so that they say the same of a value sent as it is. */
#define WS "[\t\n\v\f\r ]*"

enum format { FMT_NONE, FMT_EMAIL, FMT_WEB_SITE, FMT_ID, FMT_COUNTRY, FORMATS };

static const char *const patterns[FORMATS][4] = {
    [FMT_EMAIL] = {"^" WS "[^@]{1,64}@[^@]{1,253}" WS "$", "^" WS LOCAL_CHAR "+([.]" LOCAL_CHAR "+)*@" HOST WS "$"},
    /* An http(s) address or a bare host name, with a port and a path if need be. */
    /* The host at most 253 characters, after the scheme when there is one (without a
     * scheme, a ':' after the host is a port's). */
    [FMT_WEB_SITE] = {"^" WS "([Hh][Tt][Tt][Pp][Ss]?://[^/?#:]{1,253}([:/?#]|" WS "$)|[^/?#:]{1,253}(:[0-9]|[/?#]|" WS
                      "$))",
                      "^" WS "([Hh][Tt][Tt][Pp][Ss]?://)?" HOST "(:" PORT ")?([/?#][!-~]*)?" WS "$"},
    [FMT_ID] = {"^" WS "[A-Za-z0-9._-]{1,64}" WS "$"},
};

enum when { ALWAYS, IF_DEPLOYMENT, IF_VIRTUAL, IF_SENSORS };

struct field {
  const char *path;   /* "[]": each item of an array */
  const char *what;   /* the field in a sentence: "The city" */
  int required;
  int max;            /* characters; 0: intake.legal_name_max; -1: no length rule */
  enum format format;
  enum when when;     /* when the rules apply at all */
  const char *codes[INTAKE_FAULTS];
  const char *messages[INTAKE_FAULTS]; /* NULL: the sentence made from what */
};

#define ADDRESS_TEXT(member, what, req)                                                   \
  {"deployment.addresses[]." member, what, req, TEXT_MAX, FMT_NONE, IF_SENSORS,          \
   {"REQUIRED", "TOO_LONG", "INVALID_TEXT"}, {NULL, NULL, NULL}}

static const struct field fields[INTAKE_FIELDS] = {
    [F_BREACH] = {"breach_or_incident", "The breach question", 1, -1, FMT_NONE, ALWAYS,
                  {"BREACH_QUESTION_UNANSWERED", NULL, NULL},
                  {"Please confirm whether the customer is experiencing a breach or incident.", NULL, NULL}},
    [F_LEGAL_NAME] = {"customer.legal_name", "The customer's legal name", 1, 0, FMT_NONE, ALWAYS,
                      {"LEGAL_NAME_REQUIRED", "LEGAL_NAME_TOO_LONG", "LEGAL_NAME_INVALID"}, {NULL, NULL, NULL}},
    [F_WEB_SITE] = {"customer.web_site", "The web site", 0, 2048, FMT_WEB_SITE, ALWAYS,
                    {NULL, "BAD_WEB_SITE", "BAD_WEB_SITE"},
                    {NULL, NULL, "The web site must be an http(s) address or a host name such as example.com."}},
    [F_SUB_PARTNER] = {"customer.sub_partner_id", "The sub-partner", 0, -1, FMT_ID, ALWAYS,
                       {NULL, NULL, "BAD_SUB_PARTNER"},
                       {NULL, NULL, "The sub-partner is a partner id: at most 64 letters, digits, '.', '_' or '-'."}},
    [F_ADMIN_EMAIL] = {"customer.portal_admin_email", "The MDR Portal administrator's email address", 1, 254,
                       FMT_EMAIL, ALWAYS, {"BAD_ADMIN_EMAIL", "BAD_ADMIN_EMAIL", "BAD_ADMIN_EMAIL"},
                       {NULL, NULL, "The MDR Portal administrator's email address is not valid: enter one such as "
                                    "it-admin@example.com."}},
    [F_DEPLOYMENT] = {"deployment", "The deployment", 1, -1, FMT_NONE, IF_DEPLOYMENT,
                      {"DEPLOYMENT_REQUIRED", NULL, NULL},
                      {"Choose a deployment solution: fully virtual or network sensor(s).", NULL, NULL}},
    [F_HOSTING_REGION] = {"deployment.hosting_region", "The hosting region", 1, -1, FMT_NONE, IF_VIRTUAL,
                          {"HOSTING_REGION_REQUIRED", NULL, NULL},
                          {"A fully virtual deployment needs a hosting region.", NULL, NULL}},
    [F_SKU] = {"deployment.appliances[].sku", "The model", 1, -1, FMT_NONE, IF_SENSORS, {"SKU_REQUIRED", NULL, NULL},
               {"Choose a model for this appliance.", NULL, NULL}},
    [F_SHIP_TO] = {"deployment.appliances[].ship_to", "The shipping address", 1, -1, FMT_NONE, IF_SENSORS,
                   {"APPLIANCE_WITHOUT_ADDRESS", NULL, NULL},
                   {"Choose where this appliance is shipped.", NULL, NULL}},
    [F_RECIPIENT] = ADDRESS_TEXT("recipient", "The recipient", 1),
    [F_LINE1] = ADDRESS_TEXT("line1", "Address line 1", 1),
    [F_LINE2] = ADDRESS_TEXT("line2", "Address line 2", 0),
    [F_CITY] = ADDRESS_TEXT("city", "The city", 1),
    [F_REGION] = ADDRESS_TEXT("region", "The region", 0),
    [F_POSTAL_CODE] = ADDRESS_TEXT("postal_code", "The postal code", 1),
    [F_COUNTRY] = {"deployment.addresses[].country", "The country", 1, -1, FMT_COUNTRY, IF_SENSORS,
                   {"BAD_COUNTRY", "BAD_COUNTRY", "BAD_COUNTRY"},
                   {"Choose the country.", NULL, "The country must be an ISO 3166-1 alpha-2 code such as CA or US."}},
    [F_PHONE] = ADDRESS_TEXT("phone", "The phone number", 0),
};

const struct intake_license_rule intake_licenses[3] = {
    [LICENSE_CORE] = {"MDR_CORE", "MDR Core", {1, 0, -1}, 1},
    [LICENSE_COMPLETE] = {"MDR_COMPLETE", "MDR Complete", {1, 0, 0}, 1},
    [LICENSE_CLOUD] = {"MDR_CLOUD", "MDR Cloud", {-1, 1, -1}, 0},
};

/* ---- the patterns ----------------------------------------------------------- */

/* Compiled by PCRE2, which keeps a bounded repeat such as {1,253} as one counted
 * step. glibc's regcomp wrote each out as that many states, and its matcher cached
 * the states it met: 3.5 MB of intake's heap after a burst. Bytes, not UTF-8
 * characters, as before; '$' only at the very end, as in JavaScript. */
static pcre2_code *compiled[FORMATS][4];
static pcre2_match_context *limits;
static int compiled_ok;
static pthread_once_t compile_once = PTHREAD_ONCE_INIT;

/* Far above what any of these patterns needs for the longest value a field takes; a
 * value that hits it is refused, never matched at leisure. */
#define MATCH_LIMIT 100000

/* What PCRE2 said, when it was not "no match": a fault of this file or no memory,
 * so the value is refused as before, but not silently. */
static void engine_error(const char *what, int code, int f) {
  PCRE2_UCHAR text[160];
  if (pcre2_get_error_message(code, text, sizeof(text)) < 0)
    snprintf((char *)text, sizeof(text), "error %d", code);
  lmp_error(NULL, "field pattern %d: %s: %s", f, what, (const char *)text);
}

static void compile(void) {
  int code;
  PCRE2_SIZE at;
  compiled_ok = (limits = pcre2_match_context_create(NULL)) != NULL &&
                pcre2_set_match_limit(limits, MATCH_LIMIT) == 0;
  for (int f = 0; f < FORMATS; f++)
    for (int i = 0; i < 4 && patterns[f][i]; i++)
      if ((compiled[f][i] = pcre2_compile((PCRE2_SPTR)patterns[f][i], PCRE2_ZERO_TERMINATED,
                                          PCRE2_DOLLAR_ENDONLY | PCRE2_NO_AUTO_CAPTURE, &code, &at, NULL)) == NULL) {
        engine_error("does not compile", code, f);
        compiled_ok = 0; /* every value of the format is refused */
      }
}

static int format_ok(enum format f, const char *s) {
  if (f == FMT_COUNTRY)
    return lmp_country_ok(s);
  pthread_once(&compile_once, compile);
  if (!compiled_ok)
    return 0;
  pcre2_match_data *md = pcre2_match_data_create(1, NULL);
  int ok = md != NULL;
  for (int i = 0; ok && i < 4 && patterns[f][i]; i++) {
    int r = pcre2_match(compiled[f][i], (PCRE2_SPTR)s, strlen(s), 0, 0, md, limits);
    if (r < 0 && r != PCRE2_ERROR_NOMATCH)
      engine_error("not matched", r, f);
    ok = r >= 0;
  }
  pcre2_match_data_free(md);
  return ok;
}

int intake_email_ok(const char *s) { return s && format_ok(FMT_EMAIL, s); }
int intake_web_site_ok(const char *s) { return s && format_ok(FMT_WEB_SITE, s); }
int intake_id_ok(const char *s) { return s && format_ok(FMT_ID, s); }

/* ---- checking --------------------------------------------------------------- */

static int max_of(const struct field *f, const struct intake_rules *rules) {
  return f->max == 0 ? rules->legal_name_max : f->max;
}

static void message(const struct field *f, const struct intake_rules *rules, enum intake_fault fault, char *buf,
                    size_t n) {
  if (f->messages[fault])
    snprintf(buf, n, "%s", f->messages[fault]);
  else if (fault == FAULT_REQUIRED)
    snprintf(buf, n, "%s is required.", f->what);
  else if (fault == FAULT_TOO_LONG)
    snprintf(buf, n, "%s is longer than %d characters.", f->what, max_of(f, rules));
  else
    snprintf(buf, n, "%s has control characters or is not valid UTF-8.", f->what);
}

int intake_field_fault(struct intake_findings *out, const struct intake_rules *rules, enum intake_field_id id,
                       const char *path, enum intake_fault fault) {
  char m[300];
  message(&fields[id], rules, fault, m, sizeof(m));
  return lmp_reasons_add(&out->errors, fields[id].codes[fault], path, "%s", m) < 0 ? LMP_ENOMEM : 0;
}

int intake_field_check(struct intake_findings *out, const struct intake_rules *rules, enum intake_field_id id,
                       const char *path, const char *value) {
  const struct field *f = &fields[id];
  const char *s = value ? value : "";
  while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
    s++; /* white space alone is no answer (a request may come untrimmed from Kafka) */
  size_t chars;
  if (*s == '\0')
    return f->required ? intake_field_fault(out, rules, id, path, FAULT_REQUIRED) : 0;
  if (lmp_text_check(value, strlen(value), 0, &chars) != LMP_TEXT_OK)
    return intake_field_fault(out, rules, id, path, FAULT_INVALID);
  if (f->max >= 0 && chars > (size_t)max_of(f, rules))
    return intake_field_fault(out, rules, id, path, FAULT_TOO_LONG);
  if (f->format != FMT_NONE && !format_ok(f->format, value))
    return intake_field_fault(out, rules, id, path, FAULT_INVALID);
  return 0;
}

static const char *const count_names[3] = {NULL, "MDR Cloud", "Beauceron SAT"};

void intake_count_message(const struct intake_rules *rules, int license, int count, int over, char *buf,
                          size_t n) {
  const char *name = count ? count_names[count] : intake_licenses[license].name;
  if (over)
    snprintf(buf, n, "At most %d %s users can be requested at once.", rules->max_users, name);
  else
    snprintf(buf, n, "At least one %s user is required.", name);
}

/* ---- publishing ------------------------------------------------------------- */

static json_t *when_json(enum when w) {
  switch (w) {
  case IF_DEPLOYMENT: return json_pack("{s:s,s:[s,s]}", "field", "license", "in", "MDR_CORE", "MDR_COMPLETE");
  case IF_VIRTUAL: return json_pack("{s:s,s:[s]}", "field", "deployment.kind", "in", "VIRTUAL");
  case IF_SENSORS: return json_pack("{s:s,s:[s]}", "field", "deployment.kind", "in", "NETWORK_SENSORS");
  default: return json_null();
  }
}

static json_t *field_json(const struct intake_rules *rules, const struct field *f) {
  static const char *const fault_names[INTAKE_FAULTS] = {"required", "too_long", "invalid"};
  json_t *o = json_pack("{s:s,s:b,s:o}", "field", f->path, "required", f->required, "when", when_json(f->when));
  json_t *messages = json_object(), *pats = json_array();
  if (o == NULL || messages == NULL || pats == NULL) {
    json_decref(o), json_decref(messages), json_decref(pats);
    return NULL;
  }
  json_object_set_new(o, "messages", messages);
  json_object_set_new(o, "patterns", pats);
  if (f->max >= 0)
    json_object_set_new(o, "max_length", json_integer(max_of(f, rules)));
  if (f->format == FMT_COUNTRY)
    json_object_set_new(o, "one_of", json_string("countries"));
  for (int i = 0; i < 4 && f->format != FMT_NONE && patterns[f->format][i]; i++)
    json_array_append_new(pats, json_string(patterns[f->format][i]));
  for (int k = 0; k < INTAKE_FAULTS; k++) {
    char m[300];
    if (f->codes[k] == NULL)
      continue; /* a fault the field cannot have */
    message(f, rules, k, m, sizeof(m));
    json_object_set_new(messages, fault_names[k], json_string(m));
  }
  return o;
}

static json_t *license_json(const struct intake_rules *rules, int l) {
  static const char *const counts[3] = {"tier", "cloud", "sat"};
  const struct intake_license_rule *r = &intake_licenses[l];
  json_t *o = json_pack("{s:s,s:s,s:b,s:{}}", "code", r->code, "name", r->name, "deployment", r->deployment,
                        "counts");
  for (int c = 0; o && c < 3; c++) {
    if (r->min[c] < 0)
      continue;
    char below[200], over[200];
    intake_count_message(rules, l, c, 0, below, sizeof(below));
    intake_count_message(rules, l, c, 1, over, sizeof(over));
    json_object_set_new(json_object_get(o, "counts"), counts[c],
                        json_pack("{s:i,s:i,s:{s:s,s:s}}", "min", r->min[c], "max", rules->max_users, "messages",
                                  "below_min", below, "over_max", over));
  }
  return o;
}

int intake_fields_json(const struct intake_rules *rules, json_t *o) {
  json_t *list = json_array(), *licenses = json_array();
  if (json_object_set_new(o, "fields", list) < 0 || json_object_set_new(o, "licenses", licenses) < 0)
    return LMP_ENOMEM;
  for (int i = 0; i < INTAKE_FIELDS; i++)
    if (json_array_append_new(list, field_json(rules, &fields[i])) < 0)
      return LMP_ENOMEM;
  for (int l = 0; l < 3; l++)
    if (json_array_append_new(licenses, license_json(rules, l)) < 0)
      return LMP_ENOMEM;
  return 0;
}
