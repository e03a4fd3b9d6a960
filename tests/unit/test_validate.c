/* Every rule of the onboarding form, one mutation of a valid request at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fields.h"
#include "intake.h"
#include "lmp/avro/codec.h"
#include "lmp/base/text.h"

static struct lmp_schemas *S;
static struct intake_rules rules;
static char *regions[] = {"ca-central-1", "us-east-1", NULL};
static char *skus[] = {"NS-100", "NS-500", NULL};

static int setup(void **state) {
  char err[300];
  rules = (struct intake_rules){regions, skus, 200, 1000000, 50, "call +1 888 555 0100"};
  return lmp_schemas_new(&S, err, sizeof(err));
}

static int teardown(void **state) {
  lmp_schemas_free(S);
  return 0;
}

static json_t *example(const char *name) {
  char path[512];
  snprintf(path, sizeof(path), "%s/deploy/examples/%s", LMP_SOURCE_DIR, name);
  json_t *j = json_load_file(path, 0, NULL);
  assert_non_null(j);
  return j;
}

/* Sets (or with value NULL deletes) the node at a path such as a.b[2].c. */
static void mutate(json_t *root, const char *path, json_t *value) {
  char *p = strdup(path), *save = NULL;
  json_t *node = root;
  char *tok = strtok_r(p, ".", &save);
  while (tok) {
    char *next = strtok_r(NULL, ".", &save);
    char *br = strchr(tok, '[');
    size_t idx = 0;
    if (br) {
      idx = strtoul(br + 1, NULL, 10);
      *br = '\0';
    }
    if (next == NULL && !br) {
      if (value)
        json_object_set_new(node, tok, value);
      else
        json_object_del(node, tok);
      break;
    }
    node = json_object_get(node, tok);
    if (br) {
      if (next == NULL) {
        json_array_set_new(node, idx, value);
        break;
      }
      node = json_array_get(node, idx);
    }
    assert_non_null(node);
    tok = next;
  }
  free(p);
}

static void validate_json(json_t *j, struct intake_findings *f) {
  const struct lmp_schema *s = lmp_schemas_get(S, "onboarding.requested");
  avro_value_t v;
  char err[300] = "";
  avro_generic_value_new(s->iface, &v);
  if (lmp_avro_from_json(&v, j, err, sizeof(err)) != 0)
    fail_msg("test request does not fit the schema: %s", err);
  struct intake_request r;
  assert_int_equal(intake_request_read(&v, &r), 0);
  assert_int_equal(intake_validate(&r, &rules, f), 0);
  intake_request_clear(&r);
  avro_value_decref(&v);
}

struct rule_case {
  const char *base;     /* example file */
  const char *path;     /* what to change */
  const char *value;    /* JSON text; NULL deletes the field */
  const char *errors;   /* expected error codes, space-separated, in order; "" = valid */
  const char *warning;  /* a warning that must be present, or NULL */
};

#define PHYS "physical-complete.json"
#define VIRT "virtual-core.json"
#define CLOUD "cloud-only.json"

