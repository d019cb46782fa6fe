SELECT position, stream, version, event_id, event_type, schema_version,
       occurred_s, occurred_ns, recorded_s, recorded_ns, data, metadata
FROM events
WHERE stream = ?1 AND version >= ?2 AND position <= ?4
ORDER BY version
LIMIT ?3
