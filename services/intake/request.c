/* Reading an onboarding.requested value into intake's view of it, its text trimmed
 * first. */
#include "request.h"

#include <stdlib.h>
#include <string.h>

#include "lmp/avro/av.h"
#include "lmp/avro/codec.h"
#include "lmp/base/error.h"

static int read_address(avro_value_t *a, struct intake_address *out) {
  out->ref = lmp_av_str(a, "ref");
  out->recipient = lmp_av_str(a, "recipient");
  out->line1 = lmp_av_str(a, "line1");
  out->line2 = lmp_av_str(a, "line2");
  out->city = lmp_av_str(a, "city");
  out->region = lmp_av_str(a, "region");
  out->postal_code = lmp_av_str(a, "postal_code");
  out->country = lmp_av_str(a, "country");
  out->phone = lmp_av_str(a, "phone");
  return 0;
}

int intake_request_read(avro_value_t *v, struct intake_request *r) {
  memset(r, 0, sizeof(*r));
  r->request_id = lmp_av_str(v, "request_id");
  r->partner_id = lmp_av_str(v, "partner_id");
  r->submitted_by = lmp_av_str(v, "submitted_by");
  r->license = lmp_av_enum(v, "license");
  r->breach = lmp_av_bool(v, "breach_or_incident");
  r->confirmed = lmp_av_bool(v, "confirmed") == 1;
  avro_value_t f, g;
  int64_t ts = 0;
  if (avro_value_get_by_name(v, "submitted_at", &f, NULL) == 0)
    avro_value_get_long(&f, &ts);
  r->submitted_at = ts;
  if (lmp_av_field(v, "customer", &f) == 0) {
    r->legal_name = lmp_av_str(&f, "legal_name");
    r->web_site = lmp_av_str(&f, "web_site");
    r->sub_partner_id = lmp_av_str(&f, "sub_partner_id");
    r->admin_email = lmp_av_str(&f, "portal_admin_email");
  }
  if (lmp_av_field(v, "users", &f) == 0) {
    r->tier_users = lmp_av_int(&f, "tier");
    r->cloud_users = lmp_av_int(&f, "cloud");
    r->sat_users = lmp_av_int(&f, "sat");
  }
  if (lmp_av_field(v, "deployment", &f) == 0) {
    r->has_deployment = 1;
    r->deployment = lmp_av_enum(&f, "kind");
    r->hosting_region = lmp_av_str(&f, "hosting_region");
    size_t n = 0;
    if (avro_value_get_by_name(&f, "appliances", &g, NULL) == 0 && avro_value_get_size(&g, &n) == 0 && n) {
      if ((r->appliances = calloc(n, sizeof(*r->appliances))) == NULL)
        return LMP_ENOMEM;
      for (size_t i = 0; i < n; i++) {
        avro_value_t a;
        avro_value_get_by_index(&g, i, &a, NULL);
        r->appliances[i].role = lmp_av_enum(&a, "role");
        r->appliances[i].sku = lmp_av_str(&a, "sku");
        r->appliances[i].ship_to = lmp_av_str(&a, "ship_to");
      }
      r->nappliances = n;
    }
    n = 0;
    if (avro_value_get_by_name(&f, "addresses", &g, NULL) == 0 && avro_value_get_size(&g, &n) == 0 && n) {
      if ((r->addresses = calloc(n, sizeof(*r->addresses))) == NULL)
        return LMP_ENOMEM;
      for (size_t i = 0; i < n; i++) {
        avro_value_t a;
        avro_value_get_by_index(&g, i, &a, NULL);
        read_address(&a, &r->addresses[i]);
      }
      r->naddresses = n;
    }
  }
  return 0;
}

void intake_request_clear(struct intake_request *r) {
  free(r->appliances);
  free(r->addresses);
  memset(r, 0, sizeof(*r));
}


/* White space a form's paste brings: ASCII only, so a trim never cuts a UTF-8
 * sequence. */
static int blank(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

int intake_request_trim(avro_value_t *v) {
  size_t n = 0;
  avro_value_t child;
  switch (avro_value_get_type(v)) {
  case AVRO_STRING: {
    const char *s = NULL;
    if (avro_value_get_string(v, &s, &n) != 0 || s == NULL || n == 0)
      return 0;
    /* The whole string, NULs inside included: a trim never makes hostile bytes pass. */
    size_t len = n - 1, from = 0, to = len;
    while (from < to && blank((unsigned char)s[from]))
      from++;
    while (to > from && blank((unsigned char)s[to - 1]))
      to--;
    if (from == 0 && to == len)
      return 0;
    char *cut = malloc(to - from + 1);
    if (cut) {
      memcpy(cut, s + from, to - from);
      cut[to - from] = '\0';
    }
    int r = cut && avro_value_set_string_len(v, cut, to - from + 1) == 0 ? 0 : LMP_ENOMEM;
    free(cut);
    return r;
  }
  case AVRO_RECORD:
  case AVRO_ARRAY:
    if (avro_value_get_size(v, &n) != 0)
      return 0;
    for (size_t i = 0; i < n; i++) {
      int r = avro_value_get_by_index(v, i, &child, NULL) == 0 ? intake_request_trim(&child) : 0;
      if (r < 0)
        return r;
    }
    return 0;
  case AVRO_UNION:
    return avro_value_get_current_branch(v, &child) == 0 ? intake_request_trim(&child) : 0;
  default:
    return 0;
  }
}