static const struct rule_case cases[] = {
    {PHYS, NULL, NULL, "", NULL},
    {VIRT, NULL, NULL, "", NULL},
    {CLOUD, NULL, NULL, "", NULL},
    {PHYS, "request_id", "\"not-a-uuid\"", "BAD_REQUEST_ID", NULL},
    {PHYS, "partner_id", "\"\"", "BAD_PARTNER_ID", NULL},
    {PHYS, "partner_id", "\"north wind\"", "BAD_PARTNER_ID", NULL},
    {PHYS, "submitted_by", "\"alex@localhost\"", "BAD_EMAIL", NULL},
    {PHYS, "breach_or_incident", "null", "BREACH_QUESTION_UNANSWERED", NULL},
    {PHYS, "breach_or_incident", "true", "BREACH_OR_INCIDENT", NULL},
    {PHYS, "confirmed", "false", "NOT_CONFIRMED", NULL},
    {PHYS, "customer.legal_name", "\"\"", "LEGAL_NAME_REQUIRED", NULL},
    {PHYS, "customer.legal_name", "\"   \\t \"", "LEGAL_NAME_REQUIRED", NULL},
    {PHYS, "customer.legal_name", "\"Acme\\u0007 Corp\"", "LEGAL_NAME_INVALID", NULL},
    {PHYS, "customer.legal_name", "LONG201", "LEGAL_NAME_TOO_LONG", NULL},
    {PHYS, "customer.legal_name", "ACCENTS200", "", NULL}, /* 400 bytes, 200 characters */
    {PHYS, "customer.web_site", "\"ftp://files.example.com\"", "BAD_WEB_SITE", NULL},
    {PHYS, "customer.web_site", "\"not a site\"", "BAD_WEB_SITE", NULL},
    {PHYS, "customer.web_site", "\"localhost\"", "BAD_WEB_SITE", NULL},
    {PHYS, "customer.web_site", "\"http://example.com/about?x=1\"", "", NULL},
    {PHYS, "customer.web_site", "null", "", NULL},
    {PHYS, "customer.sub_partner_id", "\"partner-northwind\"", "BAD_SUB_PARTNER", NULL},
    {PHYS, "customer.sub_partner_id", "\"bad id!\"", "BAD_SUB_PARTNER", NULL},
    {PHYS, "customer.sub_partner_id", "\"partner-eastwind\"", "", NULL},
    {PHYS, "customer.portal_admin_email", "\"\"", "BAD_ADMIN_EMAIL", NULL},
    {PHYS, "customer.portal_admin_email", "\"a..b@example.com\"", "BAD_ADMIN_EMAIL", NULL},
    {PHYS, "customer.portal_admin_email", "\"a@-example.com\"", "BAD_ADMIN_EMAIL", NULL},
    {PHYS, "customer.portal_admin_email", "\"a@example.c\"", "BAD_ADMIN_EMAIL", NULL},
    {PHYS, "customer.portal_admin_email", "\"first.last+mdr@sub.example.co.uk\"", "", NULL},
    {PHYS, "users.tier", "0", "TIER_USERS_REQUIRED", NULL},
    {PHYS, "users.tier", "-5", "NEGATIVE_COUNT", NULL},
    {PHYS, "users.tier", "2147483647", "COUNT_TOO_LARGE", NULL},
    {PHYS, "users.cloud", "-1", "NEGATIVE_COUNT", NULL},
    {PHYS, "users.sat", "-1", "NEGATIVE_COUNT", NULL},
    {PHYS, "users.sat", "1000001", "COUNT_TOO_LARGE", NULL},
    {PHYS, "license", "\"MDR_CORE\"", "SAT_REQUIRES_COMPLETE", NULL},
    {CLOUD, "users.tier", "5", "TIER_USERS_WITH_CLOUD_LICENSE", NULL},
    {CLOUD, "users.cloud", "0", "CLOUD_USERS_REQUIRED", NULL},
    {CLOUD, "users.sat", "3", "SAT_REQUIRES_COMPLETE", NULL},
    {CLOUD, "deployment", "{\"kind\": \"VIRTUAL\", \"hosting_region\": \"us-east-1\"}", "CLOUD_HAS_NO_APPLIANCE", NULL},
    {PHYS, "deployment", "null", "DEPLOYMENT_REQUIRED", NULL},
    {VIRT, "deployment.hosting_region", "null", "HOSTING_REGION_REQUIRED", NULL},
    {VIRT, "deployment.hosting_region", "\"mars-north-1\"", "UNKNOWN_HOSTING_REGION", NULL},
    {VIRT, "deployment.appliances", "[{\"role\": \"PRIMARY\", \"sku\": \"NS-100\", \"ship_to\": \"partner-default\"}]",
     "VIRTUAL_HAS_NO_APPLIANCES", NULL},
    {VIRT, "users.tier", "10", "", "VIRTUAL_FOR_LARGE_CUSTOMER"},
    {PHYS, "deployment.appliances[1].sku", "\"NS-9999\"", "UNKNOWN_SKU", NULL},
    {PHYS, "deployment.appliances[0].sku", "\"\"", "SKU_REQUIRED", NULL},
    {PHYS, "deployment.appliances[2].ship_to", "null", "APPLIANCE_WITHOUT_ADDRESS", "ADDRESS_UNUSED"},
    {PHYS, "deployment.appliances[2].ship_to", "\"\"", "APPLIANCE_WITHOUT_ADDRESS", "ADDRESS_UNUSED"},
    {PHYS, "deployment.appliances[2].ship_to", "\"moon-base\"", "UNKNOWN_ADDRESS_REF", "ADDRESS_UNUSED"},
    {PHYS, "deployment.appliances[2].ship_to", "\"partner-default\"", "", "ADDRESS_UNUSED"},
    {PHYS, "deployment.appliances[0].role", "\"SENSOR\"", "PRIMARY_APPLIANCE_REQUIRED", NULL},
    {PHYS, "deployment.appliances[1].role", "\"PRIMARY\"", "MULTIPLE_PRIMARY_APPLIANCES", NULL},
    {PHYS, "deployment.appliances", "[]", "PRIMARY_APPLIANCE_REQUIRED", "ADDRESS_UNUSED"},
    {PHYS, "deployment.appliances", "MANY51", "TOO_MANY_APPLIANCES", NULL},
    {PHYS, "deployment.addresses[0].country", "\"XX\"", "BAD_COUNTRY", NULL},
    {PHYS, "deployment.addresses[0].country", "\"ca\"", "BAD_COUNTRY", NULL},
    {PHYS, "deployment.addresses[0].country", "\"CAN\"", "BAD_COUNTRY", NULL},
    {PHYS, "deployment.addresses[0].line1", "\"\"", "REQUIRED", NULL},
    {PHYS, "deployment.addresses[0].postal_code", "\" \"", "REQUIRED", NULL},
    {PHYS, "deployment.addresses[1].city", "LONG201", "TOO_LONG", NULL},
    {PHYS, "deployment.addresses[1].ref", "\"head-office\"", "UNKNOWN_ADDRESS_REF DUPLICATE_ADDRESS_REF", NULL},
    {PHYS, "deployment.addresses[1].ref", "\"partner-default\"", "UNKNOWN_ADDRESS_REF BAD_ADDRESS_REF", NULL},
    {PHYS, "deployment.hosting_region", "\"ca-central-1\"", "", "HOSTING_REGION_IGNORED"},
    {PHYS, "users.tier", "9", "", "VIRTUAL_RECOMMENDED"},
    {PHYS, "deployment.addresses", "ADDRESSES51", "TOO_MANY_ADDRESSES", "ADDRESS_UNUSED"},
    {VIRT, "deployment.addresses", "[{\"ref\": \"a\", \"recipient\": \"r\", \"line1\": \"l\", \"city\": \"c\", "
           "\"postal_code\": \"p\", \"country\": \"CA\"}]", "ADDRESSES_NOT_APPLICABLE", NULL},
    {VIRT, "users.tier", "3", "", NULL},
};

