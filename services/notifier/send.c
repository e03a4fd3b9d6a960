/* The notifier's senders send the mails that are due, a few per transaction; its tick
 * announces each onboarding mail's fate once it is settled (onboarding.mail-settled). */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmp/base/error.h"
#include "lmp/base/ids.h"
#include "lmp/base/log.h"
#include "lmp/io/trace.h"
#include "lmp/runtime/events.h"
#include "notifier.h"

/* The partner learns that the administrator's invitation could not be delivered. */
static int owe_undeliverable(struct lmp_tx *tx, const char *id, const char *kind, const char *error) {
  struct notifier *n = lmp_tx_ctx(tx);
  const char *p[] = {id};
  PGresult *res;
  int r = lmp_tx_query(tx, "SELECT c.partner_email, c.account_name FROM confirmations c WHERE c.onboarding_id = $1",
                       1, p, &res);
  if (r < 0 || PQntuples(res) == 0 || !notifier_address_ok(PQgetvalue(res, 0, 0))) {
    PQclear(res);
    return r; /* nobody to tell: it stays recorded and counted */
  }
  json_t *vars = json_pack("{s:s, s:s, s:s, s:s}", "onboarding_id", id, "account_name", PQgetvalue(res, 0, 1),
                           "kind", kind, "error", error);
  char *subject = NULL, *body = NULL;
  r = vars ? notifier_render(n, "undeliverable", vars, &subject, &body) : LMP_ENOMEM;
  char what[80];
  snprintf(what, sizeof(what), "undeliverable:%s", kind);
  const char *q[] = {id, what, PQgetvalue(res, 0, 0), subject, body, lmp_tx_traceparent(tx)};
  if (r == 0)
    r = lmp_tx_command(tx, "INSERT INTO mails(onboarding_id, kind, recipient, subject, body, traceparent) "
                           "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING", 6, q);
  free(subject);
  free(body);
  json_decref(vars);
  PQclear(res);
  return r;
}

/* Why a mail failed in words a partner may read (onboarding.mail-settled and the status
 * answer): what happened, never the server's text, which can quote the address, name
 * internal hosts, or speak of the notifier's own credentials (last_error keeps it, for
 * operators). s is notifier_send's answer, err its text. */
static void public_reason(int s, const char *err, long attempts, char *out, size_t len) {
  const char *smtp = strstr(err, "(SMTP ");
  long code = smtp ? strtol(smtp + 6, NULL, 10) : 0;
  if (s != LMP_EREJECT)
    snprintf(out, len, "no mail server took it in %ld attempts", attempts);
  else if (strstr(err, "not a usable address"))
    snprintf(out, len, "the address is not one a mail can be sent to");
  else if (code >= 500 && code < 600)
    snprintf(out, len, "the mail server refused it (SMTP %ld)", code);
  else
    snprintf(out, len, "the mail could not be written");
}

/* A mail that will never go: recorded as failed with why (and why in public words)
 * and, for the invitation, the partner told. */
static int give_up(struct lmp_tx *tx, const char *id, const char *kind, const char *why, const char *public_why) {
  const char *q[] = {id, kind, why, public_why};
  int r = lmp_tx_command(tx, "UPDATE mails SET status = 'failed', attempts = attempts + 1, last_error = $3, "
                             "fail_reason = $4, settled_at = clock_timestamp() WHERE onboarding_id = $1 AND kind = $2",
                         4, q);
  if (r == 0 && strcmp(kind, "invitation") == 0)
    r = owe_undeliverable(tx, id, kind, why);
  return r;
}

/* Each sender keeps its libcurl handle, and so its SMTP connection, for its life. */
static pthread_key_t curl_key;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void handle_free(void *handle) { curl_easy_cleanup(handle); }
static void curl_key_make(void) { pthread_key_create(&curl_key, handle_free); }

/* The span of one SMTP send, under the span that owed the mail; none for a mail owed
 * with no trace. */
