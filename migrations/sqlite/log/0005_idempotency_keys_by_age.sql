-- Idempotency records are kept for a retention period (`--idempotency-retention-hours`), then
-- deleted oldest first; this index lets the sweep find them without reading the whole table.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