static json_t *special_value(const char *v) {
  if (strcmp(v, "LONG201") == 0) {
    char s[202];
    memset(s, 'a', 201);
    s[201] = '\0';
    return json_string(s);
  }
  if (strcmp(v, "ACCENTS200") == 0) {
    char s[401];
    for (int i = 0; i < 200; i++)
      memcpy(s + 2 * i, "\xc3\xa9", 2);
    s[400] = '\0';
    return json_string(s);
  }
  if (strcmp(v, "ADDRESSES51") == 0) {
    json_t *a = json_array();
    for (int i = 0; i < 51; i++) {
      char ref[16];
      snprintf(ref, sizeof(ref), "site-%d", i);
      json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "ref",
                                         i == 0 ? "head-office" : i == 1 ? "warehouse" : ref,
                                         "recipient", "IT", "line1", "1 Main St", "city", "Halifax", "postal_code",
                                         "B3J 1A1", "country", "CA"));
    }
    return a;
  }
  if (strcmp(v, "MANY51") == 0) {
    json_t *a = json_array();
    for (int i = 0; i < 51; i++)
      json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "role", i ? "SENSOR" : "PRIMARY", "sku",
                                         "NS-100", "ship_to", "head-office"));
    return a;
  }
  json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
  assert_non_null(j);
  return j;
}

