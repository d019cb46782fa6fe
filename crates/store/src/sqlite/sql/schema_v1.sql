-- Schema version 1 of the embedded event store. Applied once, in the same transaction that
-- stamps the file with the store's application_id and user_version.

-- The events, in global order. `position` is the rowid: SQLite hands out max(rowid) + 1, and
-- since one writer commits one transaction at a time, a reader can never see a position that
-- an uncommitted transaction could still fill below the ones it has seen.
--
-- Timestamps are seconds plus nanoseconds so every `DateTime<Utc>` round-trips exactly.
-- Data and metadata are kept as the JSON text they were serialized to.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    stream         TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    occurred_s     INTEGER NOT NULL,
    occurred_ns    INTEGER NOT NULL,
    recorded_s     INTEGER NOT NULL,
    recorded_ns    INTEGER NOT NULL,
    data           TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    -- Also answers "what is this stream's last version" (max over the index), so there is no
    -- separate streams table to rewrite on every append.
    UNIQUE (stream, version),
    -- Idempotency is per stream, as in KurrentDB: a retried append finds its ids here.
    UNIQUE (stream, event_id)
);
