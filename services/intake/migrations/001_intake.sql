-- Intake's tables: every onboarding's request and status, and the customer accounts.

CREATE TABLE onboardings (
  onboarding_id text PRIMARY KEY,            -- the frontend's request_id
  partner_id    text NOT NULL,
  license       text NOT NULL,
  account_name  text NOT NULL,               -- trimmed legal name
  status        text NOT NULL,               -- accepted, rejected, then later stages
  reasons       jsonb NOT NULL DEFAULT '[]', -- [{code, field, message}]
  warnings      jsonb NOT NULL DEFAULT '[]',
  request       jsonb NOT NULL,              -- the request as submitted, for conflicts and support
  customer_id   uuid,
  duplicates    integer NOT NULL DEFAULT 0,  -- identical resubmissions ignored
  conflicts     integer NOT NULL DEFAULT 0,  -- same id, other content: refused
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX onboardings_partner ON onboardings (partner_id, created_at);

-- The legal name is the account name everywhere, so it is unique per partner,
-- case-insensitively in every script (ICU lower-casing, not the C locale's ASCII).
CREATE TABLE customer_accounts (
  customer_id   uuid PRIMARY KEY,
  partner_id    text NOT NULL,
  account_name  text NOT NULL,
  onboarding_id text NOT NULL UNIQUE,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX customer_accounts_name
  ON customer_accounts (partner_id, lower(account_name COLLATE "und-x-icu"));

-- Each stage an onboarding went through, with when and what.
CREATE TABLE onboarding_stages (
  onboarding_id text NOT NULL,
  stage         text NOT NULL,
  detail        jsonb NOT NULL DEFAULT '{}',
  event_id      text NOT NULL,
  at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX onboarding_stages_onboarding ON onboarding_stages (onboarding_id, at);
