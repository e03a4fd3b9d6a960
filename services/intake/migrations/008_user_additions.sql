-- Users added to an existing customer account later (customer.users-requested): one
-- row per addition, keyed by its id (a name-based UUID of the partner and the
-- request id), so a repeated request adds once. accepted -> added or refused by
-- allocation; rejected by intake itself.
CREATE TABLE user_additions (
  addition_id  text PRIMARY KEY,
  partner_id   text NOT NULL,
  customer_id  text NOT NULL,
  status       text NOT NULL CHECK (status IN ('accepted', 'rejected', 'added', 'refused')),
  users        jsonb NOT NULL,                -- asked for: {tier, cloud, sat}
  allocations  jsonb NOT NULL DEFAULT '[]',   -- drawn, once added: [{product, users}]
  reasons      jsonb NOT NULL DEFAULT '[]',
  request      jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_additions_customer ON user_additions (customer_id, created_at DESC);
