-- The confirmation no longer waits for the mails: onboarding.confirmed goes out with
-- the mails recorded to be sent, and each of the two onboarding mails' fate follows
-- as onboarding.mail-settled, once (announced_at), stamped with when it was settled.
ALTER TABLE mails ADD COLUMN settled_at timestamptz, ADD COLUMN announced_at timestamptz;
UPDATE mails SET settled_at = COALESCE(sent_at, now()) WHERE status IN ('sent', 'failed');
-- Mails settled before: their fate went out in their confirmation.
UPDATE mails m SET announced_at = now()
 WHERE m.status IN ('sent', 'failed') AND EXISTS
   (SELECT 1 FROM confirmations c WHERE c.onboarding_id = m.onboarding_id AND c.confirmed_at IS NOT NULL);
CREATE INDEX mails_unannounced ON mails (onboarding_id)
 WHERE announced_at IS NULL AND status IN ('sent', 'failed') AND kind IN ('confirmation', 'invitation');
-- Why a given-up mail failed, in words a partner may read (last_error keeps the
-- server's own, for operators).
ALTER TABLE mails ADD COLUMN fail_reason text;
-- The tick's sweep for confirmations not emitted (from before this version).
CREATE INDEX confirmations_waiting ON confirmations (onboarding_id) WHERE confirmed_at IS NULL;
