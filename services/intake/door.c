/* The front door for web frontends, on intake's public listener: the onboarding form's
 * page, its options, and POST /v1/onboardings, which acts for the signed-in partner
 * only (the partner and the submitter come from the verified access token, never from
 * the body), checks a request by the same rules intake applies, answers at once (422
 * with every reason, 409 for a request id the partner already used for other
 * content), and otherwise publishes it to onboarding.requested as any frontend does
 * and answers 202 once the broker has it. A repeat of a request answers the same
 * without publishing it again. */
#include "intake.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fields.h"
#include "limit.h"
#include "lmp/base/error.h"
#include "lmp/base/log.h"
#include "lmp/base/text.h"
#include "lmp/io/admin.h"

/* [{key: code, "name": its name}] for each code, named by the "code=name" entries of
 * names (the code itself when none names it). */
static json_t *named(char **codes, char **names, const char *key) {
  json_t *out = json_array();
  for (char **c = codes; out && c && *c; c++) {
    const char *name = *c;
    size_t n = strlen(*c);
    for (char **e = names; e && *e; e++)
      if (strncmp(*e, *c, n) == 0 && (*e)[n] == '=')
        name = *e + n + 1;
    json_array_append_new(out, json_pack("{s:s,s:s}", key, *c, "name", name));
  }
  return out;
}

/* What the form's page needs beside itself: the choices intake accepts. */
static int options(void *ctx, struct lmp_http_call *call) {
  const struct intake *in = ctx;
  json_t *regions = json_array(), *skus = json_array();
  for (char **r = in->rules.regions; r && *r; r++)
    json_array_append_new(regions, json_string(*r));
  for (char **s = in->rules.skus; s && *s; s++)
    json_array_append_new(skus, json_string(*s));
  /* How the page signs its partner in: the issuer and its public client. */
  const char *issuer = lmp_http_issuer(call);
  json_t *signin = issuer ? json_pack("{s:s,s:s}", "issuer", issuer, "client_id", in->portal_client_id) : json_null();
  json_t *o = json_pack("{s:o,s:o,s:i,s:i,s:i,s:o}", "hosting_regions", regions, "appliance_skus", skus,
                        "virtual_recommended_below", 10, "max_users", in->rules.max_users, "max_appliances",
                        in->rules.max_appliances, "signin", signin);
  /* The licenses and the fields' rules: what the page checks before the review step. */
  if (o && intake_fields_json(&in->rules, o) < 0) {
    json_decref(o);
    o = NULL;
  }
  if (o) {
    json_object_set_new(o, "regions", named(in->rules.regions, in->region_names, "code"));
    json_object_set_new(o, "appliance_models", named(in->rules.skus, in->appliance_names, "sku"));
    json_t *countries = json_array();
    const char *c = lmp_country_codes();
    for (size_t i = 0; countries && c[i]; i += c[i + 2] ? 3 : 2)
      json_array_append_new(countries, json_stringn(c + i, 2));
    json_object_set_new(o, "countries", countries);
  }
  if (o)
    json_object_set_new(o, "incident_response", json_string(in->rules.incident_response ? in->rules.incident_response
                                                                                         : ""));
  return lmp_admin_answer(call, 200, o);
}

int intake_door_refused(struct lmp_http_call *call, const struct intake_findings *f) {
  return lmp_admin_answer(call, 422, json_pack("{s:s,s:o,s:o}", "status", "rejected", "reasons",
                                               lmp_reasons_to_json(f->errors.v, f->errors.n), "warnings",
                                               lmp_reasons_to_json(f->warnings.v, f->warnings.n)));
}

/* 202: taken, and where to follow it (location, also the answer's status_url). The
 * answer's reference is taken. */
int intake_door_accepted(struct lmp_http_call *call, const char *location, json_t *answer) {
  snprintf(call->location, sizeof(call->location), "%s", location);
  if (answer)
    json_object_set_new(answer, "status_url", json_string(location));
  return lmp_admin_answer(call, 202, answer);
}

static int taken(struct lmp_http_call *call, const char *id, json_t *warnings) {
  char location[80];
  snprintf(location, sizeof(location), "/v1/onboardings/%s", id);
  return intake_door_accepted(call, location, json_pack("{s:s,s:s,s:o}", "onboarding_id", id, "status", "submitted",
                                               "warnings", warnings));
}

