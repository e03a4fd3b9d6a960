-- A parked event holds the whole event, a person's data with it. An operator who
-- decides not to release one marks it reviewed; retention.days after that, the
-- runtime deletes it. An event nobody reviewed stays, and keeps its alert.
ALTER TABLE lmp_outbox_parked ADD COLUMN reviewed_at timestamptz;
