-- A mail can fail for good (a refused or unusable recipient, or no attempts left):
-- recorded as such rather than retried forever. The partner's address is kept with
-- the confirmation, to tell the partner when the invitation cannot be delivered.
ALTER TABLE mails DROP CONSTRAINT mails_status_check;
ALTER TABLE mails ADD CONSTRAINT mails_status_check CHECK (status IN ('pending', 'sent', 'failed'));
ALTER TABLE confirmations ADD COLUMN partner_email text;
