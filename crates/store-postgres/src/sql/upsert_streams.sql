-- Each stream at most once per statement: ON CONFLICT cannot update one row twice.
INSERT INTO streams (name, last_version)
SELECT * FROM unnest($1::text[], $2::bigint[])
ON CONFLICT (name) DO UPDATE SET last_version = excluded.last_version
