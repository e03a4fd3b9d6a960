/* The rules of the form's fields, in one table: intake checks a request against it
 * (validate.c), and GET /v1/form publishes it (intake_fields_json) so that the page
 * checks each field with the same rules, before the review step, in the same words. */
#ifndef INTAKE_FIELDS_H
#define INTAKE_FIELDS_H

#include <jansson.h>

#include "request.h"

/* What can be wrong with a field's value. */
enum intake_fault { FAULT_REQUIRED, FAULT_TOO_LONG, FAULT_INVALID, INTAKE_FAULTS };

/* The fields with rules, by their path in the request. */
enum intake_field_id {
  F_BREACH,
  F_LEGAL_NAME,
  F_WEB_SITE,
  F_SUB_PARTNER,
  F_ADMIN_EMAIL,
  F_DEPLOYMENT,
  F_HOSTING_REGION,
  F_SKU,
  F_SHIP_TO,
  F_RECIPIENT,
  F_LINE1,
  F_LINE2,
  F_CITY,
  F_REGION,
  F_POSTAL_CODE,
  F_COUNTRY,
  F_PHONE,
  INTAKE_FIELDS
};

/* Adds to out the reason a field has fault, at path (the field's own path with each
 * "[]" numbered), in the code and sentence the table gives it. 0 or LMP_ENOMEM. */
int intake_field_fault(struct intake_findings *out, const struct intake_rules *rules, enum intake_field_id id,
                       const char *path, enum intake_fault fault);
/* Checks one value (NULL or empty: not given) against its field's presence, length,
 * printable text and format rules, adding at most one reason at path. 0 or LMP_ENOMEM. */
int intake_field_check(struct intake_findings *out, const struct intake_rules *rules, enum intake_field_id id,
                       const char *path, const char *value);

/* The counts of users a license takes, the least of each, and whether it has a
 * deployment: the license rules validate.c checks and GET /v1/form publishes. */
struct intake_license_rule {
  const char *code, *name;
  int min[3];     /* tier, cloud, sat; -1: the license takes none of that count */
  int deployment; /* a deployment (virtual or sensors) is required */
};
extern const struct intake_license_rule intake_licenses[3];
/* The sentence of a count below its least ("At least one MDR Core user is required.")
 * or over rules->max_users, for license and count (0 tier, 1 cloud, 2 sat). */
void intake_count_message(const struct intake_rules *rules, int license, int count, int over, char *buf,
                          size_t n);

/* The table and the license rules as GET /v1/form publishes them: {"fields": [...],
 * "licenses": [...]} members set on o. 0, or LMP_ENOMEM. */
int intake_fields_json(const struct intake_rules *rules, json_t *o);

#endif
