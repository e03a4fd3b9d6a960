/* The partner's lists: GET /v1/onboardings (its onboardings, newest first, by status)
 * and GET /v1/customers (its customer accounts with their license, users per product
 * and status). Each pages by a cursor, the last row's (created_at, id): a page costs
 * its rows, and rows added meanwhile never shift the next page. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake.h"
#include "lmp/base/log.h"
#include "lmp/io/admin.h"

#define LIMIT_DEFAULT 20
#define LIMIT_MAX 100
#define UTC(col) "to_char(" #col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
/* A row's cursor: its created_at in microseconds since the epoch, '_', its id. */
#define CURSOR(ts, id) "(extract(epoch FROM " #ts ") * 1000000)::bigint || '_' || " #id

struct query {
  char status[32];
  char cursor_us[24], cursor_id[40]; /* empty: from the newest */
  char limit[8];
};

/* The value of name in a query string ("a=1&b=2"), copied; 0 when absent, 1 when
 * present, -1 when too long. */
static int arg(const char *query, const char *name, char *out, size_t outlen) {
  size_t n = strlen(name);
  for (const char *q = query; q && *q;) {
    const char *end = strchr(q, '&');
    size_t len = end ? (size_t)(end - q) : strlen(q);
    if (len > n && strncmp(q, name, n) == 0 && q[n] == '=') {
      if (len - n - 1 >= outlen)
        return -1;
      snprintf(out, outlen, "%.*s", (int)(len - n - 1), q + n + 1);
      return 1;
    }
    q = end ? end + 1 : NULL;
  }
  return 0;
}

/* The query's status (one of statuses), limit and cursor; NULL, or why it is not one. */
static const char *read_query(const char *query, const char *const *statuses, struct query *q) {
  char limit[16] = "", cursor[80] = "";
  memset(q, 0, sizeof(*q));
  int given = arg(query, "status", q->status, sizeof(q->status));
  if (given < 0 || (given && *q->status == '\0'))
    return "status is not one of the statuses";
  if (*q->status) {
    const char *const *s = statuses;
    while (*s && strcmp(*s, q->status) != 0)
      s++;
    if (*s == NULL)
      return "status is not one of the statuses";
  }
  given = arg(query, "limit", limit, sizeof(limit));
  if (given < 0 || (given && *limit == '\0'))
    return "limit must be a number from 1 to 100";
  if (*limit) {
    char *end;
    long n = strtol(limit, &end, 10);
    if (end == limit || *end || n < 1 || n > LIMIT_MAX)
      return "limit must be a number from 1 to 100";
  }
  snprintf(q->limit, sizeof(q->limit), "%s", *limit ? limit : "20");
  if (arg(query, "cursor", cursor, sizeof(cursor)) < 0)
    return "cursor is not one this list gave";
  if (*cursor) {
    char *us = cursor, *id = strchr(cursor, '_');
    size_t digits = id ? (size_t)(id - us) : 0;
    if (id == NULL || digits == 0 || digits > 18 || strspn(us, "0123456789") != digits || !intake_uuid_ok(id + 1))
      return "cursor is not one this list gave";
    *id = '\0';
    snprintf(q->cursor_us, sizeof(q->cursor_us), "%s", us);
    snprintf(q->cursor_id, sizeof(q->cursor_id), "%s", id + 1);
  }
  return NULL;
}

/* Runs sql ($1 partner, $2 status or NULL, $3 cursor microseconds or NULL, $4 cursor
 * id or NULL, $5 limit + 1), each row (json, cursor); answers {key: [...],
 * "next_cursor": ...}. */
