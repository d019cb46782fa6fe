INSERT INTO events (stream, version, event_id, event_type, schema_version,
                    occurred_s, occurred_ns, recorded_s, recorded_ns, data, metadata)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
