-- Intake's partner view learns what a partner holds from partner.balance. Every
-- change of a partner's pools, shares or name raises its balance_version in the
-- transaction that makes it; the tick announces each partner whose version is past
-- the one last announced. Partners already here start unannounced, so the first tick
-- after this migration tells intake about all of them.
ALTER TABLE partners ADD COLUMN balance_version bigint NOT NULL DEFAULT 1,
  ADD COLUMN announced_version bigint NOT NULL DEFAULT 0;
CREATE INDEX partners_unannounced ON partners (partner_id) WHERE balance_version > announced_version;
