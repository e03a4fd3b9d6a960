-- Users added to an existing customer later (customer.users-accepted): drawn all or
-- nothing like an onboarding's, once per addition, kept for good (no later stage
-- can fail an addition).
CREATE TABLE additions (
  addition_id text PRIMARY KEY,
  partner_id  text NOT NULL,
  status      text NOT NULL CHECK (status IN ('added', 'refused')),
  allocations jsonb NOT NULL DEFAULT '[]',
  reasons     jsonb NOT NULL DEFAULT '[]',
  at          timestamptz NOT NULL DEFAULT now()
);
