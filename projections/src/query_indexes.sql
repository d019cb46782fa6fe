-- Indexes only the queries use (pages by tenant, lookups by customer, the calendar, a service's
-- usual length).
-- The live file has them all along; a rebuild builds them once, after its replay, instead of
-- maintaining them row by row while it folds.
CREATE INDEX IF NOT EXISTS calls_by_tenant ON calls (tenant_id, seq);
CREATE INDEX IF NOT EXISTS calls_by_customer ON calls (customer_id);
CREATE INDEX IF NOT EXISTS appointments_by_tenant ON appointments (tenant_id, seq);
CREATE INDEX IF NOT EXISTS appointments_by_customer ON appointments (customer_id);
-- The calendar `check_availability` reads: the slots still held, by when they end. A query for a
-- window reads the held slots that end after it starts, a number the booking horizon bounds.
-- (Layout 4 had `appointments_by_staff (tenant_id, start_at)`, with which the query read every
-- appointment the tenant ever had that started before the window's end, a number that grows.)
CREATE INDEX IF NOT EXISTS appointments_holding_slots ON appointments (tenant_id, end_at)
    WHERE status IN ('booked', 'rescheduled') AND rescheduled_to IS NULL;
-- A service's latest appointments with a start and an end: requests without them are not in
-- it, so however many there are, the query reads no more than the sample it asks for.
CREATE INDEX IF NOT EXISTS appointments_by_service ON appointments (tenant_id, service, seq)
    WHERE start_at IS NOT NULL AND end_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS payments_by_tenant ON payments (tenant_id, seq);
