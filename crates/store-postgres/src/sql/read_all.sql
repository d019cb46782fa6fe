SELECT position, stream, version, event_id, event_type, schema_version,
       occurred_at, occurred_nanos, recorded_at, data, metadata,
       data_exact, metadata_exact
FROM events
WHERE position >= $1
ORDER BY position
LIMIT $2
