-- All events of a batch in one statement. recorded_at is the transaction's time: one value
-- per commit.
INSERT INTO events (position, stream, version, event_id, event_type, schema_version,
                    occurred_at, occurred_nanos, recorded_at, data, metadata, data_exact,
                    metadata_exact)
SELECT position, stream, version, event_id, event_type, schema_version,
       occurred_at, occurred_nanos, now(), data::jsonb, metadata::jsonb, data_exact, metadata_exact
FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::bigint[],
            $7::timestamptz[], $8::integer[], $9::text[], $10::text[], $11::text[],
            $12::text[])
     AS given (position, stream, version, event_id, event_type, schema_version,
               occurred_at, occurred_nanos, data, metadata, data_exact, metadata_exact)
