-- An onboarding whose shipping completed is final: no stage can fail it any more, so
-- allocation refuses a failure that names it instead of giving its users back.
ALTER TABLE onboardings DROP CONSTRAINT onboardings_status_check,
  ADD CONSTRAINT onboardings_status_check CHECK (status IN ('allocated', 'refused', 'released', 'completed'));