static void every_rule(void **state) {
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const struct rule_case *c = &cases[i];
    json_t *j = example(c->base);
    if (c->path)
      mutate(j, c->path, c->value ? special_value(c->value) : NULL);
    struct intake_findings f = {0};
    validate_json(j, &f);
    char got[400] = "";
    for (size_t k = 0; k < f.errors.n; k++)
      snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", k ? " " : "", f.errors.v[k].code);
    if (strcmp(got, c->errors) != 0)
      fail_msg("case %zu (%s %s=%s): errors '%s', want '%s'", i, c->base, c->path ? c->path : "-",
               c->value ? c->value : "(deleted)", got, c->errors);
    for (size_t k = 0; k < f.errors.n; k++) {
      assert_true(strlen(f.errors.v[k].message) > 10); /* a sentence for the partner */
      assert_true(strlen(f.errors.v[k].field) > 0);
    }
    if (c->warning) {
      int found = 0;
      for (size_t k = 0; k < f.warnings.n; k++)
        found |= strcmp(f.warnings.v[k].code, c->warning) == 0;
      if (!found)
        fail_msg("case %zu: warning %s missing", i, c->warning);
    }
    intake_findings_clear(&f);
    json_decref(j);
  }
}

/* Text that is not text: each field named by its path, whatever the rest says. */
static void text_is_checked(void **state) {
  static const struct {
    const char *path;
    const char *bytes;
    size_t n;
  } bad[] = {
#define BYTES(s) s, sizeof(s) - 1
      {"customer.legal_name", BYTES("Acme\xff Corp")},        /* a byte that starts nothing */
      {"customer.legal_name", BYTES("Acme\0 Corp")},          /* NUL */
      {"deployment.addresses[1].city", BYTES("\xc0\xae")},   /* overlong '.' */
      {"deployment.addresses[0].line1", BYTES("\xed\xa0\x80")}, /* a surrogate */
      {"submitted_by", BYTES("a\r\nBcc: x@example.com")},    /* control characters */
      {"deployment.appliances[2].sku", BYTES("NS-\xe2\x82")}, /* a cut character */
#undef BYTES
  };
  const struct lmp_schema *sc = lmp_schemas_get(S, "onboarding.requested");
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    json_t *j = example(PHYS);
    mutate(j, bad[i].path, json_string("placeholder"));
    avro_value_t v, field;
    char err[300] = "";
    avro_generic_value_new(sc->iface, &v);
    assert_int_equal(lmp_avro_from_json(&v, j, err, sizeof(err)), 0);
    /* Walk to the field and put the bytes in, as a hostile producer's Avro would. */
    char *p = strdup(bad[i].path), *save = NULL;
    avro_value_t node = v;
    for (char *tok = strtok_r(p, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
      char *br = strchr(tok, '[');
      size_t idx = br ? strtoul(br + 1, NULL, 10) : 0;
      if (br)
        *br = '\0';
      assert_int_equal(avro_value_get_by_name(&node, tok, &field, NULL), 0);
      if (avro_value_get_type(&field) == AVRO_UNION)
        avro_value_get_current_branch(&field, &field);
      if (br)
        assert_int_equal(avro_value_get_by_index(&field, idx, &field, NULL), 0);
      node = field;
    }
    free(p);
    assert_int_equal(avro_value_set_string_len(&node, bad[i].bytes, bad[i].n + 1), 0);
    struct intake_findings f = {0};
    assert_int_equal(intake_check_text(&v, &f), 0);
    if (f.errors.n != 1 || strcmp(f.errors.v[0].code, "INVALID_TEXT") != 0 ||
        strcmp(f.errors.v[0].field, bad[i].path) != 0)
      fail_msg("case %zu: %zu reasons, first %s at %s", i, f.errors.n, f.errors.n ? f.errors.v[0].code : "-",
               f.errors.n ? f.errors.v[0].field : "-");
    intake_findings_clear(&f);
    avro_value_decref(&v);
    json_decref(j);
  }
  /* And valid text of every length of character passes. */
  json_t *j = example(PHYS);
  mutate(j, "customer.legal_name", json_string("\xc3\x89" "cole \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80 A"));
  avro_value_t v;
  char err[300];
  avro_generic_value_new(sc->iface, &v);
  assert_int_equal(lmp_avro_from_json(&v, j, err, sizeof(err)), 0);
  struct intake_findings f = {0};
  assert_int_equal(intake_check_text(&v, &f), 0);
  assert_int_equal(f.errors.n, 0);
  avro_value_decref(&v);
  json_decref(j);
}

