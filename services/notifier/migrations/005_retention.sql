-- Retention (retention.days) removes whom a mail went to, not only what it said:
-- a purged mail keeps its kind, status, attempts and times, with recipient NULL, and
-- a confirmed onboarding forgets the partner's address it kept to report an
-- undeliverable invitation (a mail's last_error can quote an address too).
ALTER TABLE mails ALTER COLUMN recipient DROP NOT NULL;
