-- Each onboarding mail's fate as the notifier announces it (onboarding.mail-settled),
-- after the confirmation that named the mail as pending. The two arrive on different
-- topics in either order: the status answer joins them when it is read.
CREATE TABLE mail_fates (
  onboarding_id text NOT NULL,
  kind          text NOT NULL CHECK (kind IN ('confirmation', 'invitation')),
  status        text NOT NULL CHECK (status IN ('sent', 'failed')),
  reason        text,
  settled_at    timestamptz NOT NULL,
  at            timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (onboarding_id, kind)
);
