-- Schema version 2: events' data and metadata as json, not jsonb. jsonb cannot hold a string
-- with a NUL character (`\u0000`), which a provider's text (a transcript, a name) may carry
-- and the embedded store keeps; version 1 refused such an append, so the same delivery was
-- recorded on one backend and answered 400 on the other. json keeps the text it is given, so
-- `data->>'call_id'` and the other operators analysts use still work.
-- Rewrites the table once, under its ACCESS EXCLUSIVE lock, inside the migration's transaction.
ALTER TABLE events
    ALTER COLUMN data TYPE json USING data::json,
    ALTER COLUMN metadata TYPE json USING metadata::json;
