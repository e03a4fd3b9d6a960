/* Notifier: the partner's confirmation, the administrator's invitation, failure and
 * dispatch notices over SMTP, each once; then the confirmed event. */
#ifndef NOTIFIER_H
#define NOTIFIER_H

#include <stdatomic.h>
#include <time.h>

#include "lmp/base/embed.h"
#include "lmp/runtime/service.h"
#include "lmp/runtime/tx.h"

struct notifier {
  char *smtp_url;       /* smtp://host:port or smtps://host:port */
  char *smtp_tls;       /* required, try or none */
  long use_ssl;         /* smtp_tls as libcurl's CURLOPT_USE_SSL */
  char *smtp_ca_file;   /* empty: the system's CAs */
  char *smtp_username;  /* empty: no SMTP AUTH */
  char *smtp_password_file;
  char *from_address;   /* envelope and header sender */
  char *from_name;
  char *template_dir;   /* empty: the built-in templates */
  char *portal_url;     /* the MDR Portal, where the invited administrator signs up */
  char *page_url;       /* the partner's portal page; empty: mails name no page */
  char *help_url;       /* the Help Center's chapter on appliances */
  int smtp_timeout_s;
  int retry_max_s;      /* longest wait between two attempts at one mail */
  int max_attempts;     /* attempts before a mail is given up */
  int send_batch;       /* mails a sender sends per transaction */
  atomic_uint_fast64_t mails_sent, attempts_failed, mails_failed;
};

extern const struct lmp_embedded notifier_migrations[];
extern const struct lmp_embedded notifier_templates[];
extern const struct lmp_conf_entry notifier_conf[];
extern const size_t notifier_conf_n;

extern const struct lmp_route notifier_routes[];
extern const struct lmp_http_route notifier_http[];
int notifier_configured(void *ctx, char *err, size_t errlen);
/* The senders (background threads): a few mails per call. */
#define NOTIFIER_SENDERS 4
int notifier_send_next(struct lmp_tx *tx);
int notifier_tick(struct lmp_tx *tx);
/* onboarding.confirmed of an onboarding whose confirmation and two mails this
 * transaction recorded (so both pending), continuing the trace of the event handled. */
int notifier_confirm_new(struct lmp_tx *tx, const char *id, const char *customer_id, const char *partner_id,
                         const char *account_name, const char *shipments, const char *partner_email,
                         const char *admin_email);
int notifier_purge(struct lmp_tx *tx, int days);
int notifier_metrics(void *ctx, const char *service, struct lmp_buf *out);

/* Whether an event's strings are what the notifier accepts: its identifiers of their
 * syntax (onboarding, customer and shipment ids UUIDs, partner ids, the failing stage
 * one of the three), and no other text with a control character. 0, or LMP_EREJECT
 * with the field and the fault in why. */
int notifier_event_fault(avro_value_t *event, char *why, size_t whylen);
/* Fills {{name}} placeholders of a template from vars; *subject and *body are malloc'd. */
int notifier_render(const struct notifier *n, const char *kind, json_t *vars, char **subject, char **body);
/* Whether s is an address the notifier writes into a header and an SMTP command: an
 * RFC 5322 addr-spec with a dot-atom local part and a host-name domain. */
int notifier_address_ok(const char *s);
/* Whether s is a msg-id the notifier writes between the angle brackets of the
 * Message-ID header: dot-atom-text '@' dot-atom-text, at most 250 bytes. */
int notifier_message_id_ok(const char *s);
/* The one writer of a mail header: "name: value" and CRLF, folded at spaces to keep
 * lines short. LMP_EINVAL, with why in err and nothing written, when the name is not
 * printable ASCII without ':' and space, or the value holds a byte that is not
 * printable ASCII (CR, LF, any other control character, or text not yet encoded). */
int notifier_header(struct lmp_buf *out, const char *name, const char *value, char *err, size_t errlen);
/* Header text: as it is when it is short printable ASCII, else RFC 2047 encoded words
 * (UTF-8, base64) cut at character boundaries, separated by spaces. LMP_EINVAL when the
 * text holds a control character or is not UTF-8. */
int notifier_header_text(const char *text, struct lmp_buf *out);
/* The body as quoted-printable (RFC 2045) with CRLF line breaks; a dot starting a
 * line is encoded, so the body can never end the SMTP data early. */
int notifier_qp(const char *body, struct lmp_buf *out);
/* The whole message: headers, each through notifier_header, and the encoded body.
 * message_id is the stored one (without angle brackets). LMP_EINVAL, with why in err
 * and out emptied, when a field cannot be written (an address or Message-ID that is
 * not plain, text with a control character). */
int notifier_message(const struct notifier *n, const char *to, const char *subject, const char *body,
                     const char *message_id, time_t now, struct lmp_buf *out, char *err, size_t errlen);
/* Sends one mail on *handle (a libcurl handle, made on first use). 0; LMP_EREJECT when
 * it can never go (unusable recipient, a message that cannot be written, refused by
 * the server with 5xx);
 * LMP_EIO when it may go later; LMP_ENOMEM. The error is in err. */
int notifier_send(struct notifier *n, void **handle, const char *to, const char *subject, const char *body,
                  const char *message_id, char *err, size_t errlen);

#endif