/* White space around a value is trimmed before anything is checked (a pasted tab is
 * no control character), inside it is still refused, and NUL bytes stay refused. */
static void text_is_trimmed(void **state) {
  const struct lmp_schema *sc = lmp_schemas_get(S, "onboarding.requested");
  json_t *j = example(PHYS);
  mutate(j, "customer.legal_name", json_string("  Harbour Dental Inc.\t\r\n"));
  mutate(j, "customer.web_site", json_string("\tharbour-dental.example.com "));
  mutate(j, "deployment.addresses[0].line1", json_string("\n1 Water St\v\f"));
  avro_value_t v;
  char err[300];
  avro_generic_value_new(sc->iface, &v);
  assert_int_equal(lmp_avro_from_json(&v, j, err, sizeof(err)), 0);
  assert_int_equal(intake_request_trim(&v), 0);
  struct intake_findings f = {0};
  assert_int_equal(intake_check_text(&v, &f), 0);
  assert_int_equal(f.errors.n, 0);
  struct intake_request r;
  assert_int_equal(intake_request_read(&v, &r), 0);
  assert_string_equal(r.legal_name, "Harbour Dental Inc.");
  assert_string_equal(r.web_site, "harbour-dental.example.com");
  assert_string_equal(r.addresses[0].line1, "1 Water St");
  assert_int_equal(intake_validate(&r, &rules, &f), 0);
  assert_int_equal(f.errors.n, 0);
  intake_request_clear(&r);
  intake_findings_clear(&f);
  avro_value_decref(&v);
  json_decref(j);

  static const char *const inside[] = {"Harbour\tDental", "Harbour Dental\n Inc."};
  for (size_t i = 0; i < 2; i++) {
    j = example(PHYS);
    mutate(j, "customer.legal_name", json_string(inside[i]));
    avro_generic_value_new(sc->iface, &v);
    assert_int_equal(lmp_avro_from_json(&v, j, err, sizeof(err)), 0);
    assert_int_equal(intake_request_trim(&v), 0);
    assert_int_equal(intake_check_text(&v, &f), 0);
    assert_int_equal(f.errors.n, 1);
    assert_string_equal(f.errors.v[0].field, "customer.legal_name");
    intake_findings_clear(&f);
    avro_value_decref(&v);
    json_decref(j);
  }
  /* A NUL before trailing text is not trimmed away: the bytes stay, and are refused. */
  j = example(PHYS);
  avro_generic_value_new(sc->iface, &v);
  assert_int_equal(lmp_avro_from_json(&v, j, err, sizeof(err)), 0);
  avro_value_t cust, name;
  assert_int_equal(avro_value_get_by_name(&v, "customer", &cust, NULL), 0);
  assert_int_equal(avro_value_get_by_name(&cust, "legal_name", &name, NULL), 0);
  assert_int_equal(avro_value_set_string_len(&name, "Acme \0x ", 9), 0);
  assert_int_equal(intake_request_trim(&v), 0);
  assert_int_equal(intake_check_text(&v, &f), 0);
  assert_int_equal(f.errors.n, 1);
  assert_string_equal(f.errors.v[0].code, "INVALID_TEXT");
  intake_findings_clear(&f);
  avro_value_decref(&v);
  json_decref(j);
}

