-- Schema version 1 of the PostgreSQL event store. Run once, by the migrator, inside the
-- transaction that records version 1 in switchboard_schema_version; every name is resolved
-- through the store's search_path, so one database can hold several stores in several schemas.

-- The global order's one counter. Every append locks this row first and keeps the lock until
-- it commits, so positions are handed out in commit order: a transaction can only take
-- positions after the one before it has committed or rolled back. That is what makes `$all`
-- safe to read with a plain `position >= $1`: no event can become visible later at a
-- position below one a reader has already seen (the sequence-gap problem of a bare sequence).
CREATE TABLE global_position (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_position bigint  NOT NULL
);
INSERT INTO global_position (last_position) VALUES (0);

-- One row per stream with its last version, so an append checks its expectation with one
-- lookup instead of scanning the stream.
CREATE TABLE streams (
    name         text   PRIMARY KEY,
    last_version bigint NOT NULL
);

-- The events in global order. `occurred_at` is what analysts query; PostgreSQL keeps only
-- microseconds, so `occurred_nanos` holds the full sub-second part and the envelope
-- round-trips exactly. `recorded_at` is the commit's transaction time, one value per commit.
CREATE TABLE events (
    position       bigint      PRIMARY KEY,
    stream         text        NOT NULL,
    version        bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    schema_version bigint      NOT NULL,
    occurred_at    timestamptz NOT NULL,
    occurred_nanos integer     NOT NULL,
    recorded_at    timestamptz NOT NULL,
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    UNIQUE (stream, version),
    -- Idempotency is per stream, as in KurrentDB: a retried append finds its ids here.
    UNIQUE (stream, event_id)
);

-- One append, decided and written on the server in one round trip, so group commit can send
-- a whole batch of these down one connection without waiting for each answer.
--
-- It never raises for a refusal: a refused append returns one row saying why and leaves the
-- transaction usable for the other appends of the batch.
--   p_expected: -1 any, -2 no stream, n >= 0 exactly version n.
-- Returns one row per event ('appended' or 'recorded', in the order given), or a single
-- 'partial' row naming the first event already recorded, or a single 'conflict' row whose
-- o_version is the stream's actual last version (NULL: no stream).
CREATE FUNCTION switchboard_append(
    p_stream          text,
    p_expected        bigint,
    p_event_ids       uuid[],
    p_event_types     text[],
    p_schema_versions bigint[],
    p_occurred_at     timestamptz[],
    p_occurred_nanos  integer[],
    p_data            text[],
    p_metadata        text[]
) RETURNS TABLE (o_outcome text, o_event_id uuid, o_version bigint, o_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_last_position bigint;
    v_actual        bigint;
    v_recorded      integer;
    v_count         integer := cardinality(p_event_ids);
BEGIN
    -- The lock comes first: from here to commit this transaction is the only appender, so
    -- the checks below cannot race another writer, in this process or any other.
    SELECT g.last_position INTO v_last_position FROM global_position g FOR UPDATE;

    -- Idempotency before the expectation: a retry succeeds whatever it expected.
    SELECT count(*) INTO v_recorded
    FROM events e
    WHERE e.stream = p_stream AND e.event_id = ANY (p_event_ids);
    IF v_recorded > 0 THEN
        RETURN QUERY
        SELECT CASE WHEN v_recorded = v_count THEN 'recorded' ELSE 'partial' END,
               e.event_id, e.version, e.position
        FROM unnest(p_event_ids) WITH ORDINALITY AS given (id, n)
        JOIN events e ON e.stream = p_stream AND e.event_id = given.id
        ORDER BY given.n
        LIMIT CASE WHEN v_recorded = v_count THEN NULL ELSE 1 END;
        RETURN;
    END IF;

    SELECT s.last_version INTO v_actual FROM streams s WHERE s.name = p_stream;
    IF (p_expected = -2 AND v_actual IS NOT NULL)
       OR (p_expected >= 0 AND v_actual IS DISTINCT FROM p_expected) THEN
        RETURN QUERY SELECT 'conflict', NULL::uuid, v_actual, NULL::bigint;
        RETURN;
    END IF;
    v_actual := coalesce(v_actual, -1);

    INSERT INTO events (position, stream, version, event_id, event_type, schema_version,
                        occurred_at, occurred_nanos, recorded_at, data, metadata)
    SELECT v_last_position + given.n, p_stream, v_actual + given.n, given.id,
           given.event_type, given.schema_version, given.occurred_at, given.occurred_nanos,
           now(), given.data::jsonb, given.metadata::jsonb
    FROM unnest(p_event_ids, p_event_types, p_schema_versions, p_occurred_at,
                p_occurred_nanos, p_data, p_metadata)
         WITH ORDINALITY AS given (id, event_type, schema_version, occurred_at,
                                   occurred_nanos, data, metadata, n);

    UPDATE global_position SET last_position = v_last_position + v_count;
    INSERT INTO streams (name, last_version) VALUES (p_stream, v_actual + v_count)
    ON CONFLICT (name) DO UPDATE SET last_version = excluded.last_version;

    RETURN QUERY
    SELECT 'appended', given.id, v_actual + given.n, v_last_position + given.n
    FROM unnest(p_event_ids) WITH ORDINALITY AS given (id, n)
    ORDER BY given.n;
END;
$$;
