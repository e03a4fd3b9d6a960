-- Appliance fulfilment's tables: the catalogue, inventory, and what each onboarding holds.

CREATE TABLE hosting_regions (
  region text PRIMARY KEY,
  name   text NOT NULL DEFAULT ''
);

CREATE TABLE skus (
  sku         text PRIMARY KEY,
  description text NOT NULL DEFAULT ''
);

-- One physical appliance. A reserved unit names the onboarding holding it.
CREATE TABLE units (
  serial        text PRIMARY KEY,
  sku           text NOT NULL REFERENCES skus,
  status        text NOT NULL DEFAULT 'available' CHECK (status IN ('available', 'reserved')),
  onboarding_id text,
  reserved_at   timestamptz,
  CHECK ((status = 'reserved') = (onboarding_id IS NOT NULL))
);
CREATE INDEX units_available ON units (sku, serial) WHERE status = 'available';
CREATE INDEX units_onboarding ON units (onboarding_id) WHERE onboarding_id IS NOT NULL;

CREATE TABLE virtual_appliances (
  appliance_id  uuid PRIMARY KEY,
  onboarding_id text NOT NULL UNIQUE,
  region        text NOT NULL REFERENCES hosting_regions,
  status        text NOT NULL CHECK (status IN ('provisioned', 'released')),
  created_at    timestamptz NOT NULL DEFAULT now()
);

-- What fulfilment did for each onboarding, so a redelivery or a failure finds it.
CREATE TABLE onboardings (
  onboarding_id text PRIMARY KEY,
  status        text NOT NULL CHECK (status IN ('provisioned', 'refused', 'released')),
  reasons       jsonb NOT NULL DEFAULT '[]',
  updated_at    timestamptz NOT NULL DEFAULT now()
);
