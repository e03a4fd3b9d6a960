-- The partners' names, as allocation announces them (partner.balance), so a mail names
-- the partner as the partner knows itself rather than by its id. The highest version
-- heard is kept.
CREATE TABLE partner_names (
  partner_id text PRIMARY KEY,
  name       text NOT NULL,
  version    bigint NOT NULL
);
