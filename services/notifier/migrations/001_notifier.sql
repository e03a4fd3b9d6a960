-- The notifier's tables: every mail it owes, and the onboardings it confirms.

-- One row per onboarding and kind of mail: the primary key is what makes each
-- mail go out once, however often its event is delivered.
CREATE TABLE mails (
  onboarding_id   text NOT NULL,
  kind            text NOT NULL,      -- confirmation, invitation, failure, dispatch:<shipment id>
  recipient       text NOT NULL,
  subject         text NOT NULL,
  body            text NOT NULL,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
  attempts        integer NOT NULL DEFAULT 0,
  last_error      text,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  created_at      timestamptz NOT NULL DEFAULT now(),
  sent_at         timestamptz,
  PRIMARY KEY (onboarding_id, kind)
);
CREATE INDEX mails_due ON mails (next_attempt_at) WHERE status = 'pending';

-- Onboardings waiting for their two mails before the confirmed event.
CREATE TABLE confirmations (
  onboarding_id text PRIMARY KEY,
  customer_id   text NOT NULL,
  partner_id    text NOT NULL,
  account_name  text NOT NULL,
  shipments     integer NOT NULL,
  confirmed_at  timestamptz
);
