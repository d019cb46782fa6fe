-- The read models. Plain columns, ISO-8601 UTC text for times, JSON text for nested lists, so
-- analysts can open the file with sqlite3 or DuckDB. Every table is a fold over `$all`: the
-- rebuild creates these same tables in a fresh file and swaps them in.
-- Rows are ordered for paging by `seq`: the global position of the event that created the row,
-- identical in live processing and in a rebuild.
-- The indexes here are the ones the folds look rows up by; the ones only queries use are in
-- query_indexes.sql (a rebuild creates those once, after its replay).

-- How far the read models have folded `$all`; written in the same transaction as the rows.
CREATE TABLE IF NOT EXISTS checkpoint (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL
);
INSERT INTO checkpoint (id, position) VALUES (1, 0) ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------- calls
CREATE TABLE IF NOT EXISTS calls (
    call_id            TEXT PRIMARY KEY,
    seq                INTEGER NOT NULL,
    tenant_id          TEXT,
    branch_id          TEXT,
    status             TEXT NOT NULL,
    direction          TEXT,
    from_number        TEXT,
    to_number          TEXT,
    -- The business's number (to_number inbound, from_number outbound) in E.164: what
    -- attribution looks up in phone_numbers.
    tenant_number      TEXT,
    -- The caller's number (from_number inbound, to_number outbound) in E.164: the customer.
    customer_number    TEXT,
    agent_id           TEXT,
    duration_s         INTEGER,
    call_status        TEXT,
    end_reason         TEXT,
    recording_url      TEXT,
    transcript         TEXT,
    summary            TEXT,
    sentiment          TEXT,
    successful         INTEGER,
    customer_id        TEXT,
    customer_name      TEXT,
    booking_uid        TEXT,
    appointment_status TEXT,
    booking_linked_at  TEXT,
    availability_checks INTEGER NOT NULL DEFAULT 0,
    started_at         TEXT,
    ended_at           TEXT,
    analyzed_at        TEXT,
    updated_at         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_unattributed ON calls (tenant_number) WHERE tenant_id IS NULL;
-- The calls linked to a booking. Most calls have none and need no entry (their NULLs were a
-- third of the index, rewritten whenever the call's row was). Replaces `calls_by_booking`,
-- which held every call: SQLite read models swap it at their next open; PostgreSQL ones of
-- layout 5 run no DDL at open and keep it until a full rebuild or a rebuild of `calls`
-- (the one query by booking uid reads either the same way).
DROP INDEX IF EXISTS calls_by_booking;
CREATE INDEX IF NOT EXISTS calls_booked ON calls (booking_uid) WHERE booking_uid IS NOT NULL;

-- ----------------------------------------------------------------------------- appointments
CREATE TABLE IF NOT EXISTS appointments (
    -- The booking uid, or `request-{call_id}` for a request no booking has fulfilled yet.
    appointment_id   TEXT PRIMARY KEY,
    seq              INTEGER NOT NULL,
    booking_uid      TEXT,
    tenant_id        TEXT,
    branch_id        TEXT,
    call_id          TEXT,
    customer_id      TEXT,
    status           TEXT NOT NULL,
    start_at         TEXT,
    end_at           TEXT,
    service          TEXT,
    staff            TEXT,
    title            TEXT,
    location         TEXT,
    organizer_id     INTEGER,
    attendee_name    TEXT,
    attendee_email   TEXT,
    attendee_phone   TEXT,
    cancel_reason    TEXT,
    rescheduled_from TEXT,
    rescheduled_to   TEXT,
    history          TEXT NOT NULL DEFAULT '[]',
    created_at       TEXT,
    updated_at       TEXT NOT NULL
);
-- A call's bookings. Its request needs no index entry (its id is `request-{call_id}`), and
-- leaving requests out spares every call that asks for an appointment a write into a random
-- leaf of this index (call ids are random). Replaces `appointments_by_call`, which held both.
DROP INDEX IF EXISTS appointments_by_call;
CREATE INDEX IF NOT EXISTS appointments_booked_by_call ON appointments (call_id)
    WHERE booking_uid IS NOT NULL;
CREATE INDEX IF NOT EXISTS appointments_by_organizer ON appointments (organizer_id) WHERE tenant_id IS NULL;

-- -------------------------------------------------------------------------------- customers
-- The id is derived from (tenant_id, phone) (UUIDv5), so it is the only key the table needs: a
-- lookup by number computes the id. Without a rowid a row is one B-tree entry, found and
-- rewritten in one seek (the fold touches a customer on nearly every call event).
CREATE TABLE IF NOT EXISTS customers (
    customer_id        TEXT PRIMARY KEY,
    seq                INTEGER NOT NULL,
    tenant_id          TEXT NOT NULL,
    phone              TEXT NOT NULL,
    name               TEXT,
    email              TEXT,
    calls_count        INTEGER NOT NULL DEFAULT 0,
    appointments_count INTEGER NOT NULL DEFAULT 0,
    first_seen_at      TEXT NOT NULL,
    last_seen_at       TEXT NOT NULL
) WITHOUT ROWID;

-- ---------------------------------------------------------------------------------- tenants
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id             TEXT PRIMARY KEY,
    seq                   INTEGER NOT NULL,
    name                  TEXT,
    subscription_id       TEXT,
    subscription_status   TEXT,
    subscription_plan     TEXT,
    subscription_updated_at TEXT,
    payments_succeeded    INTEGER NOT NULL DEFAULT 0,
    payments_failed       INTEGER NOT NULL DEFAULT 0,
    revenue_cents         INTEGER NOT NULL DEFAULT 0,
    calls_count           INTEGER NOT NULL DEFAULT 0,
    appointments_count    INTEGER NOT NULL DEFAULT 0,
    customers_count       INTEGER NOT NULL DEFAULT 0,
    registered_at         TEXT,
    updated_at            TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS branches (
    tenant_id          TEXT NOT NULL,
    branch_id          TEXT NOT NULL,
    name               TEXT,
    time_zone          TEXT,
    opening_hours      TEXT NOT NULL DEFAULT '[]',
    removed_at         TEXT,
    calls_count        INTEGER NOT NULL DEFAULT 0,
    appointments_count INTEGER NOT NULL DEFAULT 0,
    updated_at         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, branch_id)
);

CREATE TABLE IF NOT EXISTS phone_numbers (
    phone_number TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    branch_id    TEXT NOT NULL,
    assigned_at  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS calcom_organizers (
    organizer_id INTEGER PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    linked_at    TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS stripe_customers (
    stripe_customer_id TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL,
    linked_at          TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS api_tokens (
    token_sha256 TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL
);
-- A tenant's tokens are replaced whole when it sets new ones.
CREATE INDEX IF NOT EXISTS api_tokens_by_tenant ON api_tokens (tenant_id);

CREATE TABLE IF NOT EXISTS subscriptions (
    subscription_id      TEXT PRIMARY KEY,
    tenant_id            TEXT,
    stripe_customer_id   TEXT NOT NULL,
    status               TEXT NOT NULL,
    plan                 TEXT,
    amount_cents         INTEGER,
    currency             TEXT,
    billing_interval     TEXT,
    current_period_start TEXT,
    current_period_end   TEXT,
    cancel_at_period_end INTEGER,
    updated_at           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_by_customer ON subscriptions (stripe_customer_id) WHERE tenant_id IS NULL;

CREATE TABLE IF NOT EXISTS payments (
    stripe_event_id    TEXT PRIMARY KEY,
    seq                INTEGER NOT NULL,
    tenant_id          TEXT,
    stripe_customer_id TEXT NOT NULL,
    invoice_id         TEXT NOT NULL,
    subscription_id    TEXT,
    status             TEXT NOT NULL,
    amount_cents       INTEGER NOT NULL,
    currency           TEXT NOT NULL,
    plan               TEXT,
    failure_code       TEXT,
    failure_message    TEXT,
    occurred_at        TEXT NOT NULL
);
-- The payments waiting for their customer's tenant, in order: a customer's link reads its own
-- (with `(stripe_customer_id)` alone, layout 4, SQLite preferred `payments_by_tenant` for the
-- order and read every unattributed payment of every customer).
CREATE INDEX IF NOT EXISTS payments_by_customer ON payments (stripe_customer_id, seq)
    WHERE tenant_id IS NULL;

-- -------------------------------------------------------------------------------- anomalies
CREATE TABLE IF NOT EXISTS anomalies (
    anomaly_id          INTEGER PRIMARY KEY,
    position            INTEGER NOT NULL,
    stream              TEXT NOT NULL,
    event_type          TEXT NOT NULL,
    reason              TEXT NOT NULL,
    message             TEXT NOT NULL,
    -- What the anomaly is about, so attribution can resolve it or name its tenant: for
    -- `unattributed_*` the record waiting (`call`, `booking`, `payment`, `subscription`), else
    -- the aggregate of the stream it was recorded on (`call`, `booking`, `tenant`, `billing`,
    -- `event-type`), or the stream's own prefix (`delivery`, `stream`).
    subject_kind        TEXT,
    subject_id          TEXT,
    tenant_id           TEXT,
    occurred_at         TEXT NOT NULL,
    resolved_at         TEXT,
    resolved_by_position INTEGER
);
CREATE INDEX IF NOT EXISTS anomalies_open ON anomalies (subject_kind, subject_id) WHERE resolved_at IS NULL;
