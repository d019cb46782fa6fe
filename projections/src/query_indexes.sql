-- Indexes only the queries use (pages by tenant, lookups by customer, the staff calendar).
-- The live file has them all along; a rebuild builds them once, after its replay, instead of
-- maintaining them row by row while it folds.
CREATE INDEX IF NOT EXISTS calls_by_tenant ON calls (tenant_id, seq);
CREATE INDEX IF NOT EXISTS calls_by_customer ON calls (customer_id);
CREATE INDEX IF NOT EXISTS appointments_by_tenant ON appointments (tenant_id, seq);
CREATE INDEX IF NOT EXISTS appointments_by_customer ON appointments (customer_id);
CREATE INDEX IF NOT EXISTS appointments_by_staff ON appointments (tenant_id, start_at);
CREATE INDEX IF NOT EXISTS appointments_by_service ON appointments (tenant_id, service, seq);
CREATE INDEX IF NOT EXISTS payments_by_tenant ON payments (tenant_id, seq);
