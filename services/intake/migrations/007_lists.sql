-- The partner's lists (GET /v1/onboardings, GET /v1/customers) page newest first by
-- (created_at, id): an index in that order each, so a page costs its rows, however
-- many the partner has.
DROP INDEX onboardings_partner;
CREATE INDEX onboardings_partner ON onboardings (partner_id, created_at DESC, onboarding_id DESC);
CREATE INDEX customer_accounts_partner ON customer_accounts (partner_id, created_at DESC, customer_id DESC);
