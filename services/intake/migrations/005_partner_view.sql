-- The partner's view, a read model of what other daemons announce: each partner's
-- pools and sub-partners (partner.balance, from allocation) and its default shipping
-- address (partner.address, from shipping). Each half keeps the highest version it
-- has heard, so an announcement heard late never undoes a newer one.
CREATE TABLE partner_view (
  partner_id      text PRIMARY KEY,
  name            text NOT NULL DEFAULT '',
  pools           jsonb NOT NULL DEFAULT '[]',  -- [{product, total, available}]
  sub_partners    jsonb NOT NULL DEFAULT '[]',  -- [{partner_id, name}]
  balance_version bigint NOT NULL DEFAULT 0,
  balance_at      timestamptz,                  -- when allocation's balance was so
  address         jsonb,                        -- null: none on file (or none heard)
  address_version bigint NOT NULL DEFAULT 0,
  address_at      timestamptz
);
