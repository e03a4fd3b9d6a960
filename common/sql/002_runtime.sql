-- Keys and header values are bytes, as Kafka has them: a dead letter keeps whatever
-- arrived (a key or header that is not UTF-8, a NUL) and its row can always be stored.
ALTER TABLE lmp_outbox ALTER COLUMN key TYPE bytea USING convert_to(key, 'UTF8');
ALTER TABLE lmp_outbox ADD COLUMN header_names text[] NOT NULL DEFAULT '{}',
                       ADD COLUMN header_values bytea[] NOT NULL DEFAULT '{}';
UPDATE lmp_outbox SET (header_names, header_values) =
  (SELECT COALESCE(array_agg(k ORDER BY k), '{}'), COALESCE(array_agg(convert_to(v, 'UTF8') ORDER BY k), '{}')
     FROM jsonb_each_text(headers) AS e(k, v));
ALTER TABLE lmp_outbox DROP COLUMN headers;
-- Acknowledged rows are deleted by event id.
CREATE INDEX lmp_outbox_event_id ON lmp_outbox (event_id);

-- Events the broker refused for good (too large, invalid): kept here with the
-- reason instead of being retried forever; a copy goes to the dead-letter topic.
CREATE TABLE lmp_outbox_parked (
  event_id      text PRIMARY KEY,
  topic         text NOT NULL,
  key           bytea,
  value         bytea NOT NULL,
  header_names  text[] NOT NULL,
  header_values bytea[] NOT NULL,
  reason        text NOT NULL,
  parked_at     timestamptz NOT NULL DEFAULT now()
);
