-- A customer account follows its onboarding: reserved while it is in flight, active
-- once confirmed, released when it fails. Only reserved and active accounts hold the
-- legal name, so a failed onboarding can be corrected and submitted again.
ALTER TABLE customer_accounts
  ADD COLUMN status text NOT NULL DEFAULT 'reserved' CHECK (status IN ('reserved', 'active', 'released')),
  ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
UPDATE customer_accounts a SET status = CASE o.status WHEN 'confirmed' THEN 'active'
                                                      WHEN 'failed' THEN 'released' ELSE 'reserved' END
  FROM onboardings o WHERE o.onboarding_id = a.onboarding_id;
DROP INDEX customer_accounts_name;
CREATE UNIQUE INDEX customer_accounts_name
  ON customer_accounts (partner_id, lower(account_name COLLATE "und-x-icu")) WHERE status <> 'released';
