-- Schema version 2: the events table without the UNIQUE (stream, event_id) index.
--
-- That index cost every commit one more dirty B-tree leaf (4 KiB of WAL, written and fsynced)
-- per distinct stream in the group, for a lookup that only retries need. The writer, the one
-- connection that appends, now answers "is this id already in the stream" from the stream's
-- ids, which it reads once through the (stream, version) index and then keeps in memory (see
-- writer.rs). (stream, version) stays unique: it is what orders a stream and what
-- read_stream and "the stream's last version" seek on.
--
-- SQLite cannot drop a table constraint, so the table is rebuilt; positions (the rowids) are
-- copied as they are, so `$all` keeps its order and every reader's position stays valid.
CREATE TABLE events_v2 (
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
    UNIQUE (stream, version)
);
INSERT INTO events_v2 SELECT * FROM events ORDER BY position;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
