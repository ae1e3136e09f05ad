-- Idempotency records are kept for a retention period (`--idempotency-retention-hours`), then
-- deleted oldest first; this index lets the sweep find them without reading the whole table.
CREATE INDEX log_idempotency_by_age ON log_idempotency (created_at);
