-- Schema version 2: the exact JSON of events jsonb cannot hold. A provider's text (a transcript,
-- a name) may carry a NUL character (`\u0000` in its JSON), which jsonb refuses; version 1
-- refused such an append, so the same delivery was recorded on one backend and answered 400
-- on the other. Such an event's `data` (or `metadata`) now holds its JSON with U+FFFD in place
-- of each NUL, so analysts' jsonb operators and indexes work on every row, and `data_exact`
-- (`metadata_exact`) its exact JSON text, which the store hands out. NULL for every other
-- event. Adding nullable columns rewrites nothing, so the migration is instant.
ALTER TABLE events
    ADD COLUMN data_exact text,
    ADD COLUMN metadata_exact text;
