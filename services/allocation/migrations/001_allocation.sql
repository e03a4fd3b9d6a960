-- Allocation's tables: partners, their license pools, and what each onboarding drew.

CREATE TABLE partners (
  partner_id text PRIMARY KEY,
  name       text NOT NULL DEFAULT ''
);

-- A sub-partner may onboard a customer on partner_id's volume license.
CREATE TABLE license_shares (
  partner_id     text NOT NULL REFERENCES partners,
  sub_partner_id text NOT NULL REFERENCES partners,
  PRIMARY KEY (partner_id, sub_partner_id)
);

-- The guard against over-allocation lives in SQL: allocating is one conditional
-- UPDATE per pool, and the CHECK refuses any state past the total, whichever
-- instance of allocation writes it.
CREATE TABLE pools (
  partner_id text NOT NULL REFERENCES partners,
  product    text NOT NULL CHECK (product IN ('MDR_CORE', 'MDR_COMPLETE', 'MDR_CLOUD', 'BEAUCERON_SAT')),
  total      integer NOT NULL CHECK (total >= 0),
  allocated  integer NOT NULL DEFAULT 0,
  PRIMARY KEY (partner_id, product),
  CHECK (allocated >= 0 AND allocated <= total)
);

CREATE TABLE onboardings (
  onboarding_id text PRIMARY KEY,
  partner_id    text NOT NULL,
  status        text NOT NULL CHECK (status IN ('allocated', 'refused', 'released')),
  reasons       jsonb NOT NULL DEFAULT '[]',
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE allocations (
  onboarding_id text NOT NULL REFERENCES onboardings,
  partner_id    text NOT NULL,
  product       text NOT NULL,
  users         integer NOT NULL CHECK (users > 0),
  PRIMARY KEY (onboarding_id, product)
);