static int page(struct lmp_http_call *call, const char *sql, const char *key, const char *const *statuses) {
  const char *partner = call->caller->partner_id;
  if (*partner == '\0')
    return lmp_admin_error(call, 403, "this account acts for no partner");
  struct query q;
  const char *why = read_query(call->query, statuses, &q);
  if (why)
    return lmp_admin_error(call, 400, why);
  char more[16];
  snprintf(more, sizeof(more), "%d", atoi(q.limit) + 1);
  const char *p[] = {partner, *q.status ? q.status : NULL, *q.cursor_us ? q.cursor_us : NULL,
                     *q.cursor_id ? q.cursor_id : NULL, more};
  PGresult *res = PQexecParams(call->db, sql, 5, NULL, p, NULL, NULL, 0);
  if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
    lmp_warn(NULL, "%s list query failed: %s", key, res ? PQresultErrorMessage(res) : PQerrorMessage(call->db));
    PQclear(res);
    return lmp_admin_error(call, 503, "database error; try again");
  }
  int n = PQntuples(res), limit = atoi(q.limit), shown = n > limit ? limit : n;
  struct lmp_buf *out = call->out;
  int r = lmp_buf_printf(out, "{\"%s\":[", key);
  for (int i = 0; r == 0 && i < shown; i++)
    r = lmp_buf_printf(out, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
  if (r == 0 && n > limit)
    r = lmp_buf_printf(out, "],\"next_cursor\":\"%s\"}", PQgetvalue(res, limit - 1, 1));
  else if (r == 0)
    r = lmp_buf_puts(out, "],\"next_cursor\":null}");
  PQclear(res);
  call->status = 200;
  return r;
}

static const char *const onboarding_statuses[] = {"accepted", "rejected", "users_allocated", "appliances_provisioned",
                                                  "shipping_arranged", "confirmed", "failed", NULL};

static const char onboardings_sql[] =
    "SELECT json_build_object('onboarding_id', o.onboarding_id, 'status', o.status, 'license', o.license, "
    "'account_name', o.account_name, 'customer_id', o.customer_id, 'created_at', " UTC(o.created_at) ", "
    "'updated_at', " UTC(o.updated_at) ", 'status_url', '/v1/onboardings/' || o.onboarding_id, "
    "'page_url', '/onboardings/' || o.onboarding_id)::text, " CURSOR(o.created_at, o.onboarding_id) " "
    "FROM onboardings o WHERE o.partner_id = $1 AND ($2::text IS NULL OR o.status = $2) "
    "AND ($3::bigint IS NULL OR (o.created_at, o.onboarding_id) < "
    "  ('epoch'::timestamptz + $3::bigint * interval '1 microsecond', $4::text)) "
    "ORDER BY o.created_at DESC, o.onboarding_id DESC LIMIT $5::int";

int intake_onboardings_route(void *ctx, struct lmp_http_call *call) {
  return page(call, onboardings_sql, "onboardings", onboarding_statuses);
}

static const char *const account_statuses[] = {"reserved", "active", "released", NULL};

/* Released accounts (their onboarding failed) only when asked for by status. */
static const char customers_sql[] =
    "SELECT json_build_object('customer_id', a.customer_id, 'account_name', a.account_name, 'license', a.license, "
    "'status', a.status, 'onboarding_id', a.onboarding_id, 'created_at', " UTC(a.created_at) ", "
    "'users', " INTAKE_CUSTOMER_TOTALS(a) ", "
    "'page_url', '/onboardings/' || a.onboarding_id)::text, " CURSOR(a.created_at, a.customer_id) " "
    "FROM customer_accounts a WHERE a.partner_id = $1 "
    "AND (a.status = $2 OR ($2::text IS NULL AND a.status <> 'released')) "
    "AND ($3::bigint IS NULL OR (a.created_at, a.customer_id) < "
    "  ('epoch'::timestamptz + $3::bigint * interval '1 microsecond', $4::uuid)) "
    "ORDER BY a.created_at DESC, a.customer_id DESC LIMIT $5::int";

int intake_customers_route(void *ctx, struct lmp_http_call *call) {
  return page(call, customers_sql, "customers", account_statuses);
}
