-- The trace of the event that owed each mail, so that sending it is a span of the
-- onboarding's trace (NULL for mails owed before this: their sends have no trace).
ALTER TABLE mails ADD COLUMN traceparent text;
