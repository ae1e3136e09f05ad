-- Tamper evidence: every event records the SHA-256 of the previous event of its subscription
-- (`previous_hash`) and its own (`hash` = SHA-256 of previous_hash || envelope), computed by
-- the writer at append time. `verify` recomputes the chains and names the first broken link.
ALTER TABLE events ADD COLUMN previous_hash TEXT;
ALTER TABLE events ADD COLUMN hash TEXT;

-- The only update ever allowed: filling in, once, the chain of events written before this
-- migration. Everything else stays append-only.
DROP TRIGGER events_no_update;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
WHEN NOT (
    OLD.hash IS NULL
    AND NEW.position IS OLD.position
    AND NEW.event_id IS OLD.event_id
    AND NEW.subscription_id IS OLD.subscription_id
    AND NEW.stream_version IS OLD.stream_version
    AND NEW.event_type IS OLD.event_type
    AND NEW.schema_version IS OLD.schema_version
    AND NEW.recorded_at IS OLD.recorded_at
    AND NEW.envelope IS OLD.envelope
)
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;
