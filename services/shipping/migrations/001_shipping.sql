-- Shipping's tables: partners' default addresses, shipments and what is in them.

CREATE TABLE partner_addresses (
  partner_id  text PRIMARY KEY,
  address     jsonb NOT NULL   -- {recipient, line1, line2, city, region, postal_code, country, phone}
);

CREATE TABLE shipments (
  shipment_id     uuid PRIMARY KEY,
  onboarding_id   text NOT NULL,
  address_key     text NOT NULL,          -- the address, normalised: one shipment per distinct address
  address         jsonb NOT NULL,
  partner_id      text NOT NULL,
  partner_email   text NOT NULL,
  customer_id     text NOT NULL,
  account_name    text NOT NULL,
  status          text NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'dispatched')),
  carrier         text,
  tracking_number text,
  requested_at    timestamptz NOT NULL DEFAULT now(),
  dispatched_at   timestamptz,
  UNIQUE (onboarding_id, address_key)
);

CREATE TABLE shipment_items (
  shipment_id uuid NOT NULL REFERENCES shipments,
  serial      text NOT NULL,
  sku         text NOT NULL,
  role        text NOT NULL,
  PRIMARY KEY (shipment_id, serial)
);

CREATE TABLE onboardings (
  onboarding_id text PRIMARY KEY,
  status        text NOT NULL CHECK (status IN ('arranged', 'refused')),
  shipments     integer NOT NULL DEFAULT 0,
  updated_at    timestamptz NOT NULL DEFAULT now()
);
