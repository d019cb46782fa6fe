-- Schema version 1 of the PostgreSQL event store. Run once, by the migrator, inside the
-- transaction that records version 1 in switchboard_schema_version; every name is resolved
-- through the store's search_path, so one database can hold several stores in several schemas.

-- The global order's one counter. Every append transaction locks this row first
-- (lock_positions.sql) and keeps the lock until it commits, so positions are handed out in
-- commit order: a transaction can only take positions after the one before it has committed
-- or rolled back. That is what makes `$all` safe to read with a plain `position >= $1`: no
-- event can become visible later at a position below one a reader has already seen (the
-- sequence-gap problem of a bare sequence, whose values are taken in one order and committed
-- in another).
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
