-- An onboarding's stages in the order they happened, whatever order intake heard of
-- them: events on different topics arrive in any order. Each stage keeps its place in
-- the flow and when it happened at its own daemon (the event's own time; intake's own
-- stages happen when intake records them); `at` stays when intake learned of it.
-- The places come from lifecycle.c's table of stages; this sets them once for the
-- stages recorded before it.
ALTER TABLE onboarding_stages ADD COLUMN place integer, ADD COLUMN happened_at timestamptz;
UPDATE onboarding_stages SET happened_at = at,
  place = CASE stage WHEN 'accepted' THEN 0 WHEN 'rejected' THEN 0 WHEN 'users-allocated' THEN 2
                     WHEN 'appliances-provisioned' THEN 4 WHEN 'shipping-completed' THEN 6
                     WHEN 'shipment-dispatched' THEN 8 WHEN 'confirmed' THEN 10
                     ELSE CASE detail->>'stage' WHEN 'allocation' THEN 1 WHEN 'appliance-fulfilment' THEN 3
                                                WHEN 'shipping' THEN 5 WHEN 'notifier' THEN 9 ELSE 12 END END;
ALTER TABLE onboarding_stages ALTER COLUMN place SET NOT NULL,
  ALTER COLUMN happened_at SET NOT NULL, ALTER COLUMN happened_at SET DEFAULT now();
DROP INDEX onboarding_stages_onboarding;
CREATE INDEX onboarding_stages_onboarding ON onboarding_stages (onboarding_id, place, happened_at);

-- The status moves only forward: each status has a rank (the place of the stage that
-- sets it; confirmed, failed and rejected are outcomes and rank above every stage), and
-- a stage moves the status only to a higher rank.
ALTER TABLE onboardings ADD COLUMN status_rank integer;
UPDATE onboardings SET status_rank = CASE status WHEN 'accepted' THEN 0 WHEN 'users_allocated' THEN 2
                                                 WHEN 'appliances_provisioned' THEN 4 WHEN 'shipping_arranged' THEN 6
                                                 ELSE 1000 END;
ALTER TABLE onboardings ALTER COLUMN status_rank SET NOT NULL;
