-- Indexes only the queries use. The live file has them all along; a rebuild builds them once,
-- after its replay, instead of maintaining them row by row while it folds. Each lets its query
-- stop after the rows it returns, however long the history (layout 5; a query of layout 4
-- could read a tenant's or a customer's whole past, or a whole table, for one page).

-- Pages, newest last: a tenant's (token or `?tenant_id=`), and every tenant's (admin).
CREATE INDEX IF NOT EXISTS calls_by_tenant ON calls (tenant_id, seq);
CREATE INDEX IF NOT EXISTS appointments_by_tenant ON appointments (tenant_id, seq);
CREATE INDEX IF NOT EXISTS calls_in_order ON calls (seq);
CREATE INDEX IF NOT EXISTS appointments_in_order ON appointments (seq);
CREATE INDEX IF NOT EXISTS payments_by_tenant ON payments (tenant_id, seq);
CREATE INDEX IF NOT EXISTS anomalies_by_tenant ON anomalies (tenant_id, anomaly_id);
-- A customer's latest calls and appointments.
CREATE INDEX IF NOT EXISTS calls_by_customer ON calls (customer_id, seq);
CREATE INDEX IF NOT EXISTS appointments_by_customer ON appointments (customer_id, seq);
-- The calendar `check_availability` reads: the slots still held, by when they end. A query for a
-- window reads the held slots that end after it starts, a number the booking horizon bounds.
-- (Layout 4 had `appointments_by_staff (tenant_id, start_at)`, with which the query read every
-- appointment the tenant ever had that started before the window's end.)
CREATE INDEX IF NOT EXISTS appointments_holding_slots ON appointments (tenant_id, end_at)
    WHERE status IN ('booked', 'rescheduled') AND rescheduled_to IS NULL;
-- A service's latest appointments with a start and an end: requests without them are not in
-- it, so however many there are, the query reads no more than the sample it asks for.
CREATE INDEX IF NOT EXISTS appointments_by_service ON appointments (tenant_id, service, seq)
    WHERE start_at IS NOT NULL AND end_at IS NOT NULL;
-- A tenant's registrations, for its view: one tenant's rows, not every tenant's.
CREATE INDEX IF NOT EXISTS phone_numbers_by_tenant
    ON phone_numbers (tenant_id, branch_id, phone_number);
CREATE INDEX IF NOT EXISTS calcom_organizers_by_tenant ON calcom_organizers (tenant_id);
CREATE INDEX IF NOT EXISTS stripe_customers_by_tenant ON stripe_customers (tenant_id);
