-- Delivered to every listener when the transaction commits, and never if it rolls back.
-- The channel is database-wide, so the payload names the schema: `<schema> <position>`.
SELECT pg_notify('switchboard_head', current_schema() || ' ' || $1::bigint)
