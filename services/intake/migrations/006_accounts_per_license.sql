-- A customer account is per partner and volume license: the article creates the
-- account "for a volume license", so one customer may hold an MDR Core and an MDR
-- Cloud account. The legal name is unique per partner and license (in any letter
-- case, among reserved and active accounts); each existing account takes its
-- onboarding's license, and none is lost.
ALTER TABLE customer_accounts ADD COLUMN license text;
UPDATE customer_accounts a SET license = o.license FROM onboardings o WHERE o.onboarding_id = a.onboarding_id;
ALTER TABLE customer_accounts ALTER COLUMN license SET NOT NULL,
  ADD CONSTRAINT customer_accounts_license CHECK (license IN ('MDR_CORE', 'MDR_COMPLETE', 'MDR_CLOUD'));
DROP INDEX customer_accounts_name;
CREATE UNIQUE INDEX customer_accounts_name
  ON customer_accounts (partner_id, license, lower(account_name COLLATE "und-x-icu")) WHERE status <> 'released';
