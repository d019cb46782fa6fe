SELECT position, stream, version, event_id, event_type, schema_version,
       occurred_s, occurred_ns, recorded_s, recorded_ns, data, metadata
FROM events
WHERE position >= ?1 AND position <= ?3
ORDER BY position
LIMIT ?2