/* Whether intake has this onboarding already: 0 no, 1 with this very content, 2 with
 * other content; -1 when the database did not answer. */
static int known(PGconn *db, const char *id, const char *json) {
  const char *p[] = {id, json};
  PGresult *res = PQexecParams(db, "SELECT request = $2::jsonb FROM onboardings WHERE onboarding_id = $1", 2, NULL,
                               p, NULL, NULL, 0);
  int r = -1;
  if (res && PQresultStatus(res) == PGRES_TUPLES_OK)
    r = PQntuples(res) == 0 ? 0 : strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? 1 : 2;
  else
    lmp_warn(NULL, "front door: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(db));
  PQclear(res);
  return r;
}

/* Answers the call with an error; 1, for the callers below that say "answered". */
static int answered(struct lmp_http_call *call, int code, const char *msg) {
  lmp_admin_error(call, code, msg);
  return 1;
}

/* The body speaks for the signed-in partner only: a partner it names must be the
 * token's; the partner and the submitter are the token's whatever the body says. 0,
 * or 1 when the call was answered (403). */
static int intake_door_speak_for_caller(struct lmp_http_call *call, json_t *j) {
  const struct lmp_caller *who = call->caller; /* acts for a partner (within_limits) */
  if (who->email[0] == '\0' || !who->email_verified)
    return answered(call, 403, "the signed-in account has no verified email address to confirm the onboarding to");
  if (!json_is_object(j))
    return 0; /* refused as not a request below */
  json_t *p = json_object_get(j, "partner_id"), *by = json_object_get(j, "submitted_by");
  if ((p && !json_is_string(p) && !json_is_null(p)) || (by && !json_is_string(by) && !json_is_null(by)))
    return answered(call, 400, "partner_id and submitted_by are text or null when given (the token's are used)");
  if (p && !json_is_null(p) && strcmp(json_string_value(p), who->partner_id) != 0) {
    lmp_warn(NULL, "front door: %s of %s named another partner", who->name, who->partner_id);
    return answered(call, 403, "the request names another partner than the one you are signed in for");
  }
  /* The partner's mails go to whoever signed in (a verified address), never to one
   * the body names; the invitation goes to the administrator the partner names. */
  json_object_set_new(j, "partner_id", json_string(who->partner_id));
  json_object_set_new(j, "submitted_by", json_string(who->email));
  return 0;
}

/* Per partner, then per client address, for callers that act for a partner; 0, or 1
 * when the call was answered (403, 429). */
static int intake_door_within_limits(const struct intake *in, struct lmp_http_call *call) {
  if (call->caller->partner_id[0] == '\0')
    return answered(call, 403, "the signed-in account acts for no partner");
  int wait = intake_limit_take("partner", call->caller->partner_id, in->partner_per_min);
  if (wait == 0)
    wait = intake_limit_take("address", call->peer, in->address_per_min);
  if (wait == 0)
    return 0;
  lmp_warn(NULL, "front door: %s of %s from %s: too many submissions", call->caller->name,
           call->caller->partner_id, call->peer);
  call->retry_after_s = wait;
  return answered(call, 429, "too many submissions; try again later");
}

/* How long a submission waits for the broker's answer at most: the door's producer
 * gives every event one within its message.timeout.ms (8 s). */
#define PUBLISH_WAIT_MS 10000

/* A submission whose event is on its way to the broker, between the route's runs: its
 * 202 answer and where to follow it, given once the broker has the event. */
struct submission {
  struct lmp_http_pending *pending;
  char id[37];
  char location[160];
  json_t *answer;
};

static void submission_free(void *state) {
  struct submission *s = state;
  lmp_http_pending_free(s->pending);
  json_decref(s->answer);
  free(s);
}

/* The route runs again when the broker answered (or the wait ran out, or the daemon
 * stops): taken once the event is on the broker, else 503 or 413. */
static int answer_submission(struct lmp_http_call *call, struct submission *s) {
  int result;
  char err[512];
  if (!lmp_http_published(s->pending, &result, err, sizeof(err))) {
    if (!call->last && call->waited_ms < PUBLISH_WAIT_MS) {
      call->again_ms = (int)(PUBLISH_WAIT_MS - call->waited_ms);
      return 0;
    }
    snprintf(err, sizeof(err), "no answer from the broker in %d ms", PUBLISH_WAIT_MS);
    result = LMP_ERETRY;
  }
  if (result == LMP_ETOOBIG)
    return lmp_admin_error(call, 413, "the request is too large to be carried through onboarding");
  if (result < 0) {
    lmp_warn(s->id, "front door: not published: %s", err);
    return lmp_admin_error(call, 503, "the request could not be passed on now; try again");
  }
  lmp_info(s->id, "submitted through the front door by %s of %s", call->caller->name, call->caller->partner_id);
  json_t *answer = json_deep_copy(s->answer);
  if (answer) /* where the onboarding's trace is found */
    json_object_set_new(answer, "trace_id", json_string(lmp_http_pending_trace(s->pending)));
  return intake_door_accepted(call, s->location, answer);
}

int intake_door_publish(struct lmp_http_call *call, const char *event_type, const char *id, avro_value_t *v,
                        const char *location, json_t *answer) {
  char err[512];
  struct submission *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    json_decref(answer);
    return LMP_ENOMEM;
  }
  snprintf(s->id, sizeof(s->id), "%s", id);
  snprintf(s->location, sizeof(s->location), "%s", location);
  s->answer = answer;
  int r = lmp_http_publish(call, event_type, id, v, &s->pending, err, sizeof(err));
  if (r == LMP_ETOOBIG) {
    r = lmp_admin_error(call, 413, "the request is too large to be carried through onboarding");
  } else if (r < 0) {
    lmp_warn(id, "front door: not published: %s", err);
    r = lmp_admin_error(call, 503, "the request could not be passed on now; try again");
  } else { /* answered when the broker has answered */
    call->state = s;
    call->state_free = submission_free;
    call->again_ms = PUBLISH_WAIT_MS;
    return 0;
  }
  submission_free(s);
  return r;
}