static void send_span_begin(struct lmp_span *s, const struct notifier *n, const char *id,
                            const char *kind, long attempt, const char *parent) {
  char own[64] = "";
  if (parent)
    lmp_traceparent(parent, own);
  lmp_span_begin(s, "smtp send", LMP_SPAN_CLIENT, own, parent);
  lmp_span_str(s, "lmp.mail.kind", kind);
  lmp_span_int(s, "lmp.mail.attempt", attempt);
  lmp_span_str(s, "server.address", n->smtp_url);
  lmp_span_str(s, "lmp.onboarding_id", id);
}

/* A failed send's status is said in public words (public_reason): the server's own
 * text can quote the recipient, and spans carry no personal data. */
static void send_span_end(struct lmp_span *s, int result, const char *err, long attempt) {
  if (result == 0)
    lmp_span_str(s, "lmp.outcome", "sent");
  else {
    char why[120];
    public_reason(result, err, attempt, why, sizeof(why));
    lmp_span_str(s, "lmp.outcome", result == LMP_EREJECT ? "refused" : "not sent");
    lmp_span_fail(s, "%s", why);
  }
  lmp_span_end(s);
}

/* A batch of mails ends after the mail during which this long has passed since its
 * claim: its locks, and the mails waiting behind it, are held no longer. */
