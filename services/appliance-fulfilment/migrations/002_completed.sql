-- An onboarding whose shipping completed is final: its units are on their way, so
-- fulfilment refuses a failure that names it instead of returning them to stock.
ALTER TABLE onboardings DROP CONSTRAINT onboardings_status_check,
  ADD CONSTRAINT onboardings_status_check CHECK (status IN ('provisioned', 'refused', 'released', 'completed'));