int intake_door_answer(struct lmp_http_call *call) { return answer_submission(call, call->state); }

int intake_door_value(struct lmp_http_call *call, json_t *j, const char *event_type, const char *what,
                      avro_value_t *v) {
  char err[512], msg[600];
  int r = lmp_http_value(call, event_type, v);
  if (r < 0) {
    lmp_admin_error(call, 503, "the request schema is not loaded");
    return 1;
  }
  if (lmp_avro_from_json(v, j, err, sizeof(err)) == 0)
    return 0;
  avro_value_decref(v);
  snprintf(msg, sizeof(msg), "not %s: %s", what, err);
  r = lmp_admin_error(call, 400, msg);
  return r < 0 ? r : 1;
}

json_t *intake_door_body(const struct intake *in, struct lmp_http_call *call) {
  /* No wait is allowed for it (the daemon stops, or as many requests as may wait
   * already do): published now, it could be answered nothing of its fate. */
  if (call->last) {
    lmp_admin_error(call, 503, "the front door is busy; try again");
    return NULL;
  }
  if (intake_door_within_limits(in, call))
    return NULL;
  const char *ctype = lmp_http_header(call, "content-type");
  /* Media types are case-insensitive (RFC 9110); parameters such as charset may follow. */
  if (ctype == NULL || strncasecmp(ctype, "application/json", 16) != 0 ||
      (ctype[16] != '\0' && ctype[16] != ';' && ctype[16] != ' ')) {
    lmp_admin_error(call, 415, "the body must be JSON (Content-Type: application/json)");
    return NULL;
  }
  json_t *j = lmp_admin_body(call);
  if (j && intake_door_speak_for_caller(call, j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

static int submit(void *ctx, struct lmp_http_call *call) {
  const struct intake *in = ctx;
  if (call->state)
    return answer_submission(call, call->state);
  json_t *j = intake_door_body(in, call);
  if (j == NULL)
    return 0;
  avro_value_t v;
  int r = intake_door_value(call, j, "onboarding.requested", "an onboarding request", &v);
  if (r != 0) {
    json_decref(j);
    return r < 0 ? r : 0;
  }
  struct intake_request req = {0};
  struct intake_findings f = {0};
  char *json = NULL;
  /* The same checks as intake's, in the same order: text first, then the rules. */
  if ((r = intake_request_trim(&v)) < 0 || (r = intake_request_read(&v, &req)) < 0 ||
      (r = intake_check_text(&v, &f)) < 0 ||
      (f.errors.n == 0 && (r = intake_validate(&req, &in->rules, &f)) < 0))
    goto out;
  if (f.errors.n) {
    r = intake_door_refused(call, &f);
    goto out;
  }
  json_t *stored = lmp_avro_to_json(&v); /* as intake will store it */
  json = stored ? json_dumps(stored, JSON_COMPACT) : NULL;
  json_decref(stored);
  if (json == NULL) {
    r = LMP_ENOMEM;
    goto out;
  }
  char id[37];
  lmp_onboarding_id(req.partner_id, req.request_id, id);
  switch (known(call->db, id, json)) {
  case -1:
    r = lmp_admin_error(call, 503, "database error; try again");
    goto out;
  case 1: /* a repeat: answered the same, not sent again */
    r = taken(call, id, lmp_reasons_to_json(f.warnings.v, f.warnings.n));
    goto out;
  case 2:
    r = lmp_admin_error(call, 409, "you already used this request id for a different onboarding request; "
                                   "submit a new request with a new id");
    goto out;
  }
  char location[80];
  snprintf(location, sizeof(location), "/v1/onboardings/%s", id);
  r = intake_door_publish(call, "onboarding.requested", id, &v, location,
                          json_pack("{s:s,s:s,s:o}", "onboarding_id", id, "status", "submitted", "warnings",
                                    lmp_reasons_to_json(f.warnings.v, f.warnings.n)));
out:
  free(json);
  intake_findings_clear(&f);
  intake_request_clear(&req);
  avro_value_decref(&v);
  json_decref(j);
  return r;
}

/* The page's files, compiled in from web/. */
static const struct {
  const char *suffix, *type;
} types[] = {{".html", "text/html; charset=utf-8"},
             {".css", "text/css; charset=utf-8"},
             {".js", "text/javascript; charset=utf-8"},
             {".svg", "image/svg+xml"}};

static int serve(struct lmp_http_call *call, const char *name) {
  for (const struct lmp_embedded *e = intake_web; e->name; e++) {
    if (strcmp(e->name, name) != 0)
      continue;
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
      size_t k = strlen(types[i].suffix);
      if (n > k && strcmp(name + n - k, types[i].suffix) == 0)
        call->type = types[i].type;
    }
    if (call->type == NULL)
      break;
    call->status = 200;
    return lmp_buf_puts(call->out, e->text);
  }
  return lmp_admin_error(call, 404, "not found");
}

static int page(void *ctx, struct lmp_http_call *call) { return serve(call, "index.html"); }

/* The page on one onboarding or customer: its address names one by its id (a UUID);
 * any other is no page. */
static int page_of_one(void *ctx, struct lmp_http_call *call) {
  const char *id = strrchr(call->path, '/') + 1;
  if (!intake_uuid_ok(id))
    return lmp_admin_error(call, 404, "no such page: the address names no onboarding or customer id");
  return serve(call, "index.html");
}

static int asset(void *ctx, struct lmp_http_call *call) { return serve(call, call->path + strlen("/form/")); }

const struct lmp_http_route intake_http[] = {
    {"GET", "/", page, 0, 0, 0},
    /* The page's own addresses: a reload, a bookmark or a new tab opens the same page
     * on the same view. */
    {"GET", "/onboardings", page, 0, 0, 0},
    {"GET", "/onboardings/{}", page_of_one, 0, 0, 0},
    {"GET", "/customers", page, 0, 0, 0},
    {"GET", "/customers/{}", page_of_one, 0, 0, 0},
    {"GET", "/form/{}", asset, 0, 0, 0},
    {"GET", "/v1/form", options, 0, 0, 0},
    {"POST", "/v1/onboardings", submit, 256 * 1024, 0, 1},
    {"GET", "/v1/onboardings/{}", intake_status_route, 0, 0, 1},
    {"GET", "/v1/partner", intake_partner_route, 0, 0, 1},
    {"GET", "/v1/onboardings", intake_onboardings_route, 0, 0, 1},
    {"GET", "/v1/customers", intake_customers_route, 0, 0, 1},
    {"GET", "/v1/customers/{}", intake_customer_route, 0, 0, 1},
    {"POST", "/v1/customers/{}/users", intake_add_users_route, 16 * 1024, 0, 1},
    {"GET", "/v1/onboardings/{}", intake_status_admin_route, 0, 1, 0},
    {NULL, NULL, NULL, 0, 0, 0},
};
