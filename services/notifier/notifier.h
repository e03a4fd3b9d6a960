/* Notifier: the partner's confirmation, the administrator's invitation, failure and
 * dispatch notices over SMTP, each once; then the confirmed event. */
#ifndef NOTIFIER_H
#define NOTIFIER_H

#include "lmp/embed.h"
#include "lmp/service.h"
#include "lmp/tx.h"

struct notifier {
  char *smtp_url;       /* smtp://host:port */
  char *from_address;   /* envelope and header sender */
  char *from_name;
  char *template_dir;   /* empty: the built-in templates */
  int smtp_timeout_s;
  int per_tick;         /* mails sent per tick at most */
  int retry_max_s;      /* longest wait between two attempts at one mail */
  void *curl;           /* one libcurl handle, kept so its SMTP connection is reused */
};

extern const struct lmp_embedded notifier_migrations[];
extern const struct lmp_embedded notifier_templates[];
extern const struct lmp_conf_entry notifier_conf[];
extern const size_t notifier_conf_n;

extern const struct lmp_route notifier_routes[];
extern const struct lmp_http_route notifier_http[];
int notifier_tick(struct lmp_tx *tx);

/* Fills {{name}} placeholders of a template from vars; *subject and *body are malloc'd. */
int notifier_render(const struct notifier *n, const char *kind, json_t *vars, char **subject, char **body);
/* Sends one mail; 0, or a negative code with the SMTP error in err. */
int notifier_send(struct notifier *n, const char *to, const char *subject, const char *body,
                  const char *message_id, char *err, size_t errlen);

#endif