/* The breach answer names how to reach incident response, from the settings. */
static void breach_names_incident_response(void **state) {
  json_t *j = example(VIRT);
  mutate(j, "breach_or_incident", json_true());
  struct intake_findings f = {0};
  validate_json(j, &f);
  assert_int_equal(f.errors.n, 1);
  assert_string_equal(f.errors.v[0].code, "BREACH_OR_INCIDENT");
  assert_non_null(strstr(f.errors.v[0].message, "contact incident response for immediate help: call +1 888 555 0100."));
  intake_findings_clear(&f);
  json_decref(j);
}

static void syntax_helpers(void **state) {
  int n = 0;
  for (char a = 'A'; a <= 'Z'; a++)
    for (char b = 'A'; b <= 'Z'; b++)
      n += lmp_country_ok((char[]){a, b, 0});
  assert_int_equal(n, 249);
  assert_true(intake_uuid_ok("0b7f6c1e-4a57-4c2e-9a54-6f1d7a0c0001"));
  assert_false(intake_uuid_ok("0b7f6c1e-4a57-4c2e-9a54-6f1d7a0c000"));
  assert_false(intake_uuid_ok("0b7f6c1e04a57-4c2e-9a54-6f1d7a0c0001"));
  assert_true(intake_web_site_ok("example.com"));
  assert_true(intake_web_site_ok("HTTPS://Example.COM:8443/x"));
  assert_false(intake_web_site_ok("javascript:alert(1)"));
  assert_false(intake_web_site_ok("http://exa mple.com"));
  assert_false(intake_email_ok(NULL));
  assert_false(intake_email_ok("@example.com"));
  assert_false(intake_email_ok("a@b@example.com"));
  /* The patterns of fields.c, against the cases the hand-written checks took, and
   * every character the local part's class holds, a literal whichever engine reads
   * the pattern; white space around a value is allowed, a line break inside it is not. */
  static const char *const emails_ok[] = {"a@example.com", "o'neil+x@1st.example.co.uk", "A_B-c@x-y.example.org",
                                          "!#$%&'*+/=?^_`{|}~-@example.com", "a{b}|c@example.com"};
  static const char *const emails_bad[] = {".a@example.com", "a.@example.com", "a..b@example.com", "a@example",
                                           "a@example.c0m", "a@-x.example.com", "a@x-.example.com",
                                           "a b@example.com", "\xc3\xa9@example.com", "a@example..com", "",
                                           "a[b]@example.com", "a\\b@example.com", "a@example.com\nb"};
  for (size_t i = 0; i < sizeof(emails_ok) / sizeof(*emails_ok); i++)
    assert_true(intake_email_ok(emails_ok[i]));
  for (size_t i = 0; i < sizeof(emails_bad) / sizeof(*emails_bad); i++)
    assert_false(intake_email_ok(emails_bad[i]));
  assert_true(intake_id_ok(" partner-1\n"));
  assert_false(intake_id_ok("partner-1\nx"));
  /* A value far past any field's length is refused. */
  static char huge[100020];
  memset(huge, 'a', 100000), strcpy(huge + 100000, "@example.com");
  assert_false(intake_email_ok(huge));
  memset(huge, 'a', 100000), strcpy(huge + 100000, ".com");
  assert_false(intake_web_site_ok(huge));
  char local[80], label[80];
  memset(local, 'a', 64), strcpy(local + 64, "@example.com");
  assert_true(intake_email_ok(local));
  memset(local, 'a', 65), strcpy(local + 65, "@example.com");
  assert_false(intake_email_ok(local));
  memset(label, 'b', 63), strcpy(label + 63, ".com");
  assert_true(intake_web_site_ok(label));
  memset(label, 'b', 64), strcpy(label + 64, ".com");
  assert_false(intake_web_site_ok(label));
  assert_true(intake_web_site_ok("https://www.example.com/a/b?c=d#e"));
  assert_true(intake_web_site_ok("example.com:8080"));
  assert_false(intake_web_site_ok("https://"));
  assert_false(intake_web_site_ok("http//example.com"));
  assert_false(intake_web_site_ok("https://example.com/\xc3\xa9"));
  /* The host's 253 characters hold after a scheme too; a port is 0 to 65535. */
  char longhost[400] = "https://";
  for (int i = 0; i < 60; i++)
    strcat(longhost, "abcde.");
  strcat(longhost, "com");
  assert_false(intake_web_site_ok(longhost));
  assert_false(intake_web_site_ok(longhost + strlen("https://")));
  assert_true(intake_web_site_ok("https://example.com:65535/"));
  assert_false(intake_web_site_ok("https://example.com:65536/"));
  assert_false(intake_web_site_ok("example.com:99999"));
  assert_true(intake_id_ok("partner-east.1_a"));
  assert_false(intake_id_ok("partner/east"));
  char *t = intake_trim("  Acme  Corp \n");
  assert_string_equal(t, "Acme  Corp");
  free(t);
}

