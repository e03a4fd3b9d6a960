-- The runtime's own tables, in every daemon's database.

-- Ids of the events already applied; written in the transaction that applies them,
-- so a redelivered event is recognised and skipped.
CREATE TABLE lmp_inbox (
  event_id     text PRIMARY KEY,
  topic        text NOT NULL,
  partition    integer NOT NULL,
  "offset"     bigint NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now()
);

-- Events written by a transaction and not yet acknowledged by Kafka. The relay
-- deletes a row once the broker has it; a crash leaves the row for the sweeper.
CREATE TABLE lmp_outbox (
  id         bigserial PRIMARY KEY,
  event_id   text NOT NULL,
  topic      text NOT NULL,
  key        text,
  value      bytea NOT NULL,
  headers    jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lmp_outbox_created_at ON lmp_outbox (created_at);