#define BATCH_MS 1000

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A batch of claimed mails (the rows of res) as it is sent: the sent ones, recorded
 * together at the end ({onboarding_id, kind, at}: the database's clock at the claim
 * plus the time since, so every time in the table is the database's), and whether to
 * end it early. */
struct sending {
  PGresult *res;
  json_t *sent;
  int64_t db_ms, mono0;
  int settled; /* a mail was sent or given up: the tick has something to announce */
  int stop;    /* end the batch after this mail */
  int pause;   /* wait a second before the next call: the server is away, or a failure went unrecorded */
};

/* Records a mail that was not sent (given up, or to be tried again) under a savepoint,
 * counted and logged once recorded. A record that fails rolls back alone: the mail
 * stays pending, its attempts untouched, and waits as a failed attempt would (so it
 * does not head every batch), while the batch goes on and its sent mails are recorded
 * (rolling them back would send them again). */
static int record_unsent(struct lmp_tx *tx, struct sending *bt, const char *id, const char *kind, int s, long attempts,
                         const char *err) {
  struct notifier *n = lmp_tx_ctx(tx);
  int give = s == LMP_EREJECT || attempts >= n->max_attempts;
  long wait = attempts < 20 ? (1L << attempts) : n->retry_max_s;
  if (wait > n->retry_max_s)
    wait = n->retry_max_s;
  char w[24], why[600];
  snprintf(w, sizeof(w), "%ld", wait);
  snprintf(why, sizeof(why), "%s%s", s == LMP_EREJECT ? "" : "given up after the last attempt: ", err);
  const char *q[] = {id, kind, err, w}, *later[] = {id, kind, w};
  int r = lmp_tx_command(tx, "SAVEPOINT unsent", 0, NULL);
  if (r < 0)
    return r;
  if (give) {
    char public_why[120];
    public_reason(s, err, attempts, public_why, sizeof(public_why));
    r = give_up(tx, id, kind, why, public_why);
  } else {
    r = lmp_tx_command(tx, "UPDATE mails SET attempts = attempts + 1, last_error = $3, "
                           "next_attempt_at = clock_timestamp() + $4::int * interval '1 second' "
                           "WHERE onboarding_id = $1 AND kind = $2", 4, q);
  }
  if (r == 0 && (r = lmp_tx_command(tx, "RELEASE SAVEPOINT unsent", 0, NULL)) == 0) {
    if (give) {
      atomic_fetch_add(&n->mails_failed, 1);
      lmp_error(id, "mail %s given up: %s", kind, why);
      bt->settled = 1;
    } else {
      atomic_fetch_add(&n->attempts_failed, 1);
      lmp_warn(id, "mail %s not sent (attempt %ld, next in %ld s): %s", kind, attempts, wait, err);
    }
    return 0;
  }
  lmp_warn(id, "mail %s: its failure could not be recorded (%s%s%s); it stays pending, tried again in %ld s", kind,
           lmp_strerror(r), r == LMP_EDB || r == LMP_ERETRY ? ": " : "",
           r == LMP_EDB || r == LMP_ERETRY ? lmp_tx_db_error(tx) : "", wait);
  bt->pause = 1;
  if ((r = lmp_tx_command(tx, "ROLLBACK TO SAVEPOINT unsent", 0, NULL)) < 0 ||
      (r = lmp_tx_command(tx, "RELEASE SAVEPOINT unsent", 0, NULL)) < 0)
    return r;
  /* Pushed back as a failed attempt would be, without counting one; if even that is
   * refused, it stays as it was. */
  if ((r = lmp_tx_command(tx, "SAVEPOINT unsent", 0, NULL)) < 0)
    return r;
  r = lmp_tx_command(tx, "UPDATE mails SET next_attempt_at = clock_timestamp() + $3::int * interval '1 second' "
                         "WHERE onboarding_id = $1 AND kind = $2", 3, later);
  if (r < 0 && (r = lmp_tx_command(tx, "ROLLBACK TO SAVEPOINT unsent", 0, NULL)) < 0)
    return r;
  return lmp_tx_command(tx, "RELEASE SAVEPOINT unsent", 0, NULL);
}

/* The batch's mail i sent over the sender's connection, and what came of it noted. */
static int send_one(struct lmp_tx *tx, struct sending *bt, int i, void **curl) {
  struct notifier *n = lmp_tx_ctx(tx);
  PGresult *res = bt->res;
  const char *id = PQgetvalue(res, i, 0), *kind = PQgetvalue(res, i, 1);
  const char *parent = PQgetisnull(res, i, 7) ? NULL : PQgetvalue(res, i, 7);
  char err[512] = "";
  long attempts = strtol(PQgetvalue(res, i, 5), NULL, 10) + 1;
  /* The send is a span of the trace of the event that owed the mail. */
  lmp_tx_follow(tx, id, parent);
  struct lmp_span span;
  send_span_begin(&span, n, id, kind, attempts, parent);
  int s = notifier_send(n, curl, PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
                        PQgetvalue(res, i, 6), err, sizeof(err));
  pthread_setspecific(curl_key, *curl);
  send_span_end(&span, s, err, attempts);
  if (s == LMP_EIO)
    bt->stop = bt->pause = 1; /* the server is not there: the mails behind this one wait */
  if (s != 0)
    return record_unsent(tx, bt, id, kind, s, attempts, err);
  atomic_fetch_add(&n->mails_sent, 1);
  lmp_info(id, "mail %s sent", kind);
  bt->settled = 1;
  json_int_t at = bt->db_ms + (mono_ms() - bt->mono0);
  return json_array_append_new(bt->sent, json_pack("{s:s, s:s, s:I}", "onboarding_id", id, "kind", kind, "at", at))
             ? LMP_ENOMEM
             : 0;
}

/* A sender's call, in its own transaction: the mails due next are locked (SKIP LOCKED
 * lets the senders, and several notifiers, share the work), up to notifier.send_batch,
 * sent one after another over the sender's connection and recorded together: a burst
 * costs a transaction and two statements per batch, not per mail. A crash re-sends at
 * most the mails each sender had in hand (NOTIFIER_SENDERS per notifier), each with
 * its first copy's Message-ID. The batch ends early once BATCH_MS have passed, when the
 * daemon drains, and when the server cannot be reached (the next call waits a second).
 * A mail that fails waits longer each time (up to retry_max_s) while the others go
 * out, and is given up after max_attempts, or at once when it can never go. Returns 0
 * to be called again at once, or how long to wait when nothing is due (mail owed later
 * wakes the senders sooner). */
int notifier_send_next(struct lmp_tx *tx) {
  struct notifier *n = lmp_tx_ctx(tx);
  pthread_once(&curl_once, curl_key_make);
  void *curl = pthread_getspecific(curl_key);
  struct sending bt = {.mono0 = mono_ms()};
  char limit[16];
  snprintf(limit, sizeof(limit), "%d", n->send_batch);
  const char *p[] = {limit};
  /* The Message-ID is the random one stored with the mail (migrations/004): the same
   * on every attempt, so a copy re-sent after a crash repeats the first copy's, and
   * nothing in it names the onboarding, whose id is the key to its status route. */
  int r = lmp_tx_query(tx, "SELECT onboarding_id, kind, recipient, subject, body, attempts, "
                           "message_id || '@lmp-onboarding', traceparent, "
                           "(extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM mails "
                           "WHERE status = 'pending' AND next_attempt_at <= now() "
                           "ORDER BY next_attempt_at LIMIT $1::int FOR UPDATE SKIP LOCKED",
                       1, p, &bt.res);
  if (r < 0)
    return r;
  if (PQntuples(bt.res) == 0) {
    PQclear(bt.res);
    return 1000; /* also when a mail waits for its next attempt */
  }
  bt.db_ms = strtoll(PQgetvalue(bt.res, 0, 8), NULL, 10);
  bt.sent = json_array();
  r = bt.sent ? 0 : LMP_ENOMEM;
  for (int i = 0; r == 0 && !bt.stop && i < PQntuples(bt.res); i++) {
    r = send_one(tx, &bt, i, &curl);
    if (mono_ms() - bt.mono0 >= BATCH_MS || lmp_tx_stopping(tx))
      bt.stop = 1;
  }
  PQclear(bt.res);
  if (r == 0 && json_array_size(bt.sent) > 0) {
    char *rows = json_dumps(bt.sent, JSON_COMPACT);
    const char *q[] = {rows};
    r = rows ? lmp_tx_command_set(tx, "UPDATE mails m SET status = 'sent', "
                                  "sent_at = 'epoch'::timestamptz + s.at * interval '1 millisecond', "
                                  "settled_at = 'epoch'::timestamptz + s.at * interval '1 millisecond', "
                                  "attempts = m.attempts + 1, last_error = NULL "
                                  "FROM jsonb_to_recordset($1::jsonb) AS s(onboarding_id text, kind text, at bigint) "
                                  "WHERE m.onboarding_id = s.onboarding_id AND m.kind = s.kind", 1, q)
             : LMP_ENOMEM;
    free(rows);
  }
  json_decref(bt.sent);
  if (r == 0 && bt.settled)
    lmp_tx_wake(tx); /* the tick announces them */
  return r < 0 ? r : bt.pause ? 1000 : 0;
}

/* onboarding.confirmed of one onboarding: its facts, and whom each of its two mails
 * goes to and where it stands (mails: [{kind, recipient, status}] by kind). */
static int emit_confirmed(struct lmp_tx *tx, const char *id, const char *customer_id, const char *partner_id,
                          const char *account_name, const char *shipments, json_t *mails) {
  avro_value_t v, list;
  int r = lmp_tx_value(tx, "onboarding.confirmed", &v);
  if (r < 0)
    return r;
  r = lmp_av_set_str(&v, "onboarding_id", id);
  if (r == 0) r = lmp_av_set_str(&v, "customer_id", customer_id);
  if (r == 0) r = lmp_av_set_str(&v, "partner_id", partner_id);
  if (r == 0) r = lmp_av_set_str(&v, "account_name", account_name);
  if (r == 0) r = lmp_av_set_int(&v, "shipments", (int32_t)strtol(shipments, NULL, 10));
  if (r == 0) r = avro_value_get_by_name(&v, "mails", &list, NULL) ? LMP_EINVAL : 0;
  if (r == 0) r = lmp_avro_from_json(&list, mails, (char[200]){0}, 200);
  if (r == 0) r = lmp_av_set_long(&v, "confirmed_at", lmp_now_ms());
  if (r == 0) r = lmp_tx_emit(tx, "onboarding.confirmed", id, &v);
  avro_value_decref(&v);
  if (r == 0)
    lmp_info(id, "confirmed");
  return r;
}

int notifier_confirm_new(struct lmp_tx *tx, const char *id, const char *customer_id, const char *partner_id,
                         const char *account_name, const char *shipments, const char *partner_email,
                         const char *admin_email) {
  json_t *mails = json_pack("[{s:s, s:s, s:s}, {s:s, s:s, s:s}]", "kind", "confirmation", "recipient",
                            partner_email, "status", "pending", "kind", "invitation", "recipient", admin_email,
                            "status", "pending");
  if (mails == NULL)
    return LMP_ENOMEM;
  int r = emit_confirmed(tx, id, customer_id, partner_id, account_name, shipments, mails);
  json_decref(mails);
  return r;
}

/* onboarding.confirmed of every confirmation recorded and not confirmed yet, as the
 * versions before migration 006 left them (they confirmed once both mails were
 * settled), with its mails as they stand, continuing the trace stored with it. */
static int confirm_waiting(struct lmp_tx *tx) {
  PGresult *res;
  int r = lmp_tx_query(tx, "SELECT c.onboarding_id, c.customer_id, c.partner_id, c.account_name, c.shipments, "
                           "c.correlation_id, c.traceparent, (SELECT json_agg(json_build_object('kind', m.kind, "
                           "'recipient', m.recipient, 'status', m.status) ORDER BY m.kind) FROM mails m "
                           "WHERE m.onboarding_id = c.onboarding_id AND m.kind IN ('confirmation', 'invitation'))::text "
                           "FROM confirmations c WHERE c.confirmed_at IS NULL LIMIT 500 FOR UPDATE SKIP LOCKED",
                       0, NULL, &res);
  if (r < 0)
    return r;
  for (int i = 0; r == 0 && i < PQntuples(res); i++) {
    const char *id = PQgetvalue(res, i, 0);
    lmp_tx_follow(tx, PQgetisnull(res, i, 5) ? id : PQgetvalue(res, i, 5), PQgetvalue(res, i, 6));
    json_t *mails = json_loads(PQgetisnull(res, i, 7) ? "[]" : PQgetvalue(res, i, 7), 0, NULL);
    r = mails ? emit_confirmed(tx, id, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
                               PQgetvalue(res, i, 4), mails)
              : LMP_ENOMEM;
    json_decref(mails);
    const char *q[] = {id};
    if (r == 0)
      r = lmp_tx_command(tx, "UPDATE confirmations SET confirmed_at = now() WHERE onboarding_id = $1", 1, q);
  }
  PQclear(res);
  return r;
}

/* Each of the two mails a confirmation promised, once the senders settled it, is
 * announced once (onboarding.mail-settled), after its confirmation, continuing the
 * onboarding's trace, with the reason in public words (public_reason). */
static int announce_settled(struct lmp_tx *tx) {
  PGresult *res;
  int r = lmp_tx_query(tx, "SELECT m.onboarding_id, m.kind, m.status, "
                           "CASE WHEN m.status = 'failed' THEN COALESCE(m.fail_reason, 'it could not be sent') END, "
                           "(extract(epoch FROM COALESCE(m.settled_at, m.sent_at, now())) * 1000)::bigint, "
                           "c.correlation_id, c.traceparent "
                           "FROM mails m JOIN confirmations c ON c.onboarding_id = m.onboarding_id "
                           "WHERE m.announced_at IS NULL AND m.kind IN ('confirmation', 'invitation') "
                           "AND m.status IN ('sent', 'failed') AND c.confirmed_at IS NOT NULL "
                           "ORDER BY m.onboarding_id, m.kind LIMIT 500 FOR UPDATE OF m SKIP LOCKED",
                       0, NULL, &res);
  if (r < 0)
    return r;
  json_t *done = json_array();
  r = done ? 0 : LMP_ENOMEM;
  for (int i = 0; r == 0 && i < PQntuples(res); i++) {
    const char *id = PQgetvalue(res, i, 0), *kind = PQgetvalue(res, i, 1);
    lmp_tx_follow(tx, PQgetisnull(res, i, 5) ? id : PQgetvalue(res, i, 5), PQgetvalue(res, i, 6));
    avro_value_t v, reason, branch;
    if ((r = lmp_tx_value(tx, "onboarding.mail-settled", &v)) < 0)
      break;
    r = lmp_av_set_str(&v, "onboarding_id", id);
    if (r == 0) r = lmp_av_set_str(&v, "kind", kind);
    if (r == 0) r = lmp_av_set_str(&v, "status", PQgetvalue(res, i, 2));
    int why = !PQgetisnull(res, i, 3); /* the union's branch: null, or the reason */
    if (r == 0 && (avro_value_get_by_name(&v, "reason", &reason, NULL) || avro_value_set_branch(&reason, why, &branch) ||
                   (why ? avro_value_set_string(&branch, PQgetvalue(res, i, 3)) : avro_value_set_null(&branch))))
      r = LMP_EINVAL;
    if (r == 0) r = lmp_av_set_long(&v, "settled_at", strtoll(PQgetvalue(res, i, 4), NULL, 10));
    if (r == 0) r = lmp_tx_emit(tx, "onboarding.mail-settled", id, &v);
    avro_value_decref(&v);
    if (r == 0 && json_array_append_new(done, json_pack("{s:s, s:s}", "onboarding_id", id, "kind", kind)))
      r = LMP_ENOMEM;
  }
  PQclear(res);
  /* The announced ones marked with one statement. */
  if (r == 0 && json_array_size(done) > 0) {
    char *rows = json_dumps(done, JSON_COMPACT);
    const char *q[] = {rows};
    r = rows ? lmp_tx_command_set(tx, "UPDATE mails m SET announced_at = now() "
                                  "FROM jsonb_to_recordset($1::jsonb) AS s(onboarding_id text, kind text) "
                                  "WHERE m.onboarding_id = s.onboarding_id AND m.kind = s.kind", 1, q)
             : LMP_ENOMEM;
    free(rows);
  }
  json_decref(done);
  return r;
}

int notifier_tick(struct lmp_tx *tx) {
  int r = confirm_waiting(tx);
  return r < 0 ? r : announce_settled(tx);
}

int notifier_metrics(void *ctx, const char *service, struct lmp_buf *out) {
  struct notifier *n = ctx;
  return lmp_buf_printf(out,
                        "# HELP lmp_mails_sent_total Mails the SMTP server accepted.\n"
                        "# TYPE lmp_mails_sent_total counter\nlmp_mails_sent_total{service=\"%s\"} %llu\n"
                        "# HELP lmp_mail_attempts_failed_total Attempts at a mail that failed and will be retried.\n"
                        "# TYPE lmp_mail_attempts_failed_total counter\n"
                        "lmp_mail_attempts_failed_total{service=\"%s\"} %llu\n"
                        "# HELP lmp_mails_failed_total Mails given up for good: refused, unusable recipient, "
                        "or out of attempts.\n"
                        "# TYPE lmp_mails_failed_total counter\nlmp_mails_failed_total{service=\"%s\"} %llu\n",
                        service, (unsigned long long)atomic_load(&n->mails_sent), service,
                        (unsigned long long)atomic_load(&n->attempts_failed), service,
                        (unsigned long long)atomic_load(&n->mails_failed));
}

/* Retention: after the retention period a settled mail keeps only its facts (kind,
 * status, attempts, times): its text goes, and so does every copy of an address it
 * held, the recipient and an error that may quote it. A mail whose onboarding still
 * waits for its confirmed event, or whose fate is not announced yet, is kept whole,
 * since those events name the recipients and the reason; and the partner's address
 * kept with a confirmation goes once the confirmation is that old and its invitation
 * is settled (a failed one is reported to that address). */
int notifier_purge(struct lmp_tx *tx, int days) {
  char d[16];
  snprintf(d, sizeof(d), "%d", days);
  const char *p[] = {d};
  int r = lmp_tx_command(tx, "UPDATE mails m SET subject = '', body = '', recipient = NULL, last_error = NULL "
                             "WHERE m.status IN ('sent', 'failed') AND (m.recipient IS NOT NULL OR m.body <> '') "
                             "AND m.created_at < now() - $1::int * interval '1 day' "
                             "AND (m.announced_at IS NOT NULL OR m.kind NOT IN ('confirmation', 'invitation')) "
                             "AND NOT EXISTS "
                             "(SELECT 1 FROM confirmations c WHERE c.onboarding_id = m.onboarding_id "
                             "AND c.confirmed_at IS NULL)", 1, p);
  if (r == 0)
    r = lmp_tx_command(tx, "UPDATE confirmations c SET partner_email = NULL WHERE partner_email IS NOT NULL "
                           "AND confirmed_at < now() - $1::int * interval '1 day' AND NOT EXISTS "
                           "(SELECT 1 FROM mails m WHERE m.onboarding_id = c.onboarding_id "
                           "AND m.kind = 'invitation' AND m.status = 'pending')", 1, p);
  return r;
}
