SELECT position, stream, version, event_id, event_type, schema_version,
       occurred_at, occurred_nanos, recorded_at, data, metadata,
       data_exact, metadata_exact
FROM events
WHERE stream = $1 AND version >= $2
ORDER BY version
LIMIT $3
