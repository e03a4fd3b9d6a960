-- The confirmed event is emitted by the tick, outside any consumed event: it keeps
-- the trace and correlation id of the shipping-completed event that owed it.
ALTER TABLE confirmations ADD COLUMN correlation_id text, ADD COLUMN traceparent text;
