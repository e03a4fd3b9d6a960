/* The onboarding request as intake reads it, and the rules it is checked against. */
#ifndef INTAKE_REQUEST_H
#define INTAKE_REQUEST_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>

#include "lmp/runtime/events.h"

enum intake_license { LICENSE_CORE, LICENSE_COMPLETE, LICENSE_CLOUD };
enum intake_deployment { DEPLOY_VIRTUAL, DEPLOY_NETWORK_SENSORS };
enum intake_role { ROLE_PRIMARY, ROLE_SENSOR };

#define INTAKE_PARTNER_DEFAULT "partner-default"

struct intake_address {
  const char *ref, *recipient, *line1, *line2, *city, *region, *postal_code, *country, *phone;
};

struct intake_appliance {
  int role;             /* enum intake_role */
  const char *sku;
  const char *ship_to;  /* NULL when the form gave none */
};

/* Strings point into the decoded Avro value, which must outlive this struct. */
struct intake_request {
  const char *request_id, *partner_id, *submitted_by;
  int license;                   /* enum intake_license */
  int breach;                    /* 1 yes, 0 no, -1 unanswered */
  const char *legal_name, *web_site, *sub_partner_id, *admin_email;
  int32_t tier_users, cloud_users, sat_users;
  int has_deployment;
  int deployment;                /* enum intake_deployment */
  const char *hosting_region;
  struct intake_appliance *appliances;
  size_t nappliances;
  struct intake_address *addresses;
  size_t naddresses;
  int confirmed;
  int64_t submitted_at;
};

/* Trims every string of a request of the white space around it (spaces, tabs, line
 * breaks), in place: what a paste brings is not refused as control characters, and
 * what is stored and passed on is the text the partner meant. Call it before
 * intake_request_read, whose strings point into the value. 0 or LMP_ENOMEM. */
int intake_request_trim(avro_value_t *v);
/* Reads a decoded onboarding.requested value. Free with intake_request_clear. */
int intake_request_read(avro_value_t *v, struct intake_request *out);
void intake_request_clear(struct intake_request *r);

/* What intake knows alone; everything else is owned by later stages. */
struct intake_rules {
  char **regions;        /* hosting regions for virtual deployments */
  char **skus;           /* appliance SKUs */
  int legal_name_max;    /* characters */
  int max_users;         /* per count */
  int max_appliances;
  char *incident_response; /* whom a customer under attack contacts; NULL or empty: not said */
};

/* What validation found: reasons to reject, and advice that does not block. */
struct intake_findings {
  struct lmp_reasons errors;
  struct lmp_reasons warnings;
};

/* Checks every rule intake can check alone; fills errors (reasons to reject) and
 * warnings (advice). Returns 0, or LMP_ENOMEM. */
int intake_validate(const struct intake_request *r, const struct intake_rules *rules,
                    struct intake_findings *out);
void intake_findings_clear(struct intake_findings *f);
/* Every string of a decoded request must be UTF-8 text without NUL or control
 * characters; each one that is not is a reason (INVALID_TEXT at its field). Run
 * before intake_validate: a request with such text is refused on that alone. */
int intake_check_text(avro_value_t *request, struct intake_findings *out);

/* Syntax checks (fields.c keeps the patterns of the first three). */
int intake_email_ok(const char *s);
int intake_web_site_ok(const char *s);
int intake_uuid_ok(const char *s);
/* An id of 1 to 64 letters, digits, '.', '_' or '-' (a partner's, an address ref).
 * Like every pattern of fields.c it allows white space around the value: intake
 * checks values trimmed (intake_request_trim), and the page and the document alike. */
int intake_id_ok(const char *s);
/* The legal name without surrounding white space, malloc'd. */
char *intake_trim(const char *s);

#endif
