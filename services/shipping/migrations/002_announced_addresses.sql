-- Intake's partner view learns a partner's default address from partner.address. A
-- change raises the address's version; the tick announces each address whose version
-- is past the one last announced. Addresses already here start unannounced, so the
-- first tick after this migration tells intake about all of them.
ALTER TABLE partner_addresses ADD COLUMN version bigint NOT NULL DEFAULT 1,
  ADD COLUMN announced_version bigint NOT NULL DEFAULT 0;
CREATE INDEX partner_addresses_unannounced ON partner_addresses (partner_id) WHERE version > announced_version;