/* What GET /v1/form publishes is what intake checks: the limits of the rules, the
 * patterns it runs, and each reason's very sentence. */
static void published_rules(void **state) {
  json_t *o = json_object();
  assert_int_equal(intake_fields_json(&rules, o), 0);
  json_t *legal = NULL, *email = NULL, *f;
  size_t i;
  json_array_foreach(json_object_get(o, "fields"), i, f) {
    const char *path = json_string_value(json_object_get(f, "field"));
    if (strcmp(path, "customer.legal_name") == 0)
      legal = f;
    if (strcmp(path, "customer.portal_admin_email") == 0)
      email = f;
  }
  assert_non_null(legal);
  assert_non_null(email);
  assert_int_equal(json_integer_value(json_object_get(legal, "max_length")), rules.legal_name_max);
  assert_int_equal(json_array_size(json_object_get(email, "patterns")), 2);

  json_t *j = example(PHYS);
  mutate(j, "customer.legal_name", json_string(""));
  mutate(j, "customer.portal_admin_email", json_string("it@example"));
  struct intake_findings found = {0};
  validate_json(j, &found);
  assert_int_equal(found.errors.n, 2);
  assert_string_equal(found.errors.v[0].message,
                      json_string_value(json_object_get(json_object_get(legal, "messages"), "required")));
  assert_string_equal(found.errors.v[1].message,
                      json_string_value(json_object_get(json_object_get(email, "messages"), "invalid")));
  intake_findings_clear(&found);
  json_decref(j);

  json_t *core = json_array_get(json_object_get(o, "licenses"), 0);
  assert_string_equal(json_string_value(json_object_get(core, "code")), "MDR_CORE");
  json_t *tier = json_object_get(json_object_get(core, "counts"), "tier");
  assert_int_equal(json_integer_value(json_object_get(tier, "min")), 1);
  assert_null(json_object_get(json_object_get(core, "counts"), "sat"));
  json_decref(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_rule),
      cmocka_unit_test(syntax_helpers),
      cmocka_unit_test(text_is_checked),
      cmocka_unit_test(text_is_trimmed),
      cmocka_unit_test(breach_names_incident_response),
      cmocka_unit_test(published_rules),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
